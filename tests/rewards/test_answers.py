"""Answer extraction for reasoning rewards: units, commas and trailing text, unparsable counts, the format
reward and partial credit, on hand-made responses."""
from __future__ import annotations

from fractions import Fraction

import pytest

from lmforge.rewards import FunctionReward
from lmforge.rewards.builtin import (
    answer_counts,
    answer_format,
    answer_value,
    exact_answer,
    format_ok,
    intermediate_results,
    partial_credit,
)

GSM8K = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
         "in April and May.\n#### 72")


@pytest.mark.parametrize("text, value", [
    ("5 + 3 = 8.\n#### 8", 8),
    ("#### 1,200 apples. Next question: what is 5 plus 3?", 1200),  # units and trailing text
    ("#### 8\nUser: and 9 plus 9?", 8),  # a run-on turn after the answer line
    ("#### $12.50", Fraction(25, 2)),
    ("#### 5 + 3 = 8", 8),  # read after the last '='
    ("The answer is 42 coins. Then I counted 7 more.", 42),
    ("So the final answer is: 3/4", Fraction(3, 4)),
    ("The answer is 7. Because 2 = 2.", 7),
    ("I think \\boxed{2 + 3 = 5}", 5),
    ("First 42, then 43.", 43),  # no marker: the last number
    ("The answer is -3.", -3),
    ("#### twelve", None),
    ("I do not know.", None),
    ("", None),
])
def test_answer_value(text, value):
    assert answer_value(text) == (None if value is None else Fraction(value))


def test_answer_counts_tell_unparsable_from_wrong():
    responses = ["#### 8", "#### 9", "#### nine", "no idea", "The answer is 8 dollars."]
    assert answer_counts(responses, ["8"] * 5) == {"n": 5, "correct": 2, "wrong": 1, "unparsable": 2}
    # a text reference: a miss is wrong, never unparsable
    assert answer_counts(["Lyon"], ["Paris"]) == {"n": 1, "correct": 0, "wrong": 1, "unparsable": 0}


@pytest.mark.parametrize("text, ok", [
    ("3 + 4 = 7.\n#### 7", True), ("#### 1,000  ", True), ("#### 7\n\n", True),
    ("#### 7 apples", False), ("The answer is 7.", False), ("#### 7\nUser: more?", False), ("", False),
])
def test_format_reward(text, ok):
    assert format_ok(text) is ok
    assert FunctionReward("lmforge.rewards.builtin:answer_format")([[]], [text], [None]).tolist() == [float(ok)]
    assert answer_format([], [text], [None]) == [float(ok)]


def test_intermediate_results_of_a_gsm8k_and_a_world_solution():
    assert intermediate_results(GSM8K) == [24]  # 72 is the final answer, not an intermediate
    assert intermediate_results("3 x 4 = 12.\n2 x 2 = 4.\n12 + 4 = 16.\n#### 16") == [12, 4]
    assert intermediate_results("#### 5") == []


def test_partial_credit_and_exact_answer_with_partial():
    world_solution = "3 x 4 = 12.\n2 x 2 = 4.\n12 + 4 = 16.\n#### 16"
    assert partial_credit("3 x 4 = 12. 2 x 2 = 5. 12 + 5 = 17.\n#### 17", world_solution) == 0.5
    meta = [{"answer": 16, "reference": world_solution}] * 3
    responses = ["... #### 16", "3 x 4 = 12. 2 x 2 = 4. 12 + 4 = 15\n#### 15", "#### 3"]
    assert exact_answer([[]] * 3, responses, meta) == [1.0, 0.0, 0.0]
    assert exact_answer([[]] * 3, responses, meta, partial=0.5) == [1.0, 0.5, 0.0]
    # GSM8K: the solution is the answer field itself
    got = exact_answer([[]] * 2, ["48/2 = 24 so 24 + 48 = 70\n#### 70", "#### 72"], [{"answer": GSM8K}] * 2,
                       partial=0.4)
    assert got == [pytest.approx(0.4), 1.0]
