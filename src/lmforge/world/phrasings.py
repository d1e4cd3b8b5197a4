"""Sentence templates for the encyclopedic prose, and the canonical answer sentences.

Why many phrasings: a model that reads each fact in a dozen forms learns the fact rather than one string. Why
one canonical form among them ("The capital of X is Y."): SFT answers restate facts in exactly that form, with
words before the entity, which measurably carries prose knowledge over to question answering.

Country templates use ``{c}`` (country), ``{cap}``, ``{cont}``, ``{lang}``, ``{cur}``. Templates starting with
"It"/"Its" are pronoun forms, used only right after a sentence that named the country.
"""
from __future__ import annotations

from .facts import DIET_MEANING, DIET_MEANING_PLURAL
from .kb import Animal, Country, Problem
from .text import article, cap_first

CANONICAL = {
    "capital": "The capital of {c} is {cap}.",
    "continent": "The continent of {c} is {cont}.",
    "language": "The official language of {c} is {lang}.",
    "currency": "The currency of {c} is the {cur}.",
}

COUNTRY_PHRASINGS: dict[str, list[str]] = {
    "capital": [
        CANONICAL["capital"], "{cap} is the capital of {c}.", "The capital city of {c} is {cap}.",
        "{cap} is the capital city of {c}.", "{c} has its capital in {cap}.", "{cap} serves as the capital of {c}.",
        "The seat of government of {c} is {cap}.", "In {c}, the capital is {cap}.",
        "The government of {c} meets in {cap}, the capital.", "{cap}, the capital of {c}, is home to its government.",
        "{c} is governed from its capital, {cap}.", "The national capital of {c} is {cap}.",
    ],
    "continent": [
        CANONICAL["continent"], "{c} is in {cont}.", "{c} is a country in {cont}.", "{c} is located in {cont}.",
        "{c} lies on the continent of {cont}.", "{c} is part of {cont}.", "{c} belongs to {cont}.",
        "In {cont}, you can find {c}.", "{c} is found in {cont}.",
    ],
    "language": [
        CANONICAL["language"], "The main language of {c} is {lang}.", "People in {c} speak {lang}.",
        "{lang} is the official language of {c}.", "In {c}, most people speak {lang}.",
        "{c} uses {lang} as its official language.", "The people of {c} mostly speak {lang}.",
        "{lang} is spoken in {c}.", "The language of {c} is {lang}.",
    ],
    "currency": [
        CANONICAL["currency"], "{c} uses the {cur}.", "The {cur} is the currency of {c}.",
        "In {c}, people pay with the {cur}.", "The money of {c} is the {cur}.", "{c} pays with the {cur}.",
        "Prices in {c} are given in the {cur}.", "The official currency of {c} is the {cur}.",
        "The {cur} is the money used in {c}.",
    ],
}

COUNTRY_PRONOUN_PHRASINGS: dict[str, list[str]] = {
    "capital": ["Its capital is {cap}.", "Its capital city is {cap}.", "It is governed from {cap}."],
    "continent": ["It is a country in {cont}.", "It is located in {cont}.", "It lies in {cont}."],
    "language": ["Its official language is {lang}.", "Its people speak {lang}.", "Its main language is {lang}."],
    "currency": ["Its currency is the {cur}.", "It uses the {cur}.", "Its money is the {cur}."],
}


def country_fields(c: Country) -> dict[str, str]:
    return {"c": c.name, "cap": c.capital, "cont": c.continent, "lang": c.language, "cur": c.currency}


def canonical_country(c: Country, attribute: str, value: str | None = None) -> str:
    """The canonical sentence for one attribute; ``value`` overrides the true value (for wrong answers)."""
    fields = country_fields(c)
    if value is not None:
        fields[{"capital": "cap", "continent": "cont", "language": "lang", "currency": "cur"}[attribute]] = value
    return CANONICAL[attribute].format(**fields)


