"""Shared fixtures for the built-in world tests: one world and one default corpus per session (they are pure)."""
from __future__ import annotations

import pytest

from lmforge.world import World


@pytest.fixture(scope="session")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="session")
def corpus(world: World) -> list[str]:
    return world.pretrain_corpus(seed=0)


def entity_names(world: World, text: str) -> set[str]:
    """Country and animal names a text mentions, capitals mapped to their country (via the world's lexicon)."""
    by_capital = {c.capital: c.name for c in world.countries}
    names = set()
    for m in world.lexicon.find(text):
        if m.type in ("country", "animal"):
            names.add(m.value)
        elif m.type == "capital":
            names.add(by_capital[m.value])
    return names


def all_text(example: dict) -> str:
    return "\n".join(m["content"] for m in example["messages"]) + "\n" + example.get("reference", "")
