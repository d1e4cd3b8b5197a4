"""Text normalisation: unicode forms, line breaks, control characters, whitespace."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmforge.data.clean import (
    CleanConfig,
    clean_text,
    normalize_unicode,
    remove_control_chars,
    tidy_whitespace,
    unify_newlines,
)


def test_nfc_composes_accents_but_keeps_compatibility_forms():
    assert normalize_unicode("Cafe\u0301") == "Caf\u00e9"
    assert len(clean_text("Cafe\u0301")) == 4
    assert clean_text("\ufb01ne \uff21") == "\ufb01ne \uff21"  # ligature and full-width A survive NFC


def test_nfkc_folds_compatibility_forms():
    cfg = CleanConfig(unicode="nfkc")  # lower case accepted
    assert cfg.unicode == "NFKC"
    assert clean_text("\ufb01ne \uff21x\u00b2", cfg) == "fine Ax2"


def test_unicode_none_keeps_decomposed():
    assert clean_text("e\u0301", CleanConfig(unicode="None")) == "e\u0301"


def test_unify_newlines():
    assert unify_newlines("a\r\nb\rc\x0cd\u2028e\x85f") == "a\nb\nc\nd\ne\nf"


def test_control_chars_removed_tab_and_newline_kept():
    assert remove_control_chars("a\x00b\x07c\u200bd\ufeffe\x7f\tf\ng") == "abcde\tf\ng"
    assert remove_control_chars("zwj\u200dkept") == "zwj\u200dkept"  # needed by emoji and Indic scripts


def test_control_removal_can_be_switched_off():
    assert clean_text("a\x07b", CleanConfig(remove_control=False)) == "a\x07b"
    assert clean_text("a\x07b") == "ab"


def test_lone_surrogates_always_removed():
    text = clean_text("a\ud800b", CleanConfig(remove_control=False, whitespace="keep"))
    assert text == "ab"
    text.encode("utf-8")  # would raise with the surrogate


def test_whitespace_collapse():
    assert tidy_whitespace("  a \t b\u00a0 c  \n\n\n\n  d  ") == "a b c\n\nd"


def test_whitespace_trim_keeps_indentation():
    code = "\n\n  def f():\n      return 1   \n\n\n\nx\t\n"
    assert tidy_whitespace(code, "trim") == "  def f():\n      return 1\n\nx"


def test_whitespace_keep():
    assert clean_text(" a  b \r\n", CleanConfig(whitespace="keep")) == " a  b \n"


def test_whitespace_only_becomes_empty():
    assert clean_text(" \t\n\u3000\n\u200b ") == ""


def test_bad_config_values():
    with pytest.raises(ValidationError):
        CleanConfig(unicode="NFD")
    with pytest.raises(ValidationError):
        CleanConfig(whitespace="squash")
