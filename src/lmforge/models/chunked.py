"""Length-sorted chunked forwards: one padded micro-batch run as several smaller forwards.

Rows are right-padded, so every real token sits in the first ``length`` columns of its row and attends only to
real tokens. Sorting rows longest first and cutting each chunk to its own longest row therefore gives the same
outputs (and gradients) as one padded pass, without computing the padding of short rows and with the logits of
at most ``chunk_tokens`` positions alive at once. Every stage that forwards padded rows (SFT loss and
validation, reward scores, per-token log-probabilities) chunks through :func:`length_chunks`.
"""
from __future__ import annotations

import torch
from pydantic import Field

CHUNK_TOKENS_HELP = ("forward rows sorted by length in chunks of at most this many padded tokens (the same "
                     "results, no work on short rows' padding, bounded logits memory); null: one pass")


def chunk_tokens_field(default: int | None = 1024, ge: int = 1):
    """The ``chunk_tokens`` config field, one name and meaning in every stage."""
    return Field(default, ge=ge, description=CHUNK_TOKENS_HELP)


def length_chunks(lengths: torch.Tensor | None, width: int, chunk_tokens: int | None, max_rows: int | None = None
                  ) -> tuple[torch.Tensor | None, list[tuple[torch.Tensor | slice, int]]]:
    """``(order, [(rows, columns), ...])`` for rows of real ``lengths`` padded to ``width``: the rows in the
    order the chunks take them (CPU indices), and each chunk's row indices with the width to cut them to.
    ``(None, [(slice(None), width)])`` — one pass over the batch as it is — when there is no budget, no
    lengths, or the whole batch fits the budget. With ``max_rows`` (scoring many sequences) rows are always
    sorted and a chunk also holds at most that many."""
    if max_rows is None and (lengths is None or not chunk_tokens or len(lengths) * width <= chunk_tokens):
        return None, [(slice(None), width)]
    n = len(lengths)
    lengths = lengths.cpu()
    order = torch.argsort(lengths, descending=True, stable=True)
    out, i = [], 0
    while i < n:
        longest = max(1, int(lengths[order[i]]))
        rows = max(1, chunk_tokens // longest) if chunk_tokens else n
        idx = order[i:i + (min(rows, max_rows) if max_rows else rows)]
        out.append((idx, longest))
        i += len(idx)
    return order, out


def unsort(rows: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """``rows`` (outputs concatenated chunk by chunk, so in ``order``) back in the batch's order."""
    return rows if order is None else rows[torch.argsort(order).to(rows.device)]
