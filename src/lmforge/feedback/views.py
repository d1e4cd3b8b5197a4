"""What the store hands out: plain frozen records of batches, assignments, progress and submissions."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .labels import DEFAULT_MODE, LabelIn


@dataclass(frozen=True)
class BatchInfo:
    id: int
    name: str
    model: str | None
    sampling: dict[str, Any]
    source: str | None
    created_at: datetime
    items: int
    responses: int
    assignments: int
    labels: int
    mode: str = DEFAULT_MODE


@dataclass(frozen=True)
class AssignmentView:
    id: int
    batch: str
    item_key: str
    prompt: list[dict[str, str]]
    responses: list[str]
    item_meta: dict[str, Any]
    label: LabelIn | None
    revision: int
    mode: str = DEFAULT_MODE
    response_meta: list[dict[str, Any]] = field(default_factory=list)  # per response: tokens, finished, ...

    def cut_off(self, i: int) -> bool:
        """Whether response ``i`` stopped at the length limit (``finished: false`` in the batch file)."""
        return i < len(self.response_meta) and self.response_meta[i].get("finished") is False


@dataclass(frozen=True)
class Progress:
    batch: str
    labeler: str
    kind: str
    assigned: int
    done: int


@dataclass(frozen=True)
class SubmitResult:
    label_id: int
    status: str  # "created" | "unchanged" | "revised"
