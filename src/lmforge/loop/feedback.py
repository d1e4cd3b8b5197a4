"""A round's feedback step: the round's batch in the feedback database, labelled by every configured source,
then every round's labels so far exported as preference data for the update.

The database is the store: the batch is named after the round (``<feedback.batch_prefix>-round-NNN``), so running the step again
finds it instead of adding a second one, and every source only labels what is still pending for it (simulated
labelers and the judge skip their finished assignments; assigning people again adds none), so no label is ever
made twice or replaced. Waiting for people is read from the database too (assignments done, the batch's
creation time for the deadline), so a loop can stop for a week and continue.

The export: rankings (one per label, each keeping its source) of all rounds' batches. The newest round's prompts
are split by a hash of the prompt into train and held-out (``feedback.heldout_fraction``, at least one prompt);
the held-out labels measure the reward model on the newest policy's responses, everything else trains except
earlier rounds' labels on those same prompts (which a second pass over the prompts, ``prompts.repeat``, brings).
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs import atomic_write_text


class WaitingForLabels(Exception):
    """The round's people have not reached the quorum or deadline yet; the loop stops here until run again."""


def batch_name(cfg, round_no: int) -> str:
    return f"{cfg.feedback.batch_prefix}-round-{round_no:03d}"


def open_store(cfg):
    from ..feedback.store import Store

    return Store.open(cfg.feedback.db or str(cfg.path / "feedback.db"))


def ensure_batch(store, name: str, batch_file: Path, mode: str):
    """The round's batch: loaded from ``batch_file`` the first time, found by name afterwards."""
    from ..feedback.batchfile import read_batch

    if any(b.name == name for b in store.batches()):
        return store.get_batch(name)
    return store.add_batch(name, list(read_batch(batch_file)), source=str(batch_file), mode=mode)


def human_status(store, batch: str, src) -> dict[str, Any]:
    """Assigned and labelled counts of the batch's human assignments, and whether the round may go on."""
    rows = [p for p in store.progress(batch=batch) if p.kind == "human"]
    assigned, done = sum(p.assigned for p in rows), sum(p.done for p in rows)
    created = store.get_batch(batch).created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    hours = (datetime.now(timezone.utc) - created).total_seconds() / 3600
    quorum = assigned > 0 and done >= src.quorum * assigned
    deadline = src.deadline_hours is not None and hours >= src.deadline_hours and done > 0
    return {"assigned": assigned, "done": done, "hours_since_batch": round(hours, 2), "quorum_reached": quorum,
            "deadline_passed": deadline, "ready": quorum or deadline}


def run_sources(cfg, store, batch: str, say) -> dict[str, Any]:
    """Every source labels the batch (pending work only); returns per-source counts. Raises
    :class:`WaitingForLabels` when people are not done and the config says not to wait."""
    out: dict[str, Any] = {}
    for n, src in enumerate(cfg.feedback.sources):
        key = f"{src.kind}-{n + 1}"
        if src.kind == "simulated":
            from ..feedback.simulate import simulate

            out[key] = simulate(store, batch, labelers=src.labelers, noise=src.noise, seed=src.seed + cfg.seed,
                                world_seed=cfg.prompts.world_seed)
        elif src.kind == "ai":
            from ..feedback.judge import default_rubric, judge_batch
            from ..feedback.judge.local import LocalBackend

            backend = LocalBackend.load(src.model, batch_size=src.batch_size)
            out[key] = judge_batch(store, batch, backend, rubric=default_rubric(), name=src.name,
                                   criteria=src.criteria)
        else:
            store.assign(batch, src.per_item, src.labelers)
            while True:
                status = human_status(store, batch, src)
                say(f"{batch}: people labelled {status['done']}/{status['assigned']} "
                    f"(quorum {src.quorum:.0%}; {status['hours_since_batch']} h since the batch)")
                if status["ready"]:
                    break
                if not src.wait:
                    db = cfg.feedback.db or str(cfg.path / "feedback.db")
                    raise WaitingForLabels(f"{batch} waits for labels: {status['done']}/{status['assigned']} done "
                                           f"(quorum {src.quorum:.0%}); label in the web app (lmforge label "
                                           f"serve --db {db} --loop {cfg.path}) and run lmforge loop again to "
                                           "continue")
                time.sleep(src.poll_seconds)
            out[key] = status
    return out


def is_heldout(key: str, fraction: float, seed: int) -> bool:
    h = int(hashlib.sha1(f"loop-heldout|{seed}|{key}".encode()).hexdigest()[:8], 16) / 16 ** 8
    return h < fraction


def export_round(cfg, store, round_no: int, folder: Path) -> dict[str, Any]:
    """``folder/train.jsonl`` and ``folder/heldout.jsonl`` (rankings; module doc) and their counts."""
    from ..feedback.export import ExportRules, build_records, write_records

    batches = [batch_name(cfg, r) for r in range(1, round_no + 1)]
    newest = batches[-1]
    labels = store.labels(batches)
    keys = sorted({lab.item_key for lab in labels if lab.batch == newest})
    if len(keys) < 2:
        raise InputError(f"batch {newest} has {len(keys)} labelled prompt(s); a round needs at least 2 (one is "
                         "held out to measure the reward model)", field="feedback.sources")
    held = {k for k in keys if is_heldout(k, cfg.feedback.heldout_fraction, cfg.seed)}
    if not held or len(held) == len(keys):  # at least one prompt held out, at least one to train on
        held = {min(keys, key=lambda k: hashlib.sha1(f"{cfg.seed}|{k}".encode()).hexdigest())}
    held_labels = [lab for lab in labels if lab.batch == newest and lab.item_key in held]
    # a held-out prompt's labels from earlier rounds stay out of training too (a second pass over the prompts)
    train_labels = [lab for lab in labels if lab.item_key not in held]
    rules = ExportRules(kinds=("ranking",))
    train, _ = build_records(train_labels, rules)
    heldout, _ = build_records(held_labels, rules)
    folder.mkdir(parents=True, exist_ok=True)
    write_records(train, folder / "train.jsonl")
    write_records(heldout, folder / "heldout.jsonl")
    by_source: dict[str, int] = {}
    for lab in labels:
        if lab.batch == newest:
            by_source[f"{lab.labeler_kind}:{lab.labeler}"] = by_source.get(f"{lab.labeler_kind}:{lab.labeler}", 0) + 1
    return {"batches": batches, "labels_all_rounds": len(labels),
            "labels_this_round": sum(by_source.values()), "labels_by_source": by_source,
            "label_ids_this_round": sorted(lab.label_id for lab in labels if lab.batch == newest),
            "heldout_prompts": len(held), "train_records": len(train), "heldout_records": len(heldout),
            "train": str(folder / "train.jsonl"), "heldout": str(folder / "heldout.jsonl")}


def feedback_step(cfg, round_no: int, round_dir: Path, say) -> dict[str, Any]:
    folder = round_dir / "feedback"
    store = open_store(cfg)
    try:
        name = batch_name(cfg, round_no)
        info = ensure_batch(store, name, round_dir / "generate" / "batch.jsonl", cfg.feedback.mode)
        sources = run_sources(cfg, store, name, say)
        summary = {"batch": name, "prompts": info.items, "responses": info.responses, "sources": sources,
                   **export_round(cfg, store, round_no, folder)}
    finally:
        store.close()
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
