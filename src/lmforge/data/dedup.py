"""De-duplication: exact (hash of the cleaned text) and near (MinHash LSH over word n-gram shingles).

Documents are checked in input order against the documents kept so far, so the first occurrence is kept
and later copies are dropped, each reported with the source of the copy it repeats. Near-duplicates are
compared with kept documents only: if B was dropped as a copy of A, C is judged against A, not B.

Near de-duplication follows the usual web-corpus recipe (Broder 1997; Lee et al. 2022 "Deduplicating
Training Data Makes Language Models Better"): Jaccard similarity of word n-gram sets, estimated with
MinHash and indexed with LSH (``datasketch``). LSH candidates are confirmed with the MinHash estimate, so
``threshold`` means "estimated Jaccard >= threshold". Shingles are hashed with CRC-32 (C speed; datasketch
mixes it with a murmur finaliser before its random permutations, which come from ``seed``), so results are
the same on every run and machine; unlike Python's ``hash()``, neither depends on PYTHONHASHSEED.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Hashable
from typing import Any

from pydantic import Field

from ..config import Section

_WORD = re.compile(r"\w+")


class ExactDedupConfig(Section):
    """``dedup.exact.*``: drop documents whose cleaned text (whitespace-collapsed) was seen before."""

    enabled: bool = True
    ignore_case: bool = False


class NearDedupConfig(Section):
    """``dedup.near.*``: drop documents whose word n-gram Jaccard similarity to a kept one is >= threshold."""

    enabled: bool = True
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    num_perm: int = Field(128, ge=8, le=1024)
    ngram: int = Field(5, ge=1, le=64)
    seed: int = Field(1, ge=0)


class DedupConfig(Section):
    """``dedup.*``: exact de-duplication runs first (cheap), then near."""

    exact: ExactDedupConfig = Field(default_factory=ExactDedupConfig)
    near: NearDedupConfig = Field(default_factory=NearDedupConfig)


def exact_key(text: str, ignore_case: bool = False) -> bytes:
    """A 128-bit digest of the text with whitespace runs collapsed (and case folded if asked); collisions
    are negligible, and storing 16 bytes per document keeps memory small."""
    canon = " ".join(text.split())
    if ignore_case:
        canon = canon.casefold()
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=16).digest()


def shingles(text: str, n: int = 5) -> set[bytes]:
    """Case-folded word n-grams (words are ``\\w+`` runs, so punctuation and spacing do not matter).
    A text shorter than ``n`` words gives one shingle of all its words; a text with no words gives none."""
    words = _WORD.findall(text.casefold())
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


class ExactIndex:
    """Digests of the kept documents, each with the source of its first occurrence."""

    def __init__(self, ignore_case: bool = False):
        self.ignore_case = ignore_case
        self._seen: dict[bytes, Any] = {}

    def check_and_add(self, text: str, source: Any) -> Any | None:
        """The source of an earlier identical document, or None (and remember this one)."""
        key = exact_key(text, self.ignore_case)
        if key in self._seen:
            return self._seen[key]
        self._seen[key] = source
        return None


class NearIndex:
    """MinHash LSH over the kept documents."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        from datasketch import MinHash, MinHashLSH  # imported lazily: it takes about a second

        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        self._MinHash = MinHash
        self._permutations = MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32).permutations  # made once
        # Band sizes tuned for recall (false negatives weigh 0.9): every candidate is confirmed with the
        # MinHash estimate below, so false positives cost one comparison. With the default (0.5, 0.5)
        # a pair at exactly the threshold was only a candidate ~40% of the time.
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
        self._kept: dict[Hashable, tuple[Any, Any]] = {}  # key -> (minhash, source)

    @classmethod
    def from_config(cls, cfg: NearDedupConfig) -> NearIndex:
        return cls(cfg.threshold, cfg.num_perm, cfg.ngram, cfg.seed)

    def signature(self, text: str) -> Any | None:
        """The MinHash of the text's shingles, or None for a text without words (never a near-duplicate:
        two empty shingle sets would look identical)."""
        grams = shingles(text, self.ngram)
        if not grams:
            return None
        mh = self._MinHash(num_perm=self.num_perm, seed=self.seed, permutations=self._permutations,
                           scheme="affine32", hashfunc=zlib.crc32)
        mh.update_batch(list(grams))
        return mh

    def check_and_add(self, text: str, source: Any) -> tuple[Any, float] | None:
        """(source, estimated Jaccard) of the earliest kept document this one nearly duplicates, or None
        (and index this one)."""
        mh = self.signature(text)
        if mh is None:
            return None
        matches = []
        for key in self._lsh.query(mh):
            other, other_source = self._kept[key]
            sim = float(mh.jaccard(other))
            if sim >= self.threshold:
                matches.append((key, other_source, sim))
        if matches:
            _, other_source, sim = min(matches, key=lambda m: m[0])  # keys count up: earliest kept wins
            return other_source, sim
        key = len(self._kept)
        self._lsh.insert(key, mh, check_duplication=False)
        self._kept[key] = (mh, source)
        return None
