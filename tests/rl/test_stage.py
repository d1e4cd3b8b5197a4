"""The RL recipe end to end on a tiny model: GRPO, RLOO and PPO run, log, save; bad input stops early."""
from __future__ import annotations

import json

import pytest

from lmforge.stages.rl import rl_train

from .conftest import rl_cfg


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_algorithms_run_a_few_steps(tmp_path, tiny_lm, prompt_file, algorithm):
    over = {"rl__prompts_per_rollout": 8, "rl__ppo_epochs": 2} if algorithm == "ppo" else {}
    s = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, algorithm=algorithm, **over))
    rows, epochs = (8, 2) if algorithm == "ppo" else (16, 1)
    assert s["steps"] == 2 * epochs * rows // 8 and s["rollouts"] == 2  # rollouts x epochs x minibatches
    metrics = [json.loads(x) for x in (tmp_path / "runs/rl/metrics.jsonl").read_text().splitlines()]
    first = metrics[0]
    for key in ("loss", "policy_loss", "entropy", "clip_fraction", "approx_kl", "reward_mean", "kl_ref",
                "response_length", "no_eos_share", "seconds_generation", "seconds_scoring"):
        assert key in first, key
    assert abs(first["approx_kl"]) < 1e-5  # the first minibatch: the policy is the old policy
    if algorithm == "ppo":
        assert "value_loss" in first and "explained_variance" in first
        assert (tmp_path / "runs/rl/value_head.pt").exists()
    assert (tmp_path / "runs/rl/final/config.json").exists()
    assert (tmp_path / "runs/rl/samples.jsonl").read_text().strip()
