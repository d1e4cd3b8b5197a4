"""``lmforge demo``: every stage that exists, end to end, on the built-in world, with no download.

Each stage writes its own run folder under ``--out`` and adds its headline numbers to
``<out>/summary.json`` (rewritten after every stage, so a crash keeps what finished). ``--resume`` skips
stages whose run finished and continues an interrupted one from its last checkpoint.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..runs import RunConfig, atomic_write_text
from .demo_stages import _finished, stage_feedback, stage_reward_model, stage_sft

# The measured demo recipe for pre-training (see docs/demo.md for the experiments behind it).
PRETRAIN_OVERRIDES = dict(steps=1500, batch_size=4, warmup_steps=50, eval_every=500, log_every=25)


def stage_pretrain(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from ..models.load import load_causal_lm, load_tokenizer
    from ..world import World
    from ..eval.probes import capital_recall
    from .pretrain import PretrainConfig, pretrain

    run_dir = out / "pretrain"
    done = _finished(run_dir) if resume else None
    if done is None:
        cfg = PretrainConfig(run=RunConfig(name="pretrain", root=str(out)))
        cfg = cfg.model_copy(update={
            "train": cfg.train.model_copy(update={**PRETRAIN_OVERRIDES, "seed": seed}),
            "data": cfg.data.model_copy(update={"world_seed": seed}),
        })
        done = pretrain(cfg, resume=resume and run_dir.exists(), overwrite=not resume)
    final = str(run_dir / "final")
    ctx["base_model"] = final
    world = World(seed)
    model, tok = load_causal_lm(final), load_tokenizer(final)
    return {
        "val_loss": done["val_loss"], "val_bpb": done["val_bpb"], "unigram_entropy": done["unigram_entropy"],
        "tokens": done["tokens"], "steps": done["steps"], "params": done["params"],
        "tokens_per_s": round(done["tokens_per_s"], 1), "seconds": done["seconds"],
        "seen_capital_recall": capital_recall(model, tok, world.seen_countries),
        "heldout_capital_recall": capital_recall(model, tok, world.heldout_countries),
        "samples": str(run_dir / "samples.jsonl"),
    }


STAGES: dict[str, Callable[[Path, int, bool, dict[str, Any]], dict[str, Any]]] = {
    "pretrain": stage_pretrain,
    "sft": stage_sft,
    "feedback": stage_feedback,
    "reward_model": stage_reward_model,
}


def demo(out: Path, seed: int = 0, resume: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary_path = out / "summary.json"
    summary: dict[str, Any] = {"stages": {}, "seconds_total": 0.0, "seed": seed}
    if resume and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary.setdefault("stages", {})
    ctx: dict[str, Any] = {}
    for name, fn in STAGES.items():
        if only and name not in only:
            continue
        ts = time.time()
        result = fn(out, seed, resume, ctx)
        result.setdefault("seconds", round(time.time() - ts, 2))
        summary["stages"][name] = result
        summary["seconds_total"] = round(time.time() - t0, 2)
        atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    return summary
