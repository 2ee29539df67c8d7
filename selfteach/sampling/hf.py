"""The Hugging Face transformers backend: batched sampling with the shared prompt encoded once.

Terms (as in `prefix_attention`): a *row* is one sequence being sampled, one sample of one prompt;
a *slot* is a row's place in the batch's tensors.

Where the time goes (cProfile and torch.profiler of `generate` on 64 test puzzles x 8 samples,
SmolLM2-135M, batch 64, this project's idle 2-core AMD EPYC with AVX512-BF16;
benchmarks/sampling_throughput.py measures the rates). Earlier: fp32, one thread, busy machine, 210.6 s for
1,912 tokens of 8 puzzles: linear maps 49%, attention 26%, re-laying rows' caches 8%. Then, bf16 with
threads waiting passively: 104 generated tokens/s; a step at 64 rows cost ~3x its matmuls: every small
op paid a thread wake-up (exp of 221k floats 1.1 ms instead of 0.14), bf16 matmul copied the strided
slice of every row's keys and values (a fifth of each step), 30% of the prompts' tokens were encoded
twice (a prompt's rows split across two joins) and the shared prefix was cut to 256 of its 295 tokens.
Then 226 tokens/s in bf16 (123 in fp32): linear maps 40% of the time, attention 25% (matmuls 18%, exp
5%), encoding prompts 13%, picking tokens 6%. Now (session 8, timers around each part, bf16, on a
machine whose bf16 matmul ran 264-315 GFLOP/s): a decoding step at 64 rows costs 133 ms, of which
the linear maps 65 ms (at the machine's matmul rate: nothing left to gain there), attention ~45 ms
(its matmuls over 192 tiny matrices, then a pass per elementwise op over the float32 scores),
small ops ~20 ms; picking the tokens cost 25 ms more (float64 softmax and cumsum over 49k logits; now
float32, 4 ms). Over the whole solve workload: steps 79%, encoding prompts 16% (at the matmul rate),
picking 4%, the rest (moving rows, decoding text, the dedent rule) 2%; the batch holds 46 rows on
average (it drains at the end). Generating puzzles (4 prompts of ~1,800 tokens x 16), encoding the
prompts took 33 s of 83 until they went through the fused attention kernel (`prefix_attention`): 11 s of 54.
Then the rows' own keys went through the fused kernel too (decoding folds a kv head's query heads
into its query rows): attention per layer 1.2-1.5x faster, the solve workload in bf16 262 -> 310
useful tokens/s. A bf16 step (64 rows, own keys padded to 320 columns, on an idle 2-core Xeon with
AMX whose bf16 matmul runs ~500 GFLOP/s) now costs ~150 ms: attention 44%, linear maps 30%; in fp32,
~230 ms: linear maps 47% (at the matmul rate), attention 38%. Attention is bound by the bytes of the
rows' own keys/values (fp32: 46 KB per token of a row, ~0.9 GB per step), and 56% of the columns it
reads are padding (the longest row in use sets every row's width); attending in chunks of 8 slots,
each to its own longest row, would read a third less (measured on the solve workload, not done).
Measured and left out: batches of 128 or 256 rows (slower: a step's cost grows with its rows, and
picking over twice the logits costs more than twice); a prompt's keys/values held once for all its
rows (a third attention part): fewer bytes read, but as many scores as before and more operations,
so each step got slower (141-169 ms against 132-148 on the same work).
What this module does about it:
- The linear maps: bf16 runs them ~2.3x faster where the CPU computes bf16 natively (AVX512-BF16,
  AMX) or on CUDA with bf16: `sampling.dtype: auto` (the default) picks it there.
- Attention reads each row's own keys/values and the shared prefix at every step. The prompts of
  one call share a long start (the few-shot prefix): its keys/values are computed once, kept for
  later calls with the same start, and attended by every row without being copied
  (`prefix_attention`). bf16 halves the bytes read.
- Rows joining and leaving: each row has a fixed slot in one cache, left-aligned with its own
  length, so a joining row is written into its slot and a finished row's slot gets the last row
  (`Batch`); nothing else is copied, and finished rows leave at once. The cache holds whole blocks
  sized to the longest row in use (`SlotCache.fit`), so attention multiplies contiguous tensors.
- Rows are taken longest prompt first, so rows decoded together have similar lengths and little
  of each step's keys is padding.
- Threads: OpenMP's default wait (spin briefly, then sleep) made each bf16 step 1.4-1.6x faster than
  passive waiting on an idle machine. On cores shared with other jobs, spinning threads slow each
  other down (a matmul ~10x slower, measured on a machine shared by four jobs): set
  OMP_WAIT_POLICY=PASSIVE in the environment there.
- Prompts that share little (puzzle generation: each prompt is its own shuffle of 1,800 tokens)
  but get several samples each are sampled one prompt at a time, so that each prompt is the
  shared prefix of its own rows, when that reads fewer bytes per generated token than copying
  it to every row (`_prompt_by_prompt`).
- The rest of each prompt (the puzzle, `def g(...):`) is encoded once per prompt, then its
  keys/values are copied to that prompt's `n` rows, also when they join in two steps. Prompts are encoded in groups of similar
  length, so little is spent on padding (test puzzles run from 20 to 450 tokens).
- A row stops as soon as its text is finished (the dedent rule, or EOS) and leaves the batch;
  once a quarter of the batch is free, waiting rows join (continuous batching).
- Each row draws its random numbers up front from its own generator, seeded by (seed, key,
  sample index), so results do not depend on the order of the rows or the batch size (up to
  floating-point differences between batch shapes).
"""

