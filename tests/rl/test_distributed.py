"""RL under torchrun: 2 gloo processes split each rollout's prompts, train one model (DDP), and log the global
figures — the (sum, count) reductions over both ranks — not rank 0's own."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli

from .conftest import write_prompts

pytestmark = pytest.mark.slow


def test_ppo_on_two_processes_logs_the_global_reward(tmp_path: Path, tiny_lm: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    cfg = {"model": {"path": str(tiny_lm)}, "prompts": {"source": str(prompts)},
           "reward": {"terms": [{"kind": "function", "function": "rl.rewards:by_rank"}]},
           "sampling": {"max_new_tokens": 6, "temperature": 1.0, "seed": 0},
           "rl": {"rollouts": 2, "prompts_per_rollout": 8, "ppo_epochs": 1, "forward_batch": 8},
           "train": {"batch_size": 4, "micro_batch_size": 2, "lr": 3e-3, "log_every": 1}}
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "rewards"
    log.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "RL_REWARD_LOG": str(log)}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                "-m", "lmforge"]
    proc = run_cli(["ppo", str(path), "run.name=two"], tmp_path, env=env, launcher=torchrun, timeout=240)

    # each rank scored its own half of every rollout: 4 prompts, one response each
    per_rank = {r: [json.loads(x) for x in (log / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    assert [len(c) for r in (0, 1) for c in per_rank[r]] == [4] * 4, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "runs/two/metrics.jsonl").read_text().splitlines()]
    logged = {r["rollout"]: r["reward_mean"] for r in rows if r.get("split") == "train" and "rollout" in r}
    assert sorted(logged) == [1, 2]
    for k in (1, 2):
        both = per_rank[0][k - 1] + per_rank[1][k - 1]
        assert logged[k] == pytest.approx(sum(both) / len(both), abs=1e-6)  # not rank 0's mean, which is < 1
        assert logged[k] > sum(per_rank[0][k - 1]) / 4 + 0.4
    steps = sorted(r["step"] for r in rows if r.get("split") == "train")
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 4  # 2 rollouts x 8 responses / 4, logged once
    assert (tmp_path / "runs/two/final/config.json").exists() and (tmp_path / "runs/two/value_head.pt").exists()
