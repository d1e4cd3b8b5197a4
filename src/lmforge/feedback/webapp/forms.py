"""The label form <-> :class:`~lmforge.feedback.labels.LabelIn`.

Fields, for responses ``i = 0..K-1`` (shown as A, B, C, ...): ``rank_i`` (1 = best .. K), one score field per
criterion ``<criterion>_i`` (1-7), ``unsafe_i`` (checkbox), and ``comment``, ``rewrite``, ``csrf_token``.
The page's script only fills these fields (drag and drop, keyboard); the form works without it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...data.preference import CRITERIA
from ..labels import LabelIn, LabelRejected, response_letter


def _int(form: Mapping[str, Any], name: str, what: str) -> int:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        raise LabelRejected(f"{what} is missing", field=name)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise LabelRejected(f"{what} must be a whole number, got {str(raw)[:20]!r}", field=name) from None


def parse_label_form(form: Mapping[str, Any], k: int) -> LabelIn:
    """A :class:`LabelIn` from the posted form; :class:`LabelRejected` with a clear message otherwise."""
    ranks = [_int(form, f"rank_{i}", f"the rank of response {response_letter(i)}") for i in range(k)]
    if sorted(ranks) != list(range(1, k + 1)):
        shown = ", ".join(f"{response_letter(i)}={r}" for i, r in enumerate(ranks))
        raise LabelRejected(f"the ranks must use each of 1..{k} exactly once (1 = best); got {shown}",
                            field="ranking")
    ranking = sorted(range(k), key=lambda i: ranks[i])
    scores = [{c: _int(form, f"{c}_{i}", f"response {response_letter(i)}: the {c} score") for c in CRITERIA}
              for i in range(k)]
    unsafe = [form.get(f"unsafe_{i}") not in (None, "", "0", "off") for i in range(k)]
    text = {name: form.get(name) if isinstance(form.get(name), str) else None for name in ("comment", "rewrite")}
    return LabelIn(ranking=ranking, scores=scores, unsafe=unsafe, comment=text["comment"],
                   rewrite=text["rewrite"])


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
        if label.unsafe and label.unsafe[i]:
            values[f"unsafe_{i}"] = "on"
    values["comment"] = label.comment or ""
    values["rewrite"] = label.rewrite or ""
    return values
