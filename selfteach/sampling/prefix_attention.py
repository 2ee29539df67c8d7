"""Attention over a prefix shared by every row of a batch, and the rows' own cache in fixed slots.

This is the one module that reaches into transformers' internals (the attention registry, the
cache classes); the rest of the sampler uses the model only through its forward call.
Terms: a *row* is one sequence being sampled (one sample of one prompt); a *slot* is a row's place
in the batch's tensors (dimension 0).

Sampling 64 completions of prompts that all start with the same few-shot prefix would normally
copy the prefix's keys/values 64 times and read all 64 copies at every decoding step (measured
here: a decoding step at batch 64 took 1.6 s after a 600-token prefix against 0.33 s after a
50-token one). Instead each layer keeps two parts:

- the shared prefix, batch 1: `(1, kv_heads, P, head_dim)`, attended by every query without a mask;
- the rows' own keys (the rest of each prompt and the generated tokens), `(B, kv_heads, S, head_dim)`,
  under a boolean mask `(B, 1, q, S)` (True = visible) that handles causality, padding and rows
  of different lengths.

Both parts are combined exactly (by the softmax's running max, or by each part's log-sum-exp), so
the result equals plain attention over prefix + own keys. The prefix is read once per step whatever
the batch size. On CPU both parts go through PyTorch's fused flash-attention kernel
(`fused_attention`); elsewhere through plain tensor operations (`plain_attention`).
The function is registered with transformers' `AttentionInterface` under `ATTENTION_NAME`;
transformers then hands our own 4D mask through untouched. Callers pass the prefix as the model
keyword `shared_prefix` (a list of `(keys, values)` per layer, or None).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer

ATTENTION_NAME = "selfteach_shared_prefix"
CACHE_BLOCK = 32  # the slot cache grows and shrinks in blocks of this many tokens per slot


def shared_prefix_attention(
    module,
    query: torch.Tensor,  # (B, Hq, q, D)
    key: torch.Tensor,  # (B, Hkv, S, D): the rows' own keys
    value: torch.Tensor,  # (B, Hkv, S, D)
    attention_mask: torch.Tensor,  # (B, 1, q, S) bool, True = visible
    scaling: float,
    dropout: float = 0.0,
    shared_prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The attention transformers calls: PyTorch's fused kernel on CPU, plain operations elsewhere."""
    prefix = None if shared_prefix is None else shared_prefix[module.layer_idx]  # (1, Hkv, P, D) each
    attend = fused_attention if query.device.type == "cpu" else plain_attention
    return attend(query, key, value, attention_mask, scaling, prefix), None


def plain_attention(query, key, value, attention_mask, scaling, prefix) -> torch.Tensor:
    """Both parts in plain tensor operations, combined with the softmax's running max: (B, q, Hq, D)."""
    batch, q_heads, q_len, head_dim = query.shape
    kv_heads = key.shape[1]
    group = q_heads // kv_heads  # query heads per key/value head (grouped-query attention)
    # (B, Hkv, G*q, D): the G query heads of one kv head become extra query rows
    # the scale goes on the few queries rather than the many scores; each op on the scores is a pass
    # over them, so the rest work in place
    queries = (query * scaling).reshape(batch, kv_heads, group * q_len, head_dim)
    hidden = ~attention_mask  # decoding: (B, 1, 1, S), broadcast over the heads
    if q_len > 1:  # each query position has its own mask row, repeated for the G heads
        hidden = hidden[:, :, None].expand(batch, 1, group, q_len, key.shape[2])
        hidden = hidden.reshape(batch, 1, group * q_len, key.shape[2])

    own = torch.matmul(queries, key.transpose(-1, -2)).float()  # (B, Hkv, Gq, S)
    own.masked_fill_(hidden, float("-inf"))
    top = own.amax(-1, keepdim=True)
    if prefix is not None:
        prefix_keys, prefix_values = prefix
        # fold the batch into the query rows so the prefix is one matrix per kv head, never copied
        folded = queries.transpose(0, 1).reshape(kv_heads, batch * group * q_len, head_dim)
        shared = torch.matmul(folded, prefix_keys[0].transpose(-1, -2)).float()  # (Hkv, B*Gq, P)
        shared_top = shared.amax(-1, keepdim=True).view(kv_heads, batch, group * q_len, 1).transpose(0, 1)
        top = torch.maximum(top, shared_top)
    top = top.clamp_min(torch.finfo(torch.float32).min)  # rows that see nothing: no NaN from -inf - -inf

    weights = own.sub_(top).exp_()  # (B, Hkv, Gq, S)
    total = weights.sum(-1, keepdim=True)
    out = torch.matmul(weights.to(value.dtype), value).float()  # (B, Hkv, Gq, D)
    if prefix is not None:
        folded_top = top.transpose(0, 1).reshape(kv_heads, batch * group * q_len, 1)
        shared_weights = shared.sub_(folded_top).exp_()  # (Hkv, B*Gq, P)
        total = total + shared_weights.sum(-1, keepdim=True).view(kv_heads, batch, group * q_len, 1).transpose(0, 1)
        shared_out = torch.matmul(shared_weights.to(prefix_values.dtype), prefix_values[0]).float()
        out = out + shared_out.view(kv_heads, batch, group * q_len, head_dim).transpose(0, 1)
    out = out / total.clamp_min(torch.finfo(torch.float32).tiny)
    out = out.to(query.dtype).reshape(batch, q_heads, q_len, head_dim)
    return out.transpose(1, 2).contiguous()  # (B, q, Hq, D), as transformers expects


