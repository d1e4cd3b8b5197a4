"""Finding the world's entities and values in free text, and reading simple factual claims out of it.

Why a lexicon instead of substring tests: names overlap ("Mexico" / "Mexico City", "Spain" / "Port of Spain",
"Korean" / "South Korean won", "Sierra Leone" / "leone"). One case-insensitive regex with the longest surface
forms first and word boundaries resolves each span to exactly one entity, so the checker and the labeler never
count a country inside a capital's name as a mention.

A *claim* is read per sentence: one subject with values ("The capital of France is Paris."), or several subjects
sharing one value ("Three countries in Europe are France, Spain and Italy."). Sentences with a negation are
kept as negated claims, which is how a correction ("Paris is not the capital of Germany.") is told apart from
accepting a false premise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .facts import DIET_MEANING, DIET_MEANING_PLURAL, KIND_PLURALS

if TYPE_CHECKING:
    from .kb import World

# value type -> the attribute it answers (and whose subjects it belongs to)
COUNTRY_VALUE_TYPES = {"capital": "capital", "continent": "continent", "language": "language",
                       "currency": "currency"}
ANIMAL_VALUE_TYPES = {"kind": "kind", "diet": "diet", "habitat": "habitat", "legs": "legs"}
NEGATION = re.compile(r"\b(not|never|isn't|aren't|doesn't|don't|didn't|wasn't|cannot)\b|n't\b", re.I)
_LEGS = re.compile(r"\b(\d+|no|zero|two|four|six|eight)\s+legs?\b", re.I)
_LEG_WORDS = {"no": 0, "zero": 0, "two": 2, "four": 4, "six": 6, "eight": 8}
_ARITH = re.compile(r"\b(\d+)\s*(plus|\+|minus|-|times|x|\*)\s*(\d+)\s*(?:is|equals|=|makes|gives)\s+(\d+)\b", re.I)
_OP_WORDS = {"plus": "plus", "+": "plus", "minus": "minus", "-": "minus", "times": "times", "x": "times",
             "*": "times"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Mention:
    type: str  # country | capital | continent | language | currency | animal | kind | diet | habitat | legs
    value: str  # canonical value (legs as a digit string)
    start: int
    end: int


@dataclass(frozen=True)
class Claim:
    subject_type: str  # country | animal | arithmetic
    subject: str  # country/animal name, or "7 plus 5"
    attribute: str
    value: str
    negated: bool


def sentences(text: str) -> list[str]:
    """Split on sentence ends and newlines (the world's texts have no abbreviations or decimals)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def is_negated(sentence: str) -> bool:
    return bool(NEGATION.search(sentence))


class Lexicon:
    """Surface forms of every KB entity and value, matched longest-first with word boundaries."""

    def __init__(self, world: "World"):
        self.world = world
        self.surfaces: dict[str, tuple[str, str]] = {}
        for c in world.countries:
            self._add(c.name, "country", c.name)
            self._add(c.capital, "capital", c.capital)
            self._add(c.continent, "continent", c.continent)
            self._add(c.language, "language", c.language)
            self._add(c.currency, "currency", c.currency)
        for a in world.animals:
            self._add(a.name, "animal", a.name)
            self._add(a.plural, "animal", a.name)
        for kind, plural in KIND_PLURALS.items():
            self._add(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}", "kind", kind)
            if plural != kind:  # bare "fish" is too often food, not a kind
                self._add(plural, "kind", kind)
        for diet, meaning in DIET_MEANING.items():
            for surface in (diet, diet + "s", meaning, DIET_MEANING_PLURAL[diet]):
                self._add(surface, "diet", diet)
        for a in world.animals:
            self._add(a.habitat, "habitat", a.habitat)
        alternatives = sorted(self.surfaces, key=lambda s: (-len(s), s))
        self._regex = re.compile(r"(?<![\w-])(" + "|".join(re.escape(s) for s in alternatives) + r")(?![\w-])",
                                 re.I)

    def _add(self, surface: str, type_: str, value: str) -> None:
        key = surface.lower()
        old = self.surfaces.get(key)
        if old is not None and old != (type_, value):
            raise ValueError(f"ambiguous surface form {surface!r}: {old} vs {(type_, value)}")
        self.surfaces[key] = (type_, value)

    def find(self, text: str) -> list[Mention]:
        """Every entity/value mention, left to right, non-overlapping, longest form winning."""
        found = []
        for m in self._regex.finditer(text):
            type_, value = self.surfaces[m.group(1).lower()]
            found.append(Mention(type_, value, m.start(), m.end()))
        for m in _LEGS.finditer(text):
            word = m.group(1).lower()
            legs = _LEG_WORDS[word] if word in _LEG_WORDS else int(word)
            found.append(Mention("legs", str(legs), m.start(), m.end()))
        return sorted(found, key=lambda x: x.start)

    def values(self, text: str, type_: str) -> list[str]:
        """Distinct values of one type mentioned in the text, in order of first mention."""
        out: list[str] = []
        for m in self.find(text):
            if m.type == type_ and m.value not in out:
                out.append(m.value)
        return out

    def claims(self, text: str) -> list[Claim]:
        """Factual claims read sentence by sentence (see the module docstring for the rules)."""
        out: list[Claim] = []
        for sent in sentences(text):
            neg = is_negated(sent)
            mentions = self.find(sent)
            for subject_type, value_types in (("country", COUNTRY_VALUE_TYPES), ("animal", ANIMAL_VALUE_TYPES)):
                subjects = _distinct(m.value for m in mentions if m.type == subject_type)
                if not subjects:
                    continue
                for vtype, attribute in value_types.items():
                    vals = _distinct(m.value for m in mentions if m.type == vtype)
                    if len(subjects) == 1 or len(vals) == 1:
                        out += [Claim(subject_type, s, attribute, v, neg) for s in subjects for v in vals]
            out += [Claim("arithmetic", f"{a} {_OP_WORDS[op.lower()]} {b}", "result", str(int(v)), neg)
                    for a, op, b, v in _ARITH.findall(sent)]
        return out

    def is_true(self, claim: Claim) -> bool:
        """Whether a (non-negated) claim agrees with the KB."""
        if claim.subject_type == "arithmetic":
            a, op, b = claim.subject.split()
            from .kb import Problem
            return str(Problem(int(a), op, int(b)).value) == claim.value
        entity = (self.world.country(claim.subject) if claim.subject_type == "country"
                  else self.world.animal(claim.subject))
        return entity.get(claim.attribute) == claim.value

    def false_claims(self, text: str) -> list[Claim]:
        """Asserted (non-negated) claims that contradict the KB."""
        return [c for c in self.claims(text) if not c.negated and not self.is_true(c)]


def _distinct(values: object) -> list[str]:
    out: list[str] = []
    for v in values:  # type: ignore[attr-defined]
        if v not in out:
            out.append(v)
    return out
