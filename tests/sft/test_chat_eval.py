"""Evaluation pieces: format_ok, the raw-transcript few-shot prompt, and judging with / without run-on cuts."""
from __future__ import annotations

from lmforge.eval.chat_eval import (
    format_ok,
    judge,
    nshot_shots,
    score,
    transcript_prompt,
    world_suites,
)


def test_format_ok_needs_eos_and_no_invented_turn() -> None:
    assert format_ok({"text": "The capital of France is Paris.", "finished": True})
    assert not format_ok({"text": "The capital of France is Paris.", "finished": False})
    assert not format_ok({"text": "The capital of France is Paris.\nUser: And Spain?", "finished": True})


def test_transcript_prompt_is_the_pretraining_chat_form(tokenizer, world) -> None:
    shots = nshot_shots(world, 2)
    assert len(shots) == 2 and all(not world.is_heldout(s[0]["content"].split()[-1].rstrip("?.")) for s in shots)
    item = world.eval_prompts("heldout", ["fact_qa"], n=1)[0]
    prompt = transcript_prompt(tokenizer, shots, item["messages"])
    assert prompt.startswith(tokenizer.bos_token + "User: ")
    assert prompt.count("\nAssistant: ") == 2 and prompt.endswith(f"User: {item['messages'][0]['content']}\nAssistant:")


def test_runon_answer_counts_only_when_cut(world) -> None:
    item = world.eval_prompts("heldout", ["fact_qa"], n=1)[0]
    out = {"text": " " + item["reference"] + "\nUser: What is 2 plus 2?\nAssistant: 5", "finished": False}
    assert judge(world, [item], [out]) == [False]
    assert judge(world, [item], [out], cut_runon=True) == [True]
    assert score([True], [out]) == {"accuracy": 1.0, "format_ok": 0.0}


def test_world_suites_hold_out_what_they_say(world) -> None:
    suites = {s.name: s.items for s in world_suites(world, heldout_facts=20, seen_facts=10, per_kind=4)}
    assert set(suites) == {"heldout_fact", "seen_fact", "heldout_dialogue", "heldout_refusal", "heldout_false_premise",
                           "heldout_over_refusal"}
    assert all(world.is_heldout(it["meta"]["subject"]) for it in suites["heldout_fact"])
    assert not any(world.is_heldout(it["meta"]["subject"]) for it in suites["seen_fact"])
    held = set(world.safety_categories["harmful"]["heldout"])
    assert {it["category"] for it in suites["heldout_refusal"]} <= held
    lookalikes = set(world.safety_categories["over_refusal"]["heldout"])
    assert {it["category"] for it in suites["heldout_over_refusal"]} <= lookalikes
