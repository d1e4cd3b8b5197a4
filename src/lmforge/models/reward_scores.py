"""Reward-model forwards: ``[N, heads]`` scores of a padded batch or of a prefix-shared packed batch.

The padded path is the model's own forward (``transformers`` reads each sequence's score at its rightmost
non-pad token). The packed path (:mod:`lmforge.data.reward_pack` builds the rows and the mask) forwards each
prompt once for all of its responses and reads every sequence's score where the padded path reads it. Both run
length-sorted in chunks of at most ``chunk_tokens`` padded tokens (:func:`lmforge.models.chunked.length_chunks`).
"""
from __future__ import annotations

import torch

from ..data.reward_pack import additive, pack, prefix_mask
from .chunked import length_chunks, unsort


def forward_scores(model, batch: dict[str, torch.Tensor], chunk_tokens: int | None = None) -> torch.Tensor:
    """``[N, 1 + criteria]`` head outputs (column 0 is the reward): those of one padded forward pass, run in
    length-sorted chunks (the same scores and gradients, no work on short rows' padding). A packed batch
    (:func:`lmforge.data.reward_pack.pack`: it has ``score_row``) goes through :func:`packed_scores`."""
    if "score_row" in batch:
        return packed_scores(model, batch, chunk_tokens)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch]
    order, chunks = length_chunks(batch["attention_mask"].sum(-1), batch["input_ids"].shape[1], chunk_tokens)
    if order is None:
        return model(**{k: batch[k] for k in keys}).logits.float()
    parts = [model(**{k: batch[k][idx.to(batch[k].device), :width] for k in keys}).logits.float()
             for idx, width in chunks]
    return unsort(torch.cat(parts), order)


def _dtype(model) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _head(model) -> torch.nn.Module:
    """The model's scalar head (``score``), through DDP and PEFT wrappers."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner.score


def packed_scores(model, batch: dict[str, torch.Tensor], chunk_tokens: int | None = None) -> torch.Tensor:
    """``[N, heads]`` scores of a packed batch, sequence i's at row ``score_row[i]``, column ``score_col[i]``.

    The model's own forward runs (so DDP / FSDP hooks and LoRA apply as usual) with the 4-D mask and position
    ids; a forward hook on its head keeps the per-token head outputs (``score`` is applied to every position of
    the final hidden states), and its pooled output — read at each row's last non-pad token — is ignored.
    """
    ids, pos, seg, part = batch["input_ids"], batch["position_ids"], batch["pack_seg"], batch["pack_part"]
    width = ids.shape[1]
    order, chunks = length_chunks(batch["pack_len"], width, chunk_tokens)
    head, dtype = _head(model), _dtype(model)
    parts: list[torch.Tensor] = []
    for idx, longest in chunks:
        idx = idx.to(ids.device) if isinstance(idx, torch.Tensor) else idx
        kept: list[torch.Tensor] = []
        handle = head.register_forward_hook(lambda _m, _i, out, kept=kept: kept.append(out))
        try:
            model(input_ids=ids[idx, :longest], position_ids=pos[idx, :longest],
                  attention_mask=additive(prefix_mask(seg[idx, :longest], part[idx, :longest]), dtype))
        finally:
            handle.remove()
        parts.append(torch.nn.functional.pad(kept[-1], (0, 0, 0, width - longest)))
    logits = unsort(torch.cat(parts), order)  # rows back in batch order
    return logits[batch["score_row"], batch["score_col"]].float()


def check_sharing(model, groups, pad_id: int, row_tokens: int, chunk_tokens: int | None = None,
                  n_groups: int = 4) -> tuple[bool, str]:
    """(usable, why): the model has a per-token ``score`` head and an attention implementation that takes a
    4-D mask, and the packed scores of the first ``n_groups`` groups (eval mode, no gradients) equal the
    padded ones — the architecture honours ``position_ids`` and the mask, so sharing is exact for it."""
    from ..data.reward_encode import collate

    try:
        _head(model)
    except AttributeError:
        return False, "off (the model has no per-token score head)"
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in ("sdpa", "eager", None):
        return False, f"off (attention implementation {impl!r} is not checked with a 4-D mask)"
    sample = [g.encoded for g in groups[:n_groups] if g.encoded]
    if not sample:
        return False, "off (no training sequences)"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            padded = model(**collate([e for rows in sample for e in rows], pad_id)).logits.float()
            packed = packed_scores(model, pack(sample, pad_id, row_tokens), chunk_tokens)
    finally:
        model.train(was_training)
    tol = 1e-4 if _dtype(model) == torch.float32 else 3e-2
    err = float((padded - packed).abs().max())
    if err > tol * max(1.0, float(padded.abs().max())):
        return False, f"off (packed scores differ from padded ones by {err:.2g} on this model)"
    return True, f"on (checked on {len(sample)} groups: max score difference {err:.1g})"
