"""The sampling engine: parameters, the HF backend's decoding loop, and resumable sampling to JSONL."""

from __future__ import annotations

import ast

import pytest
import torch

from selfteach.io import read_jsonl
from selfteach.sampling import Completion, SamplingParams, load_backend, sample_to_jsonl
from selfteach.sampling import hf
from selfteach.sampling.hf import PREFIX_BLOCK, HFBackend

SHARED = "from typing import List\n\n" + "".join(
    f"def f{i}(x: int, n={i}):\n    return x * n == {i * i}\n\n" for i in range(12)
)
PROMPTS = [SHARED + "def f(s: str):\n    return s == 'a'\n\ndef g():", SHARED + "def f(x: int):\n    return x > 3\n\ndef g():"]


@pytest.fixture(scope="module")
def sharp_model_dir(tmp_path_factory):
    """The tiny model at a larger weight scale: its greedy tokens depend on the context (see conftest)."""
    from conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("sharp-model"), initializer_range=0.2)


@pytest.fixture(scope="module")
def backend(sharp_model_dir):
    return load_backend(str(sharp_model_dir), {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": 8})


def test_params_are_checked():
    with pytest.raises(ValueError, match="stop"):
        SamplingParams(n=1, temperature=1.0, max_new_tokens=4, stop="eol")
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(n=1, temperature=-1.0, max_new_tokens=4)
    with pytest.raises(ValueError, match="n must"):
        SamplingParams(n=0, temperature=1.0, max_new_tokens=4)


def test_load_backend_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backend(str(tmp_path / "missing"), {"backend": "hf"})
    with pytest.raises(ValueError, match="sampling.backend"):
        load_backend("x", {"backend": "llama.cpp"})
    with pytest.raises(ValueError, match="source: openai"):
        load_backend({"source": "hub"}, {})
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="vllm is not installed"):
            load_backend(str(tmp_path), {"backend": "vllm"})


def test_n_samples_per_prompt_deterministic_by_seed(backend):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, top_p=0.9, top_k=50, stop=None, seed=1)
    first = backend.generate(PROMPTS, params)
    assert [len(samples) for samples in first] == [3, 3]
    assert all(isinstance(c, Completion) and 1 <= c.tokens <= 8 for samples in first for c in samples)
    assert backend.generate(PROMPTS, params) == first
    assert len({c.text for c in first[0]}) > 1  # the samples of one prompt differ
    other = backend.generate(PROMPTS, SamplingParams(**{**params.__dict__, "seed": 2}))
    assert other != first


def test_seeded_samples_do_not_depend_on_the_batch_size(backend, sharp_model_dir):
    """Each row draws from its own seeded generator: 6 rows decoded 8, 3 or 1 at a time (joining,
    leaving and moving between slots differently) give the same samples."""
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, stop=None, seed=4)
    results = [backend.generate(PROMPTS, params)]
    for batch_size in (3, 1):
        small = load_backend(str(sharp_model_dir), {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": batch_size})
        results.append(small.generate(PROMPTS, params))
    assert results[1] == results[0] and results[2] == results[0]


def test_dtype_auto_is_bf16_exactly_where_the_hardware_has_it():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert hf.resolve_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else torch.float32)
    assert hf.resolve_dtype("float32", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="sampling.dtype must be auto or one of"):
        hf.resolve_dtype("int8", torch.device("cpu"))


@pytest.mark.slow
def test_bf16_greedy_tokens_agree_with_fp32_on_most_positions(p3_dir, embedded_model_dir):
    """bf16 must not change what the loop learns: along the real model's fp32 greedy solutions (our
    sampler's), bf16's argmax picks the same token at most positions (rounding may flip a near tie).
    (A random model has too many near ties to say anything.)"""
    from transformers import AutoModelForCausalLM

    from selfteach import p3, prompts

    full = load_backend(str(embedded_model_dir), {"backend": "hf", "device": "cpu", "dtype": "float32"})
    texts = [prompts.solution_prompt(p3.train_prefix(p3_dir), puzzle["f"]) for puzzle in p3.test_puzzles(p3_dir)[:4]]
    results = full.generate(texts, SamplingParams(n=1, temperature=0, max_new_tokens=24, stop=None))
    half = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.bfloat16).eval()
    same = total = 0
    for text, [completion] in zip(texts, results):
        prompt_ids = full.tokenizer(text).input_ids
        continuation = full.tokenizer(completion.text, add_special_tokens=False).input_ids
        with torch.inference_mode():
            logits = half(torch.tensor([prompt_ids + continuation])).logits[0, len(prompt_ids) - 1 : -1]
        same += int((logits.argmax(-1) == torch.tensor(continuation)).sum())
        total += len(continuation)
    assert same >= 0.9 * total


