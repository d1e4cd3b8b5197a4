"""A seeded train / held-out split of one file, written as two JSON-lines files and a record of the split.

``lmforge data split FILE --out DIR`` is how a recipe keeps evaluation data out of training: the held-out
share is drawn by a seeded shuffle of the record indices, both halves keep the file's order, and
``DIR/split.json`` names the source (with its SHA-256), the seed, the counts and the held-out ids, so the
split can be checked and remade. With ``prompts=True`` every record is read by
:func:`lmforge.data.prompt_files.read_prompt_file` (CSV, JSON lines, Alpaca JSON, text lines, ...) and written as
a prompt row (``{"id", "prompt", "meta"}``, what ``lmforge generate``, ``revise``, the RL stages and the
evaluation's prompt suites read); otherwise records are copied unchanged (e.g. preference JSONL).
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
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


def split_file(path: str | Path, out: str | Path, *, heldout: float = 0.5, seed: int = 0, prompts: bool = True,
               limit: int | None = None) -> dict[str, Any]:
    """Split ``path`` (its first ``limit`` records) into ``out/train.jsonl`` and ``out/heldout.jsonl``; returns
    (and writes as ``out/split.json``) the record of the split. Nothing is written when the input is bad."""
    from .prompt_files import read_prompt_file

    path, out = Path(path), Path(out)
    if prompts:
        rows = [it.as_row() for it in read_prompt_file(path, limit)]
    else:
        rows = _records(path)[:limit] if limit else _records(path)
        if not rows:
            raise InputError("no records", file=path)
    train, held = seeded_split(len(rows), heldout, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "train.jsonl", [rows[i] for i in train])
    write_jsonl_atomic(out / "heldout.jsonl", [rows[i] for i in held])
    info = {"source": str(path), "sha256": _sha256(path), "seed": seed, "heldout_fraction": heldout,
            "limit": limit, "records": len(rows), "train": len(train), "heldout": len(held),
            "kind": "prompts" if prompts else "records",
            "heldout_ids": [str(rows[i].get("id", i)) for i in held] if prompts else held}
    from ..runs import atomic_write_text

    atomic_write_text(out / "split.json", json.dumps(info, indent=2) + "\n")
    return info