from __future__ import annotations

from collections import Counter, deque
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfteach import config
from selfteach.cuts import cut_at_dedent
from selfteach.sampling.base import Completion, SamplingParams, finish, prompt_keys, row_seed
from selfteach.sampling.prefix_attention import ATTENTION_NAME, SlotCache

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
JOIN_FRACTION = 0.25  # waiting rows join once this share of the batch is free (each join encodes prompts)
PREFIX_BLOCK = 16  # the shared prefix is cached in whole blocks of this many tokens
DEFAULTS = config.defaults("sampling")  # the schema is the one home of every default
PREFILL_TOKENS = 2048  # padded tokens per forward when encoding prompts: bounds work and memory


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"sampling.device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 where the hardware computes it natively (CUDA with bf16; a CPU with AVX512-BF16 or
    AMX, where benchmarks/sampling_throughput.py measured it faster), else fp32."""
    if dtype == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
        else:
            native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return torch.bfloat16 if native else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"sampling.dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def common_prefix_length(a, b) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


def shared_start(encoded: list[list[int]]) -> int:
    """How many leading tokens every prompt has in common."""
    return min(common_prefix_length(encoded[0], ids) for ids in encoded)


class HFBackend:
    def __init__(
        self,
        model: str,
        *,
        dtype: str = DEFAULTS["dtype"],
        device: str = DEFAULTS["device"],
        batch_size: int = DEFAULTS["batch_size"],
    ):
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        if model.startswith(("/", ".", "~")) and not Path(model).expanduser().exists():
            raise FileNotFoundError(f"model folder {model} does not exist")
        tokenizer = AutoTokenizer.from_pretrained(model)
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device)
        self._setup(loaded, tokenizer, batch_size)

    @classmethod
    def from_model(cls, model, tokenizer, *, batch_size: int = 64) -> "HFBackend":
        """Wrap a loaded model; it switches to our attention, so do not share it with `generate` users."""
        backend = cls.__new__(cls)
        backend._setup(model, tokenizer, batch_size)
        return backend

    def _setup(self, model, tokenizer, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"sampling.batch_size must be at least 1, got {batch_size}")
        model.eval()
        model.set_attn_implementation(ATTENTION_NAME)
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.device = model.device
        self.max_context = int(model.config.max_position_embeddings)
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos_ids = torch.tensor(sorted(i for i in eos if i is not None), device=self.device)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # pads are masked anyway
        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self._weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self._kv_bytes_per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * model.dtype.itemsize
        self._prefix_tokens: tuple[int, ...] = ()
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def generate(
        self, prompts: list[str], params: SamplingParams, *, keys: list[str] | None = None
    ) -> list[list[Completion]]:
        if not prompts:
            return []
        keys = prompt_keys(prompts, keys)
        encoded = [self.tokenizer(prompt).input_ids for prompt in prompts]
        for key, ids in zip(keys, encoded):
            if not ids:
                raise ValueError(f"prompt {key!r} is empty")
            if len(ids) + params.max_new_tokens > self.max_context:
                raise ValueError(
                    f"prompt {key!r}: {len(ids)} tokens + {params.max_new_tokens} new exceed "
                    f"the model's context of {self.max_context}"
                )
        groups = [[i] for i in range(len(prompts))] if self._prompt_by_prompt(encoded, params.n) else [range(len(prompts))]
        results: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        with torch.inference_mode():
            for group in groups:
                prefix_length = self._encode_shared_prefix([encoded[i] for i in group])
                rows = [(i, j) for i in group for j in range(params.n)]
                for (i, j), completion in zip(rows, self._sample_rows(encoded, keys, rows, prefix_length, params)):
                    results[i][j] = completion
        return results

    def _prompt_by_prompt(self, encoded: list[list[int]], n: int) -> bool:
        """Whether sampling prompt by prompt reads fewer bytes per generated token than all at once.

        A decoding step reads the weights once for all its rows, and each row's own keys/values.
        All at once, a batch of up to `batch_size` rows shares the weights but every row carries its
        prompt beyond the common start; prompt by prompt, only `n` rows share the weights but the
        prompt is their shared prefix, read once per step.
        """
        if n == 1 or len(encoded) == 1:
            return False
        own = sum(len(ids) for ids in encoded) / len(encoded) - shared_start(encoded)
        together = self._weight_bytes / min(self.batch_size, n * len(encoded)) + own * self._kv_bytes_per_token
        apart = self._weight_bytes / min(self.batch_size, n) + PREFIX_BLOCK * self._kv_bytes_per_token
        return apart < together

    # --- the shared prefix ---

    def _encode_shared_prefix(self, encoded: list[list[int]]) -> int:
        """Make `_prefix_kv` hold the start all prompts share, cut to whole blocks; return its length.

        Cutting to `PREFIX_BLOCK` tokens lets calls whose prompts share slightly different starts
        (the few-shot prefix, then `def f(s` or `def f(x`) reuse one cached prefix, and makes the
        prefix's keys/values a function of its tokens alone: a rerun reproduces the same numbers
        whatever ran before it. The tail goes to the per-prompt part.
        """
        # every prompt keeps a token to predict from
        length = min(shared_start(encoded), min(len(ids) for ids in encoded) - 1)
        length -= length % PREFIX_BLOCK
        target = tuple(encoded[0][:length])
        if target != self._prefix_tokens:
            kv = None
            if length:
                kv = self._forward_prompts([list(target)], None, 0)[1].key_values()
            self._prefix_tokens, self._prefix_kv = target, kv
        return length

    def _forward_prompts(self, prompts: list[list[int]], shared, offset: int):
        """Encode left-padded prompts after the shared prefix: last-position logits, and a cache with
        one slot per prompt whose last `len(prompt)` tokens are the prompt's."""
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        real = torch.zeros((len(prompts), width), dtype=torch.bool)
        positions = torch.zeros((len(prompts), width), dtype=torch.long)
        for slot, ids in enumerate(prompts):
            input_ids[slot, width - len(ids) :] = torch.tensor(ids)
            real[slot, width - len(ids) :] = True
            positions[slot, width - len(ids) :] = torch.arange(offset, offset + len(ids))
        cache = SlotCache(self.model.config.num_hidden_layers, len(prompts), width, self.device)
        cache.begin(len(prompts), width)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        mask = causal[None, None] & real[:, None, None, :]  # (B, 1, q, S)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
            shared_prefix=shared,
            logits_to_keep=1,
        )
        cache.advance(width)
        return output.logits[:, -1], cache

    def _prefill(self, rests: list[list[int]], offset: int):
        """`_forward_prompts` for all `rests`, computed in groups of similar length: the logits of
        every rest, and where its keys/values are: (cache, slot) per rest.

        Sorted by length, each group holds as many prompts as fit `PREFILL_TOKENS` once padded to
        its longest.
        """
        order = sorted(range(len(rests)), key=lambda i: len(rests[i]))
        groups, group = [], []
        for i in order:
            if group and (len(group) + 1) * len(rests[i]) > PREFILL_TOKENS:
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
        logits, places = None, [None] * len(rests)
        for group in groups:
            part_logits, cache = self._forward_prompts([rests[i] for i in group], self._prefix_kv, offset)
            if logits is None:
                logits = part_logits.new_empty(len(rests), part_logits.shape[-1])
            logits[torch.tensor(group, device=self.device)] = part_logits
            for slot, i in enumerate(group):
                places[i] = (cache, slot)
        return logits, places

    def _sample_rows(self, encoded, keys, rows, prefix_length: int, params: SamplingParams) -> list[Completion]:
        """Sample every row (prompt, sample) to its end, at most `batch_size` at a time; completions in order."""
        uniforms = self._row_uniforms(keys, rows, params)
        max_tokens = max(len(encoded[i]) for i, _ in rows) - prefix_length + params.max_new_tokens
        batch = Batch(self, encoded, rows, prefix_length, max_tokens=max_tokens)
        # longest prompts first: rows decoded together have similar lengths, so little of the
        # cache's width (its longest row) is padding that every step reads
        waiting = deque(sorted(range(len(rows)), key=lambda r: -len(encoded[rows[r][0]])))
        tokens: list[list[int]] = [[] for _ in rows]
        done: dict[int, Completion] = {}
        while waiting or batch.rows:
            free = self.batch_size - len(batch.rows)
            if waiting and (not batch.rows or free >= max(1, JOIN_FRACTION * self.batch_size)):
                batch.join([waiting.popleft() for _ in range(min(free, len(waiting)))])
            steps = torch.tensor([len(tokens[r]) for r in batch.rows])
            picked = self._pick(batch.logits, uniforms[batch.rows, steps] if uniforms is not None else None, params)
            is_eos = torch.isin(picked, self.eos_ids).tolist()
            for row, token, eos in zip(batch.rows, picked.tolist(), is_eos):
                tokens[row].append(token)
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
                cut = cut_at_dedent(text) if params.stop == "dedent" else None
                if eos or (cut and cut[1]) or len(tokens[row]) == params.max_new_tokens:
                    done[row] = finish(text, len(tokens[row]), params.stop, ended=eos, cut=cut)
            order = batch.compact([slot for slot, row in enumerate(batch.rows) if row not in done])
            if batch.rows:
                batch.step(picked[order])
        return [done[row] for row in range(len(rows))]

    def _row_uniforms(self, keys, rows, params: SamplingParams) -> torch.Tensor | None:
        """One uniform number per row and step, from the row's own seeded generator (None when greedy)."""
        if params.temperature == 0:
            return None
        draws = []
        for i, j in rows:
            generator = torch.Generator().manual_seed(row_seed(params.seed, keys[i], j))
            draws.append(torch.rand(params.max_new_tokens, generator=generator, dtype=torch.float64))
        return torch.stack(draws).to(self.device)

    @staticmethod
    def _pick(logits: torch.Tensor, uniform: torch.Tensor | None, params: SamplingParams) -> torch.Tensor:
        """Next token per row: argmax when greedy, else inverse-CDF sampling after temperature/top-k/top-p.

        The weights are unnormalised (`exp(score - max)`) and the CDF is their running sum, in
        float32: PyTorch's CPU cumsum accumulates float32 in float64, so each token's interval is
        exact to ~1e-7 of the total, and the pick costs a sixth of a float64 softmax and cumsum
        (4 ms against 25 ms for 64 rows of 49k logits, measured here).
        """
        if uniform is None:
            return logits.argmax(-1)
        scores = logits.float() / params.temperature
        order = None
        if params.top_k:
            scores, order = scores.topk(min(params.top_k, scores.shape[-1]), dim=-1)  # sorted, largest first
        elif params.top_p < 1:
            scores, order = scores.sort(dim=-1, descending=True)
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        cdf = weights.cumsum(-1)
        if params.top_p < 1:  # keep the smallest head of the sorted list whose mass reaches top_p
            weights = weights.masked_fill(cdf - weights >= params.top_p * cdf[:, -1:], 0)
            cdf = weights.cumsum(-1)
        choice = torch.searchsorted(cdf, (uniform.to(cdf.dtype) * cdf[:, -1])[:, None], right=True)
        choice = choice.clamp(max=cdf.shape[-1] - 1)
        return (choice if order is None else order.gather(-1, choice)).squeeze(-1)


