"""Multi-step arithmetic word problems with worked solutions, for reasoning with reinforced fine-tuning (ReFT).

Each problem is a short story about the world's people, cities, currencies and animals, a question, and a
step-by-step solution whose last line states the answer in one format: ``#### N`` (GSM8K's convention, read by
:func:`lmforge.rewards.builtin.final_answer`). Every arithmetic step is one line ``a op b = c``.

**Seen and held-out kinds.** Training uses the seen kinds; evaluation on the held-out kinds asks for the same
operations chained further (more steps) or on larger numbers, so accuracy there measures whether a model
learned to reason step by step rather than recalled problems it saw:

============  =====================================================  ==========  ============
kind          story                                                  steps       numbers
============  =====================================================  ==========  ============
gather        a count changed twice (finds / gives away)            2           2-9
shop          q items at price p, paid with a note: the change       2           prices 1-9
legs          two groups of animals: their legs altogether           3           2-6 animals
gather_long   a count changed four times                             4           2-9
shop_two      two kinds of items bought, then the change             4           prices 1-9
legs_three    three groups of animals                                5           2-6 animals
gather_large  a count changed twice, on larger numbers               2           20-99
============  =====================================================  ==========  ============

Deterministic from the world's seed and the call's ``seed``; an item's id depends only on its question, so a
held-out evaluation can drop any problem whose question also appears in training (:func:`train_eval_split`).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .kb import World
from .stories import NAMES
from .tasks import Item, as_sft, make_item, user
from .text import pick, rng_for

SEEN_KINDS = ("gather", "shop", "legs")
HELDOUT_KINDS = ("gather_long", "shop_two", "legs_three", "gather_large")
KINDS = SEEN_KINDS + HELDOUT_KINDS
ANSWER_PREFIX = "#### "  # the stated answer format: the solution's last line is "#### N"

THINGS = ["stamps", "shells", "marbles", "apples", "stickers", "books", "coins", "pencils", "cards", "eggs"]
GOODS = [("notebook", "notebooks"), ("pen", "pens"), ("mango", "mangoes"), ("cup", "cups"), ("toy", "toys"),
         ("bottle of water", "bottles of water"), ("loaf of bread", "loaves of bread"), ("apple", "apples")]
NOTES = (10, 20, 50, 100)
GAINS = ["{P} finds {k} more.", "A friend gives {o} {k} more.", "{P} buys {k} more.", "{P} gets {k} more."]
LOSSES = ["{P} gives {k} to a friend.", "{P} loses {k}.", "{P} gives away {k}.", "{P} uses {k}."]
OBJECT = {"she": "her", "he": "him"}


def _op(a: int, sym: str, b: int) -> tuple[int, str]:
    value = {"+": a + b, "-": a - b, "x": a * b}[sym]
    return value, f"{a} {sym} {b} = {value}."


def _gather(world: World, rng: random.Random, updates: int, lo: int, hi: int) -> tuple[str, list[str], int]:
    name, pron = pick(rng, NAMES)
    thing = pick(rng, THINGS)
    city = pick(rng, world.countries).capital
    value = rng.randint(lo, hi)
    story = [f"{name} lives in {city} and has {value} {thing}."]
    steps = [f"{name} starts with {value} {thing}."]
    for _ in range(updates):
        losing = value > lo and rng.random() < 0.5
        k = rng.randint(1, value - 1) if losing else rng.randint(lo, hi)
        template = pick(rng, LOSSES if losing else GAINS)
        story.append(template.format(P=pron.capitalize(), o=OBJECT[pron], k=k))
        value, line = _op(value, "-" if losing else "+", k)
        steps.append(line)
    story.append(f"How many {thing} does {name} have now?")
    return " ".join(story), steps, value


def _shop(world: World, rng: random.Random, kinds: int) -> tuple[str, list[str], int]:
    name, pron = pick(rng, NAMES)
    country = pick(rng, world.countries)
    money = country.currency  # singular throughout ("5 euro each"): English plurals of currencies vary
    goods = rng.sample(GOODS, kinds)
    bought = [(rng.randint(2, 5), rng.randint(1, 9), g) for g in goods]
    parts = [f"{q} {g[1]} at {p} {money} each" for q, p, g in bought]
    cost = sum(q * p for q, p, _ in bought)
    note = next(n for n in NOTES if n >= cost)
    story = (f"In {country.name} people pay in {money}. {name} buys {' and '.join(parts)}. {pron.capitalize()} "
             f"pays with a {note} {money} note. How much change does {name} get?")
    steps, subtotals = [], []
    for q, p, _ in bought:
        value, line = _op(q, "x", p)
        subtotals.append(value)
        steps.append(line)
    total = subtotals[0]
    for s in subtotals[1:]:
        total, line = _op(total, "+", s)
        steps.append(line)
    change, line = _op(note, "-", total)
    steps.append(line)
    return story, steps, change


def _legs(world: World, rng: random.Random, groups: int) -> tuple[str, list[str], int]:
    animals = rng.sample([a for a in world.animals if a.legs > 0], groups)
    counts = [rng.randint(2, 6) for _ in animals]
    city = pick(rng, world.countries).capital
    herd = ", ".join(f"{n} {a.plural}" for n, a in zip(counts[:-1], animals[:-1]))
    herd += f" and {counts[-1]} {animals[-1].plural}"
    story = f"A farm near {city} has {herd}. How many legs do these animals have altogether?"
    steps, subtotals = [], []
    for n, a in zip(counts, animals):
        value, line = _op(n, "x", a.legs)
        article = "An" if a.name[0] in "aeiou" else "A"
        steps.append(f"{article} {a.name} has {a.legs} legs, so {n} {a.plural} have {line}")
        subtotals.append(value)
    total = subtotals[0]
    for s in subtotals[1:]:
        total, line = _op(total, "+", s)
        steps.append(line)
    return story, steps, total


MAKERS: dict[str, Callable[[World, random.Random], tuple[str, list[str], int]]] = {
    "gather": lambda w, r: _gather(w, r, 2, 2, 9),
    "shop": lambda w, r: _shop(w, r, 1),
    "legs": lambda w, r: _legs(w, r, 2),
    "gather_long": lambda w, r: _gather(w, r, 4, 2, 9),
    "shop_two": lambda w, r: _shop(w, r, 2),
    "legs_three": lambda w, r: _legs(w, r, 3),
    "gather_large": lambda w, r: _gather(w, r, 2, 20, 99),
}


def solution_text(steps: list[str], answer: int) -> str:
    """The worked solution: one step per line, then the answer line ``#### N``."""
    return "\n".join(steps + [f"{ANSWER_PREFIX}{answer}"])


