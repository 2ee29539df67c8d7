"""Attention over keys/values that groups of rows share, and the rows' own cache in fixed slots.

This is the one module that reaches into transformers' internals (the attention registry, the
cache classes); the rest of the sampler uses the model only through its forward call.
Terms: a *row* is one sequence being sampled (one sample of one prompt); a *slot* is a row's place
in the batch's tensors (dimension 0).

Sampling 64 completions of prompts that all start with the same few-shot prefix would normally
copy the prefix's keys/values 64 times and read all 64 copies at every decoding step (measured
here: a decoding step at batch 64 took 1.6 s after a 600-token prefix against 0.33 s after a
50-token one); likewise a prompt's own tokens copied to each of its samples. Decoding reads
mostly these bytes, so each layer keeps its keys/values in parts, each held once:

- the rows' own keys, `(B, kv_heads, S, head_dim)`, under a boolean mask `(B, 1, q, S)` (True =
  visible) that handles causality, padding and rows of different lengths;
- any number of `SharedKeys`: keys/values `(groups, kv_heads, L, head_dim)` of which group g is
  attended by its member rows alike (the shared prefix: one group of every row; each prompt's
  tokens after it: a group per prompt, of that prompt's rows).

A shared part's member rows are folded into query rows of one matrix per group and kv head, so
nothing is copied per row; the parts are combined exactly by their log-sum-exps, so the result
equals plain attention over all of a row's keys. On CPU each part goes through PyTorch's fused
flash-attention kernel (`flash_part`); elsewhere through plain tensor operations (`plain_part`).
The function is registered with transformers' `AttentionInterface` under `ATTENTION_NAME`;
transformers then hands our own 4D mask through untouched. Callers pass the shared parts as the
model keyword `shared_keys` (a list of `SharedKeys`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer

ATTENTION_NAME = "selfteach_shared_keys"
CACHE_BLOCK = 32  # the slot cache grows and shrinks in blocks of this many tokens per slot


@dataclass(frozen=True)
class SharedKeys:
    """Keys/values that groups of rows attend alike: per layer `(groups, kv_heads, L, head_dim)`.

    `members` `(groups, m)` holds each group's row slots, padded by repeating one (padding's results
    are dropped); `place` `(rows,)` is where each row's slot stands in `members.flatten()`; `hidden`
    `(groups, 1, 1, L)`, additive (0 or -inf), hides the columns beyond each group's length, or is
    None when every group sees all L.
    """

    key_values: list[tuple[torch.Tensor, torch.Tensor]]
    members: torch.Tensor
    place: torch.Tensor
    hidden: torch.Tensor | None = None

    @classmethod
    def for_every_row(cls, key_values, rows: int) -> "SharedKeys":
        """One group of all `rows` (the shared prefix, batch 1)."""
        every = torch.arange(rows, device=key_values[0][0].device)
        return cls(key_values, every[None], every)

    @classmethod
    def for_groups(cls, key_values, groups: list[list[int]], lengths: list[int]) -> "SharedKeys":
        """Group g (keys/values `[g]`, the first `lengths[g]` visible) attended by the rows `groups[g]`;
        every row of the batch belongs to one group. A group may have no rows (its keys are read
        for nothing)."""
        device = key_values[0][0].device
        width = max(len(members) for members in groups) or 1
        members, place = [], [0] * sum(len(members) for members in groups)
        for number, group in enumerate(groups):
            for position, row in enumerate(group):
                place[row] = number * width + position
            members.append(group + [group[0] if group else 0] * (width - len(group)))
        columns = key_values[0][0].shape[2]
        beyond = torch.arange(columns, device=device) >= torch.tensor(lengths, device=device)[:, None]
        hidden = torch.zeros(beyond.shape, dtype=key_values[0][0].dtype, device=device).masked_fill_(beyond, float("-inf"))
        return cls(key_values, torch.tensor(members, device=device), torch.tensor(place, device=device), hidden[:, None, None])


def shared_keys_attention(
    module,
    query: torch.Tensor,  # (B, Hq, q, D)
    key: torch.Tensor,  # (B, Hkv, S, D): the rows' own keys
    value: torch.Tensor,  # (B, Hkv, S, D)
    attention_mask: torch.Tensor,  # (B, 1, q, S) bool, True = visible
    scaling: float,
    dropout: float = 0.0,
    shared_keys: list[SharedKeys] = (),
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The attention transformers calls: PyTorch's fused kernel on CPU, plain operations elsewhere."""
    part = flash_part if query.device.type == "cpu" else plain_part
    return attention(part, query, key, value, attention_mask, scaling, shared_keys, module.layer_idx), None


