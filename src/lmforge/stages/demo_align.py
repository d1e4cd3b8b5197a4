"""The demo's alignment stages after the reward model, each a thin call into the recipe the CLI runs.

ppo → stages.rl (PPO: the SFT model as the policy, the demo's reward model as reward and critic, the world's
      train-split prompts), then :func:`lmforge.eval.policy_compare.compare_to_sft` on held-out prompts
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .demo_stages import _finished, _pick

PPO_EVAL_PER_SUITE = 40  # held-out prompts per suite for compare_to_sft (5 suites)
PPO_KEYS = ("win_rate_vs_sft", "kl_to_sft", "reward_mean_start", "reward_mean_end", "refusal_rate_heldout",
            "over_refusal_rate", "false_premise_correction", "heldout_fact_accuracy", "refusal_rate_heldout_sft",
            "over_refusal_rate_sft", "false_premise_correction_sft", "heldout_fact_accuracy_sft", "steps",
            "rollouts", "train_seconds", "eval_seconds", "seconds")


def ppo_demo_config(sft_model: str, reward_model: str, run_root: str, seed: int):
    """The measured PPO recipe for the built-in world (docs/rl.md has the table of what was tried)."""
    from .rl import RLConfig

    return RLConfig.model_validate({
        "run": {"name": "ppo", "root": run_root},
        "model": {"path": sft_model, "freeze_embeddings": "except_special"},
        "prompts": {"source": "world", "world": {"seed": seed, "split": "train", "n": 2000, "sample_seed": seed}},
        "reward": {"terms": [{"kind": "model", "path": reward_model, "clip": 5.0}]},
        "sampling": {"max_new_tokens": 48, "temperature": 1.0, "seed": seed},
        "rl": {"algorithm": "ppo", "rollouts": 8, "prompts_per_rollout": 64, "ppo_epochs": 2, "forward_batch": 64,
               "kl_coef": 0.05, "critic": "shared", "value_lr": 1e-3, "samples_every": 2},
        "train": {"batch_size": 32, "lr": 1e-4, "schedule": "constant", "log_every": 1, "seed": seed},
        "threads": 1,
    })


def stage_ppo(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    import json
    import time

    from ..eval.policy_compare import compare_to_sft
    from ..models.load import load_causal_lm, load_tokenizer
    from ..runs import atomic_write_text
    from ..world import World
    from .rl import rl_train

    run_dir = out / "ppo"
    sft_model = ctx.get("sft_model", str(out / "sft" / "final"))
    done = _finished(run_dir) if resume else None
    if done is None:
        cfg = ppo_demo_config(sft_model, str(out / "reward_model" / "final"), str(out), seed)
        done = rl_train(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    if "win_rate_vs_sft" not in done:  # evaluated after training; a crash between the two re-runs only this
        t0 = time.time()
        tok = load_tokenizer(sft_model)
        metrics, records = compare_to_sft(load_causal_lm(str(run_dir / "final")), load_causal_lm(sft_model), tok,
                                          World(seed), n_per_suite=PPO_EVAL_PER_SUITE, seed=seed, threads=1,
                                          sft_cache=out / "sft_eval_answers.json")
        atomic_write_text(run_dir / "eval_samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        eval_s = round(time.time() - t0, 2)
        done = {**done, **metrics, "eval_seconds": eval_s, "seconds": round(done["seconds"] + eval_s, 2)}
        atomic_write_text(run_dir / "summary.json", json.dumps(done, indent=2) + "\n")
    ctx["ppo_model"] = str(run_dir / "final")
    return _pick(done, PPO_KEYS)
