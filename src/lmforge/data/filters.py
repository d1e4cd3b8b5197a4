"""Document quality filters: the heuristic rules of Gopher (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", Appendix A.1.1 "MassiveWeb" quality and repetition
filters, Table A1), also adopted by RefinedWeb (Penedo et al. 2023) and FineWeb.

Each metric is a small pure function of a document's words, lines or paragraphs. :func:`build_rules`
turns a :class:`FilterConfig` into an ordered list of :class:`Rule` s; :func:`first_failure` names the first
rule a document breaks. A threshold set to ``null`` switches that one rule off.

Conventions: words are whitespace-separated tokens; lines are the non-empty stripped lines; paragraphs
are blocks separated by blank lines; "characters" of words and n-grams count the words' own characters
(no separators), so the fractions do not depend on whitespace.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from ..config import Section

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("•", "●", "○", "◦", "▪", "‣", "⁃", "-", "*", "–")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_HAS_ALPHA = re.compile(r"[^\W\d_]")  # a letter in any script


# --------------------------------------------------------------------------- config

class FilterConfig(Section):
    """Quality thresholds (``filters.*``). Defaults are Gopher's, except the length minimum (Gopher keeps
    50-100,000 words; we drop only fragments under 5 words, since txt inputs split into paragraphs) and
    the English-only stop-word rule, which is off. ``null`` switches a rule off."""

    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=0)
    min_words: int | None = Field(5, ge=0)
    max_words: int | None = Field(100_000, ge=0)
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    min_alpha_word_fraction: float | None = 0.8
    max_bullet_line_fraction: float | None = 0.9
    max_ellipsis_line_fraction: float | None = 0.3
    min_stop_words: int | None = None
    max_dup_line_fraction: float | None = 0.3
    max_dup_paragraph_fraction: float | None = 0.3
    max_dup_line_char_fraction: float | None = 0.2
    max_dup_paragraph_char_fraction: float | None = 0.2
    max_top_ngram_char_fraction: dict[int, float | None] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_char_fraction: dict[int, float | None] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})

    @field_validator("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction", mode="before")
    @classmethod
    def _merge_with_defaults(cls, v: Any, info: ValidationInfo) -> Any:
        """Setting one size (``filters.max_top_ngram_char_fraction.2=null``) must not drop the others."""
        if not isinstance(v, dict):
            return v
        default = cls.model_fields[info.field_name].default_factory()  # type: ignore[misc]
        given = {int(k) if isinstance(k, str) and k.strip().lstrip("-").isdigit() else k: x for k, x in v.items()}
        return {**default, **given}

    @field_validator("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction")
    @classmethod
    def _positive_n(cls, v: dict[int, float | None]) -> dict[int, float | None]:
        bad = [n for n in v if n < 1]
        if bad:
            raise ValueError(f"n-gram sizes must be >= 1, got {bad[0]}")
        return v


# --------------------------------------------------------------------------- document views

class Doc:
    """One cleaned document with its words, lines and paragraphs computed once, on first use."""

    def __init__(self, text: str):
        self.text = text
        self._dup_ngram: dict[int, float] = {}

    @cached_property
    def words(self) -> list[str]:
        return self.text.split()

    @cached_property
    def folded_words(self) -> list[str]:
        """Case-folded words, for n-gram repetition (``The cat`` repeats ``the cat``)."""
        return [w.casefold() for w in self.words]

    @cached_property
    def lines(self) -> list[str]:
        return [s for s in (line.strip() for line in self.text.split("\n")) if s]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [s for s in (p.strip() for p in _PARAGRAPH_BREAK.split(self.text)) if s]

    def dup_ngram_fraction(self, n: int) -> float:
        """:func:`dup_ngram_char_fraction` of the folded words, skipping the work when a smaller n had no
        repeats: every repeated n-gram contains a repeated (n-1)-gram, so the answer is 0 too."""
        if n not in self._dup_ngram:
            known_zero = any(m < n and v == 0.0 for m, v in self._dup_ngram.items())
            self._dup_ngram[n] = 0.0 if known_zero else dup_ngram_char_fraction(self.folded_words, n)
        return self._dup_ngram[n]


# --------------------------------------------------------------------------- metrics (pure functions)

def mean_word_length(words: list[str]) -> float:
    """Mean characters per word. Gopher keeps 3-10: shorter means lists of symbols or numbers, longer means
    URLs, hashes or concatenated junk."""
    return sum(map(len, words)) / len(words) if words else 0.0


def symbol_word_ratio(text: str, words: list[str]) -> float:
    """The larger of (``#`` count) and (ellipsis count, ``...`` or ``…``) per word. Gopher drops documents
    above 0.1: hashtag spam and truncated-snippet pages."""
    if not words:
        return 0.0
    ellipses = text.count("...") + text.count("…")
    return max(text.count("#"), ellipses) / len(words)


def alpha_word_fraction(words: list[str]) -> float:
    """Fraction of words with at least one alphabetic character. Gopher requires 80%: tables of numbers,
    code dumps and symbol soup fall below."""
    if not words:
        return 0.0
    return sum(1 for w in words if w.isalpha() or _HAS_ALPHA.search(w)) / len(words)


def bullet_line_fraction(lines: list[str]) -> float:
    """Fraction of lines starting with a bullet point. Gopher drops documents above 0.9 (navigation menus,
    link lists)."""
    return sum(line.startswith(BULLETS) for line in lines) / len(lines) if lines else 0.0


def ellipsis_line_fraction(lines: list[str]) -> float:
    """Fraction of lines ending with an ellipsis (``...`` or ``…``). Gopher drops documents above 0.3
    (pages of truncated teasers)."""
    return sum(line.endswith(("...", "…")) for line in lines) / len(lines) if lines else 0.0


def stop_word_count(words: list[str]) -> int:
    """How many distinct Gopher stop words (the, be, to, of, and, that, have, with) occur. Gopher requires
    two: natural English prose always has them, keyword lists do not."""
    return len(STOP_WORDS.intersection(w.casefold().strip(".,;:!?\"'()") for w in words))


def duplicate_fractions(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier item, fraction of the items' characters in those repeats).

    Gopher's duplicate line/paragraph rules: the first occurrence is not a duplicate, each later copy is.
    E.g. ``["a", "bb", "a", "a"]`` -> (2/4, 2/5): two of four items, 1 + 1 of 1 + 2 + 1 + 1 chars.
    """
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items / len(items), dup_chars / max(1, sum(map(len, items)))


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n))))


