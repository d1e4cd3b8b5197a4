"""Per-token log-probabilities of given target ids: the one helper SFT evaluation, reward models, judges, DPO
and RL share.

``log p_τ(y_t | x_<t) = z_t[y_t] / τ − log Σ_v exp(z_t[v] / τ)``: the log-softmax of the logits at temperature
τ (the distribution a sampler at that temperature draws from; PPO's "old" log-probs must use the sampling τ),
read at the target id. Only the positions that have a target are turned into fp32 log-softmax rows, and the
batch's rows run in length-sorted chunks of at most ``chunk_tokens`` padded tokens
(:func:`lmforge.models.chunked.length_chunks`), so a large vocabulary never materialises ``[B, T, V]`` fp32.
"""
from __future__ import annotations

import torch

from ..algos.policy_losses import token_logprobs as logits_logprobs
from .chunked import length_chunks, unsort

IGNORE = -100  # a target below 0: the position is not scored (its output is 0)


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``[N, K]`` log-probabilities of ``targets`` ``[N, K]`` (ids, all ≥ 0) under ``logits`` ``[N, V]`` at
    ``temperature``: the one formula, :func:`lmforge.algos.policy_losses.token_logprobs`, over K views of each
    row (a view, no copy, when K = 1)."""
    return logits_logprobs(logits.unsqueeze(-2).expand(-1, targets.shape[-1], -1), targets, temperature)


def _right_padded(mask: torch.Tensor) -> bool:
    return mask.dim() == 2 and bool((mask[:, :-1] >= mask[:, 1:]).all())


def token_logprobs(model, input_ids: torch.Tensor, targets: torch.Tensor, *,
                   attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                   temperature: float = 1.0, chunk_tokens: int | None = None) -> torch.Tensor:
    """Log-probabilities of ``targets`` under ``model``'s next-token distribution at ``temperature``.

    ``targets`` is ``[B, T]`` aligned with the logits (``targets[b, t]`` is scored by ``logits[b, t]``, i.e.
    already shifted; below 0 = not scored, output 0), or ``[B, T, K]`` for K candidate ids at a position (a
    position is scored when its first candidate is ≥ 0; other negative candidates give 0). Returns fp32 of the
    same shape, differentiable through the model. Right-padded rows (a 2-D ``attention_mask`` that is 1 then
    0) are cut to their chunk's longest row; other layouts (left padding, packed rows) chunk by rows at full
    width. ``chunk_tokens=None``: one forward of the whole batch, exactly as the caller would run it.
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
        logits = model(input_ids=input_ids[rows, :w], use_cache=False, **extra).logits
        tgt = targets[rows, :w]
        cand = tgt if tgt.dim() == 3 else tgt[..., None]
        scored = cand[..., 0] >= 0
        lp = gather_logprobs(logits[scored], cand[scored].clamp(min=0), temperature)
        lp = lp.masked_fill(cand[scored] < 0, 0.0)
        out = torch.zeros(cand.shape, dtype=lp.dtype, device=lp.device).masked_scatter(scored[..., None], lp)
        out = out if tgt.dim() == 3 else out[..., 0]
        pad = (0, 0, 0, width - w) if tgt.dim() == 3 else (0, width - w)
        parts.append(torch.nn.functional.pad(out, pad))
    return unsort(torch.cat(parts), order)
