"""A lean decode loop over a causal LM and its KV cache: what the HF backend runs instead of ``generate``.

Why not ``model.generate``: on small models its per-step bookkeeping costs as much as the model. Measured on
the benchmark's tiny Llama (4 layers, 16 rows x 128 tokens, one CPU thread, cProfile): of 4.1 s, the model's
forward took 3.2 s, of which 0.5 s was ``DynamicCache`` re-copying the whole cache every step (``torch.cat``),
and ``generate``'s logits processors, stopping criteria and input preparation most of the rest. This loop keeps
only what a decoder-only model needs: one prefill forward (logits of the last position only), then one forward
per step of the chosen token with its position id and the grown attention mask, into a cache whose keys and
values live in a preallocated buffer (:class:`GrowingLayer`: one slot written per step). Rows that are done
leave the batch (the cache is index-selected), so a batch with short answers stops paying for them, and rows
with the same prompt (``n`` samples of it) share one prefill whose cache rows are then copied.

The inputs are exactly ``generate``'s: position ids ``cumsum(mask) - 1`` (left padding gets 0), the 2-D
attention mask (the model builds its own causal / sliding-window mask from it), the same cache layer kinds
where they are not plain full-attention layers. Greedy decoding therefore picks the tokens ``generate`` picks.

Per-step overhead, measured on the same setting (interleaved in one process, the same tokens and log-probs
bit for bit): the loop runs under ``torch.inference_mode`` (no autograd or version-counter bookkeeping on any
op: ~6 % of a step; a buffer a model replaces during a forward, e.g. a dynamic RoPE's frequencies, would come
out an inference tensor that training cannot save, so :func:`_normal_buffers` turns such buffers back), and,
where the model runs SDPA over plain full-attention layers with padded prompts, each step passes the
``[B, 1, 1, P + t]`` boolean mask SDPA would be given, as a view of one tensor, instead of the 2-D mask from
which transformers rebuilds it every step (~5 %).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values live in a preallocated buffer (its capacity grows by
    doubling if ever exceeded), so a step writes one slot instead of copying the cache (``DynamicLayer``'s
    ``torch.cat``). ``keys`` / ``values`` are views of the filled part, so everything reading them (sequence
    length, mask sizes) sees what a ``DynamicLayer`` would hold."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.filled = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def _grow(self, like: torch.Tensor, need: int) -> torch.Tensor:
        shape = list(like.shape)
        shape[-2] = max(self.capacity, need)
        return like.new_empty(shape)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, k = self.filled, key_states.shape[-2]
        if self._k is None or n + k > self._k.shape[-2]:
            if self._k is not None:
                self.capacity = 2 * (n + k)
            new_k, new_v = self._grow(key_states, n + k), self._grow(value_states, n + k)
            if n:
                new_k[..., :n, :].copy_(self._k[..., :n, :])
                new_v[..., :n, :].copy_(self._v[..., :n, :])
            self._k, self._v = new_k, new_v
        self._k[..., n:n + k, :].copy_(key_states)
        self._v[..., n:n + k, :].copy_(value_states)
        self.filled = n + k
        self.keys, self.values = self._k[..., :n + k, :], self._v[..., :n + k, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[..., :self.filled, :], self._v[..., :self.filled, :]


def kv_cache(model, capacity: int) -> DynamicCache:
    """The model's own ``DynamicCache`` with its plain full-attention layers swapped for :class:`GrowingLayer`
    (sliding-window, linear-attention and other kinds are left as the model made them)."""
    cache = DynamicCache(config=model.config)
    layers = getattr(cache, "layers", None)
    if layers:
        for i, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[i] = GrowingLayer(capacity)
    return cache


def _forward_params(model) -> set[str]:
    """The keyword arguments the underlying transformers model's ``forward`` names (through a PEFT wrapper,
    whose own ``forward`` passes ``**kwargs`` on)."""
    base = model
    while hasattr(base, "get_base_model"):
        base = base.get_base_model()
    return set(inspect.signature(base.forward).parameters)


# choose(seq [A, P + t], logits [A, V], rows [A]) -> (next ids [A], keep [A] bool): the caller samples the
# active rows' next tokens and says which of them go on (``rows`` are their indices in the original batch)
Choose = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _normal_buffers(model) -> None:
    """Buffers the forward replaced under inference mode become normal tensors again (module doc)."""
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None and buf.is_inference():
                module._buffers[name] = buf.clone()


def _step_masks(model, cache, mask: torch.Tensor, att: torch.Tensor, names: set[str]):
    """The decode steps' 4-D boolean attention mask ``[B, 1, 1, P + max_new]`` (sliced per step), or None where
    the model should build its own from the 2-D mask: another attention implementation (eager wants an additive
    float mask, flash-attention a 2-D one), other cache layers than plain full attention (sliding windows add
    their own pattern), positions the model would derive from the mask, or no padding (SDPA then runs
    unmasked). For a one-token query at the end of the cache the causal part allows every cached key, so the
    mask is the padding mask itself: what ``transformers.masking_utils.sdpa_mask`` returns."""
    if (bool(mask.all()) or "position_ids" not in names
            or getattr(model.config, "_attn_implementation", None) != "sdpa"
            or not all(type(layer) is GrowingLayer for layer in cache.layers)):
        return None
    return att.bool()[:, None, None, :]


def decode(model, ids: torch.Tensor, mask: torch.Tensor, max_new: int, choose: Choose) -> None:
    """Run ``choose`` on each step's last-position logits until no row goes on or ``max_new`` tokens are
    chosen; ``ids`` / ``mask`` are the left-padded prompts ``[B, P]``."""
    try:
        with torch.inference_mode():
            _decode(model, ids, mask, max_new, choose)
    finally:
        _normal_buffers(model)  # out of inference mode: the clones are normal tensors


def _decode(model, ids: torch.Tensor, mask: torch.Tensor, max_new: int, choose: Choose) -> None:
    b, p = ids.shape
    device = ids.device
    rows = torch.arange(b, device=device)
    seq = torch.empty((b, p + max_new), dtype=torch.long, device=device)
    seq[:, :p] = ids
    att = torch.ones((b, p + max_new), dtype=mask.dtype, device=device)
    att[:, :p] = mask
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    names = _forward_params(model)
    cache_kw = "cache" if "cache" in names else "past_key_values"  # renamed in transformers 5.x
    cache = {cache_kw: kv_cache(model, p + max_new)}
    extra = {"position_ids": pos} if "position_ids" in names else {}
    if "logits_to_keep" in names:
        extra["logits_to_keep"] = 1
    # rows with the same prompt (the n samples of one prompt) share one prefill, then copy its cache rows
    uniq, inverse = torch.unique(torch.cat([ids, mask.to(ids.dtype)], 1), dim=0, return_inverse=True)
    share = len(uniq) < b and all(isinstance(layer, DynamicLayer) for layer in cache[cache_kw].layers)
    if share:
        first = torch.full((len(uniq),), b, dtype=torch.long, device=device).scatter_reduce(
            0, inverse, rows, "amin")
        if "position_ids" in extra:
            extra["position_ids"] = pos[first]
        out = model(input_ids=ids[first], attention_mask=mask[first], use_cache=True, **cache, **extra)
        cache[cache_kw].batch_select_indices(inverse)
        out.logits = out.logits[inverse]
    else:
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, **cache, **extra)
    nxt_pos = pos[:, -1:] + 1
    m4 = _step_masks(model, cache[cache_kw], mask, att, names)
    for t in range(max_new):
        logits = out.logits[:, -1, :]
        token, keep = choose(seq[:, :p + t], logits, rows)
        seq[:, p + t] = token
        kept = int(keep.sum())
        if kept == 0 or t + 1 == max_new:
            return
        if kept < len(rows) and (len(rows) - kept) * 8 >= len(rows):  # drop finished rows (≥ 1/8 of the batch)
            sel = keep.nonzero()[:, 0]
            cache[cache_kw].batch_select_indices(sel)
            rows, seq, att, nxt_pos, token = rows[sel], seq[sel], att[sel], nxt_pos[sel], token[sel]
            m4 = m4[sel] if m4 is not None else None
        step = {"position_ids": nxt_pos + t} if "position_ids" in extra else {}
        am = m4[..., :p + t + 1] if m4 is not None else att[:, :p + t + 1]
        out = model(input_ids=token[:, None], attention_mask=am, use_cache=True, **cache, **step)
