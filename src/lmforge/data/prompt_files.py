"""Prompt files of any common shape, read as chat prompts: the one reader behind ``lmforge data split``,
``lmforge generate``, ``lmforge revise``, the RL stages' ``prompts.source`` and the ``harmful`` / ``benign``
evaluation suites, so one file works in all of them.

Accepted (chosen by suffix; every prompt keeps the file and line it came from for error messages):

- ``.csv`` with a ``goal`` (AdvBench), ``prompt``, ``instruction`` or ``question`` column;
- ``.jsonl`` / ``.json`` / ``.parquet`` / a saved HF dataset folder, each record with one of
  ``prompt`` (text or chat messages), ``messages`` (a trailing assistant turn is dropped and kept as the
  reference), ``instruction`` (Alpaca; a non-empty ``input`` is appended after a blank line, ``output`` is the
  reference), ``goal``, ``question``;
- ``.txt`` / ``.md``: one prompt per non-empty line.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .preference import as_messages
from .readers import TEXT_SUFFIXES, Record, read_records

TEXT_FIELDS = ("goal", "prompt", "instruction", "question")


@dataclass
class PromptItem:
    """One prompt: chat messages ending with a user turn, an id unique in its file, and what else it carried."""
    id: str
    messages: list[dict[str, str]]
    file: str
    line: int
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The last user turn (what a one-line report shows)."""
        return self.messages[-1]["content"]

    def as_row(self) -> dict[str, Any]:
        """The prompt-file row ``lmforge generate`` and the RL stages read (``{"id", "prompt", "meta"}``)."""
        meta = dict(self.meta)
        if self.reference is not None:
            meta.setdefault("reference", self.reference)
        prompt: Any = self.text if len(self.messages) == 1 else self.messages
        return {"id": self.id, "prompt": prompt, **({"meta": meta} if meta else {})}

    def as_prompt(self) -> dict[str, Any]:
        """``{"id", "messages", "meta"}`` as a labeling batch and the RL stages hold a prompt (the reference, if
        any, in ``meta`` unless the record's own meta has one)."""
        meta = dict(self.meta)
        if self.reference is not None:
            meta.setdefault("reference", self.reference)
        return {"id": self.id, "messages": [dict(m) for m in self.messages], "meta": meta}


def _from_record(rec: Record, stem: str) -> PromptItem:
    d = rec.data
    reference = None
    if "prompt" in d and d["prompt"] is not None:
        raw = rec.get("prompt", (str, list))
    elif "messages" in d:
        raw = rec.get("messages", list)
    elif "instruction" in d:
        raw = rec.get("instruction", str)
        extra = d.get("input") or ""
        if not isinstance(extra, str):
            raise rec.error(f"expected str, got {type(extra).__name__}", "input")
        raw = f"{raw.strip()}\n\n{extra.strip()}" if extra.strip() else raw
        reference = d.get("output") if isinstance(d.get("output"), str) else None
    else:
        name = next((f for f in TEXT_FIELDS if f in d), None)
        if name is None:
            raise rec.error(f"expected one of the fields {', '.join(('messages',) + TEXT_FIELDS)}", "prompt")
        raw = rec.get(name, str)
    try:
        messages = as_messages(raw)
        if any(not isinstance(m.get("content"), str) or m.get("role") not in ("system", "user", "assistant")
               for m in messages):
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        raise rec.error("messages must be objects with a role (system, user, assistant) and text content",
                        "messages" if "messages" in d else "prompt") from None
    while messages and messages[-1]["role"] == "assistant":
        reference = messages.pop()["content"]
    if not messages or messages[-1]["role"] != "user":
        raise rec.error("the prompt must end with a user message", "messages" if "messages" in d else "prompt")
    if not messages[-1]["content"].strip():
        raise rec.error("empty prompt", "prompt")
    meta = d.get("meta") if isinstance(d.get("meta"), dict) else {}
    return PromptItem(str(d.get("id") or f"{stem}-{rec.line}"), messages, rec.file, rec.line, reference,
                      dict(meta))


def _csv_items(path: Path) -> list[PromptItem]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        name = next((c for c in TEXT_FIELDS if c in (reader.fieldnames or [])), None)
        if name is None:
            raise InputError(f"CSV needs a column named one of {', '.join(TEXT_FIELDS)}", file=path,
                             field="goal")
        out = []
        for i, row in enumerate(reader, 2):  # line 1 is the header
            text = (row.get(name) or "").strip()
            if not text:
                raise InputError("empty", file=path, line=i, field=name)
            rid = (row.get("id") or "").strip() or f"{path.stem}-{i - 1}"
            out.append(PromptItem(rid, [{"role": "user", "content": text}], str(path), i))
    return out


def read_prompt_file(path: str | Path, limit: int | None = None) -> list[PromptItem]:
    """Every prompt of ``path`` (first ``limit``); bad records and repeated ids are errors naming file:line."""
    path = Path(path)
    if not path.exists():
        raise InputError("prompt file not found", file=path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        items = _csv_items(path)
    elif suffix in TEXT_SUFFIXES:
        items = [PromptItem(f"{path.stem}-{rec.line}", [{"role": "user", "content": rec.data["text"].strip()}],
                            rec.file, rec.line) for rec in read_records(path, txt_split="line")
                 if rec.data["text"].strip()]
    else:
        items = [_from_record(rec, path.stem) for rec in read_records(path)]
    if not items:
        raise InputError("no prompts", file=path)
    seen: dict[str, int] = {}
    for it in items:
        if it.id in seen:
            raise InputError(f"id {it.id!r} repeats line {seen[it.id]}", file=it.file, line=it.line, field="id")
        seen[it.id] = it.line
    return items[:limit] if limit else items
