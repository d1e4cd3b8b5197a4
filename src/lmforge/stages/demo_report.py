"""The demo's last stage: one ``lmforge eval``-style report comparing SFT, DPO and PPO, built from the answers
the ``dpo`` and ``ppo`` stages already generated for their comparison with SFT (``eval_samples.jsonl``: the
same held-out prompts for all three), so it costs seconds, not another round of generation. Each answer is
judged again by the world's checker to get per-suite counts, hence the 95 % intervals; the training curves of
every stage come from their ``metrics.jsonl``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..eval.hhh import proportion, world_figures
from ..eval.policy_compare import heldout_mix
from ..eval.report import write_report
from .demo_align import EVAL_PROMPTS


def _judged(world, by_id: dict[str, dict], rows: list[dict], column: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        item = by_id[r["id"]]
        text = r[column]
        out.append({"suite": r["suite"], "id": r["id"], "prompt": r["prompt"], "completion": text,
                    "correct": world.check_answer(item, text)})
    return out


def stage_report(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from ..world import World

    t0 = time.time()
    world = World(seed)
    by_id = {it["id"]: it for s in heldout_mix(world, EVAL_PROMPTS, seed) for it in s.items}
    results, sft_done = [], False
    for stage in ("dpo", "ppo"):
        path = out / stage / "eval_samples.jsonl"
        if not path.exists():
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not sft_done:
            sft = _judged(world, by_id, rows, "sft")
            results.append({"name": "sft", "model": str(out / "sft" / "final"), "figures":
                            [f.as_dict() for f in world_figures(sft)], "samples": sft})
            sft_done = True
        answers = _judged(world, by_id, rows, "policy")
        figures = world_figures(answers)
        wins = [1.0 if r["winner"] == "policy" else 0.5 if r["winner"] == "tie" else 0.0 for r in rows]
        figures.append(proportion("helpful", "win_rate_vs_sft", wins, "world"))
        results.append({"name": stage, "model": str(out / stage / "final"), "figures":
                        [f.as_dict() for f in figures], "samples": answers})
    if not results:
        return {"skipped": "no dpo or ppo evaluation to report", "seconds": round(time.time() - t0, 2)}
    report = write_report(out / "report", results, [out])
    return {"report": str(report), "models": [r["name"] for r in results], "seconds": round(time.time() - t0, 2)}
