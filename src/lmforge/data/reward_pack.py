"""Prefix-shared packing for causal reward models: a prompt is forwarded once for all of its responses.

Why: a micro-batch holds whole prompt groups (:class:`~lmforge.data.reward_data.GroupBatches`), and a padded
batch runs each ``prompt + response`` as its own row, so a pair computes its prompt twice and a K-wise ranking
K times (TRL's ``RewardTrainer`` does the same), and every row is padded to the longest. Here a *segment* is one
prompt followed by the responses that share it::

    row:  [ prompt 0..P-1 | response a: P..P+la-1 | response b: P..P+lb-1 ] [ next segment ... ] [ padding ]

with a 4-D attention mask (:func:`prefix_mask`, handed to the model as an additive float mask): prompt tokens
attend causally within the prompt; a response token attends to the whole prompt and to its own earlier tokens,
never to another response or another segment; position ids continue from the prompt for each response. Every
response token therefore sees exactly the keys, values and positions it has in its own unpacked sequence, so its
hidden states — and the score read at its last token — are those of the unpacked forward (to float rounding:
tests/rm/test_pack.py checks scores and gradients). Segments are placed in rows first-fit decreasing (several
prompts per row) to remove padding too.

Which responses share: those whose *kept* prompt ids are identical. :func:`~lmforge.data.reward_encode.assemble`
cuts a long prompt from the left with a budget that depends on the response length, so two responses of one
prompt can keep different prompt tails; then each distinct kept prompt gets its own segment (rule: never change
what a sequence is — a response is always scored on exactly the tokens the unpacked path would give it).

The score is read where ``transformers`` reads it in the unpacked sequence: the rightmost token that is not
``pad_token_id``. Only causal formats (``chat``, ``transcript``: ``Encoded.prompt_len`` set) are packed; encoders
(``pair``) read [CLS] through a pooler and keep the padded path.

``tokens`` of a packed batch counts the non-pad tokens actually forwarded (a shared prompt once);
``sequence_tokens`` the tokens of the same sequences unpacked (a prompt once per response), TRL's count.
"""
from __future__ import annotations

from typing import Any

import torch

from .packing import block_causal_mask, first_fit_decreasing
from .reward_encode import Encoded


def segments(groups: list[list[Encoded]]) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, [sequence index, ...])`` per segment: one per distinct kept prompt of each group, in order.
    Sequence indices number the responses of all groups in turn (the order of an unpacked batch)."""
    out: list[tuple[list[int], list[int]]] = []
    n = 0
    for rows in groups:
        by_prompt: dict[tuple[int, ...], list[int]] = {}
        for e in rows:
            by_prompt.setdefault(tuple(e.input_ids[:e.prompt_len]), []).append(n)
            n += 1
        out += [(list(p), seqs) for p, seqs in by_prompt.items()]
    return out


def _score_index(ids: list[int], pad_id: int) -> int:
    """Where ``transformers`` reads a sequence's score: its rightmost non-pad token (0 when all are pad)."""
    for t in range(len(ids) - 1, -1, -1):
        if ids[t] != pad_id:
            return t
    return 0


def pack(groups: list[list[Encoded]], pad_id: int, row_tokens: int) -> dict[str, Any]:
    """The packed tensors of one micro-batch: ``input_ids``, ``position_ids``, ``pack_seg`` (segment number in
    the row; padding has its own), ``pack_part`` (0 prompt, k+1 the k-th response of its segment),
    ``pack_len`` (real tokens per row), ``score_row`` / ``score_col`` (where sequence i's score is read), and the
    two token counts. Rows hold at most ``max(row_tokens, longest segment)`` tokens."""
    flat = [e for rows in groups for e in rows]
    if any(e.prompt_len is None for e in flat):
        raise ValueError("prefix sharing needs the prompt length of every sequence (a causal input format)")
    segs = segments(groups)
    sizes = [len(p) + sum(len(flat[i].input_ids) - flat[i].prompt_len for i in seqs) for p, seqs in segs]
    bins = first_fit_decreasing(sizes, max(row_tokens, max(sizes)))
    width = max(sum(sizes[s] for s in b) for b in bins)
    ids = torch.full((len(bins), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(bins), width), dtype=torch.long)
    seg = torch.zeros((len(bins), width), dtype=torch.long)
    part = torch.zeros((len(bins), width), dtype=torch.long)
    lengths = torch.zeros(len(bins), dtype=torch.long)
    score_row = torch.zeros(len(flat), dtype=torch.long)
    score_col = torch.zeros(len(flat), dtype=torch.long)
    for r, b in enumerate(bins):
        at = 0
        for k, s in enumerate(b):
            prompt, seqs = segs[s]
            p = len(prompt)
            start = at
            ids[r, at:at + p] = torch.tensor(prompt, dtype=torch.long)
            pos[r, at:at + p] = torch.arange(p)
            seg[r, at:at + p] = k
            at += p
            for j, i in enumerate(seqs):
                resp = flat[i].input_ids[p:]
                n = len(resp)
                if n:
                    ids[r, at:at + n] = torch.tensor(resp, dtype=torch.long)
                    pos[r, at:at + n] = torch.arange(p, p + n)
                    seg[r, at:at + n] = k
                    part[r, at:at + n] = j + 1
                t = _score_index(flat[i].input_ids, pad_id)
                score_row[i] = r
                score_col[i] = start + t if t < p else at + t - p
                at += n
        seg[r, at:] = len(b)  # padding: its own block (it attends causally to itself; no row is all-masked)
        pos[r, at:] = torch.arange(width - at)
        lengths[r] = at
    return {"input_ids": ids, "position_ids": pos, "pack_seg": seg, "pack_part": part, "pack_len": lengths,
            "score_row": score_row, "score_col": score_col, "tokens": int(lengths.sum()),
            "sequence_tokens": sum(len(e.input_ids) for e in flat)}