def plain_greedy(model_dir, prompts: list[str], max_new_tokens: int):
    """The tokenizer, and each prompt's continuation (token ids) under plain transformers `generate`, argmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    plain = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    continuations = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        out = plain.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=0
        )
        continuations.append(out[0, ids.shape[1] :].tolist())
    return tokenizer, continuations


@pytest.mark.parametrize("prefill_tokens", [hf.PREFILL_TOKENS, 1])  # all prompts at once; one by one
def test_shared_prefix_path_matches_plain_greedy_generate(backend, sharp_model_dir, monkeypatch, prefill_tokens):
    """Our decoding (cached prefix, per-prompt parts encoded in length groups and laid out left-padded,
    n rows) equals plain `generate` under argmax."""
    monkeypatch.setattr(hf, "PREFILL_TOKENS", prefill_tokens)
    long_rest = SHARED + "def f(x: List[int], n=7):\n    return sorted(x) == list(range(n)) and len(x) == n\n\ndef g(n=7):"
    prompts = [PROMPTS[0], long_rest, PROMPTS[1]]
    params = SamplingParams(n=2, temperature=0, max_new_tokens=10, stop=None)
    ours = backend.generate(prompts, params)
    assert len(backend._prefix_tokens) >= PREFIX_BLOCK  # the shared prefix was cached and reused
    tokenizer, continuations = plain_greedy(sharp_model_dir, prompts, 10)
    for continuation, samples in zip(continuations, ours):
        expected = tokenizer.decode(continuation, skip_special_tokens=True)
        assert [c.text for c in samples] == [expected, expected]


def test_rows_that_join_a_running_batch_decode_like_plain_generate(sharp_model_dir, monkeypatch):
    """Continuous batching: with room for 2 rows, the 6 prompts' rows join as others stop, each in
    its own slot with its own length, moved when rows before it leave; every completion equals plain
    greedy `generate`, cut alike. The random model never stops by itself, so tokens that some
    continuations emit play EOS."""
    prompts = [SHARED + f"def f(x: int, n={k}):\n" + "    y = x\n" * k + f"    return y == {k}\n\ndef g(n={k}):" for k in range(6)]
    tokenizer, continuations = plain_greedy(sharp_model_dir, prompts, 30)
    stops = {continuations[k][2 + 4 * k] for k in range(4)}  # rows 0-3 end at steps 3, 7, 11, 15 or sooner
    ends = [next((t + 1 for t, token in enumerate(c) if token in stops), len(c)) for c in continuations]
    expected = [c[:end] for c, end in zip(continuations, ends)]

    joins = []
    join = hf.Batch.join

    def spy(batch, new_rows):
        joins.append(len(batch.rows))  # rows already decoding when others join
        return join(batch, new_rows)

    monkeypatch.setattr(hf.Batch, "join", spy)
    small = load_backend(str(sharp_model_dir), {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": 2})
    small.eos_ids = torch.tensor(sorted(stops))
    ours = small.generate(prompts, SamplingParams(n=1, temperature=0, max_new_tokens=30, stop=None))
    assert any(joins)  # some rows joined a batch that was still running
    for tokens, [sample] in zip(expected, ours):
        assert (sample.text, sample.tokens) == (tokenizer.decode(tokens, skip_special_tokens=True), len(tokens))


@pytest.mark.parametrize("q_len", [1, 5])  # decoding, encoding
@pytest.mark.parametrize("with_prompts", [True, False])
@pytest.mark.parametrize("with_prefix", [True, False])
def test_attention_in_parts_equals_full_softmax_on_both_paths(q_len, with_prompts, with_prefix):
    """The CPU kernel path and the plain path (CUDA's) both equal softmax attention over the prefix,
    the row's prompt (held once per group of rows, groups of different lengths, one without rows),
    then each row's visible own keys, with grouped-query heads and rows of different lengths."""
    from selfteach.sampling.prefix_attention import SharedKeys, attention, flash_part, plain_part

    generator = torch.Generator().manual_seed(0)
    batch, q_heads, kv_heads, own, prefix_len, dim = 3, 6, 2, 9, 4, 8
    query = torch.randn(batch, q_heads, q_len, dim, generator=generator)
    key, value = (torch.randn(batch, kv_heads, own, dim, generator=generator) for _ in range(2))
    prefix = tuple(torch.randn(1, kv_heads, prefix_len, dim, generator=generator) for _ in range(2))
    prompts = tuple(torch.randn(3, kv_heads, 5, dim, generator=generator) for _ in range(2))
    groups, prompt_lengths = [[0, 2], [], [1]], [5, 2, 3]  # rows 0 and 2 share prompt 0; prompt 1 has no rows
    parts = [SharedKeys.for_every_row([prefix], batch)] if with_prefix else []
    parts += [SharedKeys.for_groups([prompts], groups, prompt_lengths)] if with_prompts else []
    lengths = [9, 6, 7]  # own tokens per row, the last q_len of them the queries
    positions = torch.arange(own)
    visible = torch.stack([
        (positions[None] < length) & (positions[None] <= length - q_len + torch.arange(q_len)[:, None])
        for length in lengths
    ])[:, None]  # (B, 1, q, S): causal within each row's own length
    expected = torch.empty(batch, q_len, q_heads, dim)
    for b in range(batch):
        prompt = next(g for g, members in enumerate(groups) if b in members)
        for h in range(q_heads):
            kv = h // (q_heads // kv_heads)
            seen_parts = [(prefix[0][0, kv], prefix[1][0, kv])] if with_prefix else []
            if with_prompts:
                seen_parts.append(tuple(part[prompt, kv, : prompt_lengths[prompt]] for part in prompts))
            seen_parts.append((key[b, kv], value[b, kv]))
            keys, values = (torch.cat(part) for part in zip(*seen_parts))
            seen = torch.cat([torch.ones(q_len, keys.shape[0] - own, dtype=torch.bool), visible[b, 0]], 1)
            scores = (query[b, h] @ keys.T / dim**0.5).masked_fill(~seen, float("-inf"))
            expected[b, :, h] = scores.softmax(-1) @ values
    for attend in (flash_part, plain_part):
        out = attention(attend, query, key, value, visible, dim**-0.5, parts, 0)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_slots_hold_rows_left_aligned_and_move_without_touching_others():
    from selfteach.sampling.prefix_attention import SlotCache

    def keys(rows, width):
        return torch.arange(rows * width, dtype=torch.float32).view(rows, 1, width, 1) + 1

    encoded = SlotCache(1, 2, 3, torch.device("cpu"))  # two prompts, left-padded to 3 tokens
    encoded.begin(2, 3)
    encoded.update(keys(2, 3), -keys(2, 3), 0)
    encoded.advance(3)
    cache = SlotCache(1, 4, 6, torch.device("cpu"))
    cache.copy(encoded, 1, 3, [0, 2])  # the second prompt (3 tokens) into slots 0 and 2
    cache.copy(encoded, 0, 1, [1])  # the first (1 token: its last) into slot 1
    layer = cache.layers[0]
    assert cache.lengths == [3, 1, 3, 0]
    assert layer.keys[:3, 0, :3, 0].tolist() == [[4, 5, 6], [3, 0, 0], [4, 5, 6]]
    visible = cache.begin(3, 1)  # a decoding step: each slot's token goes after its own last
    assert cache.capacity == 6 and visible.tolist() == [[True] * 4 + [False] * 2, [True] * 2 + [False] * 4, [True] * 4 + [False] * 2]
    cache.update(torch.full((3, 1, 1, 1), 9.0), torch.full((3, 1, 1, 1), -9.0), 0)
    cache.advance(1)
    assert cache.lengths == [4, 2, 4, 0]
    assert layer.keys[:3, 0, :4, 0].tolist() == [[4, 5, 6, 9], [3, 9, 0, 0], [4, 5, 6, 9]]
    assert torch.equal(layer.values[:3, :, :4], -layer.keys[:3, :, :4])
    cache.copy(cache, 1, 2, [0])  # slot 0 left: slot 1 takes its place
    assert cache.lengths[0] == 2 and layer.keys[0, 0, :2, 0].tolist() == [3, 9]


def test_slot_cache_grows_and_shrinks_in_blocks_keeping_rows():
    from selfteach.sampling.prefix_attention import CACHE_BLOCK, SlotCache

    cache = SlotCache(1, 2, 3 * CACHE_BLOCK, torch.device("cpu"))
    long = torch.arange(2 * CACHE_BLOCK + 5, dtype=torch.float32).view(1, 1, -1, 1) + 1
    source = SlotCache(1, 1, long.shape[2], torch.device("cpu"))
    source.begin(1, long.shape[2])
    source.update(long, -long, 0)
    source.advance(long.shape[2])
    cache.copy(source, 0, 3, [0])  # a short row: the source's last 3 tokens
    short = long[0, 0, -3:, 0].tolist()
    assert cache.capacity == CACHE_BLOCK
    cache.copy(source, 0, long.shape[2], [1])  # a long row: the cache grows to whole blocks
    assert cache.capacity == 3 * CACHE_BLOCK and cache.layers[0].keys[0, 0, :3, 0].tolist() == short
    assert cache.begin(2, 1).shape == (2, 3 * CACHE_BLOCK)  # the mask covers every allocated column
    cache.copy(cache, 0, 3, [1])  # the long row leaves, the short one moves into its slot
    cache.copy(cache, 1, 3, [0])
    cache.begin(1, 1)  # two blocks unused: the cache shrinks, keeping the rows in use
    assert cache.capacity == CACHE_BLOCK and cache.layers[0].keys[0, 0, :3, 0].tolist() == short
    full = SlotCache(1, 2, 4, torch.device("cpu"))  # a slot filled to its last column moves within the cache
    full.copy(source, 0, 4, [1])
    full.copy(full, 1, 4, [0])
    assert full.layers[0].keys[0, 0, :, 0].tolist() == long[0, 0, -4:, 0].tolist()


def test_prompts_sharing_no_prefix_are_held_once_for_their_rows_and_decode_like_plain_generate(
    backend, sharp_model_dir, monkeypatch
):
    """Each prompt's keys/values are held once, attended by all its rows (here with no shared prefix)."""
    held = []
    step = hf.Batch.step

    def spy(batch, tokens):
        held.append((len(batch.prompt_in_slot), len(batch.rows)))
        return step(batch, tokens)

    monkeypatch.setattr(hf.Batch, "step", spy)
    prompts = [SHARED + "def f(s: str):\n    return s == 'a'\n\ndef g():", "def f(x: int):\n    return x > 3\n\ndef g():"]
    ours = backend.generate(prompts, SamplingParams(n=3, temperature=0, max_new_tokens=10, stop=None))
    assert backend._prefix_tokens == () and held[0] == (2, 6)
    tokenizer, continuations = plain_greedy(sharp_model_dir, prompts, 10)
    for continuation, samples in zip(continuations, ours):
        assert [c.text for c in samples] == [tokenizer.decode(continuation, skip_special_tokens=True)] * 3


def test_prefill_in_length_groups_equals_one_padded_batch(backend, monkeypatch):
    backend.generate(PROMPTS, SamplingParams(n=1, temperature=0, max_new_tokens=1))  # caches a prefix
    offset = len(backend._prefix_tokens)
    rests = [list(range(5, 5 + n)) for n in (3, 17, 9, 1, 16)]
    monkeypatch.setattr(hf, "PREFILL_TOKENS", 34)  # groups {1, 3, 9}, {16, 17}
    with torch.inference_mode():
        whole_logits, whole = backend._forward_prompts(rests, offset)
        logits, places = backend._prefill(rests, offset)
    assert len({id(cache) for cache, _ in places}) == 2
    torch.testing.assert_close(logits, whole_logits, rtol=1e-4, atol=1e-5)
    for i, (cache, slot) in enumerate(places):  # each rest's keys/values: the last len(rest) tokens of its slot
        end = cache.lengths[slot]
        for layer, whole_layer in zip(cache.layers, whole.layers):
            for part, full in ((layer.keys, whole_layer.keys), (layer.values, whole_layer.values)):
                own = part[slot, :, end - len(rests[i]) : end]
                torch.testing.assert_close(own, full[i, :, 17 - len(rests[i]) :], rtol=1e-4, atol=1e-5)
                assert part[slot, :, :end].isfinite().all()  # padding holds finite numbers (multiplied by 0)


@pytest.mark.parametrize(
    "temperature, top_k, top_p, expected",
    [
        (1.0, 0, 1.0, [0.5, 0.3, 0.15, 0.05]),
        (1.0, 0, 0.8, [0.5 / 0.8, 0.3 / 0.8, 0, 0]),  # the smallest head whose mass reaches 0.8
        (1.0, 3, 1.0, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
        (0.5, 0, 1.0, [p * p / 0.3625 for p in (0.5, 0.3, 0.15, 0.05)]),
    ],
)
def test_the_pick_draws_from_the_truncated_tempered_distribution(temperature, top_k, top_p, expected):
    """Inverse-CDF picks over evenly spaced uniforms land on each token in proportion to its mass."""
    draws = 4000
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(draws, 4).to(torch.bfloat16)
    uniform = (torch.arange(draws, dtype=torch.float64) + 0.5) / draws
    params = SamplingParams(n=1, temperature=temperature, max_new_tokens=1, top_k=top_k, top_p=top_p)
    counts = torch.bincount(HFBackend._pick(logits, uniform, params), minlength=4) / draws
    torch.testing.assert_close(counts, torch.tensor(expected), atol=0.01, rtol=0)


def scripted(backend, monkeypatch, text: str, eos_at: int | None = None):
    """Make the backend emit the tokens of `text` (then EOS at step `eos_at`); count decoding steps."""
    script = backend.tokenizer(text, add_special_tokens=False).input_ids
    steps = []

    def pick(logits, uniform, params):
        step = len(steps)
        steps.append(step)
        token = backend.tokenizer.eos_token_id if step == eos_at else script[min(step, len(script) - 1)]
        return torch.full((logits.shape[0],), token, dtype=torch.long)

    monkeypatch.setattr(HFBackend, "_pick", staticmethod(pick))
    return script, steps


def test_stops_at_the_first_dedent(backend, monkeypatch):
    script, steps = scripted(backend, monkeypatch, "\n    return 1\n\nassert f(g())\n" + "x = 1\n" * 20)
    [[completion]] = backend.generate(PROMPTS[:1], SamplingParams(n=1, temperature=1.0, max_new_tokens=60))
    assert completion.text == "\n    return 1"
    assert completion.finished
    assert completion.tokens == len(steps) < 15  # stopped right after the dedent, not at the budget
    assert backend.tokenizer.decode(script[: completion.tokens]).startswith("\n    return 1\n\nassert")


def test_budget_and_eos_are_not_finished(backend, monkeypatch):
    scripted(backend, monkeypatch, "\n    return [" + "1, " * 40, eos_at=5)
    [[eos]] = backend.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0, max_new_tokens=30))
    assert (eos.tokens, eos.finished) == (6, False)
    scripted(backend, monkeypatch, "\n    return [" + "1, " * 40)
    [[budget]] = backend.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0, max_new_tokens=7))
    assert (budget.tokens, budget.finished) == (7, False)


