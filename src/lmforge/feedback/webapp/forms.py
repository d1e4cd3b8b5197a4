"""The label form <-> :class:`~lmforge.feedback.labels.LabelIn`.

Fields, for responses ``i = 0..K-1`` (shown as A, B, C, ...), as the batch's mode asks (see
:data:`~lmforge.feedback.labels.MODES`): ``rank_i`` (1 = best .. K; all modes but good-bad), one score field per
criterion ``<criterion>_i`` (1-7; rank+criteria), ``overall_i`` (1-7; rank+overall), ``good_i`` (``good`` or
``bad``; good-bad); always ``unsafe_i`` (checkbox), ``comment``, ``rewrite``, ``csrf_token``. Fields the mode
does not ask for are ignored. The page's script only fills these fields (drag and drop, keyboard); the form
works without it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...data.preference import CRITERIA
from ..labels import DEFAULT_MODE, LabelIn, LabelRejected, mode_ranks, response_letter


def _int(form: Mapping[str, Any], name: str, what: str) -> int:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        raise LabelRejected(f"{what} is missing", field=name)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise LabelRejected(f"{what} must be a whole number, got {str(raw)[:20]!r}", field=name) from None


def _ranking(form: Mapping[str, Any], k: int) -> list[int]:
    ranks = [_int(form, f"rank_{i}", f"the rank of response {response_letter(i)}") for i in range(k)]
    if sorted(ranks) != list(range(1, k + 1)):
        shown = ", ".join(f"{response_letter(i)}={r}" for i, r in enumerate(ranks))
        raise LabelRejected(f"the ranks must use each of 1..{k} exactly once (1 = best); got {shown}",
                            field="ranking")
    return sorted(range(k), key=lambda i: ranks[i])


def _verdict(form: Mapping[str, Any], i: int) -> bool:
    raw = str(form.get(f"good_{i}") or "").strip().lower()
    if raw not in ("good", "bad"):
        raise LabelRejected(f"response {response_letter(i)}: choose good or bad", field=f"good_{i}")
    return raw == "good"


def parse_label_form(form: Mapping[str, Any], k: int, mode: str = DEFAULT_MODE) -> LabelIn:
    """A :class:`LabelIn` from the posted form, with the fields ``mode`` asks for; :class:`LabelRejected` with
    a clear message otherwise."""
    ranking = _ranking(form, k) if mode_ranks(mode) else None
    scores = overall = good = None
    if mode == "rank+criteria":
        scores = [{c: _int(form, f"{c}_{i}", f"response {response_letter(i)}: the {c} score") for c in CRITERIA}
                  for i in range(k)]
    elif mode == "rank+overall":
        overall = [_int(form, f"overall_{i}", f"response {response_letter(i)}: the overall score") for i in range(k)]
    elif mode == "good-bad":
        good = [_verdict(form, i) for i in range(k)]
    unsafe = [form.get(f"unsafe_{i}") not in (None, "", "0", "off") for i in range(k)]
    text = {name: form.get(name) if isinstance(form.get(name), str) else None for name in ("comment", "rewrite")}
    return LabelIn(ranking=ranking, scores=scores, unsafe=unsafe, comment=text["comment"],
                   rewrite=text["rewrite"], overall=overall, good=good)


def form_values(label: LabelIn | None, k: int) -> dict[str, str]:
    """Field values that show a stored label in the form (empty for a new one)."""
    if label is None:
        return {}
    values: dict[str, str] = {}
    ranks = label.ranks()
    for i in range(k):
        values[f"rank_{i}"] = str(ranks[i] + 1)
        if label.scores:
            values.update({f"{c}_{i}": str(label.scores[i][c]) for c in CRITERIA})
        if label.overall:
            values[f"overall_{i}"] = str(label.overall[i])
        if label.good:
            values[f"good_{i}"] = "good" if label.good[i] else "bad"
        if label.unsafe and label.unsafe[i]:
            values[f"unsafe_{i}"] = "on"
    values["comment"] = label.comment or ""
    values["rewrite"] = label.rewrite or ""
    return values
