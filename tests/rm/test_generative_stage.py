"""``lmforge rm model.head=generative`` end to end (in-process CLI): every kind of feedback trains the verdict,
the folder is a plain causal LM that ``rm score`` reads like a scalar model; bad settings exit 2, leave nothing."""
from __future__ import annotations

import json
from pathlib import Path

from .conftest import write_jsonl
from .test_stage import cli, rm_args

SHORT = ["model.verdict.question=Is this good?"]  # the default question is 70 tokens of this tiny vocabulary


def test_generative_head_learns_every_kind_and_scores(tiny_lm: Path, mixed_files, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "gen", "epochs=3", "model.head=generative",
                       "model.lm_loss_weight=0.1", "loss.comparisons=verdicts", *SHORT)) == 0
    run = tmp_path / "gen"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["head"] == "generative" and summary["criteria"] == []
    assert summary["heldout_pair_accuracy"] >= 0.9, summary
    assert summary["prompt_sharing"].startswith("on")
    # Likert ratings became yes/no verdicts by the threshold (GOOD ratings 7/6 -> yes, BAD 1/2 -> no)
    assert summary["data"]["likert as yes verdict"] == 12 and summary["data"]["likert as no verdict"] == 12
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "loss_lm" in rows[0] and rows[0]["loss_lm"] > 0

    lm = AutoModelForCausalLM.from_pretrained(run / "final")
    side = json.loads((run / "final" / "reward.json").read_text())
    assert side["head"] == "generative" and lm.config.reward["verdict"]["no_id"] == side["verdict"]["no_id"]
    inp = write_jsonl(tmp_path / "score.jsonl", [
        {"prompt": [{"role": "user", "content": "Tell me about cats number 5001."}],
         "responses": ["no wrong rude nonsense.", "clearly helpful correct answer."]}])
    assert cli(["rm", "score", str(run / "final"), str(inp), "--out", str(tmp_path / "out.jsonl"), "--normalize"]) == 0
    (out,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out["reward"][1] > out["reward"][0] and "scores" not in out and len(out["reward_normalized"]) == 2


def test_bradley_terry_on_log_odds_learns(tiny_lm: Path, mixed_files, tmp_path: Path) -> None:
    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "bt", "epochs=3", "model.head=generative",
                       "model.share_prompt=false", *SHORT)) == 0
    summary = json.loads((tmp_path / "bt" / "summary.json").read_text())
    assert summary["heldout_pair_accuracy"] >= 0.9 and summary["prompt_sharing"].startswith("off"), summary


def test_answers_that_never_differ_exit_2_and_leave_nothing(tiny_lm: Path, mixed_files, tmp_path: Path,
                                                            capsys) -> None:
    train, ev = mixed_files
    code = cli(rm_args(tiny_lm, train, ev, tmp_path, "same", "model.head=generative", "model.verdict.yes=sure",
                       "model.verdict.no=sure sure"))
    assert code == 2 and "model.verdict" in capsys.readouterr().err
    assert not (tmp_path / "same").exists()
