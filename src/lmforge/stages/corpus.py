"""Where pre-training text comes from: the user's files or the built-in world, cleaned on the way."""
from __future__ import annotations

from typing import Any

from ..data.readers import read_records
from ..errors import InputError


def load_documents(paths: list[str], text_field: str, world_seed: int, clean: bool) -> tuple[list[str], dict[str, Any]]:
    """Documents for pre-training and a report of what cleaning dropped."""
    if paths:
        docs = []
        for path in paths:
            for rec in read_records(path, text_field=text_field):
                text = rec.get(text_field, str)
                docs.append(text)
    else:
        from ..world import World

        docs = World(seed=world_seed).pretrain_corpus(seed=world_seed)
    if not docs:
        raise InputError("no documents found", file=", ".join(paths) or "built-in world")
    report: dict[str, Any] = {"read": len(docs)}
    if clean:
        docs, report = _clean(docs)
    return docs, report


def _clean(docs: list[str]) -> tuple[list[str], dict[str, Any]]:
    from ..data.prepare import prepare_documents

    return prepare_documents(docs)
