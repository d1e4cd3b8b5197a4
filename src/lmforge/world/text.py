"""Small text helpers shared by the world's generators: seeded RNGs, stable ids, English joins, transcripts.

Everything here is deterministic across processes: RNGs are seeded from strings (``random.Random`` hashes a
``str`` seed with SHA-512, unlike the per-process salted ``hash()``), and ids are SHA-1 digests of the content.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def rng_for(*parts: object) -> random.Random:
    """A ``Random`` seeded from its parts, e.g. ``rng_for("corpus", world_seed, seed)``; stable across runs."""
    return random.Random("|".join(str(p) for p in parts))


def stable_id(prefix: str, *parts: Any) -> str:
    """A short id that depends only on the content (so the same item has the same id in every process)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return f"{prefix}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def seed_int(*parts: Any) -> int:
    """A 64-bit integer seed from arbitrary content, for per-call RNGs that must not depend on call order."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")


def join_and(items: Sequence[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def cap_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    """"a" or "an" by spelling (good enough for the world's vocabulary: "a herbivore", "an insect")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def number_word(n: int) -> str:
    return NUMBER_WORDS.get(n, str(n))


def render_transcript(messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Chat messages as raw ``User: ...\\nAssistant: ...`` text: the base model's (few-shot) chat format.

    With ``add_generation_prompt`` a final ``Assistant:`` line is added for the model to continue.
    """
    lines = [f"{ROLE_NAMES[m['role']]}: {m['content']}" for m in messages]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def pick(rng: random.Random, options: Sequence[Any]) -> Any:
    """``rng.choice`` under a name that reads well in templates."""
    return options[rng.randrange(len(options))]