def attention(attend, query, key, value, attention_mask, scaling, shared_keys, layer: int) -> torch.Tensor:
    """The own part and each shared part (layer `layer`), each through `attend`, combined: (B, q, Hq, D)."""
    batch, q_heads, q_len, head_dim = query.shape
    kv_heads = key.shape[1]
    group = q_heads // kv_heads  # query heads per key/value head (grouped-query attention)
    grouped = query.reshape(batch, kv_heads, group * q_len, head_dim)  # a kv head's query heads as its rows
    hidden = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device)
    hidden.masked_fill_(~attention_mask, float("-inf"))
    if q_len == 1:  # decoding: one mask row serves a kv head's G query heads
        out, log_total = attend(grouped, key, value, hidden, scaling)
    else:  # encoding: each query position has its own mask row, so the keys/values repeat per query head
        out, log_total = attend(query, key.repeat_interleave(group, 1), value.repeat_interleave(group, 1), hidden, scaling)
    outs, log_totals = [out.reshape(batch, q_heads, q_len, head_dim)], [log_total.reshape(batch, q_heads, q_len)]
    for part in shared_keys:
        keys, values = part.key_values[layer]
        groups, members = part.members.shape
        # each group's member rows become query rows of one matrix per kv head: the keys are read once
        folded = grouped[part.members.flatten()].view(groups, members, kv_heads, group * q_len, head_dim)
        folded = folded.transpose(1, 2).reshape(groups, kv_heads, members * group * q_len, head_dim)
        out, log_total = attend(folded, keys, values, part.hidden, scaling)
        out = out.view(groups, kv_heads, members, group * q_len, head_dim).transpose(1, 2)
        log_total = log_total.view(groups, kv_heads, members, group * q_len).transpose(1, 2)
        outs.append(out.reshape(groups * members, q_heads, q_len, head_dim)[part.place])
        log_totals.append(log_total.reshape(groups * members, q_heads, q_len)[part.place])
    out = outs[0]
    if len(outs) > 1:  # each part is a softmax-weighted mean; together they weigh by their shares of the mass
        log_totals = torch.stack(log_totals)  # (parts, B, Hq, q)
        shares = torch.exp(log_totals - torch.logsumexp(log_totals, 0).clamp_min(torch.finfo(torch.float32).min))
        out = (torch.stack(outs).float() * shares[..., None]).sum(0)
    return out.to(query.dtype).transpose(1, 2).contiguous()


