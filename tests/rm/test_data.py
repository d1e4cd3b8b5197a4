"""Preference records -> prompt groups -> micro-batches: grouping, bad-input rules, exact resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.data.reward_data import (
    DataReport,
    GroupBatches,
    HeadSpec,
    build_groups,
    collate_groups,
    criteria_in,
    read_preference_files,
    split_heldout,
    tokenize_groups,
)
from lmforge.data.sampler import EpochSampler
from lmforge.errors import InputError

from .conftest import mixed_records, write_jsonl

P = [{"role": "user", "content": "Which is best?"}]


def groups_of(rows: list[dict], tmp: Path, heads: HeadSpec | None = None, **kw):
    report = DataReport()
    records = read_preference_files([write_jsonl(tmp / "d.jsonl", rows)], report, **kw)
    heads = heads or HeadSpec(criteria_in(records))
    return build_groups(records, heads, report), report, heads


def test_all_records_of_a_prompt_form_one_group(tmp_path: Path) -> None:
    rows = [{"type": "ranking", "prompt": P, "responses": ["a", "b", "c"], "ranking": [2, 0, 1], "source": "s1"},
            {"type": "pair", "prompt": "Which is best?", "chosen": "c", "rejected": "b", "margin": 2},
            {"type": "likert", "prompt": P, "response": "a", "scores": {"accuracy": 4}, "scale": [1, 7]},
            {"type": "binary", "prompt": P, "response": "d", "label": False},
            {"type": "pair", "prompt": "Other?", "chosen": "x", "rejected": "y"}]
    groups, report, heads = groups_of(rows, tmp_path)
    assert len(groups) == 2
    g = groups[0]
    assert g.responses == ["a", "b", "c", "d"]  # distinct texts, once each
    assert g.rankings == [([2, 0, 1], [2, 0, 1], 1.0, 0)]  # sequence indices best..worst, no ties
    assert g.pairs == [(2, 1, 2.0, 1.0, 0)]
    assert heads.criteria == ["accuracy"]
    idx, targets, mask, _ = g.likert[0]
    # rating 4 on [1, 7] is the middle -> 0; "both": the reward (sum) and the accuracy head
    assert (idx, targets, mask) == (0, [0.0, 0.0], [True, True])
    assert g.binary == [(3, False, 1.0, 0)]
    assert report.counts["read ranking"] == 1 and report.counts["prompts"] == 2


@pytest.mark.parametrize("row, message", [
    ({"type": "ranking", "prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}, "not a permutation"),
    ({"type": "likert", "prompt": "q", "response": "a", "scores": {"accuracy": 9}, "scale": [1, 7]},
     "outside the scale"),
    ({"type": "pair", "prompt": "q", "chosen": "same", "rejected": "same"}, "identical"),
    ({"type": "ranking", "prompt": "q", "responses": ["only"], "ranking": [0]}, "at least two responses"),
])
def test_invalid_records_are_an_error_naming_the_line_or_counted(tmp_path: Path, row: dict, message: str) -> None:
    ok = {"type": "pair", "prompt": "q", "chosen": "a", "rejected": "b"}
    with pytest.raises(InputError, match=message) as err:
        groups_of([ok, row], tmp_path)
    assert err.value.line == 2 and err.value.file.endswith("d.jsonl")
    groups, report, _ = groups_of([ok, row], tmp_path, on_invalid="skip")
    assert len(groups) == 1 and len(groups[0].pairs) == 1
    skipped = [k for k in report.counts if k.startswith("skipped invalid")]
    assert len(skipped) == 1 and message in skipped[0]


def test_identical_texts_in_a_ranking_are_ties_and_all_identical_is_skipped(tmp_path: Path) -> None:
    rows = [{"type": "ranking", "prompt": "q", "responses": ["a", "b", "a"], "ranking": [0, 1, 2]},
            {"type": "ranking", "prompt": "r", "responses": ["z", "z"], "ranking": [1, 0]},
            {"type": "ranking", "prompt": "s", "responses": ["x", "y"], "ranking": [1, 0], "ties": [[0, 1]]}]
    groups, report, _ = groups_of(rows, tmp_path)
    assert len(groups) == 1
    order, ties, *_ = groups[0].rankings[0]
    assert order == [0, 1, 0] and ties[0] == ties[2] != ties[1]
    assert report.counts["ranking positions with identical texts (treated as tied)"] == 1
    assert report.counts["skipped ranking with fewer than two distinct untied responses"] == 2


def test_criterion_records_without_a_head_are_skipped_and_counted(tmp_path: Path) -> None:
    rows = [{"type": "pair", "prompt": "q", "chosen": "a", "rejected": "b", "criterion": "honesty"},
            {"type": "pair", "prompt": "q", "chosen": "a", "rejected": "c"}]
    groups, report, _ = groups_of(rows, tmp_path, heads=HeadSpec([], likert_mode="sum"))
    assert len(groups[0].pairs) == 1
    assert report.counts["skipped pair about criterion without a head: honesty"] == 1


def test_heldout_split_is_by_prompt_and_deterministic(tmp_path: Path) -> None:
    groups, _, _ = groups_of(mixed_records(80), tmp_path)
    a_train, a_held = split_heldout(groups, 0.25, seed=3)
    _, b_held = split_heldout(groups, 0.25, seed=3)
    assert [g.prompt for g in a_held] == [g.prompt for g in b_held]
    assert 5 < len(a_held) < 35 and len(a_train) + len(a_held) == len(groups)


class _Tok:
    """Whitespace 'tokenizer' standing in for a real one (ids = word lengths)."""
    pad_token_id = 0
    eos_token = ""
    chat_template = None

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


def test_micro_batches_hold_whole_prompts_and_resume_exactly(tmp_path: Path) -> None:
    groups, _, heads = groups_of(mixed_records(24), tmp_path)
    tokenize_groups(groups, _Tok(), "transcript", 64, DataReport())
    src = GroupBatches(groups, micro=3, pad_id=0, n_heads=heads.n_heads, seed=7)
    first = [src.next_batch() for _ in range(5)]
    state = json.loads(json.dumps(src.state_dict()))
    after = [src.next_batch() for _ in range(4)]
    again = GroupBatches(groups, micro=3, pad_id=0, n_heads=heads.n_heads, seed=7)
    again.load_state_dict(state)
    for a, b in zip(after, [again.next_batch() for _ in range(4)]):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["rank_idx"], b["rank_idx"])
    batch = first[0]
    n = batch["input_ids"].shape[0]
    # every index points inside the batch; every sequence belongs to exactly one centring group
    for key in ("pair_c", "pair_r", "lik_idx", "bin_idx"):
        assert all(0 <= i < n for i in batch[key].tolist())
    assert sorted(batch["cent_idx"][batch["cent_valid"]].tolist()) == list(range(n))
    order = EpochSampler(len(groups), micro=3, seed=7)
    assert batch["count"] == sum(groups[i].n_records for i in order.next_indices())


def test_two_processes_see_what_one_sees(tmp_path: Path) -> None:
    groups, _, heads = groups_of(mixed_records(24), tmp_path)
    tokenize_groups(groups, _Tok(), "transcript", 64, DataReport())
    one = GroupBatches(groups, micro=2, pad_id=0, n_heads=heads.n_heads, seed=1)
    ranks = [GroupBatches(groups, micro=1, pad_id=0, n_heads=heads.n_heads, rank=r, world=2, seed=1) for r in (0, 1)]
    for _ in range(6):
        b = one.next_batch()
        parts = [r.next_batch() for r in ranks]
        assert b["count"] == sum(p["count"] for p in parts)
        assert b["input_ids"].shape[0] == sum(p["input_ids"].shape[0] for p in parts)


def test_collate_points_pairs_at_the_right_texts(tmp_path: Path) -> None:
    rows = [{"type": "pair", "prompt": "q1", "chosen": "aa aa", "rejected": "b"},
            {"type": "pair", "prompt": "q2", "chosen": "cccc", "rejected": "ddd dd d"}]
    groups, _, heads = groups_of(rows, tmp_path)
    tokenize_groups(groups, _Tok(), "transcript", 64, DataReport())
    batch = collate_groups(groups, 0, heads.n_heads)
    ids = batch["input_ids"]
    resp = [ids[i][batch["attention_mask"][i].bool()].tolist()[-3:] for i in range(4)]
    # transcript prompt "User: q1\nAssistant: " -> word lengths; the response words end each row
    assert resp[int(batch["pair_c"][0])][-2:] == [2, 2]
    assert resp[int(batch["pair_r"][1])] == [3, 2, 1]
