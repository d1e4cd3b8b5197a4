"""Freezing parts of a model during fine-tuning, to keep what pre-training learned.

Measured on the built-in world (shared/notes/built-in-world.md): full SFT of a tiny model erased facts it had
only read in prose (held-out recall 0.95 -> 0.11) unless the tied input/output embedding was frozen, except
the rows of the chat special tokens, which pre-training never used and SFT must learn.
"""
from __future__ import annotations

import torch

from .blocks import transformer_blocks


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
