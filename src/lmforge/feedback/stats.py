"""Throughput and inter-annotator agreement of stored labels (the admin page and ``lmforge label stats``).

Agreement is computed over prompts labeled by two or more labelers:

- Kendall's tau-b between every two labelers' rankings of the same prompt, averaged over all such pairs;
- Krippendorff's alpha per criterion (a unit is one response; its values are the labelers' 1-7 scores),
  with the interval and the ordinal difference;
- alpha on the overall scores (interval, ordinal; rank+overall batches), on the rank positions (ordinal), on
  the good/bad verdicts (nominal; good-bad batches) and on the unsafe flags (nominal).

Where a figure is undefined, ``tau_note`` / ``alpha_note`` say why (the admin page shows them beside "n/a").
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
from .labels import LabelRecord, mode_ranks


def _by_item(labels: Iterable[LabelRecord]) -> list[list[LabelRecord]]:
    groups: dict[int, list[LabelRecord]] = defaultdict(list)
    for rec in labels:
        groups[rec.item_id].append(rec)
    return list(groups.values())


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _units(shared: list[list[LabelRecord]], value) -> list[list[float]]:  # noqa: ANN001
    """One unit per response of a shared prompt: the values ``value(record, i)`` of its labelers (None: none)."""
    return [[v for r in recs if (v := value(r, i)) is not None] for recs in shared
            for i in range(len(recs[0].responses))]


def agreement(labels: Iterable[LabelRecord]) -> dict[str, Any]:
    """Kendall's tau and Krippendorff's alpha (see the module doc); None where undefined, with the reason."""
    shared = [recs for recs in _by_item(labels) if len(recs) >= 2]
    ranked = [recs for recs in shared if mode_ranks(recs[0].mode)]
    tau, pairs = mean_pairwise_tau([mean_positions(r) for r in recs] for recs in ranked)
    out: dict[str, Any] = {"prompts": len(shared), "kendall_tau": _rounded(tau), "tau_pairs": pairs, "alpha": {}}
    for c in CRITERIA:
        units = _units(shared, lambda r, i, c=c: r.scores[i][c] if r.scores is not None else None)
        out["alpha"][c] = {m: _rounded(krippendorff_alpha(units, m)) for m in ("interval", "ordinal")}
    units = _units(shared, lambda r, i: r.overall[i] if r.overall is not None else None)
    out["alpha"]["overall"] = {m: _rounded(krippendorff_alpha(units, m)) for m in ("interval", "ordinal")}
    units = _units(ranked, lambda r, i: mean_positions(r)[i])
    out["alpha"]["rank"] = {"ordinal": _rounded(krippendorff_alpha(units, "ordinal"))}
    units = _units(shared, lambda r, i: int(r.good[i]) if r.good is not None else None)
    out["alpha"]["good"] = {"nominal": _rounded(krippendorff_alpha(units, "nominal"))}
    units = _units(shared, lambda r, i: int(r.unsafe[i]))
    out["alpha"]["unsafe"] = {"nominal": _rounded(krippendorff_alpha(units, "nominal"))}
    out["tau_note"] = _tau_note(shared, ranked, pairs)
    # why an alpha reads n/a (the page shows it when one of its rows does)
    out["alpha_note"] = NEEDS_TWO if not shared else (
        "n/a: that field has no two labelers' values on one response, or every value given is the same (alpha "
        "measures agreement beyond chance: undefined without variation)")
    return out


NEEDS_TWO = "no figure yet: agreement needs two labelers on the same prompt (assign each prompt to 2 or more)"


def _tau_note(shared: list[list[LabelRecord]], ranked: list[list[LabelRecord]], pairs: int) -> str | None:
    if pairs:
        return None
    if not shared:
        return NEEDS_TWO
    if not ranked:
        return "n/a: this batch's labelers do not rank (good-bad)"
    return ("n/a: on every shared prompt a labeler tied all the responses, and tau needs two orderings to "
            "compare")


def alpha_rows(mode: str, labels: Iterable[LabelRecord]) -> list[str]:
    """The alpha table's rows for a batch: what its mode asks for, plus scores some labelers gave anyway."""
    labels = list(labels)
    rows = ["rank"] if mode_ranks(mode) else ["good"]
    if mode == "rank+overall" or any(r.overall is not None for r in labels):
        rows.append("overall")
    if mode == "rank+criteria" or any(r.scores is not None for r in labels):
        rows += CRITERIA
    return [*rows, "unsafe"]


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
