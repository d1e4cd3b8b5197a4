"""Each model's figures against one reference model's, item by item.

Two models evaluated on the same items (the same TruthfulQA questions, the same held-out prompts) differ on
fewer items than their separate intervals suggest: an easy question is easy for both. The difference of their
figures gets the interval of the per-item differences (:func:`lmforge.eval.intervals.paired_difference`), which
is what a claim like "TruthfulQA MC1 within 0.02 of the base model" needs: on 200 questions each MC1 figure's
interval is about ±0.055 wide, the paired difference's a fraction of it when the models agree on most items.
"""
from __future__ import annotations

from typing import Any

from .intervals import paired_difference


def paired_against(results: list[dict[str, Any]], reference: str) -> None:
    """Add ``vs = {model, difference, lo, hi, n}`` to every figure of every model but ``reference`` whose
    per-item ``scores`` pair with the reference's same-named figure of the same suite: by item id where both
    figures carry ``ids`` (the items both answered, so another ``--limit`` or a partly different file still
    pairs the right items; ``n`` says how many), else by position when the counts are equal. Figures without
    per-item scores (bits per byte, a ratio; win rates, already a comparison) are left as they are."""
    ref = next((r for r in results if r["name"] == reference), None)
    if ref is None:
        return
    theirs = {f["name"]: f for f in ref["figures"] if f.get("scores")}
    for r in results:
        if r is ref:
            continue
        for f in r["figures"]:
            other = theirs.get(f["name"])
            if not f.get("scores") or other is None or other["suite"] != f["suite"]:
                continue
            pairs = matched_scores(f, other)
            if pairs is None:
                continue
            mine, ref_scores = pairs
            d, lo, hi = paired_difference(mine, ref_scores)
            f["vs"] = {"model": reference, "difference": d, "lo": lo, "hi": hi, "n": len(mine)}


def matched_scores(f: dict[str, Any], other: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    """The two figures' per-item scores on the same items, in ``f``'s order; None when they share none."""
    if f.get("ids") and other.get("ids"):
        at = dict(zip(other["ids"], other["scores"]))
        both = [(s, at[i]) for i, s in zip(f["ids"], f["scores"]) if i in at]
        return ([a for a, _ in both], [b for _, b in both]) if both else None
    if len(other["scores"]) != len(f["scores"]):
        return None
    return list(f["scores"]), list(other["scores"])
