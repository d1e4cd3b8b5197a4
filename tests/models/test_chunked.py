"""length_chunks: every row once, longest first, each chunk within the budget (a lone longer row excepted)."""
from __future__ import annotations

import torch

from lmforge.models.chunked import length_chunks, unsort


def test_chunks_cover_every_row_within_budget() -> None:
    lengths = torch.tensor([3, 9, 1, 9, 5, 0, 7])
    order, chunks = length_chunks(lengths, 10, 18)
    assert sorted(torch.cat([i for i, _ in chunks]).tolist()) == list(range(7))
    assert order.tolist() == torch.cat([i for i, _ in chunks]).tolist()
    for idx, width in chunks:
        assert width == max(1, int(lengths[idx].max()))
        assert len(idx) * width <= 18 or len(idx) == 1
    assert [len(i) for i, _ in chunks] == [2, 2, 3]  # 9,9 | 7,5 | 3,1,0
    rows = torch.arange(7.0)[order]
    assert torch.equal(unsort(rows, order), torch.arange(7.0))


def test_one_pass_when_it_fits_or_no_budget() -> None:
    lengths = torch.tensor([3, 4])
    for budget in (None, 0, 8, 100):
        order, chunks = length_chunks(lengths, 4, budget)
        assert order is None and chunks == [(slice(None), 4)]
    assert length_chunks(None, 4, 2) == (None, [(slice(None), 4)])
    big = length_chunks(torch.tensor([50]), 50, 8)[1]  # a row longer than the budget runs alone
    assert [(i.tolist(), w) for i, w in big] == [([0], 50)]


def test_max_rows_caps_every_chunk_and_always_sorts() -> None:
    lengths = torch.tensor([2, 8, 4, 8, 1])
    order, chunks = length_chunks(lengths, 8, None, max_rows=2)  # no budget: batches of 2, longest first
    assert [(i.tolist(), w) for i, w in chunks] == [([1, 3], 8), ([2, 0], 4), ([4], 1)]
    _, chunks = length_chunks(lengths, 8, 12, max_rows=3)  # 12 // 8 = 1 row, then 12 // 4 = 3 (capped at 3)
    assert [(i.tolist(), w) for i, w in chunks] == [([1], 8), ([3], 8), ([2, 0, 4], 4)]
