"""Quality filters: each metric against a value computed by hand, then rules built from the config."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmforge.data.filters import (
    Doc,
    FilterConfig,
    alpha_word_fraction,
    build_rules,
    bullet_line_fraction,
    dup_ngram_char_fraction,
    duplicate_fractions,
    ellipsis_line_fraction,
    first_failure,
    mean_word_length,
    stop_word_count,
    symbol_word_ratio,
    top_ngram_char_fraction,
)


def test_mean_word_length():
    assert mean_word_length(["ab", "abcd"]) == 3.0  # (2 + 4) / 2
    assert mean_word_length(["a", "bb", "cccccc"]) == 3.0  # 9 / 3
    assert mean_word_length([]) == 0.0


def test_symbol_word_ratio_takes_the_larger_of_hash_and_ellipsis():
    text = "# a # b ... c"
    assert symbol_word_ratio(text, text.split()) == pytest.approx(2 / 6)  # two '#' over six words
    text = "wait... what… no... #"
    assert symbol_word_ratio(text, text.split()) == pytest.approx(3 / 4)  # three ellipses over four words
    assert symbol_word_ratio("", []) == 0.0


def test_alpha_word_fraction():
    assert alpha_word_fraction(["abc", "123", "a1", "--"]) == 0.5
    assert alpha_word_fraction(["héllo", "日本"]) == 1.0


def test_bullet_and_ellipsis_lines():
    assert bullet_line_fraction(["• a", "- b", "c", "* d"]) == 0.75
    assert ellipsis_line_fraction(["a...", "b…", "c", "d. e"]) == 0.5


def test_stop_words_counts_distinct():
    assert stop_word_count("The cat and the dog, with THE hat".split()) == 3  # the, and, with
    assert stop_word_count("buy cheap shoes now".split()) == 0


def test_duplicate_fractions():
    dup, chars = duplicate_fractions(["a", "bb", "a", "a"])
    assert dup == 0.5 and chars == pytest.approx(2 / 5)  # 2 of 4 items; 'a' + 'a' of 1 + 2 + 1 + 1 chars
    assert duplicate_fractions(["x", "y"]) == (0.0, 0.0)
    assert duplicate_fractions([]) == (0.0, 0.0)


def test_duplicate_char_fraction_denominator():
    # items: "aaa", "b", "aaa" -> chars 3 + 1 + 3 = 7, duplicated chars 3
    assert duplicate_fractions(["aaa", "b", "aaa"]) == (pytest.approx(1 / 3), pytest.approx(3 / 7))


def test_top_ngram_char_fraction():
    words = "the cat sat the cat ran".split()  # 'the cat' twice covers 4 of 6 three-letter words
    assert top_ngram_char_fraction(words, 2) == pytest.approx(12 / 18)
    assert top_ngram_char_fraction(words, 3) == 0.0  # no trigram repeats
    assert top_ngram_char_fraction(["only", "once"], 2) == 0.0


def test_top_ngram_ties_take_the_longest_ngram():
    # ('aa','b') and ('b','x') both occur twice; ('aa','b') is longer and covers aa b _ aa b _ = 6 of 8 chars
    assert top_ngram_char_fraction(["aa", "b", "x", "aa", "b", "x"], 2) == pytest.approx(6 / 8)


def test_top_ngram_overlaps_count_once():
    assert top_ngram_char_fraction(["a"] * 4, 2) == 1.0  # 'a a' three times, overlapping: still 4 of 4 chars


def test_dup_ngram_char_fraction():
    assert dup_ngram_char_fraction(list("abcabc"), 2) == 0.5  # 'ab','bc' repeat at 3,4 -> words 3..5
    words = "one two three four five one two three four five six".split()
    # the second 'one two three four five' (19 chars) repeats; total 19 + 19 + 3 = 41
    assert dup_ngram_char_fraction(words, 5) == pytest.approx(19 / 41)
    assert dup_ngram_char_fraction(words, 6) == 0.0
    assert dup_ngram_char_fraction(["a", "b"], 5) == 0.0


def test_doc_views():
    doc = Doc("Alpha beta\n\n  gamma  \nalpha beta")
    assert doc.words == ["Alpha", "beta", "gamma", "alpha", "beta"]
    assert doc.folded_words[0] == "alpha"
    assert doc.lines == ["Alpha beta", "gamma", "alpha beta"]
    assert doc.paragraphs == ["Alpha beta", "gamma  \nalpha beta"]


def test_default_rules_are_gopher_thresholds():
    rules = {r.name: (r.kind, r.limit) for r in build_rules()}
    assert rules["min_words"] == ("min", 5)
    assert rules["max_symbol_word_ratio"] == ("max", 0.1)
    assert rules["min_alpha_word_fraction"] == ("min", 0.8)
    assert rules["max_dup_line_fraction"] == ("max", 0.3)
    assert rules["max_top_ngram_char_fraction.2"] == ("max", 0.2)
    assert rules["max_dup_ngram_char_fraction.10"] == ("max", 0.1)
    assert "min_chars" not in rules and "min_stop_words" not in rules  # off by default
    assert len(rules) == 12 + 3 + 6  # scalar rules, top 2..4-grams, dup 5..10-grams


def test_rules_switch_off_individually():
    cfg = FilterConfig(min_words=None, max_top_ngram_char_fraction={2: None, 3: 0.5})
    names = [r.name for r in build_rules(cfg)]
    assert "min_words" not in names and "max_top_ngram_char_fraction.2" not in names
    assert "max_top_ngram_char_fraction.3" in names


def test_first_failure_reports_rule_and_value():
    rules = build_rules(FilterConfig(min_chars=10))
    rule, value = first_failure(rules, Doc("tiny"))
    assert (rule.name, value) == ("min_chars", 4)
    prose = ("The committee met on Tuesday to review the budget and agreed that the library should "
             "stay open later during the examination period.")
    assert first_failure(rules, Doc(prose)) is None


def test_repeated_lines_fail_the_dup_line_rule():
    text = "buy now and save\nfree shipping on orders\nbuy now and save\nbuy now and save"
    rule, value = first_failure(build_rules(), Doc(text))
    assert rule.name == "max_dup_line_fraction" and value == 0.5  # 2 of 4 lines repeat


def test_min_is_inclusive_max_is_strict():
    rule = next(r for r in build_rules() if r.name == "min_words")
    assert not rule.fails(5) and rule.fails(4)
    rule = next(r for r in build_rules() if r.name == "max_dup_line_fraction")
    assert not rule.fails(0.3) and rule.fails(0.31)


def test_invalid_ngram_size():
    with pytest.raises(ValidationError, match="n-gram sizes must be >= 1"):
        FilterConfig(max_dup_ngram_char_fraction={0: 0.1})


def test_ngram_thresholds_merge_with_defaults():
    """Overriding one n-gram size keeps the others (a plain dict field would have replaced them all)."""
    from lmforge.config import load_config

    cfg = load_config(FilterConfig, overrides=["max_top_ngram_char_fraction.2=null",
                                               "max_dup_ngram_char_fraction.5=0.5"])
    assert cfg.max_top_ngram_char_fraction == {2: None, 3: 0.18, 4: 0.16}
    assert cfg.max_dup_ngram_char_fraction[5] == 0.5 and cfg.max_dup_ngram_char_fraction[10] == 0.1
    names = [r.name for r in build_rules(cfg)]
    assert "max_top_ngram_char_fraction.2" not in names and "max_top_ngram_char_fraction.3" in names
