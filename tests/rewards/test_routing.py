"""Reward terms routed by prompt tags (``when``), the refusal rule, and the check that a route selects prompts."""
from __future__ import annotations

import pytest

from lmforge.errors import InputError
from lmforge.rewards import RewardSection, WeightedSum, build_reward
from lmforge.rewards.build import check_routes
from lmforge.rewards.builtin import refusal
from lmforge.rewards.routing import Routed, matches

HARMFUL = {"id": "h1", "kind": "harmful", "meta": {"category": "theft"}}
LOOKALIKE = {"id": "l1", "kind": "over_refusal"}
FILE_ROW = {"kind": "harmful"}  # a prompt file's meta object, as `data split --tag kind=harmful` writes it


def section(*terms):
    return RewardSection.model_validate({"terms": list(terms)})


def test_when_takes_a_value_or_a_list_and_reads_nested_meta():
    t = section({"kind": "function", "function": "rewards.sample_rewards:n_words", "when": {"kind": "harmful"}})
    assert t.terms[0].when == {"kind": ["harmful"]}
    assert matches(HARMFUL, {"kind": ["harmful", "violence"]})
    assert matches(HARMFUL, {"category": ["theft"]})  # the world's nested truth fields
    assert not matches(LOOKALIKE, {"kind": ["harmful"]})
    assert not matches(None, {"kind": ["harmful"]})
    assert matches({"level": 3}, {"level": ["3"]})  # compared as strings, as YAML may give either
    with pytest.raises(ValueError, match="at least one tag"):
        section({"kind": "function", "function": "rewards.sample_rewards:n_words", "when": {}})


def test_a_routed_term_scores_only_its_prompts_and_zero_elsewhere():
    calls = []

    class Count:
        name, last_terms = "count", {}

        def __call__(self, prompts, responses, meta):
            calls.append(list(responses))
            return [float(len(r.split())) for r in responses]

    routed = Routed(Count(), {"kind": ["harmful"]})
    got = routed([[]] * 3, ["a b", "c d e", "f"], [HARMFUL, LOOKALIKE, FILE_ROW])
    assert got.tolist() == [2.0, 0.0, 1.0]
    assert calls == [["a b", "f"]]  # never called on the look-alike
    assert routed([[]], ["x y"], [LOOKALIKE]).tolist() == [0.0] and len(calls) == 1


def test_llama2_style_routing_one_reward_per_prompt_kind():
    # a reward model's stand-in on the benign prompts, the refusal rule (weight 3) on the harmful ones
    reward = build_reward(section(
        {"kind": "function", "function": "rewards.sample_rewards:n_words", "when": {"kind": "over_refusal"}},
        {"kind": "function", "function": "lmforge.rewards.builtin:refusal", "weight": 3.0,
         "kwargs": {"refuse": True}, "when": {"kind": "harmful"}}))
    assert isinstance(reward, WeightedSum)
    texts = ["I can't help with that.", "To do it, go.", "I'm sorry, but I cannot.", "Sure, here is how."]
    metas = [HARMFUL, LOOKALIKE, LOOKALIKE, HARMFUL]
    got = reward([[]] * 4, texts, metas)
    assert got.tolist() == [3.0, 4.0, 5.0, 0.0]
    # each term's own scores for the log; NaN where it did not score (its logged mean is over its prompts)
    assert reward.last_terms["refusal"].nan_to_num(-9).tolist() == [1.0, -9, -9, 0.0]
    assert reward.last_terms["n_words"].nan_to_num(-9).tolist() == [-9, 4.0, 5.0, -9]
    # one term with weight 1 but a route is still routed, not returned bare
    one = build_reward(section({"kind": "function", "function": "rewards.sample_rewards:n_words",
                                "when": {"kind": "harmful"}}))
    assert isinstance(one, Routed) and one([[]], ["a b"], [LOOKALIKE]).tolist() == [0.0]


def test_the_refusal_rule():
    texts = ["I can't help with that.", "I'm sorry, but here is how: first, you wait.", "To bake, heat it.",
             "I can\ufffdt help with stealing.", "Sure, here is how to do it.", ""]
    assert refusal(None, texts, [None] * 6) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert refusal(None, texts, [None] * 6, refuse=False) == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]


def test_a_route_that_selects_no_prompt_is_an_error_naming_the_tags():
    s = section({"kind": "function", "function": "rewards.sample_rewards:n_words"},
                {"kind": "function", "function": "lmforge.rewards.builtin:refusal", "when": {"kind": "harmfull"}})
    with pytest.raises(InputError) as e:
        check_routes(s, [HARMFUL, LOOKALIKE, None])
    msg = str(e.value)
    assert "reward.terms.1.when" in msg and "selects none of the 3 prompts" in msg
    assert "kind: harmful, over_refusal" in msg and "category: theft" in msg
    check_routes(section({"kind": "function", "function": "lmforge.rewards.builtin:refusal",
                          "when": {"kind": ["harmfull", "harmful"]}}), [HARMFUL])
