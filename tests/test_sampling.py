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
    return load_backend(str(sharp_model_dir), {"backend": "hf", "device": "cpu", "batch_size": 8})


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
    """Continuous batching: with room for 2 rows, the 6 prompts' rows join as others stop, each
    right-aligned on the shared time axis; every completion equals plain greedy `generate`, cut alike.
    The random model never stops by itself, so tokens that some continuations emit play EOS."""
    from selfteach.sampling.prefix_attention import RowCache

    prompts = [SHARED + f"def f(x: int, n={k}):\n" + "    y = x\n" * k + f"    return y == {k}\n\ndef g(n={k}):" for k in range(6)]
    tokenizer, continuations = plain_greedy(sharp_model_dir, prompts, 30)
    stops = {continuations[k][2 + 4 * k] for k in range(4)}  # rows 0-3 end at steps 3, 7, 11, 15 or sooner
    ends = [next((t + 1 for t, token in enumerate(c) if token in stops), len(c)) for c in continuations]
    expected = [c[:end] for c, end in zip(continuations, ends)]

    joins = []
    stack = RowCache.stack.__func__

    def spy(cls, parts, room, rows=None):
        if rows is None:  # a decoding batch taking rows in, not one prompt encoding laid out
            joins.append(len(parts))
        return stack(cls, parts, room, rows)

    monkeypatch.setattr(RowCache, "stack", classmethod(spy))
    small = load_backend(str(sharp_model_dir), {"backend": "hf", "device": "cpu", "batch_size": 2})
    small.eos_ids = torch.tensor(sorted(stops))
    ours = small.generate(prompts, SamplingParams(n=1, temperature=0, max_new_tokens=30, stop=None))
    assert 2 in joins  # some rows joined a batch that was still running
    for tokens, [sample] in zip(expected, ours):
        assert (sample.text, sample.tokens) == (tokenizer.decode(tokens, skip_special_tokens=True), len(tokens))


def test_stacked_rows_are_right_aligned_and_unused_columns_dropped():
    from selfteach.sampling.prefix_attention import RowCache

    def part(lengths_and_width):
        lengths, width = lengths_and_width
        cache = RowCache(1, width)
        keys = torch.arange(len(lengths) * width, dtype=torch.float32).view(len(lengths), 1, width, 1) + 1
        cache.layers[0].update(keys, -keys)
        real = torch.tensor([[c >= width - n for c in range(width)] for n in lengths])
        return cache, real

    (a, a_real), (b, b_real) = part(([2, 3], 5)), part(([1], 2))
    stacked, real = RowCache.stack([(a, a_real), (b, b_real)], room=4)
    assert real.tolist() == [[False, True, True], [True, True, True], [False, False, True]]
    layer = stacked.layers[0]
    assert layer.length == 3 and layer.keys.shape == (3, 1, 7, 1)
    assert layer.keys[:, 0, :3, 0].tolist() == [[3, 4, 5], [8, 9, 10], [0, 1, 2]]
    assert torch.equal(layer.values[:, :, :3], -layer.keys[:, :, :3])


def test_prompt_by_prompt_when_prompts_share_little_and_have_several_samples(backend, monkeypatch):
    # SmolLM2-135M's sizes: 540 MB of fp32 weights, 46 kB of keys/values per token
    monkeypatch.setattr(backend, "_weight_bytes", 538_000_000)
    monkeypatch.setattr(backend, "_kv_bytes_per_token", 46_080)
    monkeypatch.setattr(backend, "batch_size", 64)
    generation = [[k] * 1848 for k in range(2)]  # two shuffles of the train puzzles, 16 puzzles each
    solving = [[7] * 295 + [k] * 127 for k in range(8)]  # the few-shot prefix, then a puzzle, 8 solutions each
    assert backend._prompt_by_prompt(generation, 16)
    assert not backend._prompt_by_prompt(solving, 8)
    assert not backend._prompt_by_prompt(generation, 1)


def test_prompt_by_prompt_sampling_matches_plain_greedy_generate(backend, sharp_model_dir, monkeypatch):
    monkeypatch.setattr(backend, "_prompt_by_prompt", lambda encoded, n: True)
    prompts = [SHARED + "def f(s: str):\n    return s == 'a'\n\ndef g():", "def f(x: int):\n    return x > 3\n\ndef g():"]
    ours = backend.generate(prompts, SamplingParams(n=2, temperature=0, max_new_tokens=10, stop=None))
    tokenizer, continuations = plain_greedy(sharp_model_dir, prompts, 10)
    for continuation, samples in zip(continuations, ours):
        expected = tokenizer.decode(continuation, skip_special_tokens=True)
        assert [c.text for c in samples] == [expected, expected]


def test_prefill_in_length_groups_equals_one_padded_batch(backend, monkeypatch):
    backend.generate(PROMPTS, SamplingParams(n=1, temperature=0, max_new_tokens=1))  # caches a prefix
    offset = len(backend._prefix_tokens)
    rests = [list(range(5, 5 + n)) for n in (3, 17, 9, 1, 16)]
    monkeypatch.setattr(hf, "PREFILL_TOKENS", 34)  # groups {1, 3, 9}, {16, 17}
    with torch.inference_mode():
        whole_logits, whole_cache, whole_real = backend._forward_prompts(rests, backend._prefix_kv, offset, 17)
        logits, cache, real = backend._prefill(rests, offset)
    assert torch.equal(real, whole_real)
    torch.testing.assert_close(logits, whole_logits, rtol=1e-4, atol=1e-5)
    for layer, whole_layer in zip(cache.key_values(), whole_cache.key_values()):
        for part, whole in zip(layer, whole_layer):  # (B, H, S, D): compare where tokens are real
            torch.testing.assert_close(part.transpose(1, 2)[real], whole.transpose(1, 2)[real], rtol=1e-4, atol=1e-5)
            assert part.isfinite().all()  # padding holds finite numbers (masked out, still multiplied by 0)


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