def prefix_mask(seg: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T, T]`` boolean (True = attend): causal within a segment, and a key of a response only for the
    queries of that same response (prompt keys, part 0, are seen by the whole segment)."""
    own = (part[:, None, :] == 0) | (part[:, :, None] == part[:, None, :])
    return block_causal_mask(seg) & own[:, None]


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The boolean mask as 0 / dtype-min added to the attention logits: the same attention (no row is fully
    masked), and PyTorch's CPU sdpa runs a float mask about 1.5x faster than a boolean one (fwd + bwd,
    [8, 4, 256, 64], torch 2.13) — attention is a third of a packed forward here."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def _dtype(model) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _head(model) -> torch.nn.Module:
    """The model's scalar head (``score``), through DDP and PEFT wrappers."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner.score


def packed_scores(model, batch: dict[str, torch.Tensor], max_tokens: int | None = None) -> torch.Tensor:
    """``[N, heads]`` scores of a packed batch, sequence i's at row ``score_row[i]``, column ``score_col[i]``.

    The model's own forward runs (so DDP / FSDP hooks and LoRA apply as usual) with the 4-D mask and position
    ids; a forward hook on its head keeps the per-token head outputs (``score`` is applied to every position of
    the final hidden states), and its pooled output — read at each row's last non-pad token — is ignored. With
    ``max_tokens``, rows run longest first in chunks of at most that many padded tokens, as unpacked batches.
    """
    ids, pos, seg, part = batch["input_ids"], batch["position_ids"], batch["pack_seg"], batch["pack_part"]
    n_rows, width = ids.shape
    lengths = batch["pack_len"].cpu()
    chunked = bool(max_tokens) and n_rows * width > max_tokens
    order = torch.argsort(lengths, descending=True, stable=True) if chunked else torch.arange(n_rows)
    head, dtype = _head(model), _dtype(model)
    parts: list[torch.Tensor] = []
    i = 0
    while i < n_rows:
        longest = max(1, int(lengths[order[i]])) if chunked else width
        idx = order[i:i + max(1, max_tokens // longest)] if chunked else order
        idx = idx.to(ids.device)
        kept: list[torch.Tensor] = []
        handle = head.register_forward_hook(lambda _m, _i, out, kept=kept: kept.append(out))
        try:
            model(input_ids=ids[idx, :longest], position_ids=pos[idx, :longest],
                  attention_mask=additive(prefix_mask(seg[idx, :longest], part[idx, :longest]), dtype))
        finally:
            handle.remove()
        parts.append(torch.nn.functional.pad(kept[-1], (0, 0, 0, width - longest)))
        i += len(idx)
    logits = torch.cat(parts)  # rows in `order`
    where = torch.empty_like(order)
    where[order] = torch.arange(n_rows)
    return logits[where.to(ids.device)[batch["score_row"]], batch["score_col"]].float()


def check_sharing(model, groups, pad_id: int, row_tokens: int, max_tokens: int | None = None,
                  n_groups: int = 4) -> tuple[bool, str]:
    """(usable, why): the model has a per-token ``score`` head and an attention implementation that takes a
    4-D mask, and the packed scores of the first ``n_groups`` groups (eval mode, no gradients) equal the
    padded ones — the architecture honours ``position_ids`` and the mask, so sharing is exact for it."""
    from .reward_encode import collate

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
            packed = packed_scores(model, pack(sample, pad_id, row_tokens), max_tokens)
    finally:
        model.train(was_training)
    tol = 1e-4 if _dtype(model) == torch.float32 else 3e-2
    err = float((padded - packed).abs().max())
    if err > tol * max(1.0, float(padded.abs().max())):
        return False, f"off (packed scores differ from padded ones by {err:.2g} on this model)"
    return True, f"on (checked on {len(sample)} groups: max score difference {err:.1g})"
