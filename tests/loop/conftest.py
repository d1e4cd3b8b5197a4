"""Fixtures for the loop tests: a tiny random chat model over a tokenizer of the built-in world (the policy and
the reward model's backbone), and a loop config small enough for a round to take seconds."""
from __future__ import annotations

from pathlib import Path

import pytest

from tiny_chat import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the models are tiny and the machine may be shared (tests/tiny_chat.py says why)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def world_lm(tmp_path_factory) -> Path:
    """A 1-block Llama (width 32) with a byte-level BPE trained on the world's corpus (our chat template)."""
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf
    from lmforge.world import World

    tok = train_bpe(World(seed=0).pretrain_corpus(seed=0, n_docs=100), vocab_size=400)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=1, aspect=32, head_dim=16, max_seq_len=1024), tok)
    return save_hf(model, tok, tmp_path_factory.mktemp("loop-lm") / "lm")


# a round in seconds: 6 prompts x 2 responses of 8 tokens, one PPO step, 2 held-out prompts per suite, 2 red-team
# seeds x 2 attacks (also laid over the demo's loop recipe by tests/loop/test_demo_loop.py)
TINY = {"k": 2, "prompts": {"per_round": 6},
        "sampling": {"max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0},
        "update": {"rm": {"model": {"max_length": 128}, "train": {"batch_size": 2, "warmup_steps": 0,
                                                                     "log_every": 1}},
                   "rl": {"rl": {"rollouts": 1, "prompts_per_rollout": 4, "forward_batch": 8, "samples_every": 0},
                          "sampling": {"max_new_tokens": 8, "temperature": 1.0},
                          "train": {"batch_size": 4, "lr": 1e-3, "log_every": 1}}},
        "eval": {"n_per_suite": 2, "batch_size": 8, "compare_n_per_suite": 2},
        "redteam": {"limit": 2, "attacks": ["direct", "prefix_injection"], "max_new_tokens": 8}}


def loop_cfg(out: Path, policy: Path, **over):
    """Two rounds of :data:`TINY` with one noise-free simulated labeler and PPO."""
    from lmforge.config import _merge
    from lmforge.loop.config import LoopConfig

    data = {"out": str(out), "rounds": 2, "policy": str(policy),
            "feedback": {"sources": [{"kind": "simulated", "labelers": 1}], "heldout_fraction": 0.34},
            "update": {"method": "ppo", "on_worse_reward_model": "continue"}}
    return LoopConfig.model_validate(_merge(_merge(data, TINY), over))
