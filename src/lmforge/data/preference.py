"""Preference data: the one format that labeling export writes and every trainer (reward model, DPO) reads.

One JSONL file may mix four kinds of feedback, told apart by ``type``::

    {"type": "pair",    "prompt": [...], "chosen": "...", "rejected": "...", "margin": 1.5}
    {"type": "ranking", "prompt": [...], "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}
    {"type": "likert",  "prompt": [...], "response": "...", "scores": {"accuracy": 6, "honesty": 7},
                        "scale": [1, 7]}
    {"type": "binary",  "prompt": [...], "response": "...", "label": true}

``prompt`` is a list of chat messages ``{"role": "system"|"user"|"assistant", "content": str}`` ending with a
user turn (a plain string is accepted and means one user message). Responses are assistant message texts.
``ranking`` lists response indices from best to worst; ``ties`` (optional) lists groups of indices judged equal.
Optional on every kind: ``id``, ``source`` (e.g. ``human``, ``ai:judge-name``, ``simulated``, ``hh-rlhf``),
``criterion`` (which criterion a pair or ranking is about; absent means overall), ``weight``, ``labeler``,
``split`` and ``meta`` (free-form).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from .readers import Record, read_records

CRITERIA = ("accuracy", "relevance", "coherence", "harmlessness", "honesty")
ROLES = ("system", "user", "assistant")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


def as_messages(prompt: Any) -> list[dict[str, str]]:
    """A prompt as a list of chat messages (a plain string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) if isinstance(m, dict) else m.model_dump() for m in prompt]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: list[Message]
    id: str | None = None
    source: str | None = None
    criterion: str | None = None
    weight: float = 1.0
    labeler: str | None = None
    split: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any) -> Any:
        return as_messages(v) if isinstance(v, str) else v

    @field_validator("prompt")
    @classmethod
    def _ends_with_user(cls, v: list[Message]) -> list[Message]:
        if not v:
            raise ValueError("prompt is empty")
        if v[-1].role != "user":
            raise ValueError("prompt must end with a user message")
        return v


class Pair(_Base):
    type: Literal["pair"] = "pair"
    chosen: str
    rejected: str
    margin: float | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Pair:
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are identical")
        return self


class Ranking(_Base):
    type: Literal["ranking"] = "ranking"
    responses: list[str]
    ranking: list[int]
    ties: list[list[int]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _permutation(self) -> Ranking:
        k = len(self.responses)
        if k < 2:
            raise ValueError(f"a ranking needs at least two responses, got {k}")
        if sorted(self.ranking) != list(range(k)):
            raise ValueError(f"ranking {self.ranking} is not a permutation of 0..{k - 1}")
        for group in self.ties:
            if any(i not in range(k) for i in group):
                raise ValueError(f"tie group {group} names a response that does not exist")
        return self


class Likert(_Base):
    type: Literal["likert"] = "likert"
    response: str
    scores: dict[str, float]
    scale: tuple[float, float] = (1, 7)

    @model_validator(mode="after")
    def _in_scale(self) -> Likert:
        lo, hi = self.scale
        if not self.scores:
            raise ValueError("scores is empty")
        for name, s in self.scores.items():
            if not lo <= s <= hi:
                raise ValueError(f"score {name}={s} is outside the scale [{lo}, {hi}]")
        return self


class Binary(_Base):
    type: Literal["binary"] = "binary"
    response: str
    label: bool


Feedback = Pair | Ranking | Likert | Binary
_ADAPTER: TypeAdapter[Feedback] = TypeAdapter(Annotated[Feedback, Field(discriminator="type")])


def parse_feedback(record: Record) -> Feedback:
    """Validate one record; errors name the file, line and field."""
    data = dict(record.data)
    data.setdefault("type", _infer_type(data))
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"][1:]]  # loc[0] is the type tag
        msg = err["msg"].removeprefix("Value error, ")
        raise record.error(f"{msg} (in a {data['type']} record)", ".".join(loc) or None) from None


def _infer_type(data: dict[str, Any]) -> str:
    if "chosen" in data or "rejected" in data:
        return "pair"
    if "ranking" in data or "responses" in data:
        return "ranking"
    if "scores" in data:
        return "likert"
    if "label" in data:
        return "binary"
    return "pair"


def read_feedback(path: str | Path) -> Iterator[Feedback]:
    for record in read_records(path):
        yield parse_feedback(record)


def write_feedback(path: str | Path, items: list[Feedback]) -> int:
    from .readers import write_jsonl_atomic

    return write_jsonl_atomic(path, (it.model_dump(mode="json", exclude_defaults=False) for it in items))


def ranking_to_pairs(item: Ranking) -> list[Pair]:
    """All K(K-1)/2 ordered pairs of a ranking (tied responses make no pair)."""
    tied = {frozenset((a, b)) for g in item.ties for a in g for b in g if a != b}
    pairs = []
    for i, better in enumerate(item.ranking):
        for worse in item.ranking[i + 1:]:
            if frozenset((better, worse)) in tied or item.responses[better] == item.responses[worse]:
                continue
            pairs.append(Pair(prompt=item.prompt, chosen=item.responses[better], rejected=item.responses[worse],
                              source=item.source, criterion=item.criterion, weight=item.weight,
                              labeler=item.labeler, split=item.split, id=item.id, meta=item.meta))
    return pairs
