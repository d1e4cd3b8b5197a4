"""The forward of rows that share a prompt (GRPO / RLOO groups in training, a TruthfulQA question's answer
choices in evaluation): the prompt once, its key/value cache copied to every row of its group, then the
responses.

Why: a group's ``g`` rows repeat one prompt, so a padded batch runs it ``g`` times through every layer, forward
and backward (on the GRPO benchmark a prompt is ~20 % of a row's tokens). Here the micro-batch's distinct
prompts, all but their last token, run once (left-padded, no output head), their per-layer keys and values are
index-selected to the rows (differentiable: a shared prompt's gradient is the sum over its rows, as in the
padded batch), and each row's last prompt token and response then run as a right-padded batch on that cache,
with the positions and padding mask ``generate`` would give a left-padded prompt. Every response token sees the
keys, values and positions it has in its own row, so the logits (and the gradients) are the padded forward's to
float rounding (tests/rl/test_shared_prompt_forward.py); the output head runs on the scored positions only, in
the same row-major order (the last prompt token scores the first response token, so all of them are in the
second pass).

Used where it applies exactly: some prompt is shared, every row's prompt has at least 2 tokens, the model's
cache layers are plain full-attention ``DynamicLayer`` s and its forward takes ``position_ids``; else the
padded forward runs.
"""
from __future__ import annotations

import torch

from ..generation.decode import _forward_params
from ..models.logprobs import head_on_rows


def prompt_lengths(targets: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per row, where its response starts: one past the first position with a target (the buffer's layout:
    position t scores token t + 1); a row without targets is all prompt (its real length)."""
    has = targets >= 0
    first = has.float().argmax(-1) + 1
    return torch.where(has.any(-1), first, attention_mask.sum(-1))


def share_plan(input_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[list[int], torch.Tensor] | None:
    """``(first row of each distinct prompt, row -> its prompt's index)``, or None when no prompt is shared or
    one is shorter than 2 tokens (nothing to cache before its last token)."""
    lens = lengths.tolist()
    if min(lens) < 2:
        return None
    seen: dict[tuple[int, ...], int] = {}
    first, inverse = [], []
    for i, n in enumerate(lens):
        key = tuple(input_ids[i, :n].tolist())
        if key not in seen:
            seen[key] = len(first)
            first.append(i)
        inverse.append(seen[key])
    if len(first) == len(lens):
        return None
    return first, torch.tensor(inverse, dtype=torch.long, device=input_ids.device)


def shared_prefix_logits(policy, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor,
                         scored: torch.Tensor) -> torch.Tensor | None:
    """The ``[M, V]`` logits of the ``scored`` positions (row-major), computed with each shared prompt once
    (module doc); None where the padded forward must run instead."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    names = _forward_params(policy)
    if "position_ids" not in names or attention_mask.dim() != 2:
        return None
    lengths = prompt_lengths(targets, attention_mask)
    plan = share_plan(input_ids, lengths)
    if plan is None:
        return None
    first, inverse = plan
    cache_kw = "cache" if "cache" in names else "past_key_values"
    cache = DynamicCache(config=policy.config)
    if not all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])):
        return None
    device = input_ids.device
    # 1. the distinct prompts but their last token, left-padded (the generation engine's layout)
    plen = (lengths[first] - 1).tolist()
    width = max(plen)
    pre = torch.zeros((len(first), width), dtype=input_ids.dtype, device=device)
    pre_mask = torch.zeros((len(first), width), dtype=attention_mask.dtype, device=device)
    for k, (i, n) in enumerate(zip(first, plen)):
        pre[k, width - n:] = input_ids[i, :n]
        pre_mask[k, width - n:] = 1
    pos = (pre_mask.long().cumsum(-1) - 1).clamp(min=0)
    nothing = torch.zeros(pre.shape, dtype=torch.bool, device=device)
    with head_on_rows(policy, nothing, True):  # no logits for the prefix
        policy(input_ids=pre, attention_mask=pre_mask, position_ids=pos, use_cache=True, **{cache_kw: cache})
    cache.batch_select_indices(inverse)
    # 2. per row: its last prompt token and its response, right-padded, on its prompt's cache
    start = lengths - 1
    real = attention_mask.sum(-1) - start
    span = int(real.max())
    cols = start[:, None] + torch.arange(span, device=device)[None, :]
    inside = torch.arange(span, device=device)[None, :] < real[:, None]
    cols = torch.where(inside, cols, start[:, None]).clamp(max=input_ids.shape[1] - 1)
    ids = input_ids.gather(1, cols)
    tail_scored = scored.gather(1, cols) & inside
    mask = torch.cat([pre_mask[inverse], inside.to(attention_mask.dtype)], 1)
    tail_pos = (lengths - 1)[:, None] + torch.arange(span, device=device)[None, :]
    with head_on_rows(policy, tail_scored, True):
        out = policy(input_ids=ids, attention_mask=mask, position_ids=tail_pos, use_cache=True,
                     **{cache_kw: cache})
    logits = out.logits
    return logits if logits.dim() == 2 else logits[tail_scored]