def _covered_fraction(words: list[str], starts: list[int], n: int) -> float:
    """Characters of the words covered by n-grams starting at ``starts``, over all words' characters;
    overlapping occurrences are counted once, so the fraction never exceeds 1."""
    covered = [False] * len(words)
    for i in starts:
        covered[i:i + n] = [True] * n
    total = sum(map(len, words))
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def top_ngram_char_fraction(words: list[str], n: int) -> float:
    """Fraction of characters covered by the most frequent word n-gram (Gopher, n = 2, 3, 4, thresholds
    0.20, 0.18, 0.16): one phrase repeated over and over. An n-gram that occurs only once is no repetition
    (0.0); among equally frequent n-grams the longest in characters (then the first) counts."""
    grams = _ngrams(words, n)
    counts = Counter(grams)
    count = max(counts.values(), default=0)
    if count < 2:
        return 0.0
    top = max((g for g, c in counts.items() if c == count), key=lambda g: sum(map(len, g)))
    return _covered_fraction(words, [i for i, g in enumerate(grams) if g == top], n)


def dup_ngram_char_fraction(words: list[str], n: int) -> float:
    """Fraction of characters inside repeated copies of word n-grams (Gopher, n = 5..10, thresholds
    0.15 down to 0.10): long passages that appear more than once. First occurrences do not count."""
    seen: set[tuple[str, ...]] = set()
    starts = []
    for i, g in enumerate(_ngrams(words, n)):
        if g in seen:
            starts.append(i)
        else:
            seen.add(g)
    return _covered_fraction(words, starts, n)


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Rule:
    """``name`` is the config key; a document fails if ``metric(doc)`` is below a min / above a max."""

    name: str
    metric: Callable[[Doc], float]
    limit: float
    kind: Literal["min", "max"]

    def fails(self, value: float) -> bool:
        return value < self.limit if self.kind == "min" else value > self.limit


_METRICS: dict[str, Callable[[Doc], float]] = {
    "chars": lambda d: len(d.text),
    "words": lambda d: len(d.words),
    "mean_word_length": lambda d: mean_word_length(d.words),
    "symbol_word_ratio": lambda d: symbol_word_ratio(d.text, d.words),
    "alpha_word_fraction": lambda d: alpha_word_fraction(d.words),
    "bullet_line_fraction": lambda d: bullet_line_fraction(d.lines),
    "ellipsis_line_fraction": lambda d: ellipsis_line_fraction(d.lines),
    "stop_words": lambda d: stop_word_count(d.words),
    "dup_line_fraction": lambda d: duplicate_fractions(d.lines)[0],
    "dup_paragraph_fraction": lambda d: duplicate_fractions(d.paragraphs)[0],
    "dup_line_char_fraction": lambda d: duplicate_fractions(d.lines)[1],
    "dup_paragraph_char_fraction": lambda d: duplicate_fractions(d.paragraphs)[1],
}


def build_rules(cfg: FilterConfig | None = None) -> list[Rule]:
    """The active rules in config order (cheap length checks first)."""
    cfg = cfg or FilterConfig()
    rules = []
    for key, limit in cfg.model_dump().items():
        if limit is None or isinstance(limit, dict):
            continue
        kind, metric = key.split("_", 1)
        rules.append(Rule(key, _METRICS[metric], limit, kind))  # type: ignore[arg-type]
    for n, limit in sorted(cfg.max_top_ngram_char_fraction.items()):
        if limit is not None:
            rules.append(Rule(f"max_top_ngram_char_fraction.{n}",
                              lambda d, n=n: top_ngram_char_fraction(d.folded_words, n), limit, "max"))
    for n, limit in sorted(cfg.max_dup_ngram_char_fraction.items()):
        if limit is not None:
            rules.append(Rule(f"max_dup_ngram_char_fraction.{n}",
                              lambda d, n=n: d.dup_ngram_fraction(n), limit, "max"))
    return rules


def first_failure(rules: list[Rule], doc: Doc) -> tuple[Rule, float] | None:
    """The first rule ``doc`` breaks and its metric value, or None if it passes them all."""
    for rule in rules:
        value = rule.metric(doc)
        if rule.fails(value):
            return rule, value
    return None
