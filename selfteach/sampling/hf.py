"""The Hugging Face transformers backend: batched sampling with the shared prompt encoded once.

Terms (as in `prefix_attention`): a *row* is one sequence being sampled, one sample of one prompt;
a *slot* is a row's place in the batch's tensors.

Where the time goes (cProfile, torch.profiler and timers around each part of `generate` on the solve
workload, SmolLM2-135M; benchmarks/sampling_throughput.py measures the rates). Earlier, in turn:
fp32, one thread: linear maps 49%, attention 26%, re-laying rows' caches 8%. bf16 with threads
waiting passively: every small op paid a thread wake-up (exp of 221k floats 1.1 ms instead of 0.14),
bf16 matmul copied the strided slice of every row's keys and values (a fifth of each step), 30% of
the prompts' tokens were encoded twice (a prompt's rows split across two joins). Picking tokens in
float64 cost 25 ms a step (float32: 4 ms). Encoding 1,800-token prompts in plain attention: 33 s of
83 (fused kernel: 11 s of 54). Then the rows' own keys went through the fused kernel (a kv head's
query heads folded into its query rows): the solve workload in bf16 262 -> 310 useful tokens/s.
Then (idle 2-core Xeon with AMX, 64 rows): a fp32 step cost ~225 ms, linear maps 42% and attention
38%. Attention was bound by bytes: each row held its whole prompt after the shared prefix (~130
tokens of a test puzzle, 46 KB of fp32 keys/values per token and row) plus its generated tokens, and
half of the columns read were padding (the longest row in use sets every row's width); a step's
keys/values (~1 GB) do not fit in any cache. Now each prompt is held once for its rows: the same
steps cost ~177 ms, attention halved (85 -> 42 ms). Measured and left out: attending in chunks of 8
slots, each to its own longest row (measured before prompts were held once: a third fewer bytes;
rows join and leave in no order, so chunks stay mixed). Batches of 128
rows (228 test puzzles x 8, same hour; useful tokens/s): before, bf16 ran slower at 128 than at 64
(298.7 against 349.2), fp32 faster (235.3 against 220.7); now 428.5 and 257.2 at 128 (353.0 and
228.4 at 64): `sampling.batch_size` is 128.
Over that workload (fp32, batch 128): decoding steps 76%, encoding prompts 17% (at the matmul rate:
30k prompt tokens for 78k generated), picking tokens 5% (before it worked in place), the rest
(moving rows, decoding text, the dedent rule) 2%; the batch held 104 rows on average (the last rows
drain), and 72% of the generated tokens' columns a step reads are padding (every row in use shares
the width of the one that has generated most).
What this module does about it:
- The linear maps: bf16 runs them ~2.3x faster where the CPU computes bf16 natively (AVX512-BF16,
  AMX) or on CUDA with bf16: `sampling.dtype: auto` (the default) picks it there.
- Keys/values shared by several rows are held once and attended by all of them without copies
  (`prefix_attention.SharedKeys`): the start all prompts of a call share (the few-shot prefix),
  computed once and kept for later calls with the same start; and each prompt's tokens after it,
  encoded once per prompt and attended by that prompt's rows. A row holds only the tokens it
  generated. bf16 halves the bytes read.
- Rows joining and leaving: each row has a fixed slot, left-aligned with its own length, so a
  finished row's slot gets the last row (`Batch`, `SlotCache.keep`); nothing else is copied, and
  finished rows leave at once. The cache holds whole blocks sized to the longest row in use
  (`SlotCache.fit`), so attention multiplies contiguous tensors. A prompt keeps its slot until its
  last row is done.
- Rows are taken longest prompt first, so prompts decoded together have similar lengths (little
  of their keys is padding) and a prompt's rows join together. Prompts are encoded in groups of
  similar length, so little is spent on padding (test puzzles run from 20 to 450 tokens).
- Threads: OpenMP's default wait (spin briefly, then sleep) made each bf16 step 1.4-1.6x faster than
  passive waiting on an idle machine. On cores shared with other jobs, spinning threads slow each
  other down (a matmul ~10x slower, measured on a machine shared by four jobs): set
  OMP_WAIT_POLICY=PASSIVE in the environment there.
- A row stops as soon as its text is finished (the dedent rule, or EOS) and leaves the batch;
  once a sixteenth of the batch is free, waiting rows join (continuous batching; a quarter kept
  the batch of 128 at 97 rows on average, a sixteenth at 104: 2% more tokens/s).
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
from selfteach.sampling.prefix_attention import ATTENTION_NAME, SharedKeys, SlotCache

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
JOIN_FRACTION = 1 / 16  # waiting rows join once this share of the batch is free (each join encodes prompts)
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
    def from_model(cls, model, tokenizer, *, batch_size: int = DEFAULTS["batch_size"]) -> "HFBackend":
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
        self.steps = Counter()  # decoding steps taken ("steps") and the rows they decoded ("rows")
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
        with torch.inference_mode():
            prefix_length = self._encode_shared_prefix(encoded)
            rows = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
            completions = self._sample_rows(encoded, keys, rows, prefix_length, params)
        return [completions[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

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
                kv = self._forward_prompts([list(target)], 0)[1].key_values()
            self._prefix_tokens, self._prefix_kv = target, kv
        return length

    def _shared_prefix(self, rows: int) -> list[SharedKeys]:
        """The shared prefix as a part every one of `rows` rows attends (none when it is empty)."""
        return [] if self._prefix_kv is None else [SharedKeys.for_every_row(self._prefix_kv, rows)]

    def _forward_prompts(self, prompts: list[list[int]], offset: int):
        """Encode left-padded prompts after the shared prefix (`offset` tokens, attended where cached):
        last-position logits, and a cache with one slot per prompt whose last `len(prompt)` tokens are the prompt's."""
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
            shared_keys=self._shared_prefix(len(prompts)) if offset else [],
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
            part_logits, cache = self._forward_prompts([rests[i] for i in group], offset)
            if logits is None:
                logits = part_logits.new_empty(len(rests), part_logits.shape[-1])
            logits[torch.tensor(group, device=self.device)] = part_logits
            for slot, i in enumerate(group):
                places[i] = (cache, slot)
        return logits, places

    def _sample_rows(self, encoded, keys, rows, prefix_length: int, params: SamplingParams) -> list[Completion]:
        """Sample every row (prompt, sample) to its end, at most `batch_size` at a time; completions in order."""
        uniforms = self._row_uniforms(keys, rows, params)
        batch = Batch(self, encoded, rows, prefix_length, params.max_new_tokens)
        # longest prompts first: prompts decoded together have similar lengths, so little of their
        # keys' width (the longest prompt in use) is padding that every step reads; a prompt's rows
        # stay together, so they join in one step (at most one prompt is split between joins)
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
                self.steps.update(steps=1, rows=len(batch.rows))
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
        (4 ms against 25 ms for 64 rows of 49k logits, measured here). The passes over the scores
        work in place, which made the pick 5x faster again (64 rows: 12 -> 2.4 ms; 128: 26 -> 4.7).
        """
        if uniform is None:
            return logits.argmax(-1)
        scores = logits.float() / params.temperature
        order = None
        if params.top_k:
            scores, order = scores.topk(min(params.top_k, scores.shape[-1]), dim=-1)  # sorted, largest first
        elif params.top_p < 1:
            scores, order = scores.sort(dim=-1, descending=True)
        weights = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
        if params.top_p < 1:  # keep the smallest head of the sorted list whose mass reaches top_p
            cdf = weights.cumsum(-1)
            cdf = weights.masked_fill_(cdf - weights >= params.top_p * cdf[:, -1:], 0).cumsum_(-1)
        else:
            cdf = weights.cumsum_(-1)
        choice = torch.searchsorted(cdf, (uniform.to(cdf.dtype) * cdf[:, -1])[:, None], right=True)
        choice = choice.clamp(max=cdf.shape[-1] - 1)
        return (choice if order is None else order.gather(-1, choice)).squeeze(-1)


class Batch:
    """The rows decoded together: row `rows[s]` holds slot `s` of `cache` (the tokens it generated);
    its prompt after the shared prefix is held once for all the prompt's rows, in a slot of `prompts`.

    `logits` and `positions` hold each slot's next-token logits and the position its next token takes.
    Three operations change it: `join` (encode waiting rows' prompts, give the rows new slots),
    `compact` (finished rows leave, the last rows move into their slots; a prompt whose rows are
    all done leaves too) and `step` (feed every slot a token).
    """

    def __init__(self, backend: HFBackend, encoded: list[list[int]], all_rows: list[tuple[int, int]],
                 prefix_length: int, max_new_tokens: int):
        self.backend, self.encoded, self.all_rows, self.prefix_length = backend, encoded, all_rows, prefix_length
        slots = min(backend.batch_size, len(all_rows))
        layers = backend.model.config.num_hidden_layers
        self.cache = SlotCache(layers, slots, max_new_tokens, backend.device)
        self.pending = Counter(i for i, _ in all_rows)  # rows of each prompt not yet finished
        # a prompt keeps its slot while it has rows decoding or waiting: one more than the rows, as the
        # rows of one prompt (the last to join) may be split between the batch and the queue; no more
        # than there are prompts (every slot is allocated for the longest prompt)
        rest = max(len(encoded[i]) for i, _ in all_rows) - prefix_length
        self.prompts = SlotCache(layers, min(slots + 1, len(self.pending)), rest, backend.device)
        self.prompt_in_slot: list[int] = []  # prompt of each slot of `prompts`
        self.rows: list[int] = []  # indexes into all_rows
        self.logits = self.positions = None
        self.first_logits: dict[int, torch.Tensor] = {}  # prompt -> logits after it, while it has a slot

    def join(self, new_rows: list[int]) -> None:
        """Encode the prompts of `new_rows` after the shared prefix, once per prompt, each into a slot of
        `prompts` where it stays until its last row is done; the rows take the next slots, empty."""
        fresh = [i for i in dict.fromkeys(self.all_rows[r][0] for r in new_rows) if i not in self.first_logits]
        if fresh:
            logits, places = self.backend._prefill([self.encoded[i][self.prefix_length :] for i in fresh], self.prefix_length)
            for number, i in enumerate(fresh):
                cache, slot = places[number]
                self.prompts.copy(cache, slot, len(self.encoded[i]) - self.prefix_length, [len(self.prompt_in_slot)])
                self.prompt_in_slot.append(i)
                self.first_logits[i] = logits[number]
        first = len(self.rows)
        self.cache.empty(list(range(first, first + len(new_rows))))
        logits = torch.stack([self.first_logits[self.all_rows[r][0]] for r in new_rows])
        positions = torch.tensor([len(self.encoded[self.all_rows[r][0]]) for r in new_rows], device=self.backend.device)
        self.rows += new_rows
        self.logits = logits if first == 0 else torch.cat([self.logits, logits])
        self.positions = positions if first == 0 else torch.cat([self.positions, positions])

    def compact(self, kept: list[int]) -> torch.Tensor:
        """Keep only the slots `kept` (in order), moving as few rows as `SlotCache.keep` does; a prompt
        whose rows are all done gives up its slot alike. Returns each new slot's old slot."""
        staying = set(kept)
        for slot, row in enumerate(self.rows):
            if slot not in staying:
                self.pending[self.all_rows[row][0]] -= 1
        order = self.cache.keep(kept)
        self.rows = [self.rows[old] for old in order]
        order = torch.tensor(order, dtype=torch.long, device=self.backend.device)
        self.logits, self.positions = self.logits[order], self.positions[order]
        if any(not self.pending[i] for i in self.prompt_in_slot):
            for i in self.prompt_in_slot:
                if not self.pending[i]:
                    del self.first_logits[i]
            live = [slot for slot, i in enumerate(self.prompt_in_slot) if self.pending[i]]
            self.prompt_in_slot = [self.prompt_in_slot[old] for old in self.prompts.keep(live)]
        return order

    def step(self, tokens: torch.Tensor) -> None:
        """Feed each slot its token (in slot order): the next logits of every slot."""
        visible = self.cache.begin(len(self.rows), 1)
        slot_of_prompt = {i: slot for slot, i in enumerate(self.prompt_in_slot)}
        groups: list[list[int]] = [[] for _ in self.prompt_in_slot]
        for slot, row in enumerate(self.rows):
            groups[slot_of_prompt[self.all_rows[row][0]]].append(slot)
        output = self.backend.model(
            input_ids=tokens[:, None],
            attention_mask=visible[:, None, None, :],
            position_ids=self.positions[:, None],
            cache=self.cache,
            use_cache=True,
            shared_keys=self.backend._shared_prefix(len(self.rows)) + [self.prompts.shared(groups)],
        )
        self.cache.advance(1)
        self.logits, self.positions = output.logits[:, -1], self.positions + 1
