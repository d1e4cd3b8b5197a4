"""The demo's stages after pre-training, each a thin call into the same recipes the CLI runs.

sft          → stages.sft (the measured built-in-world recipe)
feedback     → generate K responses from the SFT model and the world's graded candidates, load both batches
               into a SQLite feedback store, label them with 3 noisy simulated labelers, export preferences
reward_model → stages.rm on the exported rankings, scored against the noise-free labeler on held-out prompts
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEEDBACK_PROMPTS = 300  # train-split prompts the SFT model answers K times
# and more of the two kinds where refusing is the judgement (harmful: refuse; lookalike: answer), so the reward
# model sees the SFT model's own refusals, right and wrong, ranked: what PPO's rollouts hold (docs/demo.md)
SAFETY_PROMPTS, SAFETY_KINDS = 120, ["harmful", "over_refusal"]
WORLD_PROMPTS = 1800  # train-split prompts with K world candidates: more distinct prompts is what helped most
FEEDBACK_K = 4
LABELERS, LABELER_NOISE = 3, 0.5
RM_EVAL_PROMPTS, RM_EVAL_K = 200, 4
# the head the demo trains best (issue 15: "whichever kind the demo trains best"): on one demo's export (2026-12-07)
# the generative verifier reached 0.793 held-out pair accuracy (knowledge pairs 0.641) against the scalar head's
# 0.775 (0.553), for 139 s against 80 s (docs/rm.md)
RM_HEAD = "generative"


def _finished(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pick(summary: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def stage_sft(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from .sft import demo_config, sft

    run_dir = out / "sft"
    done = _finished(run_dir) if resume else None
    if done is None:
        cfg = demo_config(ctx.get("base_model", str(out / "pretrain" / "final")), str(out))
        done = sft(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    ctx["sft_model"] = str(run_dir / "final")
    return _pick(done, ("heldout_fact_accuracy", "format_ok", "base_heldout_fact_accuracy", "base_format_ok",
                        "nshot_heldout_fact_accuracy", "nshot_format_ok", "seen_fact_accuracy",
                        "heldout_refusal_rate", "heldout_over_refusal_rate", "false_premise_correction_rate", "steps",
                        "seconds"))


def _generate(out: Path, name: str, model: str, seed: int, n: int, kinds: list[str] | None = None,
              sample_seed: int | None = None) -> Path:
    from ..generation import SamplingParams
    from ..runs import RunConfig
    from .generate import GenerateConfig, WorldPromptsSection, generate_batch

    cfg = GenerateConfig(run=RunConfig(name=name, root=str(out / "feedback")), model=model, prompts="world",
                         k=FEEDBACK_K, batch_size=64,
                         world=WorldPromptsSection(seed=seed, split="train", n=n, kinds=kinds,
                                                   sample_seed=seed if sample_seed is None else sample_seed),
                         sampling=SamplingParams(max_new_tokens=48, temperature=1.0, top_p=0.95, seed=seed))
    generate_batch(cfg, overwrite=True)
    return cfg.run.path / "batch.jsonl"


def stage_feedback(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from ..feedback.batchfile import read_batch
    from ..feedback.export import ExportRules, build_records, write_records
    from ..feedback.simulate import simulate
    from ..feedback.stats import agreement
    from ..feedback.store import Store

    folder = out / "feedback"
    prefs = folder / "preferences.jsonl"
    done = _finished(folder) if resume else None
    if done is None:
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "feedback.db"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
        store = Store.open(str(db))
        sft_model = ctx.get("sft_model", str(out / "sft" / "final"))
        sources = {"sft-samples": (sft_model, FEEDBACK_PROMPTS, None),
                   "sft-safety": (sft_model, SAFETY_PROMPTS, SAFETY_KINDS),
                   "world-candidates": ("world", WORLD_PROMPTS, None)}
        for batch, (model, n, kinds) in sources.items():
            # sft-safety draws its prompts with another sample seed: the first ones would repeat sft-samples'
            path = _generate(out, f"generate-{batch}", model, seed, n, kinds, seed + 1 if kinds else seed)
            store.add_batch(batch, list(read_batch(path)))
            simulate(store, batch, labelers=LABELERS, noise=LABELER_NOISE, seed=seed, world_seed=seed)
        labels = store.labels()
        records, report = build_records(labels, ExportRules(kinds=("ranking",)))
        write_records(records, prefs)
        ag = agreement(labels)
        done = {"prompts": sum(b.items for b in store.batches()), "responses": sum(b.responses for b in store.batches()),
                "labels": len(labels), "labelers": LABELERS, "labeler_noise": LABELER_NOISE,
                "exported_rankings": len(records), "kendall_tau_between_labelers": ag["kendall_tau"],
                "preferences": str(prefs), "db": str(db)}
        store.close()
        (folder / "summary.json").write_text(json.dumps(done, indent=2) + "\n")
    ctx["preferences"] = done["preferences"]
    return {k: v for k, v in done.items() if isinstance(v, (int, float))}


def stage_reward_model(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from ..data.preference import write_feedback
    from ..world import World
    from .rm import demo_config, train_rm, world_heldout_eval

    run_dir = out / "reward_model"
    done = _finished(run_dir) if resume else None
    if done is None:
        eval_path = out / "feedback" / "heldout_eval.jsonl"
        write_feedback(eval_path, world_heldout_eval(World(seed), RM_EVAL_PROMPTS, RM_EVAL_K, seed))
        cfg = demo_config(ctx.get("base_model", str(out / "pretrain" / "final")),
                          ctx.get("preferences", str(out / "feedback" / "preferences.jsonl")), str(eval_path), str(out),
                          head=RM_HEAD)
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
        done = train_rm(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    return _pick(done, ("head", "heldout_pair_accuracy", "knowledge_pair_accuracy", "format_pair_accuracy",
                        "heldout_pairs", "calibration_ece", "reward_mean", "reward_std", "train_prompts", "steps",
                        "seconds"))
