"""What a labeler submits for one prompt (:class:`LabelIn`), its checks, and what the store gives back
(:class:`LabelRecord`). Pure: no database here.

A label orders the K responses from best to worst (``ranking``: response indices; optional ``ties``: groups
of indices judged equal, each contiguous in the ranking), scores each response 1-7 on every criterion
(``scores``; may be left out as a whole, e.g. by an importer or a judge that only ranks), flags unsafe
responses, and may carry a comment and a rewritten better answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..data.preference import CRITERIA
from ..errors import InputError
from .db import SCORE_MAX, SCORE_MIN

MAX_COMMENT_CHARS = 5_000
MAX_REWRITE_CHARS = 20_000


class LabelRejected(InputError):
    """A submission that is not stored, with the reason (a 400 in the web app)."""


class NotFound(InputError):
    """No such object for this user (a foreign assignment reads the same as a missing one: 404)."""


@dataclass(frozen=True)
class LabelIn:
    ranking: list[int]
    scores: list[dict[str, int]] | None = None
    unsafe: list[bool] | None = None
    comment: str | None = None
    rewrite: str | None = None
    ties: list[list[int]] = field(default_factory=list)

    def check(self, k: int) -> None:
        """Raise :class:`LabelRejected` naming the field unless this is a complete label for K responses."""
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
        if self.unsafe is not None and len(self.unsafe) != k:
            raise LabelRejected(f"expected {k} unsafe flags, got {len(self.unsafe)}", field="unsafe")
        for name, text, limit in (("comment", self.comment, MAX_COMMENT_CHARS),
                                  ("rewrite", self.rewrite, MAX_REWRITE_CHARS)):
            if text is not None and len(text) > limit:
                raise LabelRejected(f"{name} is too long ({len(text):,} characters; the limit is {limit:,})",
                                    field=name)

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
        return LabelIn(ranking=list(self.ranking), scores=self.scores, comment=blank(self.comment),
                       rewrite=blank(self.rewrite),
                       unsafe=list(self.unsafe) if self.unsafe and any(self.unsafe) else None,
                       ties=sorted(sorted(g) for g in self.ties))


def from_ranks(ranks: list[int]) -> tuple[list[int], list[list[int]]]:
    """(ranking best-to-worst, tie groups) from per-response ranks (equal ranks are ties)."""
    ranking = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(ranks):
        groups.setdefault(r, []).append(i)
    return ranking, [g for g in groups.values() if len(g) > 1]


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

    @property
    def source(self) -> str:
        """``<kind>:<labeler>``, e.g. ``human:ana``, ``ai:judge``, ``simulated:sim-1``."""
        return f"{self.labeler_kind}:{self.labeler}"