def test_context_overflow_is_a_clear_error(backend):
    with pytest.raises(ValueError, match="exceed the model's context"):
        backend.generate(["x " * 5000], SamplingParams(n=1, temperature=0, max_new_tokens=10))


class Killed(Exception):
    pass


class DiesAfter:
    """A backend that dies on its `calls`-th generate, like a job killed mid-run."""

    def __init__(self, backend, calls: int):
        self.backend, self.calls = backend, calls

    def generate(self, prompts, params, *, keys=None):
        self.calls -= 1
        if self.calls == 0:
            raise Killed
        return self.backend.generate(prompts, params, keys=keys)


def test_resume_after_a_kill_gives_the_same_file(backend, tmp_path):
    requests = [{"id": f"p{i}", "prompt": PROMPTS[i % 2] + f"\n    # {i}", "puzzle": i} for i in range(5)]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=3)
    whole = tmp_path / "whole.jsonl"
    summary = sample_to_jsonl(backend, requests, params, whole, prompts_per_batch=2, progress=False)
    assert summary["samples"] == 10 and not (tmp_path / "whole.jsonl.partial").exists()
    records = read_jsonl(whole)
    assert [(r["id"], r["sample"]) for r in records] == [(f"p{i}", j) for i in range(5) for j in range(2)]
    assert set(records[0]) == {"id", "puzzle", "sample", "completion", "tokens", "finished"}

    out = tmp_path / "resumed.jsonl"
    with pytest.raises(Killed):
        sample_to_jsonl(DiesAfter(backend, 3), requests, params, out, prompts_per_batch=2, progress=False)
    assert not out.exists()
    partial = tmp_path / "resumed.jsonl.partial"
    assert len(read_jsonl(partial)) == 8  # two batches of two prompts
    with open(partial, "a") as torn:  # a kill in the middle of a write
        torn.write('{"id": "p4", "sample"')
    again = sample_to_jsonl(backend, requests, params, out, prompts_per_batch=2, progress=False)
    assert again["new_samples"] == 2
    assert out.read_bytes() == whole.read_bytes()