def fused_attention(query, key, value, attention_mask, scaling, prefix) -> torch.Tensor:
    """`plain_attention` through PyTorch's fused flash-attention kernel for CPU, one call per part, the
    parts combined by their log-sum-exps: (B, q, Hq, D).

    In plain operations every op on the float32 scores is a pass over them: a dozen per layer of a
    1,800-token prompt (2-3 s a layer here), and most of a decoding step's attention. The kernel works
    in blocks and returns the log-sum-exp. It takes as many key heads as query heads: decoding folds
    a kv head's G query heads into G query rows (one mask row serves them all), encoding repeats the
    keys/values for the query heads (each query position has its own mask row).
    """
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    batch, q_heads, q_len, head_dim = query.shape
    kv_heads = key.shape[1]
    group = q_heads // kv_heads
    hidden = torch.zeros(attention_mask.shape, dtype=query.dtype).masked_fill_(~attention_mask, float("-inf"))
    grouped = query.reshape(batch, kv_heads, group * q_len, head_dim)  # a kv head's query heads as its rows
    if q_len == 1:
        queries, keys, values = grouped, key, value
    else:
        queries, keys, values = query, key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
    out, log_total = flash(queries, keys, values, attn_mask=hidden, scale=scaling)
    out, log_total = out.reshape(batch, q_heads, q_len, head_dim), log_total.reshape(batch, q_heads, q_len)
    if prefix is not None:
        prefix_keys, prefix_values = prefix
        # the batch folded into the query rows, as in `plain_attention`
        folded = grouped.transpose(0, 1)
        shared_out, shared_log_total = flash(folded.reshape(1, kv_heads, batch * group * q_len, head_dim),
                                             prefix_keys, prefix_values, scale=scaling)  # fmt: skip
        shared_out = shared_out.view(kv_heads, batch, group * q_len, head_dim).transpose(0, 1)
        shared_log_total = shared_log_total.view(kv_heads, batch, group * q_len).transpose(0, 1)
        # each part is a softmax-weighted mean; together they weigh by their shares of the total mass
        own_share = torch.sigmoid(log_total - shared_log_total.reshape(batch, q_heads, q_len))[..., None]
        out = torch.lerp(shared_out.reshape(batch, q_heads, q_len, head_dim).float(), out.float(), own_share)
    return out.to(query.dtype).transpose(1, 2).contiguous()  # (B, q, Hq, D)


AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)


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
    leave, except the rows moved (`copy`). The shared prefix travels separately as `shared_prefix`.
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
        for slot in to:
            self.lengths[slot] = tokens

    def key_values(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values of the slots in use, e.g. to become a shared prefix."""
        return [(layer.keys[: self.used, :, : self.width], layer.values[: self.used, :, : self.width]) for layer in self.layers]
