"""How far an AI judge agrees with the other labelers (human, simulated, imported) of the same prompts.

Each row compares the judge with one labeler, or with every labeler of one kind pooled: Kendall's tau-b between
the two rankings of each shared prompt (mean over prompts), Krippendorff's alpha (ordinal) on the rank
positions and (interval) on each criterion's 1-7 scores, where a unit is one response rated by the judge and
that labeler. The same statistics :mod:`lmforge.feedback.stats` reports for all labelers together.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ...data.preference import CRITERIA
from ..agreement import krippendorff_alpha, mean_pairwise_tau
from ..export import mean_positions
from ..labels import LabelRecord


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def pair_agreement(pairs: list[tuple[LabelRecord, LabelRecord]]) -> dict[str, Any]:
    """Agreement over (judge label, other label) pairs of the same prompt."""
    positions = [(mean_positions(a), mean_positions(b)) for a, b in pairs]
    tau, n_tau = mean_pairwise_tau([pa, pb] for pa, pb in positions)
    out: dict[str, Any] = {"prompts": len({a.item_id for a, _ in pairs}), "kendall_tau": _round(tau),
                           "tau_pairs": n_tau}
    out["rank_alpha"] = _round(krippendorff_alpha([[pa[i], pb[i]] for pa, pb in positions
                                                   for i in range(len(pa))], "ordinal"))
    scored = [(a, b) for a, b in pairs if a.scores is not None and b.scores is not None]
    out["scored_prompts"] = len(scored)
    out["alpha"] = {c: _round(krippendorff_alpha([[a.scores[i][c], b.scores[i][c]] for a, b in scored
                                                  for i in range(len(a.responses))], "interval"))
                    for c in CRITERIA}
    return out


def judge_agreement(labels: Iterable[LabelRecord], judge: str) -> list[dict[str, Any]]:
    """One row per other labeler of the judge's prompts, plus one per labeler kind with several labelers."""
    labels = list(labels)
    mine = {r.item_id: r for r in labels if r.labeler == judge}
    by_labeler: dict[str, list[tuple[LabelRecord, LabelRecord]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for r in labels:
        if r.labeler != judge and r.item_id in mine:
            by_labeler[r.labeler].append((mine[r.item_id], r))
            kinds[r.labeler] = r.labeler_kind
    rows = [{"with": name, "kind": kinds[name], **pair_agreement(by_labeler[name])} for name in sorted(by_labeler)]
    by_kind: dict[str, list[str]] = defaultdict(list)
    for name, kind in kinds.items():
        by_kind[kind].append(name)
    for kind in sorted(by_kind):
        names = by_kind[kind]
        if len(names) > 1:
            rows.append({"with": f"all {kind} ({len(names)})", "kind": kind,
                         **pair_agreement([p for n in names for p in by_labeler[n]])})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The agreement rows as text lines for the terminal."""
    lines = []
    for r in rows:
        alphas = " ".join(f"{c[:5]}={r['alpha'][c]}" for c in CRITERIA)
        lines.append(f"  vs {r['with']:<18} {r['kind']:<10} prompts={r['prompts']:<4} tau={r['kendall_tau']} "
                     f"rank-alpha={r['rank_alpha']}  score alpha: {alphas}")
    return lines
