"""Throughput and inter-annotator agreement of stored labels (the admin page and ``lmforge label stats``).

Agreement is computed over prompts labeled by two or more labelers:

- Kendall's tau-b between every two labelers' rankings of the same prompt, averaged over all such pairs;
- Krippendorff's alpha per criterion (a unit is one response; its values are the labelers' 1-7 scores),
  with the interval and the ordinal difference;
- alpha on the rank positions (ordinal) and on the unsafe flags (nominal).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..data.preference import CRITERIA
from .agreement import krippendorff_alpha, mean_pairwise_tau
from .db import utcnow
from .export import mean_positions
from .labels import LabelRecord


def _by_item(labels: Iterable[LabelRecord]) -> list[list[LabelRecord]]:
    groups: dict[int, list[LabelRecord]] = defaultdict(list)
    for rec in labels:
        groups[rec.item_id].append(rec)
    return list(groups.values())


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def agreement(labels: Iterable[LabelRecord]) -> dict[str, Any]:
    """Kendall's tau and Krippendorff's alpha (see the module doc); None where undefined."""
    shared = [recs for recs in _by_item(labels) if len(recs) >= 2]
    tau, pairs = mean_pairwise_tau([mean_positions(r) for r in recs] for recs in shared)
    out: dict[str, Any] = {"prompts": len(shared), "kendall_tau": _rounded(tau), "tau_pairs": pairs, "alpha": {}}
    for c in CRITERIA:
        units = [[r.scores[i][c] for r in recs if r.scores is not None]
                 for recs in shared for i in range(len(recs[0].responses))]
        out["alpha"][c] = {m: _rounded(krippendorff_alpha(units, m)) for m in ("interval", "ordinal")}
    rank_units = [[mean_positions(r)[i] for r in recs] for recs in shared for i in range(len(recs[0].responses))]
    out["alpha"]["rank"] = {"ordinal": _rounded(krippendorff_alpha(rank_units, "ordinal"))}
    unsafe_units = [[int(r.unsafe[i]) for r in recs] for recs in shared for i in range(len(recs[0].responses))]
    out["alpha"]["unsafe"] = {"nominal": _rounded(krippendorff_alpha(unsafe_units, "nominal"))}
    return out


def throughput(labels: Iterable[LabelRecord], now: datetime | None = None) -> list[dict[str, Any]]:
    """Per labeler: labels in all, in the last hour and day, and the median seconds from opening a prompt to
    submitting its label (labels whose prompt was never opened in the web app are not timed)."""
    now = now or utcnow()
    per: dict[str, list[LabelRecord]] = defaultdict(list)
    for rec in labels:
        per[rec.labeler].append(rec)
    rows = []
    for name in sorted(per):
        recs = per[name]
        times = [(r.created_at - r.opened_at).total_seconds() for r in recs
                 if r.opened_at is not None and r.created_at >= r.opened_at]
        rows.append({"labeler": name, "kind": recs[0].labeler_kind, "labels": len(recs),
                     "last_hour": sum(r.created_at >= now - timedelta(hours=1) for r in recs),
                     "last_day": sum(r.created_at >= now - timedelta(days=1) for r in recs),
                     "median_seconds": round(statistics.median(times), 1) if times else None,
                     "revised": sum(r.revision > 1 for r in recs)})
    return rows