class Batch:
    """The rows decoded together: row `rows[s]` holds slot `s` of one `SlotCache`, slots `0..len(rows)-1`.

    `logits` and `positions` hold each slot's next-token logits and the position its next token takes.
    Three operations change it: `join` (encode waiting rows' prompts into new slots), `compact`
    (finished rows leave, the last rows move into their slots) and `step` (feed every slot a token).
    """

    def __init__(self, backend: HFBackend, encoded: list[list[int]], all_rows: list[tuple[int, int]],
                 prefix_length: int, max_tokens: int):
        self.backend, self.encoded, self.all_rows, self.prefix_length = backend, encoded, all_rows, prefix_length
        slots = min(backend.batch_size, len(all_rows))
        self.cache = SlotCache(backend.model.config.num_hidden_layers, slots, max_tokens, backend.device)
        self.rows: list[int] = []  # indexes into all_rows
        self.logits = self.positions = None
        self.unjoined = Counter(i for i, _ in all_rows)  # rows of each prompt not yet joined
        self.encoded_rests: dict[int, tuple] = {}  # prompt -> (logits, cache, slot) until its last row joins

    def join(self, new_rows: list[int]) -> None:
        """Encode the prompts of `new_rows` after the shared prefix, once per prompt, into the next slots.

        A prompt whose rows join in two calls is encoded once: its keys/values wait for its last row.
        """
        prompts = list(dict.fromkeys(self.all_rows[r][0] for r in new_rows))
        fresh = [i for i in prompts if i not in self.encoded_rests]
        if fresh:
            logits, places = self.backend._prefill([self.encoded[i][self.prefix_length :] for i in fresh], self.prefix_length)
            for number, i in enumerate(fresh):
                self.encoded_rests[i] = (logits[number], *places[number])
        first = len(self.rows)
        for i in prompts:
            slots = [first + k for k, r in enumerate(new_rows) if self.all_rows[r][0] == i]
            _, source, source_slot = self.encoded_rests[i]
            self.cache.copy(source, source_slot, len(self.encoded[i]) - self.prefix_length, slots)
        logits = torch.stack([self.encoded_rests[self.all_rows[r][0]][0] for r in new_rows])
        positions = torch.tensor([len(self.encoded[self.all_rows[r][0]]) for r in new_rows], device=self.backend.device)
        for r in new_rows:
            i = self.all_rows[r][0]
            self.unjoined[i] -= 1
            if not self.unjoined[i]:
                del self.encoded_rests[i]
        self.rows += new_rows
        self.logits = logits if first == 0 else torch.cat([self.logits, logits])
        self.positions = positions if first == 0 else torch.cat([self.positions, positions])

    def compact(self, kept: list[int]) -> torch.Tensor:
        """Keep only the slots `kept` (in order): each freed slot below the new size gets one of the
        last kept rows, so only those rows' keys/values move. Returns each new slot's old slot."""
        size, staying = len(kept), set(kept)
        order = list(range(size))
        movers = (old for old in reversed(kept) if old >= size)
        for hole, old in zip((slot for slot in range(size) if slot not in staying), movers):
            self.cache.copy(self.cache, old, self.cache.lengths[old], [hole])
            order[hole] = old
        self.rows = [self.rows[old] for old in order]
        order = torch.tensor(order, dtype=torch.long, device=self.backend.device)
        self.logits, self.positions = self.logits[order], self.positions[order]
        return order

    def step(self, tokens: torch.Tensor) -> None:
        """Feed each slot its token (in slot order): the next logits of every slot."""
        visible = self.cache.begin(len(self.rows), 1)
        output = self.backend.model(
            input_ids=tokens[:, None],
            attention_mask=visible[:, None, None, :],
            position_ids=self.positions[:, None],
            cache=self.cache,
            use_cache=True,
            shared_prefix=self.backend._prefix_kv,
        )
        self.cache.advance(1)
        self.logits, self.positions = output.logits[:, -1], self.positions + 1
