"""Held-out pairs from every kind of record, accuracy overall / per criterion / per source, calibration."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lmforge.data.reward_data import DataReport, HeadSpec, build_groups, read_preference_files
from lmforge.eval.reward_eval import calibration, eval_pairs, pair_accuracy, plot_calibration

from .conftest import write_jsonl


def test_pairs_from_every_kind_and_accuracy_by_hand(tmp_path: Path) -> None:
    rows = [
        # ranking a > b = c (b, c tied): pairs (a,b), (a,c) only
        {"type": "ranking", "prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 1, 2], "ties": [[1, 2]],
         "source": "lab1"},
        {"type": "pair", "prompt": "q", "chosen": "c", "rejected": "a", "source": "lab2"},
        {"type": "binary", "prompt": "q", "response": "a", "label": True, "source": "lab2"},
        {"type": "binary", "prompt": "q", "response": "d", "label": False, "source": "lab2"},
        {"type": "likert", "prompt": "q", "response": "a", "scores": {"honesty": 7, "accuracy": 2}, "source": "lab3"},
        {"type": "likert", "prompt": "q", "response": "b", "scores": {"honesty": 3, "accuracy": 2}, "source": "lab3"},
    ]
    report = DataReport()
    records = read_preference_files([write_jsonl(tmp_path / "e.jsonl", rows)], report)
    groups = build_groups(records, HeadSpec(["honesty"]), report)
    pairs = eval_pairs(groups)
    texts = groups[0].responses  # a, b, c, d
    got = sorted((texts[p.better], texts[p.worse], p.criterion or "-", p.source) for p in pairs)
    assert got == [("a", "b", "-", "lab1"), ("a", "b", "honesty", "lab3"), ("a", "c", "-", "lab1"),
                   ("a", "d", "-", "lab2"), ("c", "a", "-", "lab2")]  # equal accuracy ratings make no pair
    # scores [reward, honesty head] for a, b, c, d: a beats b and d, c loses to a (so lab2's pair is wrong),
    # a equals c on the reward (a tie counts half); the honesty head puts b above a (wrong)
    scores = [torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])]
    res = pair_accuracy(pairs, scores, ["honesty"])
    # overall pairs: (a,b) right, (a,c) tie 0.5, (a,d) right, (c,a) tie 0.5 -> 3 / 4
    assert res["heldout_pair_accuracy"] == pytest.approx(0.75) and res["heldout_pairs"] == 4
    assert res["accuracy_by_criterion"] == {"honesty": 0.0, "overall": 0.75}
    assert res["accuracy_by_source"] == {"lab1": 0.75, "lab2": 0.75}
    # the honesty head alone on the overall pairs: (a,b) 0 - 1 wrong, the other three ties -> 1.5 / 4
    assert res["criterion_heads_on_overall_pairs"] == {"honesty": {"overall": 0.375}}
    # margins given per pair (a pairwise verdict): the same report from them
    d = [1.0 if (texts[p.better], texts[p.worse]) != ("c", "a") else -2.0 for p in pairs]
    byd = pair_accuracy(pairs, None, [], diffs=d)
    assert byd["heldout_pair_accuracy"] == pytest.approx(0.75) and byd["accuracy_by_source"]["lab2"] == 0.5


def test_calibration_table_and_ece_by_hand(tmp_path: Path) -> None:
    # two bins of two pairs: margins 0 (right, wrong) and 2 (right, right)
    table = calibration([(0.0, 1.0), (0.0, 0.0), (2.0, 1.0), (2.0, 1.0)], bins=2)
    lo, hi = table["bins"]
    assert (lo["accuracy"], lo["predicted"], lo["pairs"]) == (0.5, 0.5, 2)
    s2 = 1 / (1 + math.exp(-2))
    assert hi["accuracy"] == 1.0 and hi["predicted"] == pytest.approx(s2, abs=1e-4)
    assert table["ece"] == pytest.approx(0.5 * 0 + 0.5 * (1 - s2), abs=1e-4)
    path = plot_calibration(table, tmp_path / "cal.png")
    assert path.exists() and path.stat().st_size > 1000
    assert calibration([], 10) == {"bins": [], "ece": None}
