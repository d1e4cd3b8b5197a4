"""Data parallelism: 2 gloo processes under torchrun compute the same losses as 1 process."""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from conftest import TINY_PRETRAIN, run_cli

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def test_two_processes_equal_one_process(tmp_path: Path, corpus_file: Path) -> None:
    common = ["pretrain", f"data.paths=[{corpus_file}]", "train.steps=6", "train.batch_size=4",
              "train.micro_batch_size=2", *TINY_PRETRAIN]
    run_cli(common + ["run.name=one"], tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                "-m", "lmforge"]
    proc = run_cli(common + ["run.name=two"], tmp_path, launcher=torchrun, env={"OMP_NUM_THREADS": "1"},
                   timeout=180)
    one, two = losses(tmp_path / "runs/one"), losses(tmp_path / "runs/two")
    assert len(one) == len(two) == 6, proc.stderr[-2000:]
    assert one == pytest.approx(two, rel=1e-5, abs=1e-6)
    assert one[-1] < one[0]  # it did train
    assert "broadcast_buffers" not in proc.stderr  # DDP's FutureWarning, once per process, is hidden
