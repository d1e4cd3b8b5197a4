"""pass@k, majority vote and the per-problem sample scores, against hand computation."""
from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from lmforge.eval.reasoning import majority_vote, pass_at_k, sample_scores
from lmforge.stages.reft import report


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 1, 0.25), (4, 1, 2, 1 - 3 / 6), (4, 2, 2, 1 - 1 / 6), (5, 0, 3, 0.0), (5, 5, 1, 1.0),
    (4, 3, 2, 1.0),  # n - c < k: every draw of 2 holds a correct one
    (10, 3, 4, 1 - comb(7, 4) / comb(10, 4)),
])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_majority_vote():
    f = Fraction
    assert majority_vote([f(3), f(5), f(5), None, None, None]) == 5  # None is no vote
    assert majority_vote([f(7), f(2), f(2), f(7)]) == 7  # a tie goes to the first seen
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_sample_scores_by_hand():
    samples = [["#### 4", "#### 5", "#### 5", "#### 4"],      # 2 of 4 right (4); vote tie 4/5 -> 4 (first)
               ["#### 1", "no idea", "#### 2", "#### 2"],     # 0 right; vote 2 (wrong)
               ["The answer is 9.", "#### 9", "#### 9", "x"]]  # 3 right; vote 9
    got = sample_scores(samples, ["#### 4", "3", "9"], k=2)
    assert got["pass_at_k"] == pytest.approx((pass_at_k(4, 2, 2) + 0 + pass_at_k(4, 3, 2)) / 3)
    assert got["majority_accuracy"] == pytest.approx(2 / 3)
    assert got["sample_accuracy"] == pytest.approx((0.5 + 0 + 0.75) / 3)
    with pytest.raises(ValueError, match="2 sample lists for 1 references"):
        sample_scores(samples[:2], ["1"], k=1)


def test_report_names_each_model_and_heads_with_the_last():
    e = {"accuracy": 0.1, "pass_at_k": 0.2, "majority_accuracy": 0.15, "unparsable": 3, "k": 4,
         "accuracy_by_kind": {"a": 0.1}}
    evals = {"base": dict(e), "sft": {**e, "accuracy": 0.3}, "rl": {**e, "accuracy": 0.5, "pass_at_k": 0.7}}
    out = report(evals)
    assert (out["accuracy"], out["accuracy_sft"], out["accuracy_base"], out["accuracy_rl"]) == (0.5, 0.3, 0.1, 0.5)
    assert out["pass_at_k"] == 0.7 and out["pass_at_k_sft"] == 0.2 and out["k"] == 4
    assert report({"base": e, "sft": {**e, "accuracy": 0.3}})["accuracy"] == 0.3  # skip_rl: the SFT model
    assert "accuracy" not in report({"base": e})
