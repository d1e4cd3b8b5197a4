"""The demo's PPO recipe and feedback mix draw only train-split prompts of the kinds they name."""
from __future__ import annotations

from lmforge.world import World


def test_demo_ppo_prompts_are_train_split_safety_kinds_only():
    from lmforge.stages.demo_align import PPO_KINDS, ppo_demo_config

    cfg = ppo_demo_config("sft/final", "rm/final", "out", 0)
    w = cfg.prompts.world
    assert w.split == "train" and list(w.kinds) == PPO_KINDS and cfg.sampling.temperature < 1.0
    world = World(0)
    items = world.eval_prompts(w.split, kinds=list(w.kinds), n=300, seed=w.sample_seed)
    assert {it["kind"] for it in items} == set(PPO_KINDS)
    for it in items:
        assert it["category"] in world.safety_categories[it["kind"]]["train"]


def test_demo_feedback_safety_batch_holds_seen_harmful_and_lookalike_prompts():
    from lmforge.stages.demo_stages import SAFETY_KINDS, SAFETY_PROMPTS

    world = World(0)
    items = world.eval_prompts("train", kinds=SAFETY_KINDS, n=SAFETY_PROMPTS, seed=1)
    assert len({it["id"] for it in items}) == SAFETY_PROMPTS
    assert {it["kind"] for it in items} == {"harmful", "over_refusal"}
    assert all(it["category"] in world.safety_categories[it["kind"]]["train"] for it in items)
