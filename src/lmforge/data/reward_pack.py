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
tests/rm/test_pack.py checks scores and gradients; the forward itself is
:func:`lmforge.models.reward_scores.packed_scores`). Segments are placed in rows first-fit decreasing (several
prompts per row) to remove padding too.

Which responses share: those whose *kept* prompt ids are identical. :func:`~lmforge.data.reward_encode.assemble`
cuts a long prompt from the left with a budget that depends on the response length, so two responses of one
prompt can keep different prompt tails; then each distinct kept prompt gets its own segment (rule: never change
what a sequence is — a response is always scored on exactly the tokens the unpacked path would give it).

The score is read where ``transformers`` reads it in the unpacked sequence: the rightmost token that is not
``pad_token_id``. A generative reward model's verdict suffix (``Encoded.suffix_len``) is part of each response's
block, so its positions continue after the response and its last token — where the verdict is read — sees the
prompt, that response and the question only; ``lm_targets`` (the auxiliary LM loss's next-token targets on the
response, -100 elsewhere) are laid out the same way. Several verdicts of one response (``Encoded.branches``:
``verdict.mode: criteria``) go one level deeper: after the response's tokens each branch is a sub-block
(``pack_sub`` 1, 2, ...) that attends to the prompt, the response and itself, its positions continuing after
the response — so the response is forwarded once for all of its verdicts, and each verdict's last token sees
exactly the tokens of ``prompt + response + that suffix`` unpacked. Scores are then one per branch (``score_row``
/ ``score_col`` in (sequence, branch) order, ``branch_of`` the sequence). Only causal formats (``chat``, ``transcript``: ``Encoded.prompt_len`` set) are packed; encoders
(``pair``) read [CLS] through a pooler and keep the padded path.

``tokens`` of a packed batch counts the non-pad tokens actually forwarded (a shared prompt once);
``sequence_tokens`` the tokens of the same sequences unpacked (a prompt once per response), TRL's count.
"""
from __future__ import annotations

from typing import Any

import torch

from .packing import block_causal_mask, first_fit_decreasing
from .reward_encode import Encoded, lm_targets


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


def _unpacked_tokens(e: Encoded) -> int:
    """Tokens of ``e`` forwarded without sharing: its ids once per branch (once without branches)."""
    return sum(len(e.input_ids) + len(b) for b in e.branches) if e.branches else len(e.input_ids)


def pack(groups: list[list[Encoded]], pad_id: int, row_tokens: int) -> dict[str, Any]:
    """The packed tensors of one micro-batch: ``input_ids``, ``position_ids``, ``pack_seg`` (segment number in
    the row; padding has its own), ``pack_part`` (0 prompt, k+1 the k-th response of its segment),
    ``pack_len`` (real tokens per row), ``score_row`` / ``score_col`` (where sequence i's score is read), and the
    two token counts. Rows hold at most ``max(row_tokens, longest segment)`` tokens."""
    flat = [e for rows in groups for e in rows]
    if any(e.prompt_len is None for e in flat):
        raise ValueError("prefix sharing needs the prompt length of every sequence (a causal input format)")
    segs = segments(groups)
    sizes = [len(p) + sum(len(flat[i].input_ids) - flat[i].prompt_len + sum(map(len, flat[i].branches or []))
                          for i in seqs) for p, seqs in segs]
    bins = first_fit_decreasing(sizes, max(row_tokens, max(sizes)))
    width = max(sum(sizes[s] for s in b) for b in bins)
    ids = torch.full((len(bins), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(bins), width), dtype=torch.long)
    seg = torch.zeros((len(bins), width), dtype=torch.long)
    part = torch.zeros((len(bins), width), dtype=torch.long)
    lengths = torch.zeros(len(bins), dtype=torch.long)
    score_row = torch.zeros(len(flat), dtype=torch.long)
    score_col = torch.zeros(len(flat), dtype=torch.long)
    generative = any(e.suffix_len or e.branches for e in flat)  # the verdict sits in each response's block
    branched = bool(flat[0].branches)
    if branched:  # one score per (sequence, branch)
        of = [i for i, e in enumerate(flat) for _ in e.branches]
        first = [0] * len(flat)
        for k in range(len(of) - 1, -1, -1):
            first[of[k]] = k
        score_row = torch.zeros(len(of), dtype=torch.long)
        score_col = torch.zeros(len(of), dtype=torch.long)
    sub = torch.zeros((len(bins), width), dtype=torch.long)  # branch number within a response (0: none)
    tgt = torch.full((len(bins), width), -100, dtype=torch.long) if generative else None
    seq = torch.zeros((len(bins), width), dtype=torch.long)  # the sequence each target position belongs to
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
                    if tgt is not None:  # targets never cross into the next block: the last is the suffix's
                        tgt[r, at:at + n] = torch.tensor(lm_targets(flat[i])[p:], dtype=torch.long)
                        seq[r, at:at + n] = i
                if branched:  # each branch a sub-block after the response, positions continuing after it
                    end = p + n
                    at += n
                    for c, ids_b in enumerate(flat[i].branches):
                        m = len(ids_b)
                        ids[r, at:at + m] = torch.tensor(ids_b, dtype=torch.long)
                        pos[r, at:at + m] = torch.arange(end, end + m)
                        seg[r, at:at + m] = k
                        part[r, at:at + m] = j + 1
                        sub[r, at:at + m] = c + 1
                        score_row[first[i] + c] = r
                        score_col[first[i] + c] = at + m - 1
                        at += m
                    continue
                t = _score_index(flat[i].input_ids, pad_id)
                score_row[i] = r
                score_col[i] = start + t if t < p else at + t - p
                at += n
        seg[r, at:] = len(b)  # padding: its own block (it attends causally to itself; no row is all-masked)
        pos[r, at:] = torch.arange(width - at)
        lengths[r] = at
    out = {"input_ids": ids, "position_ids": pos, "pack_seg": seg, "pack_part": part, "pack_len": lengths,
           "score_row": score_row, "score_col": score_col, "tokens": int(lengths.sum()),
           "sequence_tokens": sum(_unpacked_tokens(e) for e in flat)}
    if branched:
        out["pack_sub"], out["branch_of"] = sub, torch.tensor(of, dtype=torch.long)
    if tgt is not None:
        out["lm_targets"], out["lm_seq"] = tgt, seq
    return out


def prefix_mask(seg: torch.Tensor, part: torch.Tensor, sub: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, 1, T, T]`` boolean (True = attend): causal within a segment, and a key of a response only for the
    queries of that same response (prompt keys, part 0, are seen by the whole segment); with ``sub`` (branches
    after a response), a branch's key only for the queries of that same branch (the response's own keys,
    sub 0, are seen by all of its branches)."""
    same_part = part[:, :, None] == part[:, None, :]
    if sub is not None:
        same_part = same_part & ((sub[:, None, :] == 0) | (sub[:, :, None] == sub[:, None, :]))
    own = (part[:, None, :] == 0) | same_part
    return block_causal_mask(seg) & own[:, None]


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The boolean mask as 0 / dtype-min added to the attention logits: the same attention (no row is fully
    masked), and PyTorch's CPU sdpa runs a float mask about 1.5x faster than a boolean one (fwd + bwd,
    [8, 4, 256, 64], torch 2.13) — attention is a third of a packed forward here."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