def make_problem(world: World, kind: str, rng: random.Random) -> Item:
    """One problem of ``kind`` as a world item: ``messages`` (the question), ``reference`` (the solution),
    ``meta`` with ``answer`` (an int), ``steps`` (arithmetic lines) and ``problem_kind``."""
    if kind not in MAKERS:
        raise ValueError(f"unknown word-problem kind {kind!r}; expected one of {', '.join(KINDS)}")
    question, steps, answer = MAKERS[kind](world, rng)
    split = "heldout" if kind in HELDOUT_KINDS else "train"
    meta: dict[str, Any] = {"answer": answer, "steps": sum("=" in s for s in steps), "problem_kind": kind}
    return make_item("word_problem", kind, split, [user(question)], solution_text(steps, answer), meta)


def word_problems(world: World, kinds: list[str] | tuple[str, ...] | None = None, n: int = 100, seed: int = 0,
                  exclude: set[str] | None = None) -> list[Item]:
    """``n`` distinct problems (by id), the kinds in turn (default: the seen kinds), none whose id is in
    ``exclude``. Fewer only when the kinds cannot make more distinct problems (tried 50 draws per item)."""
    kinds = tuple(SEEN_KINDS if kinds is None else kinds)
    for kind in kinds:
        if kind not in MAKERS:
            raise ValueError(f"unknown word-problem kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not kinds:
        return []
    taken = set(exclude or ())
    out: list[Item] = []
    misses = 0
    i = 0
    while len(out) < n and misses < 50 * max(n, 1):
        kind = kinds[i % len(kinds)]
        item = make_problem(world, kind, rng_for("word_problems", world.seed, seed, kind, i))
        i += 1
        if item["id"] in taken:
            misses += 1
            continue
        taken.add(item["id"])
        out.append(item)
    return out


def train_eval_split(world: World, n_train: int, n_eval: int, seed: int = 0,
                     eval_kinds: list[str] | tuple[str, ...] | None = None,
                     train_kinds: list[str] | tuple[str, ...] | None = None) -> tuple[list[Item], list[Item]]:
    """(training problems of the seen kinds, evaluation problems of the held-out kinds by default), with no
    evaluation question that also appears in training (the same kinds on both sides give fresh numbers)."""
    train = word_problems(world, train_kinds, n_train, seed=seed)
    evaluation = word_problems(world, HELDOUT_KINDS if eval_kinds is None else eval_kinds, n_eval,
                               seed=seed + 1, exclude={it["id"] for it in train})
    return train, evaluation


def sft_example(item: Item) -> Item:
    """The problem with its worked solution as the assistant turn (the SFT warm-up's example)."""
    return as_sft(item)


def prompt_row(item: Item) -> dict[str, Any]:
    """The problem as an RL / evaluation prompt row: ``{"id", "prompt": messages, "meta": {answer, ...}}``."""
    return {"id": item["id"], "prompt": item["messages"],
            "meta": {**item["meta"], "reference": item["reference"]}}
