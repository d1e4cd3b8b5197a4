"""``lmforge demo --loop N``: N rounds of ``lmforge loop`` after the demo's stages, from the demo's SFT model and
reward model, with the demo's simulated labelers and a red-team pass each round (round n+1 trains on round n's
successful attacks and replays them). Everything runs through :mod:`lmforge.loop`; this module only picks the
recipe and copies the loop's per-round figures into the demo's summary.

The recipe reuses the demo's measured settings where they exist: the labelers of the feedback stage, the
reward-model loss of :func:`lmforge.stages.rm.demo_config` (4 epochs over the loop's labels), the PPO settings
and prompt kinds of :func:`lmforge.stages.demo_align.ppo_demo_config` over the round's prompts, half of each
prompt's responses from the start policy (``k_start``), and the held-out comparison of the ppo stage (``compare_to_sft``, 64 prompts per suite), so round 2 is judged against round 1 as
PPO is against SFT.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import InputError

LOOP_DIR = "loop"
# measured 2026-12-07 (docs/loop.md): on all kinds, 64 prompts a round, 4 rollouts x 32 and the reward model at
# lr 1e-4 the policy barely moved (round 2 vs round 1 0.505); with the ppo stage's own PPO (8 x 64) on those
# prompts round 1 learns the reward model's hole (refusals 0.31, then 0.00) and round 2's reward model, on
# ~9 harmful prompts a round, cannot close it. On the ppo stage's kinds, with a reward model that moves (4 epochs,
# lr 3e-4) and half of each prompt's responses from the start, round 1 still falls into the hole and round 2
# climbs out: refusals 0.23 -> 0.92, attack success 0.89 -> 0.18, round 2 vs round 1 0.523 (a second seed tips the
# other way, 0.483: round 1 keeps refusals, round 2 refuses everything; round 1's attacks fail on round 2 in both)
PROMPTS_PER_ROUND, LOOP_K, LOOP_K_START = 64, 4, 2  # 215 train prompts of PPO_KINDS: 3 full rounds, 23 in a 4th
RM_LR, RM_EPOCHS = 3e-4, 4.0
RL_ROLLOUTS, RL_PROMPTS_PER_ROLLOUT = 8, 64  # the demo ppo stage's, over the round's prompts
REDTEAM_SEEDS = 16
# the loop summary's per-round keys the demo's table shows (the rest is in summary.json's loop.round_N)
HEADLINE = ("win_rate_vs_round_1", "win_rate_vs_start", "attack_success_rate", "previous_findings_success_rate",
            "reward_model_accuracy_newest")


def demo_loop_config(out: Path, rounds: int, seed: int, over: dict[str, Any] | None = None):
    """The loop config of ``lmforge demo --loop ROUNDS`` on the demo folder ``out`` (``over``: settings laid on
    top, as a loop YAML would set them; the tests shrink the recipe with it)."""
    from ..config import _merge
    from ..loop.config import LoopConfig
    from .demo_align import PPO_KINDS, ppo_demo_config
    from .demo_stages import LABELER_NOISE, LABELERS, RM_HEAD
    from .rm import demo_config as rm_demo_config

    policy, reward_model = out / "sft" / "final", out / "reward_model" / "final"
    for path, stage in ((policy, "sft"), (reward_model, "reward_model")):
        if not path.is_dir():
            raise InputError(f"the loop starts from the demo's {stage} model, and {path} is missing: run the demo's "
                             "stages first (lmforge demo --out OUT, or --resume)", file=str(path), field="--loop")
    rm = rm_demo_config(str(reward_model), "train.jsonl", "eval.jsonl", str(out), head=RM_HEAD)
    ppo = ppo_demo_config(str(policy), str(reward_model), str(out), seed)
    term = ppo.reward.terms[0].model_dump(exclude={"kind", "path"}, exclude_unset=True)
    data = {
        "out": str(out / LOOP_DIR), "rounds": rounds, "policy": str(policy), "seed": seed, "k": LOOP_K,
        "k_start": LOOP_K_START,
        "prompts": {"source": "world", "kinds": PPO_KINDS, "per_round": PROMPTS_PER_ROUND, "world_seed": seed,
                    "sample_seed": seed},
        "sampling": {"max_new_tokens": 48, "temperature": 1.0, "top_p": 0.95},
        "feedback": {"sources": [{"kind": "simulated", "labelers": LABELERS, "noise": LABELER_NOISE, "seed": 0}],
                     "heldout_fraction": 0.25},
        "update": {
            "method": "ppo", "reward_model": str(reward_model), "reward_term": term,
            "on_worse_reward_model": "continue",  # a demo reports the check; it does not stop on it
            "rm": {"loss": rm.loss.model_dump(), "epochs": RM_EPOCHS,
                   # the demo reward model's head, verdict question and likelihood term, kept as it trains on
                   "model": rm.model.model_dump(include={"max_length", "head", "verdict", "likelihood_weight"}),
                   "train": {"batch_size": rm.train.batch_size, "lr": RM_LR, "warmup_steps": 0, "log_every": 1}},
            "rl": {"model": {"freeze_embeddings": ppo.model.freeze_embeddings},
                   "rl": {**ppo.rl.model_dump(exclude={"algorithm"}), "rollouts": RL_ROLLOUTS,
                          "prompts_per_rollout": RL_PROMPTS_PER_ROLLOUT},
                   "sampling": ppo.sampling.model_dump(exclude={"seed"}),
                   "train": ppo.train.model_dump(include={"batch_size", "lr", "schedule", "log_every"}),
                   "threads": ppo.threads}},
        "eval": {"suites": ["world"], "n_per_suite": 64, "compare": True, "compare_n_per_suite": 64},
        "redteam": {"seeds": "world", "split": "train", "limit": REDTEAM_SEEDS, "attacks": ["all"]},
    }
    return LoopConfig.model_validate(_merge(data, over or {}))


def stage_loop(out: Path, seed: int, rounds: int, previous: dict[str, Any] | None = None,
               over: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run (or continue) the demo's loop one round at a time (the loop's own resume: raising ``rounds`` and
    running again adds a round), so each round's wall-clock seconds are known. Returns the demo summary's
    ``stages.loop`` (headline numbers) and ``loop`` (the loop's ``round_N`` entries, each with its seconds;
    a round finished by an earlier call keeps the seconds ``previous`` recorded)."""
    from ..loop.run import run_loop
    from ..loop.status import loop_status

    seconds: dict[str, float | None] = {}
    summary: dict[str, Any] = {}
    for n in range(1, rounds + 1):
        cfg = demo_loop_config(out, n, seed, over)
        rows = loop_status(cfg)
        finished = len(rows) == n and all(rows[-1]["steps"].values())
        t0 = time.time()
        summary = run_loop(cfg, say=lambda line: print(f"loop: {line}", flush=True))
        seconds[f"round_{n}"] = (previous or {}).get(f"round_{n}", {}).get("seconds") if finished \
            else round(time.time() - t0, 2)
    result = summary["loop"]
    for name, r in result.items():
        r["seconds"] = seconds.get(name)
    headline: dict[str, Any] = {"rounds": summary["rounds_done"], "report": summary.get("report"),
                                "out": str(out / LOOP_DIR)}
    for name, r in result.items():
        for key in HEADLINE + ("seconds",):
            if r.get(key) is not None:
                headline[f"{name}_{key}"] = r[key]
    return headline, result
