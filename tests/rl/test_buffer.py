"""Rollout rows, the order micro-batches are served in, and the prompt sampler (all resumable)."""
from __future__ import annotations

import torch

from lmforge.rl.buffer import IGNORE, RolloutBuffer, pack_rows
from lmforge.rl.source import PromptSampler


def test_pack_rows_aligns_targets_with_the_logits_that_score_them():
    rows = pack_rows([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad=0)
    assert rows["input_ids"].tolist() == [[5, 6, 7, 1, 2], [8, 3, 4, 9, 0]]
    assert rows["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # position t scores token t + 1: the last prompt position scores the first response token
    assert rows["targets"].tolist() == [[IGNORE, IGNORE, 1, 2, IGNORE], [3, 4, 9, IGNORE, IGNORE]]
    assert rows["mask"].tolist() == [[0, 0, 1, 1, 0], [1, 1, 1, 0, 0]]


def _buffer(n=8, micro=2, epochs=2, rollout=0):
    ids = torch.arange(n).unsqueeze(-1).repeat(1, 3)
    att = torch.ones(n, 3, dtype=torch.long)
    att[0, 2] = 0
    return RolloutBuffer({"input_ids": ids, "attention_mask": att, "beta": torch.zeros(n)}, epochs, micro, 0,
                         rollout)


def test_each_epoch_serves_every_row_once_in_a_seeded_order():
    buf = _buffer()
    seen = [buf.next_micro()["input_ids"][:, 0].tolist() for _ in range(8)]
    first, second = sum(seen[:4], []), sum(seen[4:], [])
    assert sorted(first) == sorted(second) == list(range(8))
    assert first != second  # a new permutation per epoch
    assert buf.exhausted
    again = _buffer()
    assert [again.next_micro()["input_ids"][:, 0].tolist() for _ in range(8)] == seen  # a function of the seed
    other = _buffer(rollout=1)
    assert [other.next_micro()["input_ids"][:, 0].tolist() for _ in range(4)] != seen[:4]


def test_buffer_state_resumes_mid_epoch():
    buf = _buffer()
    for _ in range(5):
        buf.next_micro()
    state = buf.state_dict()
    rest = [buf.next_micro()["input_ids"][:, 0].tolist() for _ in range(3)]
    back = RolloutBuffer.from_state(state)
    assert [back.next_micro()["input_ids"][:, 0].tolist() for _ in range(3)] == rest


def test_micro_batches_drop_the_padding_every_row_has():
    rows = pack_rows([[1], [1]], [[2], [2, 3, 4]], pad=0)
    buf = RolloutBuffer({**rows, "beta": torch.zeros(2)}, 1, 1, 0, 0)
    widths = sorted(buf.next_micro()["input_ids"].shape[1] for _ in range(2))
    assert widths == [2, 4]


def test_prompt_sampler_walks_shuffled_epochs_and_resumes():
    s = PromptSampler(5, seed=3)
    a = s.take(7)
    assert sorted(a[:5]) == list(range(5))
    state = s.state_dict()
    rest = s.take(6)
    t = PromptSampler(5, seed=3)
    t.load_state_dict(state)
    assert t.take(6) == rest
