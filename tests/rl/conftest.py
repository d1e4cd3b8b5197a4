"""Fixtures for the RL tests: a tiny chat LM (the DPO tests' recipe), prompts, and reward functions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dpo.conftest import TOPICS, one_torch_thread, tiny_lm  # noqa: F401  (fixtures re-exported)


def write_prompts(path: Path, n: int = 16) -> Path:
    rows = [{"prompt": f"Tell me about {TOPICS[i % len(TOPICS)]} number {i}.", "meta": {"i": i}} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl")


def rl_cfg(tmp_path: Path, lm: Path, prompts: Path, name: str = "rl", algorithm: str = "grpo", **over):
    """A small config: 4 prompts x group per rollout, 2 rollouts, short responses."""
    from lmforge.stages.rl import RLConfig

    data = {"run": {"name": name, "root": str(tmp_path / "runs")}, "model": {"path": str(lm)},
            "prompts": {"source": str(prompts)},
            "reward": {"terms": [{"kind": "function", "function": "rl.rewards:vowels"}]},
            "sampling": {"max_new_tokens": 8, "temperature": 1.0, "seed": 0},
            "rl": {"algorithm": algorithm, "rollouts": 2, "prompts_per_rollout": 4, "forward_batch": 8,
                   "missing_eos_penalty": None},
            "train": {"batch_size": 8, "micro_batch_size": 4, "lr": 1e-3, "log_every": 1, "seed": 0}}
    for key, value in over.items():
        node = data
        *path, last = key.split("__")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return RLConfig.model_validate(data)
