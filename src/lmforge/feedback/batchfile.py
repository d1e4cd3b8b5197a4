"""``batch.jsonl``: what ``lmforge generate`` writes and ``lmforge label add-batch`` loads.

One line per prompt::

    {"id": "p00001", "prompt": [{"role": "user", "content": "..."}],
     "responses": [{"text": "...", "tokens": 31, "finished": true}, ...],
     "model": "runs/sft/final", "sampling": {"temperature": 1.0, "top_p": 0.95, ...},
     "meta": {"kind": "qa", "category": "...", "split": "heldout", "reference": "..."}}

``meta`` holds the built-in world's fields when the prompts came from it (the simulated labeler needs them).
A response may also be a plain string.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..data.preference import Message, as_messages
from ..data.readers import read_records
from ..errors import InputError

BATCH_FILE = "batch.jsonl"


class GeneratedResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    id: str = Field(min_length=1, max_length=256)
    prompt: list[Message]
    responses: list[GeneratedResponse]
    model: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any) -> Any:
        return as_messages(v) if isinstance(v, str) else v

    @field_validator("prompt")
    @classmethod
    def _ends_with_user(cls, v: list[Message]) -> list[Message]:
        if not v or v[-1].role != "user":
            raise ValueError("prompt must be a non-empty list of messages ending with a user message")
        return v

    @field_validator("responses", mode="before")
    @classmethod
    def _responses(cls, v: Any) -> Any:
        if isinstance(v, list):
            v = [{"text": r} if isinstance(r, str) else r for r in v]
        return v

    @field_validator("responses")
    @classmethod
    def _at_least_two(cls, v: list[GeneratedResponse]) -> list[GeneratedResponse]:
        if len(v) < 2:
            raise ValueError(f"a labeling item needs at least two responses to rank, got {len(v)}")
        if len(v) > 26:
            raise ValueError(f"at most 26 responses per prompt (A-Z), got {len(v)}")
        return v


def batch_path(path: str | Path) -> Path:
    """``batch.jsonl`` itself, or the one inside a ``lmforge generate`` run folder."""
    path = Path(path)
    if path.is_dir() and (path / BATCH_FILE).exists():
        return path / BATCH_FILE
    if path.is_dir():
        raise InputError(f"folder has no {BATCH_FILE} (expected a 'lmforge generate' run folder)", file=path)
    return path


def read_batch(path: str | Path) -> Iterator[BatchItem]:
    """Validated items; an error names the file, line and field."""
    seen: set[str] = set()
    for record in read_records(batch_path(path)):
        try:
            item = BatchItem.model_validate(record.data)
        except ValidationError as e:
            err = e.errors()[0]
            raise record.error(err["msg"].removeprefix("Value error, "),
                               ".".join(str(p) for p in err["loc"]) or None) from None
        if item.id in seen:
            raise record.error(f"duplicate id {item.id!r}", "id")
        seen.add(item.id)
        yield item
