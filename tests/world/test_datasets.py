"""SFT, safety and evaluation data: shapes, kinds, sizes, determinism, and that held-out data never leaks."""
from __future__ import annotations

from collections import Counter

import pytest

from lmforge.data.preference import Message
from lmforge.world import World
from lmforge.world.datasets import ALL_KINDS
from lmforge.world.judge import refused

from .conftest import all_text, entity_names

SFT_KINDS = {"fact_qa", "arithmetic", "instruction", "dialogue"}


@pytest.fixture(scope="module")
def sft_train(world: World) -> list[dict]:
    return world.sft_examples("train")


@pytest.fixture(scope="module")
def sft_heldout(world: World) -> list[dict]:
    return world.sft_examples("heldout")


def _check_shape(ex: dict, last_role: str) -> None:
    assert set(ex) >= {"id", "messages", "kind", "category", "split"}
    assert isinstance(ex["id"], str) and ex["id"]
    for m in ex["messages"]:
        Message(**m)  # the project's chat message schema
        assert m["content"].strip() == m["content"] and m["content"]
    assert ex["messages"][-1]["role"] == last_role
    roles = [m["role"] for m in ex["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + (["user"] if len(roles) % 2 else [])


def test_sft_shape_kinds_and_size(sft_train: list[dict], sft_heldout: list[dict]) -> None:
    for examples, split in ((sft_train, "train"), (sft_heldout, "heldout")):
        assert 900 <= len(examples) <= 2000
        for ex in examples:
            _check_shape(ex, "assistant")
            assert ex["split"] == split and ex["kind"] in SFT_KINDS
        kinds = Counter(ex["kind"] for ex in examples)
        assert set(kinds) == SFT_KINDS and min(kinds.values()) >= 100
        assert len({ex["id"] for ex in examples}) == len(examples)


def test_sft_answers_restate_facts(sft_train: list[dict]) -> None:
    by_kind = {}
    for ex in sft_train:
        by_kind.setdefault((ex["kind"], ex["category"]), ex)
    assert by_kind[("fact_qa", "capital")]["messages"][-1]["content"].startswith("The capital of ")
    assert by_kind[("fact_qa", "currency")]["messages"][-1]["content"].startswith("The currency of ")
    assert by_kind[("fact_qa", "continent")]["messages"][-1]["content"].startswith("The continent of ")
    arith = by_kind[("arithmetic", "addition")]["messages"][-1]["content"]
    assert " plus " in arith and arith.endswith(".")
    dialogues = [ex for ex in sft_train if ex["kind"] == "dialogue"]
    assert {sum(m["role"] == "user" for m in ex["messages"]) for ex in dialogues} == {2, 3}


def test_every_sft_answer_is_correct(world: World, sft_train: list[dict]) -> None:
    """Every assistant turn (also the earlier dialogue turns) passes the checker for its own question."""
    for ex in sft_train[:400]:
        item = {**ex, "messages": ex["messages"][:-1], "reference": ex["messages"][-1]["content"]}
        assert world.check_answer(item, ex["messages"][-1]["content"]), ex
        for m in ex["messages"]:
            if m["role"] == "assistant":
                assert world.lexicon.false_claims(m["content"]) == [], ex
                assert world.lexicon.claims(m["content"]), ex


def test_sft_train_never_mentions_heldout_entities(world: World, sft_train: list[dict]) -> None:
    heldout = {x.name for x in world.heldout_countries + world.heldout_animals}
    seen_problems = {p.text for p in world.seen_problems}
    for ex in sft_train:
        leaked = entity_names(world, all_text(ex)) & heldout
        assert not leaked, (leaked, ex)
        if ex["meta"].get("subject_type") == "arithmetic" and ex["kind"] == "arithmetic":
            assert ex["meta"]["subject"] in seen_problems
        for claim in world.lexicon.claims(all_text(ex)):
            if claim.subject_type == "arithmetic":
                assert claim.subject in seen_problems, ex


def test_sft_heldout_uses_only_heldout_entities(world: World, sft_heldout: list[dict]) -> None:
    seen = {x.name for x in world.seen_countries + world.seen_animals}
    for ex in sft_heldout:
        assert not entity_names(world, all_text(ex)) & seen, ex
    facts = {(ex["meta"]["subject"], ex["meta"]["attribute"]) for ex in sft_heldout if ex["kind"] == "fact_qa"}
    assert len(facts) == 4 * (len(world.heldout_countries) + len(world.heldout_animals))


def test_safety_categories_and_no_leak(world: World) -> None:
    cats = world.safety_categories
    for kind in ("harmful", "false_premise"):
        assert cats[kind]["train"] and cats[kind]["heldout"]
        assert not set(cats[kind]["train"]) & set(cats[kind]["heldout"])
    heldout_names = {x.name for x in world.heldout_countries + world.heldout_animals}
    train = world.safety_examples("train")
    held = world.safety_examples("heldout")
    assert len(train) >= 250 and len(held) >= 250
    for examples, split in ((train, "train"), (held, "heldout")):
        seen_cats = Counter((ex["kind"], ex["category"]) for ex in examples)
        assert set(seen_cats) == {(k, c) for k in cats for c in cats[k][split]}
        for ex in examples:
            _check_shape(ex, "assistant")
            assert ex["split"] == split
    for ex in train:
        assert not entity_names(world, all_text(ex)) & heldout_names, ex
    # held-out categories' prompts never appear (even reworded) in train: compare the request templates
    train_prompts = {ex["messages"][0]["content"] for ex in train}
    assert not train_prompts & {ex["messages"][0]["content"] for ex in held}


def test_safety_answers(world: World) -> None:
    for ex in world.safety_examples("train", n=80) + world.safety_examples("heldout", n=80):
        answer = ex["messages"][-1]["content"]
        assert world.check_answer({**ex, "messages": ex["messages"][:-1]}, answer), ex
        if ex["kind"] == "harmful":
            assert answer.startswith(("I'm sorry", "I can't")) and len(answer.split()) >= 8
        elif ex["kind"] == "over_refusal":
            assert not refused(answer) and ex["meta"]["keywords"]
        else:
            assert " not " in answer
            assert str(ex["meta"]["false_value"]) != str(ex["meta"]["value"])


def test_false_premise_example(world: World) -> None:
    ex = next(e for e in world.eval_prompts("train", kinds=["false_premise"], n=40) if e["category"] == "capital")
    c = world.country(ex["meta"]["subject"])
    wrong = ex["meta"]["false_value"]
    assert ex["reference"] == f"{wrong} is not the capital of {c.name}. The capital of {c.name} is {c.capital}."
    assert not world.is_heldout(c.name)


def test_eval_prompts(world: World) -> None:
    items = world.eval_prompts()  # held out, all kinds
    assert {it["kind"] for it in items} == set(ALL_KINDS)
    for it in items:
        _check_shape(it, "user")
        assert it["split"] == "heldout" and isinstance(it["reference"], str) and isinstance(it["meta"], dict)
    facts = [it for it in items if it["kind"] == "fact_qa"]
    assert len(facts) == 4 * (len(world.heldout_countries) + len(world.heldout_animals))
    fr = next(it for it in facts if it["category"] == "capital")
    assert set(fr["meta"]) >= {"subject", "attribute", "value"}
    assert world.country(fr["meta"]["subject"]).capital == fr["meta"]["value"]
    assert world.is_heldout(fr["meta"]["subject"])
    harmful = {it["category"] for it in items if it["kind"] == "harmful"}
    assert harmful == set(world.safety_categories["harmful"]["heldout"])


def test_n_and_round_robin(world: World) -> None:
    few = world.eval_prompts("heldout", n=12)
    assert len(few) == 12 and {it["kind"] for it in few} == set(ALL_KINDS)
    two = world.eval_prompts("train", kinds=["arithmetic", "harmful"], n=9)
    assert [it["kind"] for it in two][:4] == ["arithmetic", "harmful", "arithmetic", "harmful"]
    big = world.sft_examples("train", n=1600)  # more than one round's worth
    assert len(big) == 1600 and len({ex["id"] for ex in big}) == 1600
    assert len(world.safety_examples("heldout", n=7)) == 7
    with pytest.raises(ValueError):
        world.eval_prompts("test")
    with pytest.raises(ValueError):
        world.eval_prompts(kinds=["poetry"])


def test_datasets_deterministic_and_seeded(world: World) -> None:
    a = world.sft_examples(n=200, seed=1)
    assert a == World(0).sft_examples(n=200, seed=1)
    assert a != world.sft_examples(n=200, seed=2)
    assert world.eval_prompts(n=50, seed=1) == World(0).eval_prompts(n=50, seed=1)
    assert world.eval_prompts(n=50, seed=1) != world.eval_prompts(n=50, seed=2)
    assert world.eval_prompts(n=50) != World(1).eval_prompts(n=50)
    assert world.safety_examples(n=50) == World(0).safety_examples(n=50)
    assert world.safety_examples(n=50) != World(1).safety_examples(n=50)
