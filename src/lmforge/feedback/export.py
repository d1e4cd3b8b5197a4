"""Export stored labels as :mod:`lmforge.data.preference` records, the format every trainer here reads.

Rules (also in ``lmforge label export --help``):

- ``ranking``: one record per label, exactly as the labeler ordered the K responses (``source`` is
  ``<kind>:<labeler>``, e.g. ``human:ana``, ``ai:judge``, ``simulated:sim-1``; ``ties`` as labeled).
- ``pair``: the consensus of all labelers of a prompt by mean rank (Borda; tied responses share the mean of
  their positions). Every two responses whose mean ranks differ make a pair, the better mean rank chosen;
  ``margin`` is the difference in mean rank, ``meta.agreement`` the fraction of labelers who put ``chosen``
  strictly above ``rejected``. Pairs with equal mean ranks (a tied consensus) are skipped and counted, as
  are pairs below ``min_agreement`` and pairs of identical texts. ``source`` names the labeler kinds
  (``human``, ``ai+human``, ...).
- ``likert``: one record per response with the median score per criterion over the labelers who scored it
  (scale [1, 7]; the median of an even count is the mean of the middle two), and ``overall``, the median
  overall score, in rank+overall batches.
- ``binary``: one record per response: bad if any labeler flagged it unsafe; otherwise, in a good-bad batch,
  the majority verdict (an even split makes no record); otherwise good when its overall score (the median
  overall score, or the mean of the five criterion medians) is at least ``good_threshold``. Responses nobody
  scored, judged or flagged make no record.
- A good-bad batch has no ranking: its labels make ``binary`` records only (no ranking, pair or rewrite).
- ``rewrite``: a labeler's rewritten better answer becomes a pair, the rewrite chosen over that labeler's
  best-ranked original (skipped when the texts are the same).
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..data.preference import (
    CRITERIA,
    Binary,
    Feedback,
    Likert,
    Pair,
    Ranking,
    write_feedback,
)
from ..errors import InputError
from .labels import LabelRecord, mode_ranks

KINDS = ("ranking", "pair", "likert", "binary", "rewrite")
FORMATS = ("jsonl", "hf")


@dataclass(frozen=True)
class ExportRules:
    kinds: tuple[str, ...] = KINDS
    good_threshold: float = 5.0
    min_agreement: float = 0.0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise InputError(f"unknown export kind(s) {', '.join(bad)} (use {', '.join(KINDS)})", field="kinds")
        if not 1 <= self.good_threshold <= 7:
            raise InputError(f"good threshold must be within [1, 7], got {self.good_threshold}",
                             field="good_threshold")
        if not 0 <= self.min_agreement <= 1:
            raise InputError(f"min agreement must be within [0, 1], got {self.min_agreement}",
                             field="min_agreement")


@dataclass
class ExportReport:
    counts: Counter = field(default_factory=Counter)  # records written per type
    prompts: int = 0
    labels: int = 0
    tied_pairs_skipped: int = 0
    low_agreement_pairs_skipped: int = 0
    identical_pairs_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"prompts": self.prompts, "labels": self.labels, **{f"{k} records": v for k, v in self.counts.items()},
                "tied pairs skipped": self.tied_pairs_skipped,
                "low-agreement pairs skipped": self.low_agreement_pairs_skipped,
                "identical-text pairs skipped": self.identical_pairs_skipped}


def mean_positions(rec: LabelRecord) -> list[float]:
    """Position per response (0 = best); a tie group shares the mean of the positions it occupies."""
    pos = {r: float(p) for p, r in enumerate(rec.ranking)}
    for group in rec.ties:
        avg = sum(pos[i] for i in group) / len(group)
        for i in group:
            pos[i] = avg
    return [pos[i] for i in range(len(rec.responses))]


def _base(rec: LabelRecord) -> dict:
    return {"prompt": rec.prompt}


def _item_records(recs: list[LabelRecord], rules: ExportRules, report: ExportReport) -> list[Feedback]:
    first = recs[0]
    texts = first.responses
    k = len(texts)
    meta = {"batch": first.batch, "item": first.item_key}
    if first.item_meta.get("split"):  # the world's split, kept apart from the trainers' own ``split`` field
        meta["world_split"] = first.item_meta["split"]
    item_id = f"{first.batch}/{first.item_key}"
    out: list[Feedback] = []
    ranked = mode_ranks(first.mode)  # a good-bad label's ranking is only its verdicts, stored as two levels
    if "ranking" in rules.kinds and ranked:
        out += [Ranking(**_base(r), id=f"{item_id}/{r.labeler}", responses=texts, ranking=r.ranking, ties=r.ties,
                        source=r.source, labeler=r.labeler, meta={**meta, "unsafe": r.unsafe}) for r in recs]
    kinds = "+".join(sorted({r.labeler_kind for r in recs}))
    if "pair" in rules.kinds and ranked:
        positions = [mean_positions(r) for r in recs]
        mean = [sum(p[i] for p in positions) / len(recs) for i in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                if abs(mean[i] - mean[j]) < 1e-9:
                    report.tied_pairs_skipped += 1
                    continue
                better, worse = (i, j) if mean[i] < mean[j] else (j, i)
                agreement = sum(p[better] < p[worse] for p in positions) / len(recs)
                if agreement < rules.min_agreement:
                    report.low_agreement_pairs_skipped += 1
                    continue
                if texts[better] == texts[worse]:
                    report.identical_pairs_skipped += 1
                    continue
                out.append(Pair(**_base(first), id=f"{item_id}/{better}>{worse}", chosen=texts[better],
                                rejected=texts[worse], margin=round(mean[worse] - mean[better], 6), source=kinds,
                                meta={**meta, "agreement": round(agreement, 6), "labelers": len(recs)}))
    scored = [r for r in recs if r.scores is not None]
    medians = [{c: float(statistics.median(r.scores[i][c] for r in scored)) for c in CRITERIA} if scored else None
               for i in range(k)]
    rated = [r for r in recs if r.overall is not None]
    overall_med = [float(statistics.median(r.overall[i] for r in rated)) if rated else None for i in range(k)]
    judged = [r for r in recs if r.good is not None]
    for i in range(k):
        likert = {**(medians[i] or {}), **({"overall": overall_med[i]} if overall_med[i] is not None else {})}
        if "likert" in rules.kinds and likert:
            out.append(Likert(**_base(first), id=f"{item_id}/{i}", response=texts[i], scores=likert,
                              scale=(1, 7), source=kinds, meta={**meta, "labelers": len(scored or rated)}))
        if "binary" in rules.kinds:
            unsafe_votes = sum(r.unsafe[i] for r in recs)
            good_votes = sum(r.good[i] for r in judged)
            if unsafe_votes:
                good, why = False, {"unsafe_votes": unsafe_votes}
            elif judged:
                if 2 * good_votes == len(judged):
                    continue
                good, why = 2 * good_votes > len(judged), {"good_votes": good_votes, "labelers": len(judged)}
            elif overall_med[i] is not None or medians[i] is not None:
                overall = overall_med[i] if overall_med[i] is not None else sum(medians[i].values()) / len(CRITERIA)
                good, why = overall >= rules.good_threshold, {"overall": round(overall, 4)}
            else:
                continue
            out.append(Binary(**_base(first), id=f"{item_id}/{i}", response=texts[i], label=good, source=kinds,
                              meta={**meta, **why}))
    if "rewrite" in rules.kinds and ranked:
        for r in recs:
            best = texts[r.ranking[0]]
            if r.rewrite and r.rewrite != best:
                out.append(Pair(**_base(r), id=f"{item_id}/{r.labeler}/rewrite", chosen=r.rewrite, rejected=best,
                                source=r.source, labeler=r.labeler, meta={**meta, "rewrite": True}))
    return out


def build_records(labels: Iterable[LabelRecord], rules: ExportRules = ExportRules()
                  ) -> tuple[list[Feedback], ExportReport]:
    """Preference records from stored labels (grouped by prompt), and what was counted or skipped."""
    by_item: dict[int, list[LabelRecord]] = defaultdict(list)
    for rec in labels:
        by_item[rec.item_id].append(rec)
    report = ExportReport()
    records: list[Feedback] = []
    for recs in by_item.values():
        report.prompts += 1
        report.labels += len(recs)
        records += _item_records(recs, rules, report)
    report.counts.update(r.type for r in records)
    return records, report


def write_records(records: list[Feedback], out: str | Path, fmt: str = "jsonl") -> list[Path]:
    """``jsonl``: one file mixing the types. ``hf``: a folder of saved Hugging Face datasets, one per type
    (``OUT/pair``, ``OUT/ranking``, ...), since a dataset has a single schema. Returns what was written."""
    out = Path(out)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (use {' or '.join(FORMATS)})", field="format")
    if not records:
        raise InputError("nothing to export: no labels match (label some prompts first)", field="batches")
    # checked before anything is written: the atomic writer would leave its temp file beside a folder
    if fmt == "jsonl" and out.is_dir():
        raise InputError("is a folder, not a .jsonl file", file=out,
                         field="out")
    if fmt == "hf" and out.exists() and not out.is_dir():
        raise InputError("is a file; --format hf writes a folder of datasets", file=out, field="out")
    if fmt == "jsonl":
        write_feedback(out, records)
        return [out]
    from datasets import Dataset

    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_type[r.type].append(r.model_dump(mode="json"))
    written = []
    for kind, rows in by_type.items():
        Dataset.from_list(rows).save_to_disk(str(out / kind))
        written.append(out / kind)
    return written
