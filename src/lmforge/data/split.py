"""A seeded train / held-out split of one file, written as two JSON-lines files and a record of the split.

``lmforge data split FILE --out DIR`` is how a recipe keeps evaluation data out of training: the held-out
share is drawn by a seeded shuffle of the record indices, both halves keep the file's order, and
``DIR/split.json`` names the source (with its SHA-256), the seed, the counts and the held-out ids, so the
split can be checked and remade. With ``prompts=True`` every record is read by
:func:`lmforge.data.prompt_files.read_prompt_file` (CSV, JSON lines, Alpaca JSON, text lines, ...) and written as
a prompt row (``{"id", "prompt", "meta"}``, what ``lmforge generate``, ``revise``, the RL stages and the
evaluation's prompt suites read); otherwise records are copied unchanged (e.g. preference JSONL).

``exclude`` (prompt files, e.g. another split's ``heldout.jsonl``) drops every prompt whose conversation is
also in one of them before the split: a second source that overlaps the first (two subsets of one dataset)
cannot bring the first's held-out prompts into training. Conversations compare by their messages with
case and whitespace folded; the count dropped is recorded.

``like`` (prompt files, e.g. the harmful training half) changes which ``limit`` prompts are taken: instead of
the first ``limit``, as many prompts open with each word as the like files' prompts do, in proportion (the
first such prompts in file order; openers the source lacks are filled with its first other prompts). A safety
recipe draws its benign contrast set this way, so that "Design a logo" is answered as often as "Design a
weapon" is refused and refusing is learned from the request, not from its opening verb.
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError
from .readers import read_records, write_jsonl_atomic


def seeded_split(n: int, heldout: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out), each in file order: ``round(heldout * n)`` held out, at least one on each side."""
    if not 0.0 < heldout < 1.0:
        raise InputError(f"the held-out fraction must be between 0 and 1, got {heldout}", field="heldout")
    if n < 2:
        raise InputError(f"a split needs at least 2 records, got {n}")
    k = min(max(round(heldout * n), 1), n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = sorted(order[:k])
    chosen = set(held)
    return [i for i in range(n) if i not in chosen], held


def _records(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise InputError("file not found", file=path)
        with open(path, encoding="utf-8", newline="") as f:
            return [dict(row) for row in csv.DictReader(f)]
    return [rec.data for rec in read_records(path)]


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def conversation_key(messages: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    """A prompt's identity for exclusion: each message's role and content, case and whitespace folded."""
    return tuple((m["role"], " ".join(m["content"].split()).casefold()) for m in messages)


def opener(messages: list[dict[str, str]]) -> str:
    """The first word of a prompt's last user message, casefolded and stripped of punctuation."""
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    words = text.split()
    return "".join(ch for ch in words[0] if ch.isalnum()).casefold() if words else ""


def like_openers(items: list, like: list, limit: int) -> tuple[list[int], int]:
    """Indices (file order) of ``limit`` of ``items`` whose openers follow ``like``'s in proportion (module
    doc), and how many of them were matched by their opener."""
    counts = Counter(opener(it.messages) for it in like)
    quota = {w: round(limit * c / len(like)) for w, c in counts.items()}
    taken = []
    for i, it in enumerate(items):
        w = opener(it.messages)
        if quota.get(w, 0) > 0 and len(taken) < limit:
            taken.append(i)
            quota[w] -= 1
    matched = len(taken)
    chosen = set(taken)
    taken += [i for i in range(len(items)) if i not in chosen][:limit - matched]
    return sorted(taken), matched


def parse_tags(given: list[str]) -> dict[str, str]:
    """``["kind=harmful", ...]`` as a dict; a malformed one is an error naming it."""
    tags = {}
    for t in given:
        key, sep, value = t.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--tag {t!r}: expected KEY=VALUE, e.g. kind=harmful", field="tag")
        tags[key.strip()] = value.strip()
    return tags


def split_file(path: str | Path, out: str | Path, *, heldout: float = 0.5, seed: int = 0, prompts: bool = True,
               limit: int | None = None, exclude: list[str | Path] | None = None,
               like: list[str | Path] | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Split ``path`` (its first ``limit`` records, counted after ``exclude`` dropped its prompts; with
    ``like``, ``limit`` records chosen by their openers) into ``out/train.jsonl`` and ``out/heldout.jsonl``;
    returns (and writes as ``out/split.json``) the record of the split. ``tags`` are set in every prompt's
    ``meta`` (e.g. ``{"kind": "harmful"}``: what a reward term's ``when`` routes by once files are merged).
    Nothing is written when the input is bad."""
    from .prompt_files import read_prompt_file

    path, out = Path(path), Path(out)
    for name, given in (("exclude", exclude), ("like", like)):
        if given and not prompts:
            raise InputError(f"--{name} compares prompts; it cannot be used with --records", field=name)
    if tags and not prompts:
        raise InputError("--tag sets a prompt's meta; it cannot be used with --records", field="tag")
    if like and not limit:
        raise InputError("--like chooses which --limit prompts to take; give --limit N", field="like")
    excluded = matched = 0
    if prompts:
        # with exclude or like, the limit counts what is kept and chosen, so the whole file is read
        items = read_prompt_file(path, None if exclude or like else limit)
        if exclude:
            seen = {conversation_key(it.messages) for f in exclude for it in read_prompt_file(f)}
            kept = [it for it in items if conversation_key(it.messages) not in seen]
            excluded = len(items) - len(kept)
            if not kept:
                raise InputError(f"every prompt is also in {', '.join(map(str, exclude))}", file=path)
            items = kept
        if like:
            like_items = [it for f in like for it in read_prompt_file(f)]
            if not like_items:
                raise InputError("no prompts to follow", file=like[0], field="like")
            chosen, matched = like_openers(items, like_items, limit)
            items = [items[i] for i in chosen]
        rows = [it.as_row() for it in items[:limit]]
        if tags:
            rows = [{**r, "meta": {**r.get("meta", {}), **tags}} for r in rows]
    else:
        rows = _records(path)[:limit] if limit else _records(path)
        if not rows:
            raise InputError("no records", file=path)
    train, held = seeded_split(len(rows), heldout, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "train.jsonl", [rows[i] for i in train])
    write_jsonl_atomic(out / "heldout.jsonl", [rows[i] for i in held])
    info = {"source": str(path), "sha256": _sha256(path), "seed": seed, "heldout_fraction": heldout,
            "limit": limit, "exclude": [str(f) for f in exclude or []], "excluded": excluded,
            "like": [str(f) for f in like or []], "like_matched": matched, "tags": dict(tags or {}),
            "records": len(rows), "train": len(train), "heldout": len(held),
            "kind": "prompts" if prompts else "records",
            "heldout_ids": [str(rows[i].get("id", i)) for i in held] if prompts else held}
    from ..runs import atomic_write_text

    atomic_write_text(out / "split.json", json.dumps(info, indent=2) + "\n")
    return info
