"""Text normalisation before filtering and de-duplication.

Cleaning runs first so every later rule and hash sees one canonical spelling of a document: the same text
typed with composed or decomposed accents, Windows or Unix line ends, or a stray zero-width space must not
count as different (exact de-duplication would miss it) nor inflate lengths and symbol ratios.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from pydantic import field_validator

from ..config import Section

# Every line-break convention becomes "\n": CRLF and CR (Windows, old Mac), vertical tab and form feed
# (page breaks in text dumps), NEL and the Unicode line/paragraph separators.
_NEWLINES = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# C0/C1 control characters except tab and newline, DEL, and invisible format characters that carry no
# meaning in running text (zero-width space, word joiner, byte-order mark). Zero-width (non-)joiners are
# kept: Persian, Indic scripts and emoji sequences need them.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\u2060\ufeff]")
# Lone surrogates can come from JSON escapes like "\ud800"; they cannot be written as UTF-8 at all.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_HSPACE = re.compile(r"[^\S\n]+")  # any whitespace but newline: spaces, tabs, NBSP, ideographic space
_TRAILING = re.compile(r"[^\S\n]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")
_LINE_EDGE_SPACE = re.compile(r" ?\n ?")


class CleanConfig(Section):
    """How documents are normalised before filtering (``clean.*``)."""

    unicode: Literal["NFC", "NFKC", "none"] = "NFC"
    """NFC joins composed/decomposed accents; NFKC also folds compatibility forms (ﬁ -> fi, full-width
    letters, superscripts), which helps de-duplication but changes some symbols."""
    remove_control: bool = True
    """Drop control and zero-width characters (tab and newline are kept)."""
    whitespace: Literal["collapse", "trim", "keep"] = "collapse"
    """collapse: runs of spaces/tabs become one space; trim: only strip line ends and extra blank lines
    (keeps indentation, e.g. for code); keep: leave whitespace alone. All three unify line breaks."""

    @field_validator("unicode", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        if isinstance(v, str):
            return "none" if v.lower() == "none" else v.upper()
        return v


def normalize_unicode(text: str, form: str = "NFC") -> str:
    """Unicode normal form ``form`` ("NFC", "NFKC"); "none" returns the text unchanged."""
    return text if form == "none" else unicodedata.normalize(form, text)  # type: ignore[arg-type]


def unify_newlines(text: str) -> str:
    """All line-break conventions (CRLF, CR, VT, FF, NEL, U+2028/9) become ``\\n``."""
    return _NEWLINES.sub("\n", text)


def remove_control_chars(text: str) -> str:
    """Drop control characters (except ``\\t`` and ``\\n``) and invisible zero-width/BOM characters."""
    return _CONTROL.sub("", text)


def remove_surrogates(text: str) -> str:
    """Drop lone UTF-16 surrogates, which would make writing the output as UTF-8 fail."""
    return _SURROGATES.sub("", text)


def tidy_whitespace(text: str, mode: str = "collapse") -> str:
    """Strip line ends, allow at most one blank line in a row, strip the document; with ``collapse`` also
    turn every run of spaces/tabs into one space and drop spaces at line starts."""
    if mode == "keep":
        return text
    if mode == "collapse":
        text = _LINE_EDGE_SPACE.sub("\n", _HSPACE.sub(" ", text)).strip()
    else:  # keep the first line's indentation
        text = _TRAILING.sub("\n", text + "\n").lstrip("\n").rstrip()
    return _BLANK_RUNS.sub("\n\n", text)


def clean_text(text: str, cfg: CleanConfig | None = None) -> str:
    """The canonical form of one document (see :class:`CleanConfig`). Normalising unicode comes first so
    NFKC's compatibility spaces and line separators are tidied too."""
    cfg = cfg or CleanConfig()
    text = normalize_unicode(remove_surrogates(text), cfg.unicode)
    text = unify_newlines(text)
    if cfg.remove_control:
        text = remove_control_chars(text)
    return tidy_whitespace(text, cfg.whitespace)
