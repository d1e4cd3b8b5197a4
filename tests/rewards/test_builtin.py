"""The built-in reward functions: the world's checker, exact answers with number normalisation, length."""
from __future__ import annotations

import pytest

from lmforge.rewards import FunctionReward, RewardError
from lmforge.rewards.builtin import answers_match, exact_answer, length_penalty, length_pieces, parse_number
from lmforge.world import World


def test_world_correct_passes_the_reference_and_fails_a_wrong_value():
    world = World(0)
    fact, harmful = world.eval_prompts("heldout", ["fact_qa"], n=1)[0], world.eval_prompts("heldout", ["harmful"],
                                                                                          n=1)[0]
    truth = fact["meta"]["value"]
    other = next(c.language for c in world.countries if c.language != truth)
    responses = [fact["reference"], f"The official language of {fact['meta']['subject']} is {other}.",
                 harmful["reference"], "Sure, here is how: step 1, gather the materials."]
    items = [fact, fact, harmful, harmful]
    r = FunctionReward("lmforge.rewards.builtin:world_correct")
    got = r([it["messages"] for it in items], responses, items)
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert [world.check_answer(it, t) for it, t in zip(items, responses)] == [True, False, True, False]


def test_world_correct_without_a_world_item_names_the_response():
    r = FunctionReward("lmforge.rewards.builtin:world_correct")
    with pytest.raises(RewardError, match=r"world_correct raised at response 0: ValueError: response 0: meta is "
                                          r"not a built-in world item .*got keys \['answer'\]"):
        r([[{"role": "user", "content": "q"}]], ["x"], [{"answer": "3"}])


@pytest.mark.parametrize("text, value", [
    ("42", 42), ("42.0", 42), ("1,000", 1000), ("$1,000.50", 1000.5), ("-3", -3), ("3/4", 0.75), ("7.", 7),
    ("50%", 50), ("12a", None), ("1,00", None), ("", None), ("forty", None),
])
def test_parse_number(text, value):
    got = parse_number(text)
    assert (got is None) if value is None else float(got) == value


@pytest.mark.parametrize("response, reference, right", [
    ("She pays 5 + 37 = 42 dollars.\n#### 42", "Step by step... #### 42", True),
    ("The answer is 42.0", "#### 42", True),
    ("So the total is 1000.", "#### 1,000", True),
    ("Total: $1,000", "1000", True),
    ("3 apples and 4 pears make 7. The answer is 7", "42", False),
    ("First 42, then 43.", "#### 42", False),  # the last number is the answer
    ("\\boxed{3/4}", "0.75", True),
    ("The answer is Paris.", "paris", True),
    ("The answer is Lyon.", "Paris", False),
    ("no number here", "#### 5", False),
])
def test_exact_answer_normalises_numbers(response, reference, right):
    assert answers_match(response, reference) is right
    assert exact_answer([[]], [response], [{"answer": reference}]) == [float(right)]


def test_exact_answer_needs_the_answer_field():
    r = FunctionReward("lmforge.rewards.builtin:exact_answer")
    with pytest.raises(RewardError, match=r"raised at response 1: ValueError: response 1: meta has no 'answer'"):
        r([[], []], ["1", "2"], [{"answer": "1"}, {"question": "?"}])
    custom = FunctionReward("lmforge.rewards.builtin:exact_answer", kwargs={"key": "gold"})
    assert custom([[]], ["#### 9"], [{"gold": 9}]).tolist() == [1.0]


def test_length_penalty_is_zero_up_to_the_target_then_linear():
    assert length_pieces("Hello, world!") == 4
    five, nine = "a b c d e", "a b c d e f g h i"
    assert length_penalty([], [five, nine], [], target=5, per_token=0.5) == [0.0, -2.0]
