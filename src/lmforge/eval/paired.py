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
    per-item ``scores`` pair with the reference's same-named figure (same suite, same count). Figures without
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
            if not f.get("scores") or other is None or other["suite"] != f["suite"] \
                    or len(other["scores"]) != len(f["scores"]):
                continue
            d, lo, hi = paired_difference(f["scores"], other["scores"])
            f["vs"] = {"model": reference, "difference": d, "lo": lo, "hi": hi, "n": len(f["scores"])}
