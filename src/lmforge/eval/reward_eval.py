"""Reward-model evaluation: held-out pairwise accuracy (overall, per criterion, per source) and calibration.

Every held-out record becomes pairs the labels order (``better``, ``worse``):

- a pair as given; a ranking's C(K,2) pairs (tied pairs and identical texts are not scored); a good and a bad
  binary-labelled response of the same prompt — all about ``criterion`` (absent: the overall reward);
- two responses of the same prompt with different Likert ratings on a criterion — one pair per criterion.

A pair is scored with its criterion's head when the model has one, else with the overall reward; it is right
when the better response gets the higher score (a tie counts half). ``heldout_pair_accuracy`` is over the
overall pairs; ``criterion_heads_on_overall_pairs`` scores the overall pairs with each criterion head alone
(scalar criterion heads or per-criterion verdicts), split into knowledge / format pairs where typed. Calibration bins the overall pairs by reward margin ``|Δr|`` and compares each bin's accuracy
with the Bradley–Terry prediction ``σ(|Δr|)`` (a reliability diagram; ECE is the count-weighted gap).

Where the responses carry candidate types (the built-in world's held-out evaluation writes
``meta.candidate_types``), each overall pair is a *knowledge* pair — one side states a wrong value, gives a wrong
correction, accepts or ignores a false premise, or lists too few entities (:data:`KNOWLEDGE_TYPES`: telling the
two apart needs the facts) — or a *format* pair (everything else: hedges, refusals, repetition, rambling,
truncation, irrelevant text); ``knowledge_pair_accuracy`` and ``format_pair_accuracy`` are over those (None
without types), for either head.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.reward_data import Group
from ..models.reward_scores import score_encoded

OVERALL = "overall"
KNOWLEDGE_TYPES = frozenset({"wrong_entity", "wrong_attribute", "wrong_correction", "accepts_premise",
                             "ignores_premise", "too_few"})  # lmforge.world.responses candidate types


def pair_category(better: str | None, worse: str | None) -> str | None:
    """``knowledge`` when either side is a knowledge-error candidate, ``format`` when both are typed and
    neither is, None when a side has no type."""
    if better in KNOWLEDGE_TYPES or worse in KNOWLEDGE_TYPES:
        return "knowledge"
    return "format" if better is not None and worse is not None else None


@dataclass(frozen=True)
class EvalPair:
    group: int
    better: int
    worse: int
    criterion: str | None
    source: str
    category: str | None = None  # knowledge | format | None (untyped responses)


def eval_pairs(groups: list[Group]) -> list[EvalPair]:
    out: list[EvalPair] = []
    for gi, g in enumerate(groups):
        out += [EvalPair(p.group, p.better, p.worse, p.criterion, p.source,
                         pair_category(g.types.get(p.better), g.types.get(p.worse))) for p in _group_pairs(gi, g)]
    return out


def _group_pairs(gi: int, g: Group) -> list[EvalPair]:
    """The pairs one group's records order (uncategorised)."""
    out: list[EvalPair] = []
    for n, (c, r, *_rest) in enumerate(g.pairs):
        out.append(EvalPair(gi, c, r, g.criteria.get(f"p{n}"), g.sources.get(f"p{n}", "unknown")))
    for n, (order, ties, *_rest) in enumerate(g.rankings):
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                if ties[i] != ties[j] and order[i] != order[j]:
                    out.append(EvalPair(gi, order[i], order[j], g.criteria.get(f"r{n}"),
                                        g.sources.get(f"r{n}", "unknown")))
    good = [(i, n) for n, (i, y, *_) in enumerate(g.binary) if y]
    bad = [(i, n) for n, (i, y, *_) in enumerate(g.binary) if not y]
    for i, n in good:
        for j, _ in bad:
            if i != j:
                out.append(EvalPair(gi, i, j, g.criteria.get(f"b{n}"), g.sources.get(f"b{n}", "unknown")))
    for a in range(len(g.ratings)):
        for b in range(a + 1, len(g.ratings)):
            (ia, sa, src), (ib, sb, _) = g.ratings[a], g.ratings[b]
            if ia == ib:
                continue
            for crit in sa.keys() & sb.keys():
                if sa[crit] != sb[crit]:
                    better, worse = (ia, ib) if sa[crit] > sb[crit] else (ib, ia)
                    out.append(EvalPair(gi, better, worse, crit, src))
    return out


def group_scores(model, groups: list[Group], pad_id: int, batch_size: int = 32,
                 chunk_tokens: int | None = None) -> list[torch.Tensor]:
    """Scores of every response of every group (each distinct (prompt, response) scored once)."""
    rows = [e for g in groups for e in g.encoded]
    flat = score_encoded(model, rows, pad_id, batch_size, chunk_tokens)
    out, k = [], 0
    for g in groups:
        out.append(flat[k:k + len(g.encoded)])
        k += len(g.encoded)
    return out


def _acc(rights: list[float]) -> float | None:
    return sum(rights) / len(rights) if rights else None