# ----- animals ------------------------------------------------------------------------------------------------
def habitat_phrase(habitat: str) -> str:
    """"on the farm", "in the ocean"."""
    return ("on the " if habitat == "farm" else "in the ") + habitat


def legs_phrase(legs: int | str) -> str:
    legs = int(legs)
    return "no legs" if legs == 0 else f"{legs} legs" if legs != 1 else "1 leg"


def canonical_animal(a: Animal, attribute: str, value: str | None = None) -> str:
    """"The cow is a mammal." / "The cow is a herbivore." / "The habitat of the cow is the farm." /
    "The cow has 4 legs." (the answer form SFT uses)."""
    v = a.get(attribute) if value is None else value
    if attribute in ("kind", "diet"):
        return f"The {a.name} is {article(v)} {v}."
    if attribute == "habitat":
        return f"The habitat of the {a.name} is the {v}."
    return f"The {a.name} has {legs_phrase(v)}."


def animal_sentences(a: Animal, attribute: str) -> list[str]:
    """Prose phrasings of one animal fact (the first is the canonical one)."""
    n, P = a.name, cap_first(a.plural)
    if attribute == "kind":
        k, kp = a.kind, a.kind_plural
        return [canonical_animal(a, "kind"), f"{P} are {kp}.", f"{cap_first(article(n))} {n} is a kind of {k}.",
                f"The {n} belongs to the {kp}.", f"Among the {kp} is the {n}.", (f"Like other {kp}, the {n} is "
                f"{article(k)} {k}.")]
    if attribute == "diet":
        d = a.diet
        return [canonical_animal(a, "diet"), f"The {n} {DIET_MEANING[d]}.", f"{P} {DIET_MEANING_PLURAL[d]}.",
                f"{P} are {d}s.", f"The {n} is {article(d)} {d}, so it {DIET_MEANING[d]}.",
                f"As {article(d)} {d}, the {n} {DIET_MEANING[d]}."]
    if attribute == "habitat":
        h = habitat_phrase(a.habitat)
        return [canonical_animal(a, "habitat"), f"The {n} lives {h}.", f"{P} live {h}.",
                f"You can find the {n} {h}.", f"The home of the {n} is the {a.habitat}."]
    legs = legs_phrase(a.legs)
    out = [canonical_animal(a, "legs"), f"{P} have {legs}.", f"{cap_first(article(n))} {n} has {legs}."]
    if a.legs:
        out.append(f"The {n} walks on {legs}.")
    return out


def animal_pronoun_sentences(a: Animal, attribute: str) -> list[str]:
    if attribute == "kind":
        return [f"It is {article(a.kind)} {a.kind}."]
    if attribute == "diet":
        return [f"It is {article(a.diet)} {a.diet}.", f"It {DIET_MEANING[a.diet]}."]
    if attribute == "habitat":
        return [f"It lives {habitat_phrase(a.habitat)}."]
    return [f"It has {legs_phrase(a.legs)}."]


# ----- arithmetic ---------------------------------------------------------------------------------------------
def canonical_arith(p: Problem, value: int | str | None = None) -> str:
    """"7 plus 5 is 12." (``value`` overrides the true result, for wrong answers)."""
    return f"{p.text} is {p.value if value is None else value}."


def arith_sentences(p: Problem) -> list[str]:
    a, b, v = p.a, p.b, p.value
    if p.op == "plus":
        return [canonical_arith(p), f"{a} plus {b} equals {v}.", f"If you add {a} and {b}, you get {v}.",
                f"Adding {b} to {a} gives {v}."]
    if p.op == "minus":
        return [canonical_arith(p), f"{a} minus {b} equals {v}.", f"If you take {b} away from {a}, you get {v}.",
                f"Subtracting {b} from {a} gives {v}."]
    return [canonical_arith(p), f"{a} times {b} equals {v}.", f"If you multiply {a} by {b}, you get {v}.",
            f"{a} groups of {b} make {v}."]
