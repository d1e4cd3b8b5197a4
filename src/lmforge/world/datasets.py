"""Assembling items into the datasets the stages consume: SFT examples, safety examples, evaluation prompts.

Sizes: with ``n=None`` each kind contributes its natural default (SFT: every fact of the split asked two ways,
plus fixed numbers of arithmetic, instruction and dialogue items; evaluation: every fact once). With ``n`` the
pool is extended by further rounds of sampling (new phrasings and entities, duplicates dropped) until ``n``
distinct items exist or the split cannot make more. SFT/safety take the first ``n`` of the shuffled pool
(proportional mix); evaluation takes kinds round-robin so a small ``n`` still covers every kind.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from .instructions import instruction_items
from .kb import World
from .lookalikes import lookalike_items
from .safety import safety_items
from .tasks import Item, arithmetic_items, as_sft, dialogue_items, fact_qa_items
from .text import rng_for

SFT_KINDS = ("fact_qa", "arithmetic", "instruction", "dialogue")
SAFETY_KINDS = ("harmful", "false_premise", "over_refusal")
ALL_KINDS = SFT_KINDS + SAFETY_KINDS
# fact_qa sizes are questions per fact; the others are item counts per round
SFT_SIZES = {"fact_qa": 2, "arithmetic": 150, "instruction": 150, "dialogue": 200}
# over_refusal (benign lookalikes of harmful requests) is kept a small share: enough that refusing is learned as
# a judgement rather than a keyword, few enough that SFT's fact accuracy is not diluted (docs/world.md)
SAFETY_SIZES = {"harmful": 160, "false_premise": 160, "over_refusal": 48}
EVAL_SIZES = {"fact_qa": 1, "arithmetic": 100, "instruction": 60, "dialogue": 100, "harmful": 80, "false_premise": 80,
              "over_refusal": 80}
MAX_ROUNDS = 40


def build_kind(world: World, kind: str, split: str, rng: random.Random, size: int) -> list[Item]:
    """One round of items of one kind."""
    if kind == "fact_qa":
        return fact_qa_items(world, split, rng, per_fact=size)
    if kind == "arithmetic":
        return arithmetic_items(world, split, rng, size)
    if kind == "instruction":
        return instruction_items(world, split, rng, size)
    if kind == "dialogue":
        return dialogue_items(world, split, rng, size)
    if kind == "over_refusal":
        return lookalike_items(split, rng, size)
    if kind in SAFETY_KINDS:
        return safety_items(world, kind, split, rng, size)
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(ALL_KINDS)}")


def _collect(make_round: Callable[[int], list[Item]], n: int | None) -> list[Item]:
    """Round 0, then more rounds until ``n`` distinct items (by id) exist or rounds stop adding any."""
    seen: dict[str, Item] = {}
    stale = 0
    for r in range(MAX_ROUNDS):
        before = len(seen)
        for item in make_round(r):
            seen.setdefault(item["id"], item)
        if n is None or len(seen) >= n:
            break
        stale = stale + 1 if len(seen) == before else 0
        if stale >= 3:
            break
    return list(seen.values())


def _mixed(world: World, kinds: tuple[str, ...], sizes: dict[str, int], split: str, n: int | None, seed: int,
           tag: str) -> list[Item]:
    split = _check_split(split)

    def make_round(r: int) -> list[Item]:
        out: list[Item] = []
        for kind in kinds:
            rng = rng_for(tag, world.seed, split, seed, kind, r)
            out += [as_sft(it) for it in build_kind(world, kind, split, rng, sizes[kind])]
        rng_for(tag, world.seed, split, seed, "order", r).shuffle(out)
        return out

    return _collect(make_round, n)[:n]


def sft_examples(world: World, split: str = "train", n: int | None = None, seed: int = 0) -> list[Item]:
    """Fact QA, arithmetic, instructions and dialogues as chat examples (reference = final assistant turn)."""
    return _mixed(world, SFT_KINDS, SFT_SIZES, split, n, seed, "sft")


def safety_examples(world: World, split: str = "train", n: int | None = None, seed: int = 0) -> list[Item]:
    """Harmful requests with refusals, false premises with corrections and benign lookalikes of harmful requests
    with helpful answers, as chat examples."""
    return _mixed(world, SAFETY_KINDS, SAFETY_SIZES, split, n, seed, "safety")


def eval_prompts(world: World, split: str = "heldout", kinds: list[str] | None = None, n: int | None = None,
                 seed: int = 0) -> list[Item]:
    """Prompts ending with a user turn, with ``reference`` and ``meta``; kinds interleaved round-robin."""
    split = _check_split(split)
    kinds = list(ALL_KINDS if kinds is None else kinds)
    for kind in kinds:
        if kind not in ALL_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(ALL_KINDS)}")
    per_kind_target = None if n is None else -(-n // max(1, len(kinds)))
    pools = []
    for kind in kinds:
        def make_round(r: int, kind: str = kind) -> list[Item]:
            items = build_kind(world, kind, split, rng_for("eval", world.seed, split, seed, kind, r), EVAL_SIZES[kind])
            rng_for("eval-order", world.seed, split, seed, kind, r).shuffle(items)
            return items
        pools.append(_collect(make_round, per_kind_target))
    if n is None:
        out = [it for pool in pools for it in pool]
        rng_for("eval-mix", world.seed, split, seed).shuffle(out)
        return out
    out = []
    for i in range(max((len(p) for p in pools), default=0)):
        out += [p[i] for p in pools if i < len(p)]
    return out[:n]


def _check_split(split: str) -> str:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return split
