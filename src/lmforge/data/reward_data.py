"""Preference records -> per-prompt groups of tokenised responses -> reward-model micro-batches.

Every record of one prompt (pairs, rankings, Likert ratings, binary labels; from any file) joins one
:class:`Group`: the prompt, its distinct response texts, and the records as indices into them. A micro-batch
is a few whole groups, so all K responses of a prompt are scored in the same forward pass (InstructGPT's
K-wise batching) and a ranking's C(K,2) pairs cost K forwards, not K(K-1).

Bad input, by rule:

- a record the preference format rejects (a ranking that is not a permutation — e.g. names a response twice —
  or has fewer than two responses, a score outside its declared scale, a pair with identical texts, an empty
  prompt) is an error naming file, line and field; with ``on_invalid: skip`` it is skipped and counted by
  reason in the report instead;
- valid records that carry nothing to learn are skipped and counted: a ranking whose responses are all tied or
  identical texts (fewer than two distinct responses), and records about a criterion that has no head;
- two positions of a ranking with the same text are treated as tied (counted);
- a (prompt, response) longer than ``max_length`` tokens is cut (counted): the prompt from the left, then the
  response from the right.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .preference import Binary, Feedback, Likert, Pair, Ranking, parse_feedback
from .readers import read_records
from .reward_encode import Encoded, assemble, collate, encode_parts
from .reward_pack import pack
from .sampler import EpochSampler

KINDS = ("pair", "ranking", "likert", "binary")


@dataclass
class Group:
    """One prompt, its distinct responses, and every record about them (as response indices)."""
    prompt: list[dict[str, str]]
    responses: list[str] = field(default_factory=list)
    pairs: list[tuple[int, int, float, float, int]] = field(default_factory=list)  # chosen, rejected, margin, w, head
    rankings: list[tuple[list[int], list[int], float, int]] = field(default_factory=list)  # order, tie ids, w, head
    likert: list[tuple[int, list[float], list[bool], float]] = field(default_factory=list)  # idx, targets, mask, w
    binary: list[tuple[int, bool, float, int]] = field(default_factory=list)  # idx, good, w, head
    ratings: list[tuple[int, dict[str, float], str]] = field(default_factory=list)  # idx, raw scores, source
    sources: dict[str, str] = field(default_factory=dict)  # "p<i>" / "r<i>" / "b<i>" -> source, for evaluation
    criteria: dict[str, str | None] = field(default_factory=dict)  # same keys -> criterion name
    types: dict[int, str] = field(default_factory=dict)  # response index -> candidate type (meta.candidate_types)
    encoded: list[Encoded] = field(default_factory=list)

    def index(self, text: str) -> int:
        try:
            return self.responses.index(text)
        except ValueError:
            self.responses.append(text)
            return len(self.responses) - 1

    @property
    def n_records(self) -> float:
        return float(sum(p[3] for p in self.pairs) + sum(r[2] for r in self.rankings)
                     + sum(x[3] for x in self.likert) + sum(b[2] for b in self.binary))


@dataclass
class HeadSpec:
    """Which heads exist and how Likert ratings become regression targets."""
    criteria: list[str]  # heads 1.. (head 0 is the overall reward)
    likert_mode: str = "both"  # sum: head 0 <- weighted sum | heads: one head per criterion | both
    likert_weights: dict[str, float] | None = None  # null: equal weights over the rated criteria
    likert_scale: float = 2.0  # ratings are mapped linearly from [lo, hi] to [-scale, scale]

    @property
    def n_heads(self) -> int:
        return 1 + len(self.criteria)

    def head(self, criterion: str | None) -> int | None:
        if criterion is None:
            return 0
        return 1 + self.criteria.index(criterion) if criterion in self.criteria else None


@dataclass
class DataReport:
    counts: Counter = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def prompt_key(prompt: list[dict[str, str]]) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def read_preference_files(paths: Iterable[str | Path], report: DataReport, on_invalid: str = "error",
                          kinds: Iterable[str] = KINDS) -> list[Feedback]:
    """Every record of the files; invalid ones raise (``on_invalid='error'``) or are counted and skipped."""
    kinds = set(kinds)
    out: list[Feedback] = []
    for path in paths:
        for rec in read_records(path):
            try:
                item = parse_feedback(rec)
            except InputError as e:
                if on_invalid == "error":
                    raise InputError(e.message + " (set data.on_invalid=skip to skip and count such records)",
                                     file=e.file, line=e.line, field=e.field) from None
                report.add(f"skipped invalid: {e.message.split(' (in a ')[0]}")
                continue
            if item.type not in kinds:
                report.add(f"skipped kind not used: {item.type}")
                continue
            report.add(f"read {item.type}")
            out.append(item)
    return out


def criteria_in(records: Iterable[Feedback]) -> list[str]:
    """Criterion names in the order first seen: Likert score names and pair/ranking ``criterion`` values."""
    seen: dict[str, None] = {}
    for r in records:
        if isinstance(r, Likert):
            for name in r.scores:
                seen.setdefault(name, None)
        elif r.criterion is not None:
            seen.setdefault(r.criterion, None)
    return list(seen)


def _tie_ids(item: Ranking, seq: list[int]) -> list[int]:
    """Tie-group id per rank position: positions tied by ``ties`` or holding the same text share an id."""
    parent = list(range(len(item.responses)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in item.ties:
        for a in g[1:]:
            parent[find(a)] = find(g[0])
    first: dict[int, int] = {}
    for i, s in enumerate(seq):  # identical texts map to the same sequence
        if s in first:
            parent[find(i)] = find(first[s])
        first.setdefault(s, i)
    return [find(i) for i in item.ranking]


def build_groups(records: list[Feedback], heads: HeadSpec, report: DataReport) -> list[Group]:
    groups: dict[str, Group] = {}
    for r in records:
        prompt = [m.model_dump() for m in r.prompt]
        g = groups.setdefault(prompt_key(prompt), Group(prompt=prompt))
        if isinstance(r, Likert):
            _add_likert(g, r, heads, report)
            continue
        head = heads.head(r.criterion)
        if head is None:
            report.add(f"skipped {r.type} about criterion without a head: {r.criterion}")
            continue
        if isinstance(r, Pair):
            key = f"p{len(g.pairs)}"
            g.pairs.append((g.index(r.chosen), g.index(r.rejected),
                            float("nan") if r.margin is None else float(r.margin), r.weight, head))
        elif isinstance(r, Ranking):
            local = {t: i for i, t in reversed(list(enumerate(r.responses)))}
            if len(set(_tie_ids(r, [local[t] for t in r.responses]))) < 2:
                report.add("skipped ranking with fewer than two distinct untied responses")
                continue
            seq = [g.index(t) for t in r.responses]
            ties = _tie_ids(r, seq)
            if len(set(seq)) < len(seq):
                report.add("ranking positions with identical texts (treated as tied)", len(seq) - len(set(seq)))
            key = f"r{len(g.rankings)}"
            g.rankings.append(([seq[i] for i in r.ranking], ties, r.weight, head))
        elif isinstance(r, Binary):
            key = f"b{len(g.binary)}"
            g.binary.append((g.index(r.response), r.label, r.weight, head))
        else:  # pragma: no cover - the format has four kinds
            raise TypeError(type(r))
        g.sources[key] = r.source or "unknown"
        g.criteria[key] = r.criterion
        _add_types(g, r)
    out = [g for g in groups.values() if g.n_records > 0]
    report.add("prompts", len(out))
    report.add("responses", sum(len(g.responses) for g in out))
    return out


def _record_texts(r: Feedback) -> list[str]:
    if isinstance(r, Pair):
        return [r.chosen, r.rejected]
    if isinstance(r, Ranking):
        return list(r.responses)
    return [r.response]


def _add_types(g: Group, r: Feedback) -> None:
    """Candidate types (``meta.candidate_types``, one per response of the record, as the world's held-out
    evaluation writes them) by response index, for the knowledge / format split of the evaluation."""
    types = r.meta.get("candidate_types")
    texts = _record_texts(r)
    if isinstance(types, list) and len(types) == len(texts):
        for text, typ in zip(texts, types):
            if isinstance(typ, str):
                g.types[g.index(text)] = typ


def likert_verdicts(records: list[Feedback], threshold: float, weights: dict[str, float] | None,
                    report: DataReport, criteria: list[str] | None = None, overall: bool = True
                    ) -> list[Feedback]:
    """Likert ratings as good/bad labels for a generative head: good when the (weighted) mean rating is at
    least ``lo + threshold * (hi - lo)`` of the record's scale; other records unchanged. With ``criteria``
    (per-criterion verdicts), each rating of a listed criterion is also a good/bad label about that criterion
    by the same threshold, and ``overall=False`` drops the weighted-mean label."""
    out: list[Feedback] = []
    for r in records:
        if not isinstance(r, Likert):
            out.append(r)
            continue
        lo, hi = r.scale
        for c, v in r.scores.items() if criteria else ():
            if c in criteria:
                good = v >= lo + threshold * (hi - lo)
                out.append(Binary(prompt=r.prompt, response=r.response, label=good, id=r.id, source=r.source,
                                  weight=r.weight, labeler=r.labeler, split=r.split, meta=r.meta, criterion=c))
                report.add(f"likert {c} as {'yes' if good else 'no'} verdict")
        if not overall:
            continue
        w = {c: (weights or {}).get(c, 1.0 if weights is None else 0.0) for c in r.scores}
        if sum(w.values()) <= 0:
            report.add("skipped likert with no weighted criterion")
            continue
        mean = sum(w[c] * v for c, v in r.scores.items()) / sum(w.values())
        good = mean >= lo + threshold * (hi - lo)
        out.append(Binary(prompt=r.prompt, response=r.response, label=good, id=r.id, source=r.source,
                          weight=r.weight, labeler=r.labeler, split=r.split, meta=r.meta))
        report.add(f"likert as {'yes' if good else 'no'} verdict")
    return out


def _add_likert(g: Group, r: Likert, heads: HeadSpec, report: DataReport) -> None:
    lo, hi = r.scale
    if hi <= lo:
        raise InputError(f"Likert scale [{lo}, {hi}] is empty (in a likert record)", field="scale")
    norm = {c: heads.likert_scale * (2 * (s - lo) / (hi - lo) - 1) for c, s in r.scores.items()}
    targets, mask = [0.0] * heads.n_heads, [False] * heads.n_heads
    if heads.likert_mode in ("sum", "both"):
        weights = heads.likert_weights or {c: 1.0 for c in norm}
        used = {c: w for c, w in weights.items() if c in norm}
        if used and sum(used.values()) > 0:
            targets[0] = sum(w * norm[c] for c, w in used.items()) / sum(used.values())
            mask[0] = True
    if heads.likert_mode in ("heads", "both"):
        for c, v in norm.items():
            h = heads.head(c)
            if h is not None:
                targets[h], mask[h] = v, True
    if not any(mask):
        report.add("skipped likert with no usable criterion")
        return
    idx = g.index(r.response)
    g.likert.append((idx, targets, mask, r.weight))
    g.ratings.append((idx, dict(r.scores), r.source or "unknown"))


def tokenize_groups(groups: list[Group], tokenizer, fmt: str, max_length: int, report: DataReport,
                    suffix: list[int] | None = None, branches: list[list[int]] | None = None) -> None:
    """Fill ``group.encoded`` (one entry per response, the verdict ``suffix`` after it for a generative head, or
    its several verdicts as ``branches``)."""
    for g in groups:
        g.encoded = []
        for text in g.responses:
            p, r = encode_parts(tokenizer, fmt, g.prompt, text)
            enc = assemble(tokenizer, fmt, p, r, max_length, suffix, branches)
            g.encoded.append(enc)
            if enc.truncated:
                report.add("sequences truncated to max_length")


def split_heldout(groups: list[Group], fraction: float, seed: int) -> tuple[list[Group], list[Group]]:
    """A deterministic held-out split by prompt (a hash of the prompt and the seed), so it never leaks."""
    if fraction <= 0:
        return groups, []
    train, held = [], []
    for g in groups:
        h = int(hashlib.sha1(f"{seed}|{prompt_key(g.prompt)}".encode()).hexdigest()[:8], 16) / 16 ** 8
        (held if h < fraction else train).append(g)
    return train, held


# --------------------------------------------------------------------------------------------- batches

def collate_groups(groups: list[Group], pad_id: int, n_heads: int, row_tokens: int | None = None) -> dict[str, Any]:
    """One micro-batch: every response of the groups, right-padded — or, with ``row_tokens``, packed with each
    prompt once (:mod:`lmforge.data.reward_pack`) — and each kind's records as index tensors into the batch's
    sequences (the responses of the groups in turn, either way)."""
    rows: list[Encoded] = []
    pairs, rankings, likert, binary, cent = [], [], [], [], []
    for g in groups:
        off = len(rows)
        rows += g.encoded
        cent.append(list(range(off, off + len(g.encoded))))
        pairs += [(off + c, off + r, m, w, h) for c, r, m, w, h in g.pairs]
        rankings += [([off + i for i in order], ties, w, h) for order, ties, w, h in g.rankings]
        likert += [(off + i, t, m, w) for i, t, m, w in g.likert]
        binary += [(off + i, y, w, h) for i, y, w, h in g.binary]
    if row_tokens:
        batch: dict[str, Any] = pack([g.encoded for g in groups], pad_id, row_tokens)
    else:
        batch = collate(rows, pad_id)
        batch["tokens"] = batch["sequence_tokens"] = int(batch["attention_mask"].sum())
    batch["count"] = sum(g.n_records for g in groups)
    batch["pair_c"] = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    batch["pair_r"] = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    batch["pair_m"] = torch.tensor([p[2] for p in pairs], dtype=torch.float32)
    batch["pair_w"] = torch.tensor([p[3] for p in pairs], dtype=torch.float32)
    batch["pair_h"] = torch.tensor([p[4] for p in pairs], dtype=torch.long)
    k = max((len(o) for o, *_ in rankings), default=1)
    batch["rank_idx"] = _padded([o for o, *_ in rankings], k, 0)
    batch["rank_tie"] = _padded([t for _, t, *_ in rankings], k, -1)
    batch["rank_valid"] = _padded([[1] * len(o) for o, *_ in rankings], k, 0).bool()
    batch["rank_w"] = torch.tensor([r[2] for r in rankings], dtype=torch.float32)
    batch["rank_h"] = torch.tensor([r[3] for r in rankings], dtype=torch.long)
    batch["lik_idx"] = torch.tensor([x[0] for x in likert], dtype=torch.long)
    batch["lik_t"] = torch.tensor([x[1] for x in likert], dtype=torch.float32).reshape(len(likert), n_heads)
    batch["lik_m"] = torch.tensor([x[2] for x in likert], dtype=torch.bool).reshape(len(likert), n_heads)
    batch["lik_w"] = torch.tensor([x[3] for x in likert], dtype=torch.float32)
    batch["bin_idx"] = torch.tensor([b[0] for b in binary], dtype=torch.long)
    batch["bin_y"] = torch.tensor([b[1] for b in binary], dtype=torch.float32)
    batch["bin_w"] = torch.tensor([b[2] for b in binary], dtype=torch.float32)
    batch["bin_h"] = torch.tensor([b[3] for b in binary], dtype=torch.long)
    kc = max(len(c) for c in cent)
    batch["cent_idx"] = _padded(cent, kc, 0)
    batch["cent_valid"] = _padded([[1] * len(c) for c in cent], kc, 0).bool()
    return batch


def _padded(rows: list[list[int]], k: int, fill: int) -> torch.Tensor:
    out = torch.full((len(rows), k), fill, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


class GroupBatches:
    """Micro-batches of ``micro`` whole prompt groups for one process, in a seeded order reshuffled each epoch.

    The global batch of step s is groups ``order[s*B : (s+1)*B]``, cut into ``world x accum`` micro-batches;
    process r takes micro-batches r, r + world, ... (:class:`~lmforge.data.sampler.EpochSampler`, as
    :class:`~lmforge.data.shards.PackedBatches`), so the position is one counter and resuming is exact.
    With ``row_tokens``, batches are prefix-shared packed rows of about that many tokens (packing is a
    function of the chosen groups alone, so it changes nothing about the order or resuming).
    """

    def __init__(self, groups: list[Group], micro: int, pad_id: int, n_heads: int, rank: int = 0, world: int = 1,
                 seed: int = 0, row_tokens: int | None = None):
        try:
            self.sampler = EpochSampler(len(groups), micro, rank, world, seed)
        except ValueError:
            raise InputError(f"only {len(groups)} training prompts; need at least {micro * world} "
                             "(one micro-batch per process)", field="data.train") from None
        self.groups, self.pad_id, self.n_heads, self.row_tokens = groups, pad_id, n_heads, row_tokens
        self.n = len(groups)

    def next_batch(self) -> dict[str, Any]:
        chosen = [self.groups[i] for i in self.sampler.next_indices()]
        return collate_groups(chosen, self.pad_id, self.n_heads, self.row_tokens)

    def epochs(self) -> float:
        return self.sampler.epochs()

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def steps_for_epochs(n_groups: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * n_groups / batch_size))
