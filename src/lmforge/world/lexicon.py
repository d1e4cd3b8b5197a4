"""Finding the world's entities and values in free text, and reading simple factual claims out of it.

Why a lexicon instead of substring tests: names overlap ("Mexico" / "Mexico City", "Spain" / "Port of Spain",
"Korean" / "South Korean won", "Sierra Leone" / "leone"). Matching whole words case-insensitively, longest
surface form first, resolves each span to exactly one entity, so the checker and the labeler never count a
country inside a capital's name as a mention.

A *claim* is read per sentence: one subject with values ("The capital of France is Paris."), or several subjects
sharing one value ("Three countries in Europe are France, Spain and Italy."). Sentences with a negation are
kept as negated claims, which is how a correction ("Paris is not the capital of Germany.") is told apart from
accepting a false premise. Questions assert nothing and yield no claims.
"""
from __future__ import annotations

import itertools
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
NEGATION = re.compile(r"\b(not|never|isn't|aren't|doesn't|don't|didn't|wasn't|cannot)\b|n't\b", re.IGNORECASE)
_LEGS = re.compile(r"\b(\d+|no|zero|two|four|six|eight)\s+legs?\b", re.IGNORECASE)
_LEG_WORDS = {"no": 0, "zero": 0, "two": 2, "four": 4, "six": 6, "eight": 8}
_ARITH = re.compile(r"\b(\d+)\s*(plus|\+|minus|-|times|x|\*)\s*(\d+)\s*(?:is|equals|=|makes|gives)\s+(\d+)\b", re.IGNORECASE)
_OP_WORDS = {"plus": "plus", "+": "plus", "minus": "minus", "-": "minus", "times": "times", "x": "times",
             "*": "times"}
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")  # words; hyphenated names ("Porto-Novo") stay whole
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

    def __init__(self, world: World):
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
        self._cache: dict[str, tuple[Mention, ...]] = {}
        self._longest: dict[str, int] = {}  # first word -> most words in a surface form starting with it
        for surface in self.surfaces:
            words = surface.split()
            self._longest[words[0]] = max(self._longest.get(words[0], 0), len(words))

    def _add(self, surface: str, type_: str, value: str) -> None:
        key = " ".join(_TOKEN.findall(surface.lower()))
        old = self.surfaces.get(key)
        if old is not None and old != (type_, value):
            raise ValueError(f"ambiguous surface form {surface!r}: {old} vs {(type_, value)}")
        self.surfaces[key] = (type_, value)

    def find(self, text: str) -> list[Mention]:
        """Every entity/value mention, left to right, non-overlapping, longest form winning."""
        cached = self._cache.get(text)
        if cached is None:
            if len(self._cache) >= 20_000:  # the labeler reads the same sentences over and over; bound it
                self._cache.clear()
            cached = self._cache[text] = tuple(self._find(text))
        return list(cached)

    def _find(self, text: str) -> list[Mention]:
        found = []
        tokens = list(_TOKEN.finditer(text))
        words = [t.group().lower() for t in tokens]
        i = 0
        while i < len(tokens):
            for n in range(min(self._longest.get(words[i], 0), len(tokens) - i), 0, -1):  # longest form first
                span = tokens[i:i + n]
                if any(text[x.end():y.start()].strip() for x, y in itertools.pairwise(span)):
                    continue  # words of one name are separated by spaces only
                hit = self.surfaces.get(" ".join(words[i:i + n]))
                if hit:
                    found.append(Mention(hit[0], hit[1], span[0].start(), span[-1].end()))
                    i += n
                    break
            else:
                i += 1
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
            if sent.endswith("?"):  # a question asserts nothing ("Is the cow a mammal or a bird?")
                continue
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
