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
