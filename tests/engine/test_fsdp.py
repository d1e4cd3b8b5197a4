"""FSDP2 (``train.distributed=fsdp``) on CPU with gloo, tested as DDP is: 2 sharded processes give the losses of
1 process with the same global batch, a checkpoint resumes exactly, and ``final/`` loads in plain transformers.

The stages that cannot shard (adapters, reward models) refuse ``fsdp`` in one line with exit code 2.
"""
from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_PRETRAIN, run_cli

pytestmark = pytest.mark.slow

FSDP = ["train.distributed=fsdp", "threads=1"]


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def torchrun() -> list[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
            "-m", "lmforge"]


def run2(args: list[str], cwd: Path) -> None:
    run_cli(args, cwd, launcher=torchrun(), env={"OMP_NUM_THREADS": "1"}, timeout=300)


def test_pretrain_fsdp_equals_one_process_resumes_exactly_and_saves_final(tmp_path: Path,
                                                                          corpus_file: Path) -> None:
    from transformers import AutoModelForCausalLM

    common = ["pretrain", f"data.paths=[{corpus_file}]", "train.steps=6", "train.micro_batch_size=2",
              "train.save_every=3", "train.eval_every=0", *TINY_PRETRAIN]
    run_cli(common + ["run.name=one"], tmp_path)
    run2(common + FSDP + ["run.name=two"], tmp_path)
    one, two = losses(tmp_path / "runs/one"), losses(tmp_path / "runs/two")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    # same global batch, same data; only the order of the gradient reductions differs (losses ~5)
    assert [two[s] for s in sorted(two)] == pytest.approx([one[s] for s in sorted(one)], rel=1e-5)
    assert two[6] < two[1]

    # final/ is a plain HF folder holding exactly the gathered weights of the last checkpoint
    final = tmp_path / "runs/two/final"
    model = AutoModelForCausalLM.from_pretrained(final)
    ckpt = torch.load(tmp_path / "runs/two/checkpoints/step-6/model.pt")
    state = model.state_dict()
    assert set(ckpt) <= set(state)
    assert all(torch.equal(state[k], ckpt[k]) for k in ckpt)

    # resume from the step-3 checkpoint of a copy: steps 4-6 again, bit for bit
    resumed = tmp_path / "runs/resumed"
    shutil.copytree(tmp_path / "runs/two", resumed)
    shutil.rmtree(resumed / "checkpoints/step-6")
    shutil.rmtree(resumed / "final")
    run2(common + FSDP + ["run.name=resumed", "--resume"], tmp_path)
    assert losses(resumed) == two
    again = torch.load(resumed / "checkpoints/step-6/model.pt")
    assert all(torch.equal(again[k], ckpt[k]) for k in ckpt)
