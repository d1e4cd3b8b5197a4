"""Exact resume after a kill, atomic checkpoints, and the run folder a pre-training run leaves."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_PRETRAIN, run_cli

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def pretrain_args(corpus: Path, name: str, steps: int = 12) -> list[str]:
    return ["pretrain", f"data.paths=[{corpus}]", f"run.name={name}", f"train.steps={steps}",
            "train.save_every=4", "train.eval_every=0", *TINY_PRETRAIN]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path, corpus_file: Path) -> None:
    run_cli(pretrain_args(corpus_file, "straight"), tmp_path)
    straight = losses(tmp_path / "runs/straight")
    assert sorted(straight) == list(range(1, 13))

    killed = run_cli(pretrain_args(corpus_file, "crashy"), tmp_path, env={"LMFORGE_FAULT": "kill-at-step:6"},
                     check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    crashy = tmp_path / "runs/crashy"
    assert sorted(p.name for p in (crashy / "checkpoints").iterdir()) == ["step-4"]
    assert max(losses(crashy)) == 6  # steps 5-6 were logged before the kill, then lost with it

    run_cli(pretrain_args(corpus_file, "crashy") + ["--resume"], tmp_path)
    resumed = losses(crashy)
    assert sorted(resumed) == list(range(1, 13))
    assert resumed == straight  # bit-for-bit the same losses, not merely close

    a = torch.load(tmp_path / "runs/straight/checkpoints/step-12/model.pt")
    b = torch.load(crashy / "checkpoints/step-12/model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_while_writing_checkpoint_keeps_previous_one(tmp_path: Path, corpus_file: Path) -> None:
    args = pretrain_args(corpus_file, "atomic", steps=10)
    proc = run_cli(args, tmp_path, env={"LMFORGE_FAULT": "kill-in-checkpoint:8"}, check=False)
    assert proc.returncode == -9
    ckpts = tmp_path / "runs/atomic/checkpoints"
    assert (ckpts / ".tmp-step-8").exists() and not (ckpts / "step-8").exists()
    assert (ckpts / "step-4" / "COMPLETE").exists()
    run_cli(args + ["--resume"], tmp_path)
    resumed = losses(tmp_path / "runs/atomic")
    assert sorted(resumed) == list(range(1, 11))
    assert not (ckpts / ".tmp-step-8").exists()


def test_run_folder_and_final_loads_in_plain_transformers(tmp_path: Path, corpus_file: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_cli(pretrain_args(corpus_file, "fmt", steps=4) + ["train.eval_every=2"], tmp_path)
    run = tmp_path / "runs/fmt"
    for name in ("config.yaml", "metrics.jsonl", "samples.jsonl", "summary.json", "final/config.json"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["tokens"] == 4 * 4 * 32
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [2, 4] and all(e["val_bpb"] > 0 for e in evals)

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    tok = AutoTokenizer.from_pretrained(run / "final")
    assert tok.pad_token_id != tok.eos_token_id
    ids = tok("The cat sat", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5
