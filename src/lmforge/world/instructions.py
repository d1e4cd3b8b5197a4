"""Simple instructions whose answers can be computed and checked in the world ("List three countries in Europe.").

The prompt names a filter (continent, language, currency, diet, kind, habitat) and how many entities to give.
The reference names entities from the item's split only (so train data never mentions a held-out entity), but
``meta["valid"]`` lists *every* KB entity that satisfies the filter: naming a correct held-out country is still a
correct answer. ``meta["filter_phrases"]`` are the words that show an answer restates the request.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from .facts import DIET_MEANING, DIET_MEANING_PLURAL
from .kb import Animal, Country, World
from .phrasings import habitat_phrase
from .tasks import Item, make_item, user
from .text import article, cap_first, join_and, number_word, pick

INSTRUCTION_CATEGORIES = ("countries_in_continent", "countries_by_language", "countries_by_currency",
                          "animals_by_diet", "animals_by_kind", "animals_by_habitat")
_FILTER_ATTR = {"countries_in_continent": "continent", "countries_by_language": "language",
                "countries_by_currency": "currency", "animals_by_diet": "diet", "animals_by_kind": "kind",
                "animals_by_habitat": "habitat"}


def _country_texts(category: str, v: str, n: int) -> tuple[list[str], str]:
    """(prompt templates, reference template with {list}) for a country category."""
    w = number_word(n)
    if category == "countries_in_continent":
        if n == 1:
            return [f"Name a country in {v}.", f"Tell me one country in {v}."], f"One country in {v} is {{list}}."
        return ([f"List {w} countries in {v}.", f"Name {w} countries in {v}.", f"Give me {w} countries in {v}."],
                f"{cap_first(w)} countries in {v} are {{list}}.")
    if category == "countries_by_language":
        if n == 1:
            return ([f"Name a country where people speak {v}.", f"Tell me a country whose official language is {v}."],
                    f"One country where people speak {v} is {{list}}.")
        return ([f"Name {w} countries where people speak {v}.", f"List {w} countries whose official language is {v}."],
                f"{cap_first(w)} countries where people speak {v} are {{list}}.")
    if n == 1:
        return ([f"Name a country that uses the {v}.", f"Tell me one country that pays with the {v}."],
                f"One country that uses the {v} is {{list}}.")
    return [f"Name {w} countries that use the {v}.", f"List {w} countries that use the {v}."], \
        f"{cap_first(w)} countries that use the {v} are {{list}}."


def _animal_texts(category: str, v: str, n: int, kind_plural: str) -> tuple[list[str], str, list[str]]:
    """(prompt templates, reference template, filter phrases) for an animal category."""
    w = number_word(n)
    if category == "animals_by_diet":
        m1, m2 = DIET_MEANING[v], DIET_MEANING_PLURAL[v]
        phrases = [m1, m2, v, v + "s"]
        if n == 1:
            return [f"Name an animal that {m1}.", f"Tell me one animal that {m1}."], \
                f"One animal that {m1} is {{list}}.", phrases
        return [f"Name {w} animals that {m2}.", f"List {w} animals that {m2}."], \
            f"{cap_first(w)} animals that {m2} are {{list}}.", phrases
    if category == "animals_by_kind":
        phrases = [v, kind_plural]
        if n == 1:
            return [f"Name {article(v)} {v}.", f"Tell me one animal that is {article(v)} {v}."], \
                f"One example of {article(v)} {v} is {{list}}.", phrases
        return [f"Name {w} {kind_plural}.", f"List {w} animals that are {kind_plural}."], \
            f"{cap_first(w)} examples of {kind_plural} are {{list}}.", phrases
    h = habitat_phrase(v)
    if n == 1:
        return [f"Name an animal that lives {h}.", f"Tell me one animal that lives {h}."], \
            f"One animal that lives {h} is {{list}}.", [v]
    return [f"Name {w} animals that live {h}.", f"List {w} animals that live {h}."], \
        f"{cap_first(w)} animals that live {h} are {{list}}.", [v]


def instruction_item(world: World, split: str, rng: random.Random, category: str) -> Item | None:
    """One instruction of a category, or None if no filter value has enough entities in the split."""
    attr = _FILTER_ATTR[category]
    is_country = category.startswith("countries")
    pool: list[Country | Animal] = list(world.countries_in(split) if is_country else world.animals_in(split))
    max_n = 3 if is_country else 2
    n = rng.randint(1, max_n)
    counts = Counter(e.get(attr) for e in pool)
    values = sorted(v for v, k in counts.items() if k >= n)
    if not values:
        return None
    v = pick(rng, values)
    chosen = rng.sample([e for e in pool if e.get(attr) == v], n)
    everyone: list[Country | Animal] = list(world.countries if is_country else world.animals)
    valid = sorted(e.name for e in everyone if e.get(attr) == v)
    if is_country:
        prompts, ref = _country_texts(category, v, n)
        phrases = [v]
        names = [e.name for e in chosen]
    else:
        prompts, ref, phrases = _animal_texts(category, v, n, chosen[0].kind_plural if attr == "kind" else "")
        names = [f"the {e.name}" for e in chosen]
    meta: dict[str, Any] = {"subject_type": "country" if is_country else "animal", "attribute": attr,
                            "filter": {attr: v}, "value": v, "count": n, "valid": valid,
                            "filter_phrases": phrases, "answer": [e.name for e in chosen]}
    return make_item("instruction", category, split, [user(pick(rng, prompts))], ref.format(list=join_and(names)),
                     meta)


def instruction_items(world: World, split: str, rng: random.Random, count: int) -> list[Item]:
    """``count`` instructions cycling through the categories (skipping ones the split cannot fill)."""
    items: list[Item] = []
    makers: list[Callable[[], Item | None]] = [
        (lambda c=c: instruction_item(world, split, rng, c)) for c in INSTRUCTION_CATEGORIES]
    tries = 0
    while len(items) < count and tries < count * 4:
        item = makers[tries % len(makers)]()
        tries += 1
        if item is not None:
            items.append(item)
    return items
