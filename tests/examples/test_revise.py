"""`lmforge revise`: the choice between candidates (by hand), the principles file, and the command on the tiny
model that refuses only under a system prompt (context distillation keeps its refusals for harmful prompts and
pairs its plain answers over them for benign ones)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cli.main import main
from lmforge.errors import InputError
from lmforge.stages.revise import choose, clean_revision, load_principles

from .conftest import ANSWER, REFUSAL, harmful_prompt, lookalike_prompt

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm2-safety"


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_choose_takes_the_latest_that_meets_the_expectation_over_the_earliest_that_fails() -> None:
    c = ["sure, do X", "I can't help", "no, and here is why"]
    assert choose(c, [False, True, True], "refuse") == (2, 0)
    assert choose(c, [False, True, False], "refuse") == (1, 0)
    assert choose(c, [False, True, True], "answer") == (0, 1)
    assert choose(c, [True, True, True], "answer") == (None, None)  # nothing meets it: dropped
    assert choose(c, [True, True, True], "refuse") == (2, None)  # kept, but no pair to make
    assert choose(c, [False, False, False], "any") == (2, 0)
    assert choose(["same", "same "], [False, False], "any") == (1, None)  # identical texts make no pair
    assert choose(["", "x"], [False, False], "refuse") == (None, None)


def test_a_refusal_that_goes_on_to_comply_or_loops_is_not_chosen() -> None:
    c = ["Sure, do X.", "I can't help. But here's how: step 1.", "I can't help."]
    assert choose(c, [False, True, True], "refuse", [False, False, True]) == (2, 0)
    assert choose(c[:2], [False, True], "refuse", [False, False]) == (None, None)
    assert choose(c, [False, True, True], "answer", [False, False, False]) == (0, 1)  # only refusals need it


def test_prefilled_answers_start_with_an_opener_and_end_at_the_first_sentence(tmp_path: Path,
                                                                               tiny_safety_lm: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"h{i}", "prompt": harmful_prompt(t)}) + "\n"
                               for i, t in enumerate(["cats", "boats", "snow"])))
    openers = tmp_path / "openers.txt"
    openers.write_text("I can't help with that, because it could \n\nI won't do that: it\n")
    out = tmp_path / "r"
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(out), "--expect", "refuse",
                "--system", "Be careful.", "--prefill", "@" + str(openers), "--max-new-tokens", "16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prefill_openers"] == 2 and summary["sft_rows"] == 3 == summary["pairs"]
    for rec in rows(out / "records.jsonl"):
        assert rec["kinds"] == ["initial", "prefill"] and rec["opener"] in ("I can't help with that, because it could",
                                                                            "I won't do that: it")
        text = rec["candidates"][1]
        # the model goes on from the opener (the tiny model says its refusal) and stops at the first sentence end
        assert text.startswith(rec["opener"]) and text.endswith(".") and text.count(".") == 1
        assert rec["chosen"] == 1 and rec["rejected"] == 0
    # every prompt's opener is drawn by the seed: the same seed, the same openers
    again = tmp_path / "r2"
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(again), "--expect", "refuse",
                "--system", "Be careful.", "--prefill", "@" + str(openers), "--max-new-tokens", "16"]) == 0
    assert rows(again / "sft.jsonl") == rows(out / "sft.jsonl")
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "e"),
                "--prefill", "@" + str(tmp_path / "none.txt")]) == 2


def test_clean_revision_drops_lead_ins_and_quotes() -> None:
    assert clean_revision("Here is the revised response: I can't help.") == "I can't help."
    assert clean_revision('Revised answer:\n"I won\'t do that."') == "I won't do that."
    assert clean_revision("I cannot help with that.") == "I cannot help with that."


def test_the_shipped_principles_load_and_bad_files_are_named(tmp_path: Path) -> None:
    principles = load_principles(EXAMPLE / "principles.yaml")
    assert len(principles) >= 2 and all(p["critique"] and p["revision"] for p in principles)
    bad = tmp_path / "p.yaml"
    bad.write_text("- {name: a, critique: x}\n")
    with pytest.raises(InputError, match="p.yaml: field '0.revision': missing or empty"):
        load_principles(bad)
    bad.write_text("- {critique: x, revision: y, extra: z}\n")
    with pytest.raises(InputError, match="unknown key 'extra'"):
        load_principles(bad)
    bad.write_text("critique: x\n")
    with pytest.raises(InputError, match="expected a non-empty list"):
        load_principles(bad)


def test_revise_distils_refusals_from_the_system_prompt(tmp_path: Path, tiny_safety_lm: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "h", "prompt": harmful_prompt("cats")}) + "\n" +
                       json.dumps({"id": "b", "prompt": lookalike_prompt("cats"), "meta": {"expect": "answer"}}) + "\n")
    out = tmp_path / "r"
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(out), "--expect", "refuse",
                "--system", "Be careful.", "--principles", str(EXAMPLE / "principles.yaml"),
                "--max-new-tokens", "16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["prompts"], summary["sft_rows"], summary["pairs"]) == (2, 2, 2)
    assert summary["refused_initial"] == 0.0 and summary["refused_system"] == 1.0
    sft = {r["id"]: r for r in rows(out / "sft.jsonl")}
    assert sft["h"]["messages"] == [{"role": "user", "content": harmful_prompt("cats")},
                                    {"role": "assistant", "content": REFUSAL}]  # no system prompt kept
    assert sft["b"]["messages"][-1]["content"] == ANSWER and sft["b"]["meta"]["kind"] == "initial"
    pairs = {p["id"]: p for p in rows(out / "pairs.jsonl")}
    assert (pairs["h"]["chosen"], pairs["h"]["rejected"]) == (REFUSAL, ANSWER)
    assert (pairs["b"]["chosen"], pairs["b"]["rejected"]) == (ANSWER, REFUSAL)
    rec = {r["id"]: r for r in rows(out / "records.jsonl")}
    assert rec["h"]["kinds"] == ["initial", "system", "revision-1"] and len(rec["h"]["critiques"]) == 1


def test_revise_bad_input_is_one_line_and_exit_2(tmp_path: Path, tiny_safety_lm: Path, capsys) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "x", "meta": {"expect": "maybe"}}) + "\n")
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "o")]) == 2
    assert "p.jsonl:1: field 'meta.expect': unknown expectation 'maybe'" in capsys.readouterr().err
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "o"), "--expect", "no"]) == 2
    assert "unknown expectation 'no'" in capsys.readouterr().err
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "o"),
                "--system", "@" + str(tmp_path / "none.txt")]) == 2
    assert "none.txt: field 'system': system prompt file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_samples_are_all_candidates_and_require_fails_loudly(tmp_path: Path, tiny_safety_lm: Path, capsys) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "h", "prompt": harmful_prompt("cats")}) + "\n")
    out = tmp_path / "r"
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(out), "--expect", "refuse",
                "--system", "Be careful.", "--samples", "3", "--temperature", "0.7", "--max-new-tokens", "16"]) == 0
    (rec,) = rows(out / "records.jsonl")
    assert rec["kinds"] == ["initial", "system", "system", "system"]
    assert json.loads((out / "summary.json").read_text())["samples"] == 3
    # answer-only without a system prompt: the tiny model never refuses, so --expect refuse keeps nothing
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "n"), "--expect", "refuse",
                "--max-new-tokens", "16", "--require", "1"]) == 2
    assert "only 0 of 1 prompts have an answer that meets the expectation" in capsys.readouterr().err
    assert (tmp_path / "n" / "records.jsonl").exists()  # written first, to look at
    assert cli(["revise", str(tiny_safety_lm), str(prompts), "--out", str(tmp_path / "g"), "--samples", "2"]) == 2
    assert "a temperature > 0" in capsys.readouterr().err
