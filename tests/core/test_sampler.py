"""The shared sampling order: data-parallel slices, epochs, resume."""
from __future__ import annotations

import pytest

from lmforge.data.sampler import EpochSampler


def test_two_processes_see_what_one_sees_with_double_accumulation() -> None:
    one = EpochSampler(10, micro=2, seed=3)
    ranks = [EpochSampler(10, micro=2, rank=r, world=2, seed=3) for r in range(2)]
    for _ in range(7):  # crosses epoch boundaries
        single = one.next_indices() + one.next_indices()
        split = ranks[0].next_indices() + ranks[1].next_indices()
        assert sorted(single) == sorted(split)


def test_each_epoch_is_a_permutation_and_epochs_differ() -> None:
    s = EpochSampler(6, micro=3, seed=0)
    first = s.next_indices() + s.next_indices()
    second = s.next_indices() + s.next_indices()
    assert sorted(first) == sorted(second) == list(range(6))
    assert first != second
    assert s.epochs() == pytest.approx(2.0)


def test_resume_continues_the_same_order() -> None:
    a = EpochSampler(7, micro=2, seed=1)
    for _ in range(5):
        a.next_indices()
    b = EpochSampler(7, micro=2, seed=1)
    b.load_state_dict(a.state_dict())
    assert [a.next_indices() for _ in range(6)] == [b.next_indices() for _ in range(6)]


def test_too_few_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 3 items"):
        EpochSampler(3, micro=2, world=2)


def test_allow_short_wraps_into_the_next_epoch() -> None:
    s = EpochSampler(3, micro=2, world=2, seed=5, allow_short=True)
    seen = s.next_indices() + EpochSampler(3, micro=2, rank=1, world=2, seed=5, allow_short=True).next_indices()
    assert sorted(seen[:3]) == [0, 1, 2]
    with pytest.raises(ValueError, match="no items"):
        EpochSampler(0, micro=1, allow_short=True)
