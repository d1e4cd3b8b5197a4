"""What a labeler submits for one prompt (:class:`LabelIn`), its checks, and what the store gives back
(:class:`LabelRecord`). Pure: no database here.

A label orders the K responses from best to worst (``ranking``: response indices; optional ``ties``: groups
of indices judged equal, each contiguous in the ranking), scores each response 1-7 on every criterion
(``scores``; may be left out as a whole, e.g. by an importer or a judge that only ranks) or overall
(``overall``), or calls each response good or bad (``good``), flags unsafe responses, and may carry a comment
and a rewritten better answer.

What a label must hold is the batch's *mode* (:data:`MODES`), chosen when the batch is created:

- ``rank``: the ranking only;
- ``rank+overall``: the ranking and one 1-7 overall score per response;
- ``rank+criteria``: the ranking and a 1-7 score per response on each of the five criteria (the default);
- ``good-bad``: good or bad per response, no ranking (stored as a two-level ranking: every good response tied
  above every bad one, so agreement statistics still read it).

The web form shows and requires exactly the mode's fields. The store (:meth:`LabelIn.check` with a mode) asks
only for what every label of the mode needs to be read at all, a ranking, or the verdicts of a good-bad batch:
judges and importers that only rank may label any ranked batch. Fields beyond the mode (e.g. a judge's
scores in a rank-only batch) are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..data.preference import CRITERIA
from ..errors import InputError
from .db import SCORE_MAX, SCORE_MIN
from .modes import DEFAULT_MODE, MODE_HELP, MODES, check_mode, mode_ranks

__all__ = ["LabelIn", "LabelRecord", "LabelRejected", "NotFound", "DEFAULT_MODE", "MODE_HELP", "MODES",
           "check_mode", "mode_ranks", "from_ranks", "response_letter"]

MAX_COMMENT_CHARS = 5_000
MAX_REWRITE_CHARS = 20_000


class LabelRejected(InputError):
    """A submission that is not stored, with the reason (a 400 in the web app)."""


class NotFound(InputError):
    """No such object for this user (a foreign assignment reads the same as a missing one: 404)."""


@dataclass(frozen=True)
class LabelIn:
    ranking: list[int] | None = None  # None only in a good-bad label (derived from ``good`` by normalized())
    scores: list[dict[str, int]] | None = None
    unsafe: list[bool] | None = None
    comment: str | None = None
    rewrite: str | None = None
    ties: list[list[int]] = field(default_factory=list)
    overall: list[int] | None = None
    good: list[bool] | None = None

    def check(self, k: int, mode: str | None = None) -> None:
        """Raise :class:`LabelRejected` naming the field unless this is a complete label for K responses (with
        the verdicts, when ``mode`` is good-bad; the ranking otherwise; see the module doc)."""
        if mode is not None:
            self._check_mode(k, mode)
        letters = ", ".join(response_letter(i) for i in range(k))
        if not isinstance(self.ranking, list) or sorted(self.ranking) != list(range(k)):
            shown = [response_letter(i) if isinstance(i, int) and 0 <= i < k else repr(i)
                     for i in (self.ranking if isinstance(self.ranking, list) else [])]
            raise LabelRejected(f"the ranking must order every response ({letters}) exactly once, "
                                f"got {' > '.join(map(str, shown)) or 'nothing'}", field="ranking")
        where = {r: pos for pos, r in enumerate(self.ranking)}
        seen: set[int] = set()
        for group in self.ties:
            if len(group) < 2 or any(i not in where for i in group) or seen & set(group):
                raise LabelRejected(f"tie group {group} must name two or more different responses, each in at "
                                    "most one group", field="ties")
            spots = sorted(where[i] for i in group)
            if spots != list(range(spots[0], spots[0] + len(spots))):
                raise LabelRejected(f"tied responses {group} must be next to each other in the ranking",
                                    field="ties")
            seen |= set(group)
        if self.scores is not None:
            if len(self.scores) != k:
                raise LabelRejected(f"expected scores for {k} responses, got {len(self.scores)}", field="scores")
            for i, row in enumerate(self.scores):
                for c in CRITERIA:
                    value = row.get(c) if isinstance(row, dict) else None
                    if value is None:
                        raise LabelRejected(f"response {response_letter(i)}: {c} score is missing",
                                            field=f"{c}_{i}")
                    if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
                        raise LabelRejected(f"response {response_letter(i)}: {c} score must be a whole number "
                                            f"from {SCORE_MIN} to {SCORE_MAX}, got {value!r}", field=f"{c}_{i}")
                extra = set(row) - set(CRITERIA)
                if extra:
                    raise LabelRejected(f"response {response_letter(i)}: unknown criteria {sorted(extra)} "
                                        f"(known: {', '.join(CRITERIA)})", field="scores")
        if self.overall is not None:
            if not isinstance(self.overall, list) or len(self.overall) != k:
                raise LabelRejected(f"expected {k} overall scores, got {_count(self.overall)}", field="overall")
            for i, value in enumerate(self.overall):
                if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
                    raise LabelRejected(f"response {response_letter(i)}: the overall score must be a whole number "
                                        f"from {SCORE_MIN} to {SCORE_MAX}, got {value!r}", field=f"overall_{i}")
        if self.good is not None and (not isinstance(self.good, list) or len(self.good) != k
                                      or not all(isinstance(g, bool) for g in self.good)):
            raise LabelRejected(f"expected {k} good/bad verdicts (true or false), got {self.good!r}", field="good")
        if self.unsafe is not None and len(self.unsafe) != k:
            raise LabelRejected(f"expected {k} unsafe flags, got {len(self.unsafe)}", field="unsafe")
        for name, text, limit in (("comment", self.comment, MAX_COMMENT_CHARS),
                                  ("rewrite", self.rewrite, MAX_REWRITE_CHARS)):
            if text is not None and len(text) > limit:
                raise LabelRejected(f"{name} is too long ({len(text):,} characters; the limit is {limit:,})",
                                    field=name)

    def _check_mode(self, k: int, mode: str) -> None:
        if check_mode(mode) == "good-bad" and self.good is None:
            raise LabelRejected("this batch (mode good-bad) asks for a good or bad verdict for every response",
                                field="good")

    def ranks(self) -> list[int]:
        """Rank per response index (0 = best); tied responses share the best rank of their group."""
        rank = {r: pos for pos, r in enumerate(self.ranking)}
        for group in self.ties:
            best = min(rank[i] for i in group)
            for i in group:
                rank[i] = best
        return [rank[i] for i in range(len(self.ranking))]

    def normalized(self) -> LabelIn:
        """Blank comment/rewrite as None, ties sorted: two submissions that mean the same compare equal."""
        def blank(s: str | None) -> str | None:
            s = s.replace("\r\n", "\n").strip() if s is not None else None
            return s or None
        ranking, ties = self.ranking, self.ties
        if ranking is None and isinstance(self.good, list):  # good-bad: every good response above every bad one
            ranking, ties = from_ranks([0 if g else 1 for g in self.good])
        return LabelIn(ranking=list(ranking) if ranking is not None else None, scores=self.scores,
                       comment=blank(self.comment), rewrite=blank(self.rewrite),
                       unsafe=list(self.unsafe) if self.unsafe and any(self.unsafe) else None,
                       ties=sorted(sorted(g) for g in ties), overall=self.overall, good=self.good)


def from_ranks(ranks: list[int]) -> tuple[list[int], list[list[int]]]:
    """(ranking best-to-worst, tie groups) from per-response ranks (equal ranks are ties)."""
    ranking = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(ranks):
        groups.setdefault(r, []).append(i)
    return ranking, [g for g in groups.values() if len(g) > 1]


def _count(values: object) -> str:
    return str(len(values)) if isinstance(values, list) else repr(values)


def response_letter(i: int) -> str:
    return chr(ord("A") + i) if 0 <= i < 26 else f"#{i + 1}"


@dataclass
class LabelRecord:
    """One stored label with everything needed to export it or measure agreement."""
    label_id: int
    assignment_id: int
    batch: str
    item_id: int
    item_key: str
    prompt: list[dict[str, str]]
    item_meta: dict[str, Any]
    responses: list[str]
    labeler: str
    labeler_kind: str
    ranking: list[int]
    ties: list[list[int]]
    scores: list[dict[str, int]] | None
    unsafe: list[bool]
    comment: str | None
    rewrite: str | None
    revision: int
    created_at: datetime
    updated_at: datetime
    opened_at: datetime | None
    mode: str = DEFAULT_MODE
    overall: list[int] | None = None
    good: list[bool] | None = None

    @property
    def source(self) -> str:
        """``<kind>:<labeler>``, e.g. ``human:ana``, ``ai:judge``, ``simulated:sim-1``."""
        return f"{self.labeler_kind}:{self.labeler}"
