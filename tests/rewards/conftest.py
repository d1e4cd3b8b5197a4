"""Fixtures: the reward-model tests' tiny causal LM (re-used from tests/rm) saved as an untrained reward model."""
from __future__ import annotations

from pathlib import Path

import pytest

from rm.conftest import one_torch_thread, tiny_lm  # noqa: F401  (fixtures re-used, not copied)

RM_MEAN, RM_STD = 0.25, 2.0


def save_rm(backbone: Path, out: Path, criteria: list[str] | None = None, **meta) -> Path:
    """A reward model on ``backbone`` (fresh head, seed 0) saved as `lmforge rm` saves one: run/final."""
    import torch

    from lmforge.models.reward import RewardMeta, RewardModelSection, create_reward_model, save_reward_model
    from lmforge.runs import Run

    torch.manual_seed(0)
    model, tok, kind = create_reward_model(RewardModelSection(path=str(backbone)), criteria or [])
    fields = {"backbone": str(backbone), "kind": kind, "input_format": "pair" if kind == "encoder" else "chat",
              "max_length": 64, "criteria": criteria or [], "reward_mean": RM_MEAN, "reward_std": RM_STD, **meta}
    return save_reward_model(Run.create(out), model, tok, RewardMeta(**fields))


@pytest.fixture(scope="session")
def tiny_rm(tiny_lm, tmp_path_factory) -> Path:  # noqa: F811
    return save_rm(tiny_lm, tmp_path_factory.mktemp("rm") / "run", criteria=["accuracy"])
