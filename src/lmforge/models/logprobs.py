"""Per-token log-probabilities of given target ids: the one helper SFT evaluation, reward models, judges, DPO
and RL share.

``log p_τ(y_t | x_<t) = z_t[y_t] / τ − log Σ_v exp(z_t[v] / τ)``: the log-softmax of the logits at temperature
τ (the distribution a sampler at that temperature draws from; PPO's "old" log-probs must use the sampling τ),
read at the target id. Only the positions that have a target reach the output head: a forward pre-hook on
the model's output embeddings hands it the hidden states of scored positions alone, so prompt, padding and
unscored tokens cost no ``H × V`` matmul forward or backward (the head is ~25 % of a small model's FLOPs) and
``[B, T, V]`` logits never exist. The batch's rows run in length-sorted chunks of at most ``chunk_tokens``
padded tokens (:func:`lmforge.models.chunked.length_chunks`).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..algos.policy_losses import token_logprobs as logits_logprobs
from .chunked import length_chunks, unsort

IGNORE = -100  # a target below 0: the position is not scored (its output is 0)


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``[N, K]`` log-probabilities of ``targets`` ``[N, K]`` (ids, all ≥ 0) under ``logits`` ``[N, V]`` at
    ``temperature``: the one formula, :func:`lmforge.algos.policy_losses.token_logprobs`, over K views of each
    row (a view, no copy, when K = 1)."""
    return logits_logprobs(logits.unsqueeze(-2).expand(-1, targets.shape[-1], -1), targets, temperature)


@contextmanager
def head_on_rows(model, scored: torch.Tensor, enabled: bool):
    """While active, the output head (``get_output_embeddings()``, unwrapping DDP's ``.module``; PEFT forwards
    the call to its base model) gets ``hidden[scored]`` ``[N, H]`` instead of ``hidden`` ``[B, T, H]``: every
    per-position step after it (a LoRA head, soft-capping, logit scaling) is row-wise, so the logits rows equal
    the full forward's at those positions. A head input of another shape is left alone (the caller then indexes
    the full logits), and a model without output embeddings runs as it is."""
    get = getattr(getattr(model, "module", model), "get_output_embeddings", None)
    head = get() if enabled and callable(get) else None
    if not isinstance(head, torch.nn.Module):
        yield
        return

    def rows_only(_module, args):
        h = args[0] if args else None
        if isinstance(h, torch.Tensor) and h.dim() == 3 and h.shape[:2] == scored.shape:
            return (h[scored], *args[1:])
        return None

    handle = head.register_forward_pre_hook(rows_only)
    try:
        yield
    finally:
        handle.remove()


def _right_padded(mask: torch.Tensor) -> bool:
    return mask.dim() == 2 and bool((mask[:, :-1] >= mask[:, 1:]).all())


def token_logprobs(model, input_ids: torch.Tensor, targets: torch.Tensor, *,
                   attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                   temperature: float = 1.0, chunk_tokens: int | None = None,
                   all_logits: bool = False) -> torch.Tensor:
    """Log-probabilities of ``targets`` under ``model``'s next-token distribution at ``temperature``.

    ``targets`` is ``[B, T]`` aligned with the logits (``targets[b, t]`` is scored by ``logits[b, t]``, i.e.
    already shifted; below 0 = not scored, output 0), or ``[B, T, K]`` for K candidate ids at a position (a
    position is scored when its first candidate is ≥ 0; other negative candidates give 0). Returns fp32 of the
    same shape, differentiable through the model. Right-padded rows (a 2-D ``attention_mask`` that is 1 then
    0) are cut to their chunk's longest row; other layouts (left padding, packed rows) chunk by rows at full
    width. ``chunk_tokens=None``: one forward of the whole batch, exactly as the caller would run it.
    ``all_logits=True``: the head runs at every position and the scored rows are indexed afterwards (the plain
    forward, the reference the tests hold the head-on-scored-rows path to).
    """
    n_rows, width = input_ids.shape
    lengths = None
    if chunk_tokens:
        lengths = (attention_mask.sum(-1) if attention_mask is not None and _right_padded(attention_mask)
                   else torch.full((n_rows,), width))
    order, chunks = length_chunks(lengths, width, chunk_tokens)
    parts = []
    for rows, w in chunks:
        if isinstance(rows, torch.Tensor):
            rows = rows.to(input_ids.device)
        extra = {}
        if attention_mask is not None:
            extra["attention_mask"] = (attention_mask[rows, :w] if attention_mask.dim() == 2
                                       else attention_mask[rows][..., :w, :w])
        if position_ids is not None:
            extra["position_ids"] = position_ids[rows, :w]
        tgt = targets[rows, :w]
        cand = tgt if tgt.dim() == 3 else tgt[..., None]
        scored = cand[..., 0] >= 0
        with head_on_rows(model, scored, not all_logits):
            logits = model(input_ids=input_ids[rows, :w], use_cache=False, **extra).logits
        if logits.dim() == 3:  # the head saw every position (no hook, or a head input it left alone)
            logits = logits[scored]
        lp = gather_logprobs(logits, cand[scored].clamp(min=0), temperature)
        lp = lp.masked_fill(cand[scored] < 0, 0.0)
        out = torch.zeros(cand.shape, dtype=lp.dtype, device=lp.device).masked_scatter(scored[..., None], lp)
        out = out if tgt.dim() == 3 else out[..., 0]
        pad = (0, 0, 0, width - w) if tgt.dim() == 3 else (0, width - w)
        parts.append(torch.nn.functional.pad(out, pad))
    return unsort(torch.cat(parts), order)
