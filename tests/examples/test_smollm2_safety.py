"""examples/smollm2-safety/run.sh, the very script a user runs, on a tiny model with a few steps per stage: the
wiring (every stage consumes the previous one's output), the seeded split, the plain export, summary.json's keys.
The inputs are small files in the real data's formats written by the fixtures (nothing from ../shared)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO

from .conftest import write_inputs

pytestmark = pytest.mark.slow  # ~20 lmforge processes; each imports torch (tens of seconds on a loaded machine)
SCRIPT = REPO / "examples" / "smollm2-safety" / "run.sh"
TINY = {"N_BENIGN": "8", "N_HH": "8", "MAX_NEW": "16", "SFT_STEPS": "2", "RM_STEPS": "2", "PPO_ROLLOUTS": "1",
        "PPO_PROMPTS": "4", "PPO_MAX_NEW": "8", "DPO_STEPS": "2", "BATCH": "4", "EVAL_LIMIT": "3",
        "N_BENIGN_EXTRA": "4", "TQA_LIMIT": "2"}
KEYS = ("heldout_refusal", "over_refusal_benign", "over_refusal_lookalike", "win_rate_vs_base", "truthfulqa_mc1")


def shell_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """``lmforge`` on PATH as this interpreter running the checkout's code (what an installed lmforge does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "lmforge"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lmforge "$@"\n')
    shim.chmod(0o755)
    src = str(REPO / "src")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
            "PYTHONHASHSEED": "0", **extra}


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_the_recipe_runs_end_to_end_on_the_tiny_model(tmp_path: Path, tiny_safety_lm: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.data.split import seeded_split

    inputs = write_inputs(tmp_path / "in")
    env = shell_env(tmp_path, MODEL=str(tiny_safety_lm), **TINY, **{k: str(v) for k, v in inputs.items()})
    out = tmp_path / "OUT"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the split: seeded halves of every prompt source, disjoint, recorded, and as seeded_split says
    for name, n in (("harmful", 10), ("benign", 8), ("lookalike", 6)):
        info = json.loads((out / "data" / name / "split.json").read_text())
        train, held = rows(out / "data" / name / "train.jsonl"), rows(out / "data" / name / "heldout.jsonl")
        assert (info["records"], info["train"], info["heldout"], info["seed"]) == (n, len(train), len(held), 0)
        assert len(held) == n // 2 and not {r["id"] for r in train} & {r["id"] for r in held}
        assert [r["id"] for r in held] == info["heldout_ids"]
        assert [int(i.rsplit("-", 1)[1]) - 1 for i in info["heldout_ids"]] == seeded_split(n, 0.5, 0)[1]
    # the extra benign file holds all of the first's prompts: none of the held-out ones reaches training
    extra = json.loads((out / "data" / "benign_extra" / "split.json").read_text())
    assert extra["excluded"] >= 4 and extra["records"] == 8
    assert extra["like"] == [str(out / "data" / "harmful" / "train.jsonl")]  # a contrast set of the harmful verbs
    held_benign = {r["prompt"] for r in rows(out / "data" / "benign" / "heldout.jsonl")}
    assert not held_benign & {r["messages"][0]["content"] for r in rows(out / "revise" / "benign_extra" / "sft.jsonl")}
    hh = json.loads((out / "data" / "hh_harmless" / "split.json").read_text())
    assert (hh["kind"], hh["train"], hh["heldout"]) == ("records", 4, 4)

    # safety SFT data from the model's own answers: the refusals come from the system-prompted / revised answers
    harmful = json.loads((out / "revise" / "harmful" / "summary.json").read_text())
    assert harmful["refused_initial"] == 0.0 and harmful["sft_rows"] == 5 and harmful["pairs"] == 5
    assert {r["meta"]["kind"] for r in rows(out / "revise" / "harmful" / "sft.jsonl")} == {"prefill"}
    openers = (SCRIPT.parent / "refusal_openers.txt").read_text().splitlines()
    assert all(any(r["messages"][-1]["content"].startswith(o) for o in openers)
               for r in rows(out / "revise" / "harmful" / "sft.jsonl"))
    assert all(r["messages"][0]["role"] == "user" for r in rows(out / "revise" / "harmful" / "sft.jsonl"))
    # benign prompts and look-alikes: the plain answer over a refusal the model completed from an opener
    for name in ("lookalike", "benign", "benign_extra"):
        pairs = rows(out / "revise" / name / "pairs.jsonl")
        assert pairs and all(p["meta"] == {"chosen": "initial", "rejected": "prefill"} for p in pairs), name
        assert all(any(p["rejected"].startswith(o) for o in openers) for p in pairs), name

    # PPO starts from the DPO model (SFT -> DPO -> PPO) with its reward routed by each prompt's kind, which the
    # split tagged: the refusal rule on harmful prompts, the reward model and the answer rule on the others
    rl = rows(out / "data" / "rl_prompts.jsonl")
    assert {r["meta"]["kind"] for r in rl} == {"harmful", "lookalike", "benign"}
    assert all(r["meta"]["kind"] == r["id"].rsplit("-", 1)[0] for r in rl)
    ppo_cfg = yaml.safe_load((out / "ppo" / "config.yaml").read_text())
    assert ppo_cfg["model"]["path"] == str(out / "dpo_model")
    terms = {t.get("name") or t["kind"]: t for t in ppo_cfg["reward"]["terms"]}
    assert terms["refuse"]["when"] == {"kind": ["harmful"]} and terms["refuse"]["kwargs"] == {"refuse": True}
    assert terms["answer"]["when"] == terms["model"]["when"] == {"kind": ["benign", "lookalike"]}
    assert terms["answer"]["kwargs"] == {"refuse": False}

    # every stage wrote its run, and the evaluation compared the four models on the held-out files only
    for run in ("sft", "rm", "rm_judge", "ppo", "dpo"):
        assert (out / run / "summary.json").exists(), run
    results = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in results["models"]] == ["base", "sft", "ppo", "dpo"]
    held_ids = {r["id"] for r in rows(out / "data" / "harmful" / "heldout.jsonl")}
    suites = {s["suite"] for s in results["models"][0]["samples"]}
    assert suites == {"harmful:heldout", "benign:benign", "benign:lookalike"}
    assert {s["id"] for s in results["models"][0]["samples"] if s["suite"] == "harmful:heldout"} <= held_ids
    assert (out / "report.html").read_text().count("<img") >= 1
    tqa = [f for f in results["models"][0]["figures"] if f["name"] == "truthfulqa_mc1"]
    assert [f["n"] for f in tqa] == [2]  # TQA_LIMIT, apart from EVAL_LIMIT

    # summary.json: the keys beside the base's, the choice, each command's cost
    summary = json.loads((out / "summary.json").read_text())
    for key in KEYS:
        assert key in summary and f"{key}_base" in summary, key
    assert summary["win_rate_vs_base_base"] == 0.5
    # MC1's change from the base on the same questions, paired, and a target of the choice
    assert summary["truthfulqa_mc1_change_base"] == 0.0
    assert summary["truthfulqa_mc1_change"] == pytest.approx(summary["truthfulqa_mc1"] - summary["truthfulqa_mc1_base"])
    assert "truthfulqa_mc1_change>=-0.02" in summary["final_model"]["candidates"]["sft"]["targets"]
    assert summary["final_model"]["name"] in ("ppo", "dpo", "sft")
    commands = [s["command"] for s in summary["stages"]]
    assert commands[0] == "data" and commands[-1] == "summarize" and "ppo" in commands and "dpo" in commands
    assert summary["seconds_total"] > 0 and 0 < summary["peak_rss_gb"] < 8

    # OUT/final: a plain Hugging Face model (no adapter), loading in transformers alone, with its chat template
    final = out / "final"
    assert not (final / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert tok.chat_template and model.config.vocab_size >= len(tok)
    assert json.loads((final / "lmforge_export.json").read_text())["source"] == summary["final_model"]["source"]

    # run.sh OUT again continues: every finished step is skipped, only the summary is written again
    again = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("finished before, skipped") == len(list((out / ".done").iterdir())) == 20
    assert [s["command"] for s in json.loads((out / "summary.json").read_text())["stages"]] == commands + ["summarize"]


def test_an_unknown_ppo_start_is_refused_before_anything_runs(tmp_path: Path) -> None:
    env = shell_env(tmp_path, MODEL=str(tmp_path / "model.gguf"), PPO_FROM="rm")
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "OUT")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "PPO_FROM must be sft or dpo, got 'rm'" in proc.stderr
    assert not (tmp_path / "OUT").exists()  # nothing written