def flash_part(queries, keys, values, hidden, scaling) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's fused flash-attention kernel for CPU: (out, log-sum-exp of the scores) per query row.

    In plain operations every op on the float32 scores is a pass over them: a dozen per layer of a
    1,800-token prompt (2-3 s a layer here), and most of a decoding step's attention. The kernel
    works in blocks and returns the log-sum-exp.
    """
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(queries, keys, values, attn_mask=hidden, scale=scaling)


def plain_part(queries, keys, values, hidden, scaling) -> tuple[torch.Tensor, torch.Tensor]:
    """`flash_part` in plain tensor operations (CUDA's path; a row that sees nothing gets zeros)."""
    scores = torch.matmul(queries * scaling, keys.transpose(-1, -2)).float()
    if hidden is not None:
        scores += hidden
    log_total = torch.logsumexp(scores, -1)
    weights = scores.sub_(log_total.clamp_min(torch.finfo(torch.float32).min)[..., None]).exp_()
    return torch.matmul(weights.to(values.dtype), values), log_total


AttentionInterface.register(ATTENTION_NAME, shared_keys_attention)


class SlotLayer(DynamicLayer):
    """One layer's keys/values, `(slots, kv_heads, capacity, head_dim)`, written in place."""

    def __init__(self, cache: "SlotCache"):
        super().__init__()
        self.cache = cache

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        _, heads, _, head_dim = key_states.shape
        shape = (self.cache.slots, heads, self.cache.capacity, head_dim)
        # zeros, not garbage: unused columns are masked out but still multiplied by a zero weight
        self.keys, self.values = key_states.new_zeros(shape), value_states.new_zeros(shape)
        self.device, self.is_initialized = key_states.device, True

    def resize(self, capacity: int) -> None:
        """Hold `capacity` tokens per slot, keeping the first ones (new columns are zeros)."""
        kept = min(capacity, self.keys.shape[2])
        keys, values = self.keys, self.values
        self.keys = keys.new_zeros(keys.shape[:2] + (capacity, keys.shape[3]))
        self.values = values.new_zeros(self.keys.shape)
        self.keys[:, :, :kept], self.values[:, :, :kept] = keys[:, :, :kept], values[:, :, :kept]

    def update(self, key_states, value_states, *args, **kwargs):
        """Write this step's keys of the slots in use; return their keys/values, every allocated column."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        cache = self.cache
        if key_states.shape[-2] == 1:  # decoding: each slot's token goes after its own last one
            self.keys[cache.in_use, :, cache.ends] = key_states[:, :, 0]
            self.values[cache.in_use, :, cache.ends] = value_states[:, :, 0]
        else:  # encoding prompts into an empty cache
            self.keys[: cache.used, :, : key_states.shape[-2]] = key_states
            self.values[: cache.used, :, : value_states.shape[-2]] = value_states
        # whole slots, not a slice of their columns: a contiguous block multiplies without a copy
        # (bf16 matmul on CPU copies a strided slice first, which cost a fifth of each step)
        return self.keys[: cache.used], self.values[: cache.used]

    def get_seq_length(self) -> int:
        return self.cache.width


class SlotCache(Cache):
    """The rows' own keys/values: `slots` fixed places, each row left-aligned, of at most `max_tokens`.

    A forward runs on the slots `0..used-1` (`begin`); each row keeps its own length, so rows that
    joined at different times need no common time axis and nothing is copied when rows join or
    leave, except the rows moved (`copy`). Parts that rows share travel separately (`shared_keys`);
    a cache can hold such a part too, a slot per group (`shared`).
    Attention reads every allocated column, so the allocation follows the longest row in use, in
    blocks of `CACHE_BLOCK` tokens: it grows as rows do and shrinks when long rows leave.
    """

    def __init__(self, num_layers: int, slots: int, max_tokens: int, device: torch.device):
        self.slots, self.max_tokens, self.device = slots, max_tokens, device
        self.capacity = 0  # tokens allocated per slot
        self.lengths = [0] * slots  # tokens held per slot
        self.used = self.width = 0
        super().__init__(layers=[SlotLayer(self) for _ in range(num_layers)])

    def fit(self, tokens: int) -> None:
        """Allocate room for `tokens` per slot, no fewer than any slot in use holds: whole blocks, at
        most `max_tokens`; grow when short, shrink when two blocks or more would be unused."""
        if tokens > self.max_tokens:
            raise RuntimeError(f"SlotCache: {tokens} tokens exceed the most a slot holds, {self.max_tokens}")
        target = min(self.max_tokens, -(-tokens // CACHE_BLOCK) * CACHE_BLOCK)
        if target > self.capacity or self.capacity - target >= 2 * CACHE_BLOCK:
            for layer in self.layers:
                if layer.is_initialized:
                    layer.resize(target)
            self.capacity = target

    def begin(self, used: int, new_tokens: int) -> torch.Tensor:
        """Prepare a forward of `new_tokens` per slot on the first `used` slots; return their mask
        `(used, capacity)` (True = visible). Decoding takes one token per slot; encoding needs an empty cache."""
        if new_tokens > 1 and any(self.lengths[:used]):
            raise RuntimeError("SlotCache: several tokens per slot only into an empty cache")
        ends = self.lengths[:used]
        self.used, self.width = used, max(ends) + new_tokens
        self.fit(self.width)
        self.in_use = torch.arange(used, device=self.device)
        self.ends = torch.tensor(ends, device=self.device)
        return torch.arange(self.capacity, device=self.device)[None] < (self.ends + new_tokens)[:, None]

    def advance(self, new_tokens: int) -> None:
        """The forward prepared by `begin` ran: its tokens are held."""
        for slot in range(self.used):
            self.lengths[slot] += new_tokens

    def copy(self, source: "SlotCache", source_slot: int, tokens: int, to: list[int]) -> None:
        """Hold the last `tokens` tokens of `source`'s slot, left-aligned, in each slot of `to`."""
        start = source.lengths[source_slot] - tokens
        for slot in to:
            self.lengths[slot] = tokens
        if not tokens:  # nothing to move (and the layers may not hold anything yet)
            return
        if tokens > self.capacity:
            self.fit(tokens)
        targets = torch.tensor(to, device=self.device)
        for layer, other in zip(self.layers, source.layers):
            if not layer.is_initialized:
                layer.lazy_initialization(other.keys, other.values)
            keys = other.keys[source_slot, :, start : start + tokens]
            values = other.values[source_slot, :, start : start + tokens]
            if source is self:  # a slot moving within the cache: torch refuses to write from a view it overwrites
                keys, values = keys.clone(), values.clone()
            layer.keys[targets, :, :tokens], layer.values[targets, :, :tokens] = keys, values

    def keep(self, kept: list[int]) -> list[int]:
        """Hold the slots `kept` (ascending) in the first `len(kept)` slots: each freed slot among
        those gets one of the last kept slots, so only those move. Returns each new slot's old slot."""
        size, staying = len(kept), set(kept)
        order = list(range(size))
        movers = (old for old in reversed(kept) if old >= size)
        for hole, old in zip((slot for slot in range(size) if slot not in staying), movers):
            self.copy(self, old, self.lengths[old], [hole])
            order[hole] = old
        return order

    def empty(self, slots: list[int]) -> None:
        """The slots `slots` hold no tokens (a row that joins starts from nothing)."""
        for slot in slots:
            self.lengths[slot] = 0

    def shared(self, groups: list[list[int]]) -> SharedKeys:
        """Slots `0..len(groups)-1` as keys that groups of rows (slots of another cache) attend
        alike: slot g, up to its length, by the rows `groups[g]`."""
        lengths = self.lengths[: len(groups)]
        width = max(lengths)
        key_values = [(layer.keys[: len(groups), :, :width], layer.values[: len(groups), :, :width]) for layer in self.layers]
        return SharedKeys.for_groups(key_values, groups, lengths)

    def key_values(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values of the slots in use, e.g. to become a shared prefix."""
        return [(layer.keys[: self.used, :, : self.width], layer.values[: self.used, :, : self.width]) for layer in self.layers]
