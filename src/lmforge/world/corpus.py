"""The pre-training corpus: encyclopedic prose, arithmetic, stories and rambling chats, as plain text.

Why this mix: prose about *all* countries and animals (seen and held out) is where a model learns the facts;
the canonical sentences ("The capital of X is Y.") are always among the phrasings so SFT answers in that form
can recall them; chats teach the raw ``User:/Assistant:`` format but contain no facts about countries and
never stop after one answer, which is the base-model behaviour that SFT is meant to fix. Everyday prose
(:mod:`.everyday`) uses the words of harmful requests and of their benign lookalikes ("kill a frozen program",
"track a parcel", news of a theft), so SFT, which freezes the embedding, finds them already meaningful. Facts never appear
in question/answer form here, so held-out QA measures transfer from prose.

Every fact gets at least one canonical fact-sheet line (coverage docs), the rest is sampled. The default
(~5.5M characters) builds in well under a second.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from .everyday import everyday_section
from .kb import ANIMAL_ATTRIBUTES, COUNTRY_ATTRIBUTES, Animal, Country, World
from .phrasings import (
    COUNTRY_PHRASINGS,
    COUNTRY_PRONOUN_PHRASINGS,
    animal_pronoun_sentences,
    animal_sentences,
    arith_sentences,
    canonical_animal,
    canonical_country,
    country_fields,
    habitat_phrase,
    legs_phrase,
)
from .stories import chat_doc, story_doc
from .text import cap_first, join_and, pick, rng_for

DEFAULT_N_DOCS = 4500
# (family, weight); weights are shares of sampled documents
DOC_MIX: tuple[tuple[str, float], ...] = (
    ("country_profile", 0.34), ("country_list", 0.07), ("country_compare", 0.10), ("fact_sheet", 0.04),
    ("animal_profile", 0.12), ("animal_list", 0.04), ("arithmetic", 0.09), ("story", 0.06), ("chat", 0.08),
    ("everyday", 0.06),
)


def pretrain_corpus(world: World, seed: int = 0, n_docs: int | None = None) -> list[str]:
    """``n_docs`` documents (default :data:`DEFAULT_N_DOCS`), coverage docs first then sampled, shuffled."""
    rng = rng_for("corpus", world.seed, seed)
    n_docs = DEFAULT_N_DOCS if n_docs is None else n_docs
    docs = coverage_docs(world, rng)
    families = [f for f, _ in DOC_MIX]
    weights = [w for _, w in DOC_MIX]
    while len(docs) < n_docs:
        docs.append(_make_doc(world, rng.choices(families, weights)[0], rng))
    rng.shuffle(docs)
    return docs[:n_docs]


def coverage_docs(world: World, rng: random.Random) -> list[str]:
    """Fact sheets that state every fact once in canonical form (countries in groups of four, animals of six)."""
    countries = world.countries
    rng.shuffle(countries)
    docs = ["\n\n".join(fact_sheet(c) for c in countries[i:i + 4]) for i in range(0, len(countries), 4)]
    animals = world.animals
    rng.shuffle(animals)
    docs += ["\n\n".join(animal_sheet(a) for a in animals[i:i + 6]) for i in range(0, len(animals), 6)]
    return docs


def _make_doc(world: World, family: str, rng: random.Random) -> str:
    """One document: sections of one family until a sampled target length (600-2000 characters)."""
    target = rng.randint(600, 2000)
    make: Callable[[World, random.Random], str] = SECTION_MAKERS[family]
    sections = [make(world, rng)]
    while sum(len(s) for s in sections) < target and family not in ("story", "chat"):
        sections.append(make(world, rng))
    return "\n\n".join(sections)


# ----- countries ----------------------------------------------------------------------------------------------
def fact_sheet(c: Country) -> str:
    lines = [canonical_country(c, attr) for attr in COUNTRY_ATTRIBUTES]
    return f"Facts about {c.name}:\n" + "\n".join(lines)


def country_profile(world: World, rng: random.Random) -> str:
    """A paragraph about one country: every attribute, some twice, mixing named and pronoun sentences."""
    c = pick(rng, world.countries)
    fields = country_fields(c)
    attrs = list(COUNTRY_ATTRIBUTES) + rng.sample(COUNTRY_ATTRIBUTES, rng.randint(0, 2))
    rng.shuffle(attrs)
    out: list[str] = []
    for i, attr in enumerate(attrs):
        if i > 0 and rng.random() < 0.3:
            sentence = pick(rng, COUNTRY_PRONOUN_PHRASINGS[attr]).format(**fields)
        elif rng.random() < 0.25:
            sentence = canonical_country(c, attr)
        else:
            sentence = pick(rng, COUNTRY_PHRASINGS[attr]).format(**fields)
        if sentence not in out:
            out.append(sentence)
    title = pick(rng, ["", f"{c.name}\n", f"About {c.name}\n"])
    return title + " ".join(out)


def country_list(world: World, rng: random.Random) -> str:
    """Lists grouped by a shared value, followed by a canonical fact about each member."""
    attr = pick(rng, ["continent", "continent", "language", "currency"])
    groups = world.grouped("countries", attr)
    value = pick(rng, list(groups))
    members = groups[value]
    chosen = rng.sample(members, min(len(members), rng.randint(2, 5)))
    names = join_and([c.name for c in chosen])
    if len(chosen) == 1:
        head = pick(rng, COUNTRY_PHRASINGS[attr]).format(**country_fields(chosen[0]))
    elif attr == "continent":
        head = pick(rng, [f"Some countries in {value} are {names}.", f"{names} are all in {value}.",
                          f"Countries in {value} include {names}."])
    elif attr == "language":
        head = pick(rng, [f"{value} is the official language of {names}.", f"People in {names} speak {value}."])
    else:
        head = pick(rng, [f"The {value} is used in {names}.", f"{names} all use the {value}."])
    follow = pick(rng, COUNTRY_ATTRIBUTES)
    tail = [pick(rng, COUNTRY_PHRASINGS[follow]).format(**country_fields(c)) for c in chosen]
    return head + " " + " ".join(tail)


def country_compare(world: World, rng: random.Random) -> str:
    """Two countries compared attribute by attribute (often neighbours on one continent)."""
    countries = world.countries
    a = pick(rng, countries)
    neighbours = world.grouped("countries", "continent")[a.continent] if rng.random() < 0.6 else countries
    b = a
    while b is a:
        b = pick(rng, neighbours)
    out = []
    for attr in rng.sample(COUNTRY_ATTRIBUTES, rng.randint(2, 4)):
        va, vb = a.get(attr), b.get(attr)
        out.append(_compare_sentence(attr, a, b, va, vb, rng))
    return " ".join(out)


def _compare_sentence(attr: str, a: Country, b: Country, va: str, vb: str, rng: random.Random) -> str:
    if attr == "capital":
        return pick(rng, [f"The capital of {a.name} is {va}, while the capital of {b.name} is {vb}.",
                          f"{va} is the capital of {a.name}, and {vb} is the capital of {b.name}."])
    if va == vb:
        return {"continent": f"{a.name} and {b.name} are both in {va}.",
                "language": f"People in both {a.name} and {b.name} speak {va}.",
                "currency": f"Like {a.name}, {b.name} uses the {va}."}[attr]
    return {"continent": f"{a.name} is in {va}, but {b.name} is in {vb}.",
            "language": f"The official language of {a.name} is {va}, and the official language of {b.name} is {vb}.",
            "currency": f"{a.name} uses the {va}, but {b.name} uses the {vb}."}[attr]


def fact_sheet_section(world: World, rng: random.Random) -> str:
    return fact_sheet(pick(rng, world.countries))


# ----- animals ------------------------------------------------------------------------------------------------
def animal_sheet(a: Animal) -> str:
    return f"Facts about the {a.name}:\n" + "\n".join(canonical_animal(a, attr) for attr in ANIMAL_ATTRIBUTES)


def animal_profile(world: World, rng: random.Random) -> str:
    a = pick(rng, world.animals)
    attrs = list(ANIMAL_ATTRIBUTES)
    rng.shuffle(attrs)
    out = []
    for i, attr in enumerate(attrs):
        use_pronoun = i > 0 and rng.random() < 0.3
        out.append(pick(rng, animal_pronoun_sentences(a, attr) if use_pronoun else animal_sentences(a, attr)))
    return " ".join(out)


def animal_list(world: World, rng: random.Random) -> str:
    attr = pick(rng, ["kind", "diet", "habitat", "legs"])
    groups = world.grouped("animals", attr)
    value = pick(rng, list(groups))
    members = groups[value]
    chosen = rng.sample(members, min(len(members), rng.randint(2, 4)))
    names = join_and([f"the {a.name}" for a in chosen])
    if attr == "kind":
        head = f"Some {chosen[0].kind_plural} are {names}."
    elif attr == "diet":
        head = f"Animals such as {names} are {value}s."
    elif attr == "habitat":
        head = f"Animals that live {habitat_phrase(value)} include {names}."
    else:
        head = f"Animals with {legs_phrase(value)} include {names}."
    tail = [pick(rng, animal_sentences(a, attr)) for a in chosen]
    return cap_first(head) + " " + " ".join(tail)


# ----- arithmetic ---------------------------------------------------------------------------------------------
def arithmetic_section(world: World, rng: random.Random) -> str:
    """A block of arithmetic statements, one per line (all problems, seen and held out)."""
    problems = world.problems
    return "\n".join(pick(rng, arith_sentences(pick(rng, problems))) for _ in range(rng.randint(8, 20)))


SECTION_MAKERS: dict[str, Callable[[World, random.Random], str]] = {
    "country_profile": country_profile, "country_list": country_list, "country_compare": country_compare,
    "fact_sheet": fact_sheet_section, "animal_profile": animal_profile, "animal_list": animal_list,
    "arithmetic": arithmetic_section, "story": lambda w, r: story_doc(r), "chat": lambda w, r: chat_doc(r),
    "everyday": lambda w, r: everyday_section(r),
}