def pair_accuracy(pairs: list[EvalPair], scores: list[torch.Tensor] | None, criteria: list[str],
                  bins: int = 10, diffs: list[float] | None = None) -> dict[str, Any]:
    """Accuracy overall / per criterion / per source, and the calibration table of the overall pairs. The
    margin of a pair is ``s[better, head] - s[worse, head]`` of its group's ``scores``, or given as ``diffs``
    (one per pair: a pairwise verdict's log-odds that the better response wins)."""
    by_crit: dict[str, list[float]] = defaultdict(list)
    by_src: dict[str, list[float]] = defaultdict(list)
    by_cat: dict[str, list[float]] = defaultdict(list)
    margins: list[tuple[float, float]] = []  # (|Δr|, right) for overall pairs
    by_head: dict[tuple[str, str], list[float]] = defaultdict(list)  # (criterion head, category) on overall pairs
    for n, p in enumerate(pairs):
        head = 1 + criteria.index(p.criterion) if p.criterion in criteria else 0
        if diffs is not None:
            d = diffs[n]
        else:
            s = scores[p.group]
            d = float(s[p.better, head] - s[p.worse, head])
        right = 1.0 if d > 0 else 0.5 if d == 0 else 0.0
        name = p.criterion or OVERALL
        by_crit[name].append(right)
        if p.criterion is None:
            by_src[p.source].append(right)
            margins.append((abs(d), right))
            if p.category is not None:
                by_cat[p.category].append(right)
            for h, crit in enumerate(criteria if diffs is None else [], start=1):  # each head alone
                dh = float(scores[p.group][p.better, h] - scores[p.group][p.worse, h])
                rh = 1.0 if dh > 0 else 0.5 if dh == 0 else 0.0
                by_head[(crit, OVERALL)].append(rh)
                if p.category is not None:
                    by_head[(crit, p.category)].append(rh)
    overall = by_crit.get(OVERALL, [])
    return {
        "heldout_pair_accuracy": _acc(overall),
        "heldout_pairs": len(overall),
        "accuracy_by_criterion": {k: round(_acc(v), 4) for k, v in sorted(by_crit.items())},
        "pairs_by_criterion": {k: len(v) for k, v in sorted(by_crit.items())},
        "accuracy_by_source": {k: round(_acc(v), 4) for k, v in sorted(by_src.items())},
        "knowledge_pair_accuracy": _acc(by_cat.get("knowledge", [])),
        "format_pair_accuracy": _acc(by_cat.get("format", [])),
        "pairs_by_category": {k: len(v) for k, v in sorted(by_cat.items())},
        # each criterion head (or verdict) alone on the overall pairs: which criterion orders what
        "criterion_heads_on_overall_pairs": {c: {cat: round(_acc(by_head[(c, cat)]), 4) for cat in
                                                 (OVERALL, "knowledge", "format") if by_head.get((c, cat))}
                                             for c in criteria if by_head.get((c, OVERALL))},
        "calibration": calibration(margins, bins),
    }


def calibration(margins: list[tuple[float, float]], bins: int = 10) -> dict[str, Any]:
    """Equal-count bins of ``|Δr|``: per bin the mean margin, accuracy, and predicted ``σ(|Δr|)``; ECE."""
    if not margins:
        return {"bins": [], "ece": None}
    ordered = sorted(margins)
    n = len(ordered)
    rows, ece = [], 0.0
    for b in range(min(bins, n)):
        part = ordered[b * n // min(bins, n):(b + 1) * n // min(bins, n)]
        if not part:
            continue
        m = sum(x for x, _ in part) / len(part)
        acc = sum(y for _, y in part) / len(part)
        pred = sum(1 / (1 + math.exp(-x)) for x, _ in part) / len(part)
        rows.append({"margin_lo": round(part[0][0], 4), "margin_hi": round(part[-1][0], 4),
                     "mean_margin": round(m, 4), "accuracy": round(acc, 4), "predicted": round(pred, 4),
                     "pairs": len(part)})
        ece += len(part) / n * abs(acc - pred)
    return {"bins": rows, "ece": round(ece, 4)}


def plot_calibration(table: dict[str, Any], path: Path, title: str = "reward-model calibration") -> Path | None:
    """Accuracy against reward margin (points, per bin) with the Bradley–Terry curve σ(|Δr|)."""
    if not table.get("bins"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["mean_margin"] for r in table["bins"]]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    top = max(xs) * 1.1 + 1e-6
    grid = [top * i / 100 for i in range(101)]
    ax.plot(grid, [1 / (1 + math.exp(-x)) for x in grid], "--", color="gray", label="σ(|Δr|) (calibrated)")
    ax.plot(xs, [r["accuracy"] for r in table["bins"]], "o-", label="held-out accuracy")
    ax.set_xlabel("reward margin |Δr| (bin mean)")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(f"{title} (ECE {table['ece']:.3f})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run_path: Path, result: dict[str, Any]) -> dict[str, str]:
    """``eval_report.json`` and ``calibration.png`` in the run folder."""
    run_path = Path(run_path)
    (run_path / "eval_report.json").write_text(json.dumps(result, indent=2) + "\n")
    plot = plot_calibration(result["calibration"], run_path / "calibration.png")
    return {"eval_report": str(run_path / "eval_report.json"), **({"calibration_plot": str(plot)} if plot else {})}
