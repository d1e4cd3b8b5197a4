"""Word problems: deterministic, worked solutions that compute the stated answer, seen vs held-out kinds."""
from __future__ import annotations

import re

import pytest

from lmforge.rewards.builtin import answers_match, final_answer
from lmforge.world import World
from lmforge.world.word_problems import (
    HELDOUT_KINDS,
    KINDS,
    SEEN_KINDS,
    prompt_row,
    sft_example,
    train_eval_split,
    word_problems,
)

STEP = re.compile(r"(\d+) ([+\-x]) (\d+) = (\d+)\.")


def test_same_seed_same_problems_other_seed_other_problems(world):
    a = word_problems(world, n=30, seed=0)
    assert a == word_problems(World(0), n=30, seed=0)
    assert [it["id"] for it in a] != [it["id"] for it in word_problems(world, n=30, seed=1)]
    assert len({it["id"] for it in a}) == 30


@pytest.mark.parametrize("kind", KINDS)
def test_every_step_is_right_and_the_last_line_states_the_answer(world, kind):
    for item in word_problems(world, [kind], n=40):
        lines = item["reference"].split("\n")
        assert lines[-1] == f"#### {item['meta']['answer']}"
        steps = [STEP.search(line) for line in lines if "=" in line]
        assert len(steps) == item["meta"]["steps"]
        for m in steps:
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            assert {"+": a + b, "-": a - b, "x": a * b}[op] == c
        # the last step's result is the answer, and the chain is connected (each result is used later)
        assert int(steps[-1][4]) == item["meta"]["answer"] >= 0
        assert answers_match(item["reference"], str(item["meta"]["answer"]))
        assert final_answer(item["reference"]) == str(item["meta"]["answer"])


def test_held_out_kinds_take_more_steps_or_larger_numbers(world):
    def stats(kind):
        items = word_problems(world, [kind], n=40)
        return (max(it["meta"]["steps"] for it in items),
                max(int(n) for it in items for n in re.findall(r"\d+", it["messages"][0]["content"])))
    seen_steps = max(stats(k)[0] for k in SEEN_KINDS)
    assert stats("gather_long")[0] > seen_steps - 1 and stats("legs_three")[0] > seen_steps
    assert stats("shop_two")[0] > stats("shop")[0]
    assert stats("gather_large")[1] > 2 * stats("gather")[1]
    assert set(SEEN_KINDS).isdisjoint(HELDOUT_KINDS)


def test_legs_use_the_worlds_animal_facts(world):
    for item in word_problems(world, ["legs"], n=20):
        for m in re.finditer(r"An? ([a-z ]+) has (\d+) legs", item["reference"]):
            assert world.animal(m[1]).legs == int(m[2])


def test_train_eval_split_never_shares_a_question(world):
    train, ev = train_eval_split(world, 200, 60, eval_kinds=list(SEEN_KINDS))
    assert len(train) == 200 and len(ev) == 60
    assert not {it["id"] for it in train} & {it["id"] for it in ev}
    train, ev = train_eval_split(world, 50, 40)
    assert {it["category"] for it in ev} == set(HELDOUT_KINDS)
    assert {it["category"] for it in train} == set(SEEN_KINDS)


def test_sft_and_prompt_forms(world):
    item = word_problems(world, n=1)[0]
    ex = sft_example(item)
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant"]
    assert ex["messages"][-1]["content"] == item["reference"]
    row = prompt_row(item)
    assert row["prompt"] == item["messages"] and row["meta"]["answer"] == item["meta"]["answer"]


def test_unknown_kind_is_named(world):
    with pytest.raises(ValueError, match="unknown word-problem kind 'gathr'"):
        word_problems(world, ["gathr"], n=1)