def test_bad_requests_name_the_record(backend, tmp_path):
    params = SamplingParams(n=1, temperature=0, max_new_tokens=2)
    with pytest.raises(ValueError, match="request 1: duplicate id 'a'"):
        sample_to_jsonl(backend, [{"id": "a", "prompt": "x"}] * 2, params, tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="request 0: needs a string 'id'"):
        sample_to_jsonl(backend, [{"prompt": "x"}], params, tmp_path / "o.jsonl")


@pytest.mark.slow
def test_real_model_writes_python(p3_dir, embedded_model_dir):
    """The embedded SmolLM2-135M, prompted like the paper, mostly writes a g that parses."""
    from selfteach import p3, prompts

    backend = load_backend(str(embedded_model_dir), {"backend": "hf", "device": "cpu"})
    puzzles = p3.test_puzzles(p3_dir)[:2]
    texts = [prompts.solution_prompt(p3.train_prefix(p3_dir), puzzle["f"]) for puzzle in puzzles]
    results = backend.generate(texts, SamplingParams(n=4, temperature=0.8, max_new_tokens=100))
    completions = [(puzzle, c) for puzzle, samples in zip(puzzles, results) for c in samples]
    parses = 0
    for puzzle, c in completions:
        try:
            ast.parse(prompts.solution_header(puzzle["f"]) + c.text)
            parses += 1
        except SyntaxError:
            pass
    assert parses >= len(completions) // 2
    assert sum(c.finished for _, c in completions) >= len(completions) // 2
