"""The Hugging Face transformers backend: batched sampling with the shared prompt encoded once.

Where the time goes and what this does about it:
- The prompts of one call share a long start (the few-shot prefix). Its keys/values are computed
  once, kept for later calls with the same start, and attended by every row without being copied
  (`prefix_attention`).
- Prompts that share little (puzzle generation: each prompt is its own shuffle of 1,800 tokens)
  but get several samples each are sampled one prompt at a time, so that each prompt is the
  shared prefix of its own rows, when that reads fewer bytes per generated token than copying
  it to every row (`_prompt_by_prompt`).
- The rest of each prompt (the puzzle, `def g(...):`) is encoded once per prompt, then its
  keys/values are copied to that prompt's `n` sample rows. Prompts are encoded in groups of
  similar length, so little is spent on padding (test puzzles run from 20 to 450 tokens: one
  batch padded to its longest prompt cost 3-4 times the work).
- A row stops as soon as its text is finished (the dedent rule, or EOS); once a quarter of the
  rows have stopped they are dropped from the batch and waiting rows take their places
  (continuous batching): a batch no longer idles, nearly empty, behind its one longest row.
  The rows of a batch share one time axis, each right-aligned to its end and masked where it
  has no tokens; columns no row uses any more are dropped when rows join.
- Each row draws its random numbers up front from its own generator, seeded by (seed, key,
  sample index), so results do not depend on the order of the rows or the batch size (up to
  floating-point differences between batch shapes).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfteach.cuts import cut_at_dedent
from selfteach.sampling.base import Completion, SamplingParams, finish, prompt_keys, row_seed
from selfteach.sampling.prefix_attention import ATTENTION_NAME, RowCache

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMPACT_FRACTION = 0.25  # drop stopped rows once this share of the batch has stopped; new rows then join
PREFIX_BLOCK = 64  # the shared prefix is cached in whole blocks of this many tokens
PREFILL_TOKENS = 2048  # padded tokens per forward when encoding prompts: bounds work and memory


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"sampling.device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


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
    def __init__(self, model: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 64):
        if dtype not in DTYPES:
            raise ValueError(f"sampling.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if model.startswith(("/", ".", "~")) and not Path(model).expanduser().exists():
            raise FileNotFoundError(f"model folder {model} does not exist")
        device = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(model)
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=DTYPES[dtype]).to(device)
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
                _, cache, _ = self._forward_prompts([list(target)], None, 0, capacity=length)
                kv = cache.key_values()
            self._prefix_tokens, self._prefix_kv = target, kv
        return length

    def _forward_prompts(self, token_rows, shared, offset: int, capacity: int):
        """Encode left-padded token rows after the shared prefix; return last-position logits and the row cache."""
        width = max(len(ids) for ids in token_rows)
        input_ids = torch.full((len(token_rows), width), self.pad_id, dtype=torch.long)
        real = torch.zeros((len(token_rows), width), dtype=torch.bool)
        positions = torch.zeros((len(token_rows), width), dtype=torch.long)
        for row, ids in enumerate(token_rows):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            real[row, width - len(ids) :] = True
            positions[row, width - len(ids) :] = torch.arange(offset, offset + len(ids))
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        mask = causal[None, None] & real[:, None, None, :]  # (B, 1, q, S)
        cache = RowCache(self.model.config.num_hidden_layers, capacity)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
            shared_prefix=shared,
            logits_to_keep=1,
        )
        return output.logits[:, -1], cache, real

    def _prefill(self, rests: list[list[int]], offset: int):
        """`_forward_prompts` for all `rests` at once, computed in groups of similar length.

        Sorted by length, each group holds as many prompts as fit `PREFILL_TOKENS` once padded to
        its longest; the groups' caches are laid out as one batch left-padded to the longest rest.
        """
        order = sorted(range(len(rests)), key=lambda i: len(rests[i]))
        groups, group = [], []
        for i in order:
            if group and (len(group) + 1) * len(rests[i]) > PREFILL_TOKENS:
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
        parts, logits = [], None
        for group in groups:
            part_logits, part, part_real = self._forward_prompts(
                [rests[i] for i in group], self._prefix_kv, offset, capacity=len(rests[group[-1]])
            )
            if logits is None:
                logits = part_logits.new_empty(len(rests), part_logits.shape[-1])
            logits[torch.tensor(group, device=self.device)] = part_logits
            parts.append((part, part_real))
        cache, real = RowCache.stack(parts, room=0, rows=groups)
        return logits, cache, real

    # --- sampling ---

    def _join(self, encoded, rows, prefix_length: int):
        """Encode the prompts of `rows` (prompt, sample) after the shared prefix: one cache row, mask
        row and last-position logits per row (a prompt's samples share its encoding)."""
        prompt_ids = list(dict.fromkeys(i for i, _ in rows))
        logits, cache, real = self._prefill([encoded[i][prefix_length:] for i in prompt_ids], prefix_length)
        of_row = torch.tensor([prompt_ids.index(i) for i, _ in rows], device=self.device)
        cache.select_rows(of_row)
        return logits[of_row], cache, real.to(self.device)[of_row]

    def _sample_rows(self, encoded, keys, rows, prefix_length: int, params: SamplingParams) -> list[Completion]:
        """Sample every (prompt, sample) row to its end, at most `batch_size` at a time; completions in order."""
        uniforms = self._row_uniforms(keys, rows, params)
        waiting = deque(range(len(rows)))
        alive: list[int] = []  # the row of each batch position
        cache = real = logits = position = None
        tokens: list[list[int]] = [[] for _ in rows]
        done: dict[int, Completion] = {}
        while waiting or alive:
            free = self.batch_size - len(alive)
            if waiting and (not alive or free >= max(1, COMPACT_FRACTION * self.batch_size)):
                joining = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                new_logits, new_cache, new_real = self._join(encoded, [rows[r] for r in joining], prefix_length)
                parts = [(new_cache, new_real)] if cache is None else [(cache, real), (new_cache, new_real)]
                cache, real = RowCache.stack(parts, room=params.max_new_tokens)
                new_position = torch.tensor([len(encoded[rows[r][0]]) for r in joining], device=self.device)
                logits = new_logits if logits is None else torch.cat([logits, new_logits])
                position = new_position if position is None else torch.cat([position, new_position])
                alive += joining
            steps = torch.tensor([min(len(tokens[r]), params.max_new_tokens - 1) for r in alive])
            picked = self._pick(logits, uniforms[alive, steps] if uniforms is not None else None, params)
            is_eos = torch.isin(picked, self.eos_ids).tolist()
            for row, token, eos in zip(alive, picked.tolist(), is_eos):
                if row in done:  # stopped, waiting to be dropped from the batch
                    continue
                tokens[row].append(token)
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
                stopped = params.stop == "dedent" and cut_at_dedent(text)[1]
                if eos or stopped or len(tokens[row]) == params.max_new_tokens:
                    done[row] = finish(text, len(tokens[row]), params.stop, ended=eos)
            keep = [b for b, row in enumerate(alive) if row not in done]
            if len(alive) - len(keep) >= max(1, COMPACT_FRACTION * len(alive)):
                if not keep:  # every row stopped: start afresh with the waiting ones
                    alive, cache = [], None
                    real = logits = position = None
                    continue
                kept = torch.tensor(keep, device=self.device)
                cache.select_rows(kept)
                real, position, picked = real[kept], position[kept], picked[kept]
                alive = [alive[b] for b in keep]
            real = torch.cat([real, real.new_ones(len(alive), 1)], dim=1)  # the token fed now
            output = self.model(
                input_ids=picked[:, None],
                attention_mask=real[:, None, None, :],
                position_ids=position[:, None],
                cache=cache,
                use_cache=True,
                shared_prefix=self._prefix_kv,
            )
            logits, position = output.logits[:, -1], position + 1
        return [done[row] for row in range(len(rows))]

    def _row_uniforms(self, keys, chunk, params: SamplingParams) -> torch.Tensor | None:
        """One uniform number per row and step, from the row's own seeded generator (None when greedy)."""
        if params.temperature == 0:
            return None
        draws = []
        for i, j in chunk:
            generator = torch.Generator().manual_seed(row_seed(params.seed, keys[i], j))
            draws.append(torch.rand(params.max_new_tokens, generator=generator, dtype=torch.float64))
        return torch.stack(draws).to(self.device)

    @staticmethod
    def _pick(logits: torch.Tensor, uniform: torch.Tensor | None, params: SamplingParams) -> torch.Tensor:
        """Next token per row: argmax when greedy, else inverse-CDF sampling after temperature/top-k/top-p."""
        if uniform is None:
            return logits.argmax(-1)
        scores = logits.double() / params.temperature
        order = None
        if params.top_k:
            scores, order = scores.topk(min(params.top_k, scores.shape[-1]), dim=-1)  # sorted, largest first
        elif params.top_p < 1:
            scores, order = scores.sort(dim=-1, descending=True)
        probs = torch.softmax(scores, dim=-1)
        if params.top_p < 1:  # keep the smallest head of the sorted list whose mass reaches top_p
            probs = probs.masked_fill(probs.cumsum(-1) - probs >= params.top_p, 0)
        cdf = probs.cumsum(-1)
        choice = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)
        choice = choice.clamp(max=cdf.shape[-1] - 1)
        return (choice if order is None else order.gather(-1, choice)).squeeze(-1)
