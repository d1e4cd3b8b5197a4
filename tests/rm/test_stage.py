"""The rm recipe end to end through the CLI (in-process): mixed feedback in, a scorer out; resume; bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lmforge.cli.main import main

from .conftest import write_jsonl

TINY = ["train.lr=3e-3", "train.batch_size=8", "train.log_every=1", "train.warmup_steps=2", "model.max_length=64"]


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def rm_args(tiny_lm: Path, train: Path, ev: Path, root: Path, name: str, *extra: str) -> list[str]:
    return ["rm", f"model.path={tiny_lm}", f"data.train=[{train}]", f"data.eval=[{ev}]", f"run.root={root}",
            f"run.name={name}", *TINY, *extra]


def test_mixed_feedback_trains_a_scorer_that_loads_unchanged(tiny_lm: Path, mixed_files, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "mixed", "epochs=3")) == 0
    run = tmp_path / "mixed"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_pair_accuracy"] >= 0.9, summary
    assert summary["criteria"] == ["accuracy", "honesty"]
    assert set(summary["accuracy_by_criterion"]) == {"overall", "accuracy", "honesty"}
    assert set(summary["accuracy_by_source"]) == {"human", "ai:judge"}
    assert summary["steps"] == 18 and summary["data"]["read likert"] == 24
    assert (run / "calibration.png").exists() and json.loads((run / "eval_report.json").read_text())["calibration"]
    train_rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_pair", "loss_ranking", "loss_likert", "loss_binary", "centring"} <= set(train_rows[0])

    model = AutoModelForSequenceClassification.from_pretrained(run / "final")
    assert model.config.id2label == {0: "reward", 1: "accuracy", 2: "honesty"}
    side = json.loads((run / "final" / "reward.json").read_text())
    assert side["reward_std"] > 0 and side["input_format"] == "chat"
    assert model.config.reward["reward_mean"] == side["reward_mean"]

    rows = [{"prompt": "Tell me about snow number 5000.", "response": "sure here is the correct answer."},
            {"prompt": [{"role": "user", "content": "Tell me about cats number 5001."}],
             "responses": ["no wrong rude nonsense.", "clearly helpful correct answer."], "id": 7}]
    inp = write_jsonl(tmp_path / "score.jsonl", rows)
    assert cli(["rm", "score", str(run / "final"), str(inp), "--out", str(tmp_path / "out.jsonl"),
                "--batch-size", "2", "--normalize"]) == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[1]["id"] == 7 and out[1]["reward"][1] > out[1]["reward"][0]
    assert set(out[0]["scores"]) == {"reward", "accuracy", "honesty"}
    z = (out[0]["reward"] - side["reward_mean"]) / side["reward_std"]
    assert out[0]["reward_normalized"] == pytest.approx(z, abs=1e-5)

    # each head's statistics are saved, so an RL term can read one criterion's head, normalised by its own
    from lmforge.errors import InputError
    from lmforge.rewards.model_reward import ModelReward

    heads = side["stats"]["heads"]
    assert set(heads) == {"reward", "accuracy", "honesty"} and all(std > 0 for _, std in heads.values())
    assert heads["reward"] == [pytest.approx(side["reward_mean"]), pytest.approx(side["reward_std"])]
    prompts = [[{"role": "user", "content": "Tell me about snow number 5000."}]]
    honesty = ModelReward(run / "final", head="honesty")(prompts, [rows[0]["response"]], [None])
    mean, std = heads["honesty"]
    assert honesty.item() == pytest.approx((out[0]["scores"]["honesty"] - mean) / std, abs=1e-4)
    with pytest.raises(InputError, match="no head 'harmless'.*reward, accuracy, honesty"):
        ModelReward(run / "final", head="harmless")
    side["stats"]["heads"]["honesty"] = [mean, 0.0]  # a std of 0 cannot normalise
    (run / "final" / "reward.json").write_text(json.dumps(side))
    with pytest.raises(InputError, match="head 'honesty' has saved mean .* std 0.0"):
        ModelReward(run / "final", head="honesty")
    del side["stats"]["heads"]  # a folder saved before per-head statistics: normalising that head is refused
    (run / "final" / "reward.json").write_text(json.dumps(side))
    with pytest.raises(InputError, match="no saved statistics for head 'honesty'"):
        ModelReward(run / "final", head="honesty")
    assert ModelReward(run / "final", head="honesty", normalize=False)(prompts, [rows[0]["response"]], [None]) \
        .item() == pytest.approx(out[0]["scores"]["honesty"], abs=1e-5)


def test_resume_recomputes_the_lost_steps_exactly(tiny_lm: Path, mixed_files, tmp_path: Path) -> None:
    train, ev = mixed_files
    args = rm_args(tiny_lm, train, ev, tmp_path, "r", "epochs=null", "train.steps=4", "train.save_every=2",
                   "train.keep_checkpoints=3", "loss.ranking=plackett_luce", "loss.margin=0.5")
    assert cli(args) == 0
    run = tmp_path / "r"

    def losses() -> dict[int, float]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}

    straight = losses()
    weights = torch.load(run / "checkpoints/step-4/model.pt")
    shutil.rmtree(run / "checkpoints/step-4")  # as if the process died after the step-2 checkpoint
    assert cli(args + ["--resume"]) == 0
    assert losses() == straight
    again = torch.load(run / "checkpoints/step-4/model.pt")
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_bad_record_is_a_one_line_error_with_file_and_line(tiny_lm: Path, tmp_path: Path, capsys) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"type": "pair", "prompt": "q", "chosen": "a", "rejected": "b"},
        {"type": "ranking", "prompt": "q", "responses": ["a", "b", "c"], "ranking": [1, 1, 0]}])
    code = cli(["rm", f"model.path={tiny_lm}", f"data.train=[{bad}]", f"run.root={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:2" in err and "not a permutation" in err and "on_invalid=skip" in err
    assert cli(["rm", f"data.train=[{bad}]", f"run.root={tmp_path}", "run.name=nomodel"]) == 2
    assert "model" in capsys.readouterr().err


def test_a_label_export_trains_a_reward_model_without_conversion(tiny_lm: Path, tmp_path: Path) -> None:
    """generate -> label (simulated) -> label export -> rm: the export file is the rm input as it is."""
    db = ["--db", str(tmp_path / "fb")]
    assert cli(["generate", "model=world", "prompts=world", "k=3", "world.n=8", f"run.root={tmp_path}",
                "run.name=g"]) == 0
    assert cli(["label", "init", *db]) == 0
    assert cli(["label", "add-batch", str(tmp_path / "g"), *db]) == 0
    assert cli(["label", "simulate", "g", "--labelers", "2", "--noise", "0.3", *db]) == 0
    prefs = tmp_path / "prefs.jsonl"
    assert cli(["label", "export", "g", "--out", str(prefs), *db]) == 0
    assert cli(rm_args(tiny_lm, prefs, prefs, tmp_path, "from-export", "epochs=2")) == 0
    summary = json.loads((tmp_path / "from-export" / "summary.json").read_text())
    assert summary["steps"] >= 2
    assert {"read ranking", "read pair", "read likert", "read binary"} <= set(summary["data"]), summary["data"]
    assert {"simulated:sim-1", "simulated:sim-2"} <= set(summary["accuracy_by_source"])
