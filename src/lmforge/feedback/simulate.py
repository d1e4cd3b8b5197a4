"""The built-in world's simulated labeler as labeler accounts, so the feedback loop runs unattended.

Each simulated labeler is a user ``<prefix>-<i>`` of kind ``simulated`` who gets assignments like anyone else
and submits through :meth:`Store.submit_labels`; its labels export with ``source`` ``simulated:<name>``.
Only prompts from the built-in world can be labeled (the labeler grades against the world's reference).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..data.preference import CRITERIA
from ..errors import InputError
from .labels import LabelIn

WORLD_FIELDS = ("kind", "category", "split", "reference", "meta")


def world_item(key: str, prompt: list[dict[str, str]], meta: dict[str, Any]) -> dict[str, Any]:
    """The world's item dict back from a stored prompt (``lmforge generate prompts=world`` keeps the fields)."""
    if meta.get("kind") is None:
        raise InputError(f"prompt {key!r} has no built-in-world metadata; the simulated labeler only labels "
                         "prompts from the world (lmforge generate prompts=world)", field="batch")
    return {"id": key, "messages": prompt, **{k: meta.get(k) for k in WORLD_FIELDS}}


def to_label(out: dict[str, Any]) -> LabelIn:
    """A ``SimulatedLabeler.label`` result as a submission."""
    return LabelIn(ranking=[int(i) for i in out["ranking"]],
                   scores=[{c: int(row[c]) for c in CRITERIA} for row in out["scores"]],
                   unsafe=[bool(u) for u in out.get("unsafe") or []] or None, comment=out.get("comment") or None)


def default_labelers(noise: float, seed: int, world_seed: int) -> Callable[[int], Any]:
    from ..world import SimulatedLabeler, World

    world = World(world_seed)
    return lambda i: SimulatedLabeler(world, noise=noise, seed=seed + i)


def simulate(store, batch: str | int, *, labelers: int = 3, per_item: int | None = None, noise: float = 0.0,
             seed: int = 0, world_seed: int = 0, prefix: str = "sim",
             make_labeler: Callable[[int], Any] | None = None, chunk: int = 200) -> dict[str, int]:
    """Label ``batch`` with ``labelers`` simulated labelers (each prompt to ``per_item`` of them, default all).

    Re-running labels only what is still pending. Returns counts of new and unchanged labels.
    """
    if labelers < 1:
        raise InputError(f"need at least one simulated labeler, got {labelers}", field="labelers")
    for key, prompt, meta in store.items(batch):  # check every prompt before assigning anything
        world_item(key, prompt, meta)
    make_labeler = make_labeler or default_labelers(noise, seed, world_seed)
    users = [store.ensure_user(f"{prefix}-{i + 1}", kind="simulated") for i in range(labelers)]
    store.assign(batch, per_item or labelers, users=[u.name for u in users])
    counts = {"labelers": labelers, "created": 0, "unchanged": 0, "revised": 0}
    for i, user in enumerate(users):
        labeler = make_labeler(i)
        todo = store.pending(user.id, batch)
        for start in range(0, len(todo), chunk):
            subs = []
            for aid in todo[start:start + chunk]:
                view = store.assignment_view(user.id, aid)
                subs.append((aid, to_label(labeler.label(world_item(view.item_key, view.prompt, view.item_meta),
                                                         view.responses))))
            for result in store.submit_labels(user.id, subs):
                counts[result.status] += 1
    return counts
