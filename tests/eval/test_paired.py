"""Paired differences of two models' figures on the same items, against a hand computation."""
from __future__ import annotations

import math

import pytest

from lmforge.eval.intervals import Z95, mean_interval, paired_difference
from lmforge.eval.paired import paired_against


def test_paired_difference_by_hand():
    mine, theirs = [1, 1, 0, 1, 0], [1, 0, 0, 0, 0]
    d, lo, hi = paired_difference(mine, theirs)
    # differences 0, 1, 0, 1, 0: mean 0.4, sample sd sqrt((3 * 0.16 + 2 * 0.36) / 4) = sqrt(0.3)
    half = Z95 * math.sqrt(0.3) / math.sqrt(5)
    assert d == pytest.approx(0.4) and lo == pytest.approx(0.4 - half) and hi == pytest.approx(0.4 + half)
    # pairing is what narrows it: models that agree on most items differ within a much narrower interval
    # than either figure's own (here one item of twenty differs)
    mine, theirs = [1, 0] * 10, [1, 0] * 9 + [1, 1]
    d, lo, hi = paired_difference(mine, theirs)
    assert d == pytest.approx(-0.05) and hi - lo < 0.5 * (mean_interval(mine)[1] - mean_interval(mine)[0])
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1, 0], [1])


def _fig(name, scores, suite="truthfulqa"):
    return {"name": name, "suite": suite, "n": len(scores or []), "scores": scores}


def test_paired_against_pairs_only_figures_on_the_same_items():
    results = [
        {"name": "base", "figures": [_fig("mc1", [1, 0, 0, 1]), _fig("rate", [0, 0, 1]), _fig("bpb", None)]},
        {"name": "sft", "figures": [_fig("mc1", [1, 1, 0, 1]), _fig("rate", [0, 1]), _fig("bpb", None),
                                    _fig("win_rate_vs_base", [1.0, 0.5], "versus")]},
    ]
    paired_against(results, "base")
    sft = {f["name"]: f for f in results[1]["figures"]}
    assert sft["mc1"]["vs"]["model"] == "base" and sft["mc1"]["vs"]["difference"] == pytest.approx(0.25)
    assert sft["mc1"]["vs"]["n"] == 4
    assert all("vs" not in sft[k] for k in ("rate", "bpb", "win_rate_vs_base"))  # 2 items vs 3; none; no pair
    assert all("vs" not in f for f in results[0]["figures"])  # the reference is not paired with itself
    paired_against(results, "nobody")  # an unknown reference pairs nothing (and does not fail)


def test_figures_with_item_ids_pair_the_items_both_answered_by_id():
    base = {"name": "base", "figures": [
        {"name": "mc1", "suite": "truthfulqa", "scores": [1, 0, 0, 1], "ids": ["q1", "q2", "q3", "q4"]},
        {"name": "rate", "suite": "harmful", "scores": [1, 0, 1], "ids": ["a", "b", "c"]}]}
    sft = {"name": "sft", "figures": [
        # the first two questions only (another --limit): paired with the base's q1, q2, not its whole figure
        {"name": "mc1", "suite": "truthfulqa", "scores": [0, 1], "ids": ["q1", "q2"]},
        # the same count, other items in another order: by id c-c, a-a (differences 0, -1), not by position
        {"name": "rate", "suite": "harmful", "scores": [1, 0, 0], "ids": ["c", "a", "z"]}]}
    paired_against([base, sft], "base")
    mc1, rate = sft["figures"]
    assert mc1["vs"]["n"] == 2 and mc1["vs"]["difference"] == pytest.approx((-1 + 1) / 2)
    assert rate["vs"]["n"] == 2 and rate["vs"]["difference"] == pytest.approx(-0.5)
    # by position the rate figures would have paired c-a, a-b, z-c: a difference of -1/3
    assert rate["vs"]["difference"] != pytest.approx(-1 / 3)
    # no shared id: no pair
    sft["figures"][1]["ids"] = ["x", "y", "w"]
    del sft["figures"][1]["vs"]
    paired_against([base, sft], "base")
    assert "vs" not in sft["figures"][1]


def test_item_ids_only_when_one_distinct_id_per_item():
    from lmforge.eval.hhh import item_ids, proportion

    assert item_ids(["a", 2], 2) == ["a", "2"]
    assert item_ids(["a", "a"], 2) is None and item_ids(["a"], 2) is None and item_ids(["a", None], 2) is None
    assert proportion("g", "x", [True, False], "s", ids=["p1", "p2"]).ids == ["p1", "p2"]
    assert proportion("g", "x", [True, False], "s").ids is None
