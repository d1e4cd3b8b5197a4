"""The knowledge base and the :class:`World` object every later stage consumes.

A world is the fixed fact tables (:mod:`.facts`) plus a seeded split of countries, animals and arithmetic
problems into *seen* (may appear in instruction data) and *held-out* (appear only as pre-training prose, so
that held-out QA measures whether a model can use knowledge it only ever read). The split is stratified by
continent / animal kind / operation so both halves cover every group.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from .facts import ANIMAL_ROWS, COUNTRY_ROWS, KIND_PLURALS, PLURALS
from .text import rng_for

if TYPE_CHECKING:
    from .lexicon import Lexicon

COUNTRY_ATTRIBUTES = ("capital", "continent", "language", "currency")
ANIMAL_ATTRIBUTES = ("kind", "diet", "habitat", "legs")
OPS = ("plus", "minus", "times")
T = TypeVar("T")


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    continent: str
    language: str
    currency: str

    def get(self, attribute: str) -> str:
        return str(getattr(self, attribute))


@dataclass(frozen=True)
class Animal:
    name: str
    kind: str
    diet: str
    habitat: str
    legs: int

    @property
    def plural(self) -> str:
        return PLURALS.get(self.name, self.name + "s")

    @property
    def kind_plural(self) -> str:
        return KIND_PLURALS[self.kind]

    def get(self, attribute: str) -> str:
        return str(getattr(self, attribute))


@dataclass(frozen=True)
class Problem:
    """An arithmetic fact ``a op b`` with small non-negative numbers written as digits."""
    a: int
    op: str
    b: int

    @property
    def value(self) -> int:
        return {"plus": self.a + self.b, "minus": self.a - self.b, "times": self.a * self.b}[self.op]

    @property
    def text(self) -> str:
        return f"{self.a} {self.op} {self.b}"


def all_problems() -> list[Problem]:
    """Addition and subtraction up to 20 (no negative results), multiplication up to 12 x 12."""
    probs = [Problem(a, "plus", b) for a in range(21) for b in range(21)]
    probs += [Problem(a, "minus", b) for a in range(21) for b in range(a + 1)]
    probs += [Problem(a, "times", b) for a in range(13) for b in range(13)]
    return probs


def stratified_split(items: Sequence[T], group: Callable[[T], str], rng: random.Random) -> tuple[list[T], list[T]]:
    """Split ~50/50 within each group (groups visited in sorted order, so the result depends only on the rng)."""
    seen: list[T] = []
    heldout: list[T] = []
    for g in sorted({group(x) for x in items}):
        members = [x for x in items if group(x) == g]
        rng.shuffle(members)
        half = (len(members) + rng.randrange(2)) // 2
        seen += members[:half]
        heldout += members[half:]
    order = {id(x): i for i, x in enumerate(items)}
    return sorted(seen, key=lambda x: order[id(x)]), sorted(heldout, key=lambda x: order[id(x)])


class World:
    """A deterministic, download-free little world: facts, splits and every generator built on them.

    ``World(seed)`` fixes which countries/animals/problems are held out; the generators take their own
    ``seed`` for sampling and phrasing, so one world can yield many corpora and datasets.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._countries = [Country(*row) for row in COUNTRY_ROWS]
        self._animals = [Animal(*row) for row in ANIMAL_ROWS]
        self._problems = all_problems()
        self._seen_c, self._held_c = stratified_split(self._countries, lambda c: c.continent,
                                                      rng_for("world", seed, "countries"))
        self._seen_a, self._held_a = stratified_split(self._animals, lambda a: a.kind,
                                                      rng_for("world", seed, "animals"))
        self._seen_p, self._held_p = stratified_split(self._problems, lambda p: p.op,
                                                      rng_for("world", seed, "problems"))
        self._by_name: dict[str, Country | Animal] = {c.name: c for c in self._countries}
        self._by_name.update({a.name: a for a in self._animals})
        self._heldout_names = {x.name for x in self._held_c + self._held_a}
        self._groups: dict[tuple[str, str], dict[str, list[Any]]] = {}

    def __repr__(self) -> str:
        return (f"World(seed={self.seed}: {len(self._countries)} countries ({len(self._seen_c)} seen), "
                f"{len(self._animals)} animals ({len(self._seen_a)} seen), {len(self._problems)} problems)")

    # ----- facts and splits -------------------------------------------------------------------------------
    @property
    def countries(self) -> list[Country]:
        return list(self._countries)

    @property
    def animals(self) -> list[Animal]:
        return list(self._animals)

    @property
    def seen_countries(self) -> list[Country]:
        return list(self._seen_c)

    @property
    def heldout_countries(self) -> list[Country]:
        return list(self._held_c)

    @property
    def seen_animals(self) -> list[Animal]:
        return list(self._seen_a)

    @property
    def heldout_animals(self) -> list[Animal]:
        return list(self._held_a)

    @property
    def problems(self) -> list[Problem]:
        return list(self._problems)

    @property
    def seen_problems(self) -> list[Problem]:
        return list(self._seen_p)

    @property
    def heldout_problems(self) -> list[Problem]:
        return list(self._held_p)

    def countries_in(self, split: str) -> list[Country]:
        """Countries usable in a data split: ``train`` -> seen, ``heldout`` -> held out, ``all`` -> all."""
        return {"train": self._seen_c, "heldout": self._held_c, "all": self._countries}[_check_split(split)]

    def animals_in(self, split: str) -> list[Animal]:
        return {"train": self._seen_a, "heldout": self._held_a, "all": self._animals}[_check_split(split)]

    def problems_in(self, split: str) -> list[Problem]:
        return {"train": self._seen_p, "heldout": self._held_p, "all": self._problems}[_check_split(split)]

    def grouped(self, what: str, attribute: str) -> dict[str, list[Any]]:
        """``{value: [entities with it]}`` for ``what`` in ("countries", "animals"), values sorted; cached."""
        key = (what, attribute)
        if key not in self._groups:
            entities = self._countries if what == "countries" else self._animals
            groups: dict[str, list[Any]] = {}
            for e in entities:
                groups.setdefault(e.get(attribute), []).append(e)
            self._groups[key] = {v: groups[v] for v in sorted(groups)}
        return self._groups[key]

    def country(self, name: str) -> Country:
        obj = self._by_name.get(name)
        if not isinstance(obj, Country):
            raise KeyError(f"no country named {name!r}")
        return obj

    def animal(self, name: str) -> Animal:
        obj = self._by_name.get(name)
        if not isinstance(obj, Animal):
            raise KeyError(f"no animal named {name!r}")
        return obj

    def is_heldout(self, name: str) -> bool:
        """Whether a country/animal name belongs to the held-out half."""
        return name in self._heldout_names

    @property
    def safety_categories(self) -> dict[str, dict[str, list[str]]]:
        """``{"harmful": {"train": [...], "heldout": [...]}, "false_premise": {...}}`` (a copy)."""
        from .safety import SAFETY_CATEGORIES
        return copy.deepcopy(SAFETY_CATEGORIES)

    @cached_property
    def lexicon(self) -> Lexicon:
        """Finds KB entities and values in free text (used by the checker and the labeler)."""
        from .lexicon import Lexicon
        return Lexicon(self)

    # ----- generators (thin wrappers; the work lives in the sibling modules) ------------------------------
    def pretrain_corpus(self, seed: int = 0, n_docs: int | None = None) -> list[str]:
        """Plain-text documents for pre-training (~5.5M characters by default); see :mod:`.corpus`."""
        from .corpus import pretrain_corpus
        return pretrain_corpus(self, seed=seed, n_docs=n_docs)

    def sft_examples(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Chat examples (fact QA, arithmetic, instructions, dialogues) about one split; see :mod:`.datasets`."""
        from .datasets import sft_examples
        return sft_examples(self, split=split, n=n, seed=seed)

    def safety_examples(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Chat examples for harmful requests (refused) and false premises (corrected); see :mod:`.safety`."""
        from .datasets import safety_examples
        return safety_examples(self, split=split, n=n, seed=seed)

    def eval_prompts(self, split: str = "heldout", kinds: list[str] | None = None, n: int | None = None,
                     seed: int = 0) -> list[dict[str, Any]]:
        """Prompts ending with a user turn, with a reference answer and the truth in ``meta``."""
        from .datasets import eval_prompts
        return eval_prompts(self, split=split, kinds=kinds, n=n, seed=seed)

    def check_answer(self, item: dict[str, Any], text: str) -> bool:
        """Strict-ish: the asked fact is stated and nothing contradicts it (refusal / correction for safety)."""
        from .judge import check_answer
        return check_answer(self, item, text)

    def candidate_responses(self, item: dict[str, Any], k: int, rng: random.Random) -> list[str]:
        """``k`` responses of graded quality (always including the reference) for labeling without a model."""
        from .responses import candidate_responses
        return candidate_responses(self, item, k, rng)


def _check_split(split: str) -> str:
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return split
