"""The demo's reft stage: ``lmforge reft`` on the built-in world's word problems, from the demo's SFT model.

A thin call into :func:`lmforge.stages.reft.reft_train` with :func:`reft_demo_config`: an SFT warm-up on worked
solutions of the seen kinds, then GRPO with the exact-answer reward (partial credit for intermediate results),
each model evaluated on held-out problem kinds (longer chains, larger numbers). What was measured while choosing
it, and why RL does not (yet) add accuracy on this 2.4M-parameter model, is in docs/reft.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .demo_stages import _finished, _pick

EVAL_PROBLEMS = 100  # held-out-kind problems each model answers (greedy, and eval.k samples for pass@k)

KEYS = ("accuracy", "accuracy_sft", "accuracy_base", "pass_at_k", "pass_at_k_sft", "majority_accuracy",
        "majority_accuracy_sft", "unparsable_sft", "unparsable", "accuracy_by_kind_sft", "accuracy_by_kind_rl",
        "k", "train_problems", "eval_problems")


def reft_demo_config(sft_model: str, run_root: str, seed: int = 0):
    """The measured recipe (docs/reft.md, "Demo recipe"): the warm-up is full fine-tuning at lr 2e-3 with the
    embedding trainable (the world SFT's frozen embedding and lr 1e-3 left the loss at 0.93 after 250 steps, 0.2
    with these), 4 epochs of 1,500 problems; GRPO 12 rollouts x 16 problems x 8 paths at lr 5e-5 (3e-4 drifted to
    a KL of 8.8 and lost accuracy), exact answer with 0.3 partial credit. One torch thread, as every demo stage."""
    from ..config import load_config
    from .reft import ReftConfig

    partial = "[{kind: function, function: 'lmforge.rewards.builtin:exact_answer', kwargs: {partial: 0.3}}]"
    return load_config(ReftConfig, None, [
        f"model.path={sft_model}", f"run.root={run_root}", "run.name=reft",
        "data.world.train=1500", f"data.world.eval={EVAL_PROBLEMS}", f"data.world.sample_seed={seed}",
        "sft.epochs=4", "sft.train.batch_size=8", "sft.train.lr=2e-3", "sft.protect.freeze_embeddings=none",
        f"sft.train.seed={seed}",
        "rl.rl.rollouts=12", "rl.rl.prompts_per_rollout=16", "rl.rl.group_size=8", "rl.train.batch_size=32",
        "rl.train.lr=5e-5", f"rl.reward.terms={partial}", "rl.sampling.max_new_tokens=96",
        f"rl.sampling.seed={seed}", f"rl.train.seed={seed}",
        "eval.k=4", "eval.max_new_tokens=96", f"eval.seed={seed}", "threads=1"])


def stage_reft(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from .reft import reft_train

    run_dir = out / "reft"
    done = _finished(run_dir) if resume else None
    if done is None:
        cfg = reft_demo_config(ctx.get("sft_model", str(out / "sft" / "final")), str(out), seed)
        done = reft_train(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    rl = done.get("rl") or {}
    return {**_pick(done, KEYS), **{f"rl_{k}": rl[k] for k in ("reward_mean_start", "reward_mean_end",
                                                               "kl_ref_end", "loss_rows_share_mean", "steps")
                                    if rl.get(k) is not None},
            "stage_seconds": done.get("stage_seconds"), "seconds": done["seconds"]}
