"""The SFT stage's evaluations on the built-in world: the base model before training, the tuned one during
and after (see :mod:`lmforge.eval.chat_eval` for the metrics)."""
from __future__ import annotations

import json
import time
from typing import Any

from ..eval.chat_eval import Suite, by_category, nshot_shots, over_refusal_rate, run_suites, world_suites
from ..runs import Run, atomic_write_text
from ..world import World

ALIASES = {"heldout_refusal_accuracy": "heldout_refusal_rate",
           "heldout_false_premise_accuracy": "false_premise_correction_rate"}


def _log(run: Run, step: int, records: list[dict[str, Any]], per_suite: int) -> None:
    seen: dict[str, int] = {}
    for r in records:
        seen[r["suite"]] = seen.get(r["suite"], 0) + 1
        if seen[r["suite"]] <= per_suite:
            run.log_sample(step, r["prompt"], r["completion"], suite=r["suite"], finished=r["finished"],
                           correct=r["correct"])


def _headline(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    """``heldout_fact_accuracy`` and ``format_ok`` (on the held-out fact prompts), with the prefix."""
    out = dict(metrics)
    if f"{prefix}heldout_fact_accuracy" in metrics:
        out[f"{prefix}format_ok"] = metrics[f"{prefix}heldout_fact_format_ok"]
    for old, new in ALIASES.items():
        if prefix + old in metrics:
            out[prefix + new] = metrics[prefix + old]
    return out


def baseline_eval(cfg, run: Run, model, tokenizer) -> dict[str, Any]:
    """The base model on the held-out fact prompts: zero-shot through the chat template (``base_*``) and
    k-shot in raw transcript form (``nshot_*``). Cached in ``baseline.json`` so a resumed run reuses it."""
    path = run.path / "baseline.json"
    if path.exists():
        return json.loads(path.read_text())
    if not (cfg.eval.baseline or cfg.eval.nshot):
        return {}
    t0 = time.time()
    world = World(cfg.data.world_seed)
    suites = [Suite("heldout_fact", world.eval_prompts("heldout", ["fact_qa"], n=cfg.eval.heldout_facts))]
    out: dict[str, Any] = {}
    kw = {"max_new_tokens": cfg.eval.max_new_tokens, "batch_size": cfg.eval.batch_size, "threads": cfg.eval.threads}
    if cfg.eval.baseline:
        metrics, records = run_suites(model, tokenizer, world, suites, mode="chat", prefix="base_", **kw)
        out.update(_headline(metrics, "base_"))
        out["base_heldout_fact_by_category"] = by_category(records, "base_heldout_fact")
        _log(run, 0, records, cfg.eval.samples)
    if cfg.eval.nshot:
        shots = nshot_shots(world, cfg.eval.nshot)
        metrics, records = run_suites(model, tokenizer, world, suites, mode="transcript", shots=shots,
                                      prefix="nshot_", **kw)
        out.update(_headline(metrics, "nshot_"))
        out["nshot_k"] = cfg.eval.nshot
        _log(run, 0, records, cfg.eval.samples)
    out["baseline_seconds"] = round(time.time() - t0, 2)
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    return out


def make_evaluate(cfg, run: Run, tokenizer):
    """The trainer's eval hook: a few held-out fact prompts during training, every suite at the end."""
    world = World(cfg.data.world_seed)
    during = [Suite("heldout_fact", world.eval_prompts("heldout", ["fact_qa"], n=cfg.eval.during))]
    full = world_suites(world, cfg.eval.heldout_facts, cfg.eval.seen_facts, cfg.eval.per_kind)
    kw = {"max_new_tokens": cfg.eval.max_new_tokens, "batch_size": cfg.eval.batch_size, "threads": cfg.eval.threads}

    def evaluate(model, step: int) -> dict[str, float]:
        if not run.main:
            return {}
        t0 = time.time()
        final = step >= cfg.train.steps
        metrics, records = run_suites(model, tokenizer, world, full if final else during, mode="chat", **kw)
        _log(run, step, records, cfg.eval.samples)
        out = _headline(metrics)
        if final:
            out["format_ok_all"] = sum(r["finished"] and ok for r, ok in _fmt(records)) / max(len(records), 1)
            out["heldout_fact_by_category"] = by_category(records, "heldout_fact")
            rate = over_refusal_rate(records)  # benign lookalikes refused (beside heldout_refusal_rate)
            if rate is not None:
                out["heldout_over_refusal_rate"] = rate
            out["eval_seconds"] = round(time.time() - t0, 2)
        return out

    return evaluate


def _fmt(records: list[dict[str, Any]]):
    from ..world.judge import RAMBLE

    for r in records:
        yield r, not RAMBLE.search(r["completion"])
