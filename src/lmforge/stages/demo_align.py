"""The demo's alignment stages after the reward model, each a thin call into its recipe, then the one evaluation
they share (:func:`lmforge.eval.policy_compare.compare_to_sft`: the tuned policy against the SFT model on the
held-out mix), so their numbers sit side by side in the summary.

dpo → stages.dpo on the simulated labelers' exported rankings (the reward model's training data), from the SFT
      model; the recipe (:func:`dpo_demo_config`) and how it was chosen are in docs/dpo.md
ppo → stages.rl (PPO: the SFT model as the policy, the demo's reward model as reward and critic, the world's
      train-split prompts), then compare_to_sft on held-out prompts
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..runs import atomic_write_text
from .demo_stages import _finished, _pick

EVAL_FILE = "compare_to_sft.json"
EVAL_PROMPTS = 64  # per suite of the held-out mix (5 suites), as compare_to_sft's default
SFT_ANSWERS = "sft_answers.json"  # the SFT model's answers on the held-out mix, shared by the dpo and ppo stages


def dpo_demo_config(sft_model: str, preferences: str, root: str, seed: int = 0):
    """The demo recipe: ORPO (the chosen response's NLL plus the odds-ratio term, λ = 0.1; no reference model),
    full fine-tuning, rankings as best-vs-rest pairs, 30 steps of 32 at lr 1e-4. Of 27 variants measured on the
    2026-12-04 export (docs/dpo.md "Demo status": win rate 0.498, KL 0.43, refusal 0.73 vs SFT 0.84, over-refusal
    0.09 vs 0.27) none did better beyond seed noise without trading refusals for over-refusals (or back); all are
    short of the 0.60 target."""
    from ..runs import RunConfig
    from .dpo import DPOConfig

    return DPOConfig.model_validate({
        "run": RunConfig(name="dpo", root=root).model_dump(),
        "model": {"path": sft_model},
        "data": {"train": [preferences], "eval_fraction": 0.005, "max_length": 256, "ranking_pairs": "best_vs_rest"},
        "loss": {"name": "orpo", "beta": 0.1},
        "train": {"steps": 30, "batch_size": 32, "lr": 1e-4, "warmup_steps": 0, "log_every": 10, "seed": seed},
        "threads": 1,  # a 2.4M-parameter model: 1 thread beat 2 on the shared 2-core machine (as for SFT)
    })


def _policy(summary: dict[str, Any]):
    from ..models.load import load_causal_lm
    from ..models.peft import load_merged

    return load_merged(summary["final"]) if summary.get("adapter") else load_causal_lm(summary["final"])


def compare_stage(out: Path, run_dir: Path, summary: dict[str, Any], sft_model: str, seed: int
                  ) -> dict[str, Any]:
    """compare_to_sft of the run's final model, written to ``run_dir/compare_to_sft.json`` (metrics) and
    ``eval_samples.jsonl`` (per prompt; an RL run's own ``samples.jsonl`` holds its rollouts); a finished
    evaluation is read back instead."""
    from ..engine.threads import torch_threads
    from ..eval.policy_compare import compare_to_sft
    from ..models.load import load_causal_lm, load_tokenizer
    from ..world import World

    path = run_dir / EVAL_FILE
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    with torch_threads(1):
        metrics, records = compare_to_sft(_policy(summary), load_causal_lm(sft_model), load_tokenizer(sft_model),
                                          World(seed), n_per_suite=EVAL_PROMPTS, seed=seed,
                                          sft_cache=out / SFT_ANSWERS, threads=1)
    atomic_write_text(run_dir / "eval_samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    metrics = {**metrics, "eval_seconds": round(time.time() - t0, 2)}
    atomic_write_text(path, json.dumps(metrics, indent=1) + "\n")
    return metrics


def stage_dpo(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from .dpo import dpo

    run_dir = out / "dpo"
    t0 = time.time()
    sft_model = ctx.get("sft_model", str(out / "sft" / "final"))
    done = _finished(run_dir) if resume else None
    finished_before = done is not None and (run_dir / EVAL_FILE).exists()
    if done is None:
        cfg = dpo_demo_config(sft_model, ctx.get("preferences", str(out / "feedback" / "preferences.jsonl")),
                              str(out), seed)
        done = dpo(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    metrics = compare_stage(out, run_dir, done, sft_model, seed)
    ctx["dpo_model"] = done["final"]
    seconds = done["seconds"] + metrics["eval_seconds"] if finished_before else round(time.time() - t0, 2)
    return {**metrics, "heldout_pair_accuracy": done.get("heldout_accuracy_after"),
            "reference_seconds": done.get("reference_seconds"), "train_seconds": done.get("train_seconds"),
            "steps": done["steps"], "seconds": seconds}


PPO_KEYS = ("reward_mean_start", "reward_mean_end", "kl_ref_end", "steps", "rollouts", "train_seconds")


# the kinds whose SFT samples the demo reward model orders better than chance (bench/rm_kinds.py --sft): on facts,
# dialogues, instructions and arithmetic it is at 0.3-0.57, so PPO on those prompts only spends KL on noise
PPO_KINDS = ["harmful", "over_refusal", "false_premise"]


def ppo_demo_config(sft_model: str, reward_model: str, run_root: str, seed: int):
    """The measured PPO recipe for the built-in world (docs/rl.md has the table of what was tried): rollouts at
    temperature 0.7 (at 1.0 the SFT model garbles most samples, ~2 nats of entropy a token, and the reward model
    is scored on text the greedy policy never writes) on the train split's :data:`PPO_KINDS` prompts."""
    from .rl import RLConfig

    return RLConfig.model_validate({
        "run": {"name": "ppo", "root": run_root},
        "model": {"path": sft_model, "freeze_embeddings": "except_special"},
        "prompts": {"source": "world", "world": {"seed": seed, "split": "train", "n": 2000, "sample_seed": seed,
                                                 "kinds": PPO_KINDS}},
        "reward": {"terms": [{"kind": "model", "path": reward_model, "clip": 5.0}]},
        "sampling": {"max_new_tokens": 48, "temperature": 0.7, "seed": seed},
        "rl": {"algorithm": "ppo", "rollouts": 8, "prompts_per_rollout": 64, "ppo_epochs": 2, "forward_batch": 64,
               "kl_coef": 0.05, "critic": "shared", "value_lr": 1e-3, "samples_every": 2},
        "train": {"batch_size": 32, "lr": 1e-4, "schedule": "constant", "log_every": 1, "seed": seed},
        "threads": 1,
    })


def stage_ppo(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from .rl import rl_train

    run_dir = out / "ppo"
    t0 = time.time()
    sft_model = ctx.get("sft_model", str(out / "sft" / "final"))
    done = _finished(run_dir) if resume else None
    finished_before = done is not None and (run_dir / EVAL_FILE).exists()
    if done is None:
        cfg = ppo_demo_config(sft_model, str(out / "reward_model" / "final"), str(out), seed)
        done = rl_train(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    metrics = compare_stage(out, run_dir, done, sft_model, seed)  # the dpo stage's evaluation, SFT answers shared
    ctx["ppo_model"] = done["final"]
    seconds = done["seconds"] + metrics["eval_seconds"] if finished_before else round(time.time() - t0, 2)
    return {**metrics, **_pick(done, PPO_KEYS), "seconds": seconds}
