"""Freezing parts of a model during fine-tuning, to keep what pre-training learned.

Measured on the built-in world (shared/notes/built-in-world.md): full SFT of a tiny model erased facts it had
only read in prose (held-out recall 0.95 -> 0.11) unless the tied input/output embedding was frozen, except
the rows of the chat special tokens, which pre-training never used and SFT must learn.
"""
from __future__ import annotations

from typing import Literal

import torch

from .blocks import transformer_blocks

# how the input embedding is frozen, in every stage that fine-tunes (SFT protect.freeze_embeddings, reward models
# model.freeze_embeddings): not at all, entirely, or all but the special tokens' rows
FreezeEmbeddings = Literal["none", "all", "except_special"]


def embedding_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The input embedding and (if untied) the output embedding weights."""
    out: list[torch.nn.Parameter] = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        mod = getattr(model, getter)()
        if mod is not None and not any(mod.weight is p for p in out):  # tied: one matrix
            out.append(mod.weight)
    return out


def freeze_embeddings(model: torch.nn.Module, trainable_rows: list[int] | None = None) -> int:
    """Freeze the embedding matrices; with ``trainable_rows`` only those rows keep learning.

    Rows are kept trainable by a gradient hook that zeroes every other row's gradient: with AdamW and no
    weight decay on these matrices a zero gradient leaves a row exactly unchanged (both moments stay 0).
    Returns the number of trainable embedding rows.
    """
    params = embedding_params(model)
    if not trainable_rows:
        for p in params:
            p.requires_grad_(False)
        return 0
    rows = sorted(set(trainable_rows))
    for p in params:
        keep = torch.zeros(p.shape[0], 1, dtype=p.dtype, device=p.device)
        keep[rows] = 1.0
        p.register_hook(lambda g, keep=keep: g * keep.to(g.dtype))
    return len(rows)


def freeze_layers(model: torch.nn.Module, n: int) -> int:
    """Freeze the first ``n`` transformer blocks (the lower layers hold the most general features)."""
    blocks = transformer_blocks(model)
    for block in blocks[:n]:
        for p in block.parameters():
            p.requires_grad_(False)
    return min(n, len(blocks))


def train_top_blocks(model: torch.nn.Module, top: int, keep_training: list[torch.nn.Module]) -> int:
    """Train only the last ``top`` blocks and the ``keep_training`` modules (final norm, head); returns how
    many blocks train."""
    blocks = transformer_blocks(model)
    top = min(top, len(blocks))
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*blocks[len(blocks) - top:], *keep_training]:
        for p in module.parameters():
            p.requires_grad_(True)
    return top


def apply_freeze(model: torch.nn.Module, embeddings: FreezeEmbeddings = "none", special_ids: list[int] | None = None,
                 freeze_first: int = 0) -> None:
    """A stage's freezing settings: the embedding (``except_special``: the ``special_ids`` rows still learn)
    and the first ``freeze_first`` blocks."""
    if embeddings != "none":
        freeze_embeddings(model, sorted(set(special_ids or [])) if embeddings == "except_special" else None)
    if freeze_first:
        freeze_layers(model, freeze_first)
