"""DPO / KTO data: preference records -> weighted examples -> token rows -> micro-batches.

Pairs are used as they are. A K-wise ranking becomes pairs by ``data.ranking_pairs``: ``all`` (every one of its
C(K,2) ordered pairs, each weighted 1/C(K,2): InstructGPT's rule, a ranking counts as one unit however many
responses it has) or ``best_vs_rest`` (the best response against each of the K-1 others, each weighted 1/(K-1));
tied or identical responses make no pair (counted). KTO takes unpaired examples: a binary record is one
(``label`` true: desirable), a pair splits into its chosen (desirable) and rejected (undesirable) response with the
pair's weight, a ranking is first expanded to pairs by the same rule; identical (prompt, response, label)
examples are merged, their weights summed. Likert records are counted as skipped.

Each response is rendered after its prompt with the chat template; only the tokens of that last assistant turn
(its content and end-of-turn token, as in SFT) are scored. An over-long example loses prompt tokens from the
left, never the response; one whose response alone does not fit, or is empty, is dropped and counted.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from ..algos.lm import IGNORE
from .packing import shifted_labels
from .preference import Binary, Pair, Ranking, as_messages
from .sft_tokenize import (
    GENERATION_TAG,
    close_spans,
    end_of_turn_strings,
    generation_spans,
    mask_from_offsets,
    prefix_spans,
)


@dataclass
class PrefPair:
    messages: list[dict[str, str]]
    chosen: str
    rejected: str
    weight: float


@dataclass
class Row:
    """One rendered response: ids and shifted targets (IGNORE outside the response)."""
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


RANKING_RULES = ("all", "best_vs_rest")


def to_pairs(records: list[Any], counts: Counter, rule: str = "all") -> list[PrefPair]:
    """Pairs as they are; rankings expanded by ``rule`` (see the module docstring); other kinds counted, skipped."""
    out: list[PrefPair] = []
    for rec in records:
        if isinstance(rec, Pair):
            out.append(PrefPair(as_messages(rec.prompt), rec.chosen, rec.rejected, rec.weight))
        elif isinstance(rec, Ranking):
            k = len(rec.responses)
            made = ranking_pairs(rec, rule)
            w = rec.weight / (k * (k - 1) / 2 if rule == "all" else k - 1)
            if len(made) < (k * (k - 1) // 2 if rule == "all" else k - 1):
                counts["ranking pairs not made: tied or identical responses"] += \
                    (k * (k - 1) // 2 if rule == "all" else k - 1) - len(made)
            messages = as_messages(rec.prompt)
            out += [PrefPair(messages, c, r, w) for c, r in made]
        else:
            counts[f"skipped kind not used by this loss: {rec.type}"] += 1
    return out


def ranking_pairs(rec: Ranking, rule: str = "all") -> list[tuple[str, str]]:
    """A ranking's (chosen, rejected) texts: ``all`` ordered pairs, or ``best_vs_rest`` (the first-ranked position
    against each other position); a pair of tied or identical responses is not made (its weight is not given
    to others). Plain tuples: the demo's rankings make 37k pairs, too many to validate one by one."""
    if rule not in RANKING_RULES:
        raise ValueError(f"ranking_pairs must be one of {RANKING_RULES}, not {rule!r}")
    tied = {frozenset((a, b)) for g in rec.ties for a in g for b in g if a != b}
    order = rec.ranking
    made = []
    for i, better in enumerate(order[:1] if rule == "best_vs_rest" else order):
        for worse in order[i + 1:]:
            if frozenset((better, worse)) not in tied and rec.responses[better] != rec.responses[worse]:
                made.append((rec.responses[better], rec.responses[worse]))
    return made


@dataclass
class KTOExample:
    messages: list[dict[str, str]]
    response: str
    desirable: bool
    weight: float


def to_kto_examples(records: list[Any], counts: Counter, rule: str = "all") -> list[KTOExample]:
    """Unpaired examples: binary records as they are, pairs (and rankings, via :func:`to_pairs`) split into a
    desirable chosen and an undesirable rejected response; identical (prompt, response, label) examples merged."""
    merged: dict[tuple[str, str, bool], KTOExample] = {}

    def add(messages, response: str, good: bool, weight: float) -> None:
        key = (json.dumps(messages, sort_keys=True), response, good)
        if key in merged:
            merged[key].weight += weight
            counts["kto examples merged (same prompt, response and label)"] += 1
        else:
            merged[key] = KTOExample(messages, response, good, weight)

    paired = []
    for rec in records:
        if isinstance(rec, Binary):
            add(as_messages(rec.prompt), rec.response, rec.label, rec.weight)
        else:
            paired.append(rec)
    for p in to_pairs(paired, counts, rule):
        add(p.messages, p.chosen, True, p.weight)
        add(p.messages, p.rejected, False, p.weight)
    return list(merged.values())


def encode_response(tokenizer, messages: list[dict[str, str]], response: str, max_length: int,
                    method: str = "auto") -> Row | None:
    """The chat ``messages + [assistant: response]`` as ids with targets on the last assistant turn only;
    prompt tokens dropped from the left to fit ``max_length``; None when the response alone does not fit or
    is empty."""
    return Encoder(tokenizer, max_length, method)(messages, response)


def _fit(ids: list[int], mask: list[bool], max_length: int) -> Row | None:
    first = next((i for i, m in enumerate(mask) if m), None)
    if first is None or first == 0:
        return None
    n = len(ids)
    if n > max_length:
        cut = n - max_length
        if cut >= first:  # keeping the response would leave no prompt token to predict its first token from
            return None
        ids, mask = ids[cut:], mask[cut:]
    return Row(ids, shifted_labels(ids, mask), len(ids) < n)


class Encoder:
    """:func:`encode_response` memoised on (prompt, response), rendering batched: rankings and several labelers
    repeat the same responses many times (the demo's 37k pairs hold about 8k distinct ones). The template's
    span method and end-of-turn strings are looked up once (the latter reads the whole vocabulary)."""

    def __init__(self, tokenizer, max_length: int, method: str = "auto"):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.method = method if method != "auto" else \
            "generation" if GENERATION_TAG.search(tokenizer.chat_template or "") else "prefix"
        self.ends = end_of_turn_strings(tokenizer)
        self.cache: dict[tuple, Row | None] = {}

    @staticmethod
    def key(messages: list[dict[str, str]], response: str) -> tuple:
        return tuple((m["role"], m["content"]) for m in messages), response

    def prefetch(self, items: list[tuple[list[dict[str, str]], str]]) -> None:
        """Encode every (messages, response) not cached yet, tokenising them in one batched call."""
        todo = {}
        for messages, response in items:
            k = self.key(messages, response)
            if k not in self.cache and k not in todo:
                todo[k] = (messages, response)
        if not todo:
            return
        texts, spans = [], []
        for messages, response in todo.values():
            full = [*messages, {"role": "assistant", "content": response}]
            text, sp = (generation_spans if self.method == "generation" else prefix_spans)(self.tokenizer, full)
            text, sp, _ = close_spans(text, sp, self.ends, self.tokenizer.eos_token or self.ends[0])
            texts.append(text)
            spans.append(sp[-1:])  # the response turn, not earlier ones
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for k, ids, offsets, sp in zip(todo, enc["input_ids"], enc["offset_mapping"], spans, strict=True):
            self.cache[k] = _fit(list(ids), mask_from_offsets(offsets, sp), self.max_length)

    def __call__(self, messages: list[dict[str, str]], response: str) -> Row | None:
        self.prefetch([(messages, response)])
        return self.cache[self.key(messages, response)]


def encode_pairs(tokenizer, pairs: list[PrefPair], max_length: int, counts: Counter, method: str = "auto",
                 encoder: Encoder | None = None) -> tuple[list[PrefPair], list[tuple[Row, Row]]]:
    enc = encoder or Encoder(tokenizer, max_length, method)
    enc.prefetch([(p.messages, r) for p in pairs for r in (p.chosen, p.rejected) if r.strip()])
    kept, rows = [], []
    for p in pairs:
        if not p.chosen.strip() or not p.rejected.strip():
            counts["dropped: empty response"] += 1
            continue
        c, r = enc(p.messages, p.chosen), enc(p.messages, p.rejected)
        if c is None or r is None:
            counts["dropped: response does not fit data.max_length"] += 1
            continue
        if c.truncated or r.truncated:
            counts["prompt truncated from the left"] += 1
        kept.append(p)
        rows.append((c, r))
    counts["pairs"] += len(rows)
    return kept, rows


def encode_kto(tokenizer, examples: list[KTOExample], max_length: int, counts: Counter, method: str = "auto",
               seed: int = 0) -> tuple[list[KTOExample], list[tuple[Row, Row]]]:
    """Each kept example as ``(its row, a mismatched row)``: its prompt followed by the response of another
    example with a different prompt — the next one in a seeded shuffle, as TRL pairs each prompt with the next
    example's completion. The mismatched rows estimate KTO's reference point z0 (the policy's KL from the
    reference); fixing them here lets their reference log-probs be cached like a pair's."""
    enc = Encoder(tokenizer, max_length, method)
    enc.prefetch([(e.messages, e.response) for e in examples if e.response.strip()])
    ok = []
    for e in examples:
        if not e.response.strip():
            counts["dropped: empty response"] += 1
            continue
        row = enc(e.messages, e.response)
        if row is None:
            counts["dropped: response does not fit data.max_length"] += 1
            continue
        counts["prompt truncated from the left"] += row.truncated
        ok.append((e, row))
    order = list(range(len(ok)))
    random.Random(seed).shuffle(order)
    kept, rows = [], []
    for pos, i in enumerate(order):
        e, row = ok[i]
        mismatched = None
        for step in range(1, min(len(order), 16)):  # the next examples with another prompt whose response fits
            other = ok[order[(pos + step) % len(order)]][0]
            if other.messages != e.messages:
                mismatched = enc(e.messages, other.response)
                if mismatched is not None:
                    break
        if mismatched is None:
            counts["dropped: no mismatched response fits (KTO's KL estimate)"] += 1
            continue
        kept.append(e)
        rows.append((row, mismatched))
    counts["examples"] += len(rows)
    return kept, rows


def collate(rows: list[tuple[Row, Row]], index: list[int], weights: list[float], pad: int) -> dict[str, Any]:
    """``[2B, T]`` right-padded rows, chosen first then rejected, with pair ``index`` and ``weight``."""
    seqs = [c for c, _ in rows] + [r for _, r in rows]
    width = max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s.input_ids)
        ids[i, :n] = torch.tensor(s.input_ids)
        labels[i, :n] = torch.tensor(s.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "lengths": mask.sum(-1),
            "index": torch.tensor(index, dtype=torch.long), "weight": torch.tensor(weights, dtype=torch.float64),
            "tokens": int(mask.sum())}


def row_key(pair: tuple[Row, Row]) -> str:
    """What a cached reference value belongs to: the two rows' ids and targets (so also prompt and template)."""
    h = hashlib.blake2b(digest_size=12)
    for s in pair:
        h.update(repr((s.input_ids, s.labels)).encode())
    return h.hexdigest()


class PairBatches:
    """Micro-batches of pairs in a seeded order per epoch, resumable by (epoch, position)."""

    def __init__(self, rows: list[tuple[Row, Row]], weights: list[float], micro: int, pad: int,
                 rank: int = 0, world_size: int = 1, seed: int = 0, share_prompt: bool = False):
        self.rows, self.weights, self.micro, self.pad = rows, weights, micro, pad
        self.collate = collate_shared if share_prompt else collate
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch, self.pos = 0, 0
        self._order = self._perm()

    def _perm(self) -> list[int]:
        order = list(range(len(self.rows)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order[self.rank::self.world_size] or order[:1]

    def _next_indices(self) -> list[int]:
        idx = []
        while len(idx) < self.micro:
            if self.pos >= len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._perm()
            idx.append(self._order[self.pos])
            self.pos += 1
        return idx

    def next_batch(self) -> dict[str, Any]:
        idx = self._next_indices()
        return self.collate([self.rows[i] for i in idx], idx, [self.weights[i] for i in idx], self.pad)

    def planned(self, n_batches: int) -> list[int]:
        """The row indices of this rank's first ``n_batches`` micro-batches from the start (the order is seeded,
        so it is known before training), without touching this sampler's position."""
        fresh = PairBatches(self.rows, self.weights, self.micro, self.pad, self.rank, self.world_size, self.seed)
        return [i for _ in range(n_batches) for i in fresh._next_indices()]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._perm()


def collate_shared(rows: list[tuple[Row, Row]], index: list[int], weights: list[float], pad: int
                   ) -> dict[str, Any]:
    """``[B, T]`` rows, one per pair: ``[shared prompt | chosen | rejected]`` (as :mod:`lmforge.data.reward_pack`
    does for reward models), so the prompt is forwarded once. The shared part is the common prefix of both
    sequences, cut before the last prompt token so each response segment starts with the token that predicts
    its first token; ``part`` is 0 (shared), 1 (chosen), 2 (rejected), -1 (padding) and position ids continue
    from the shared part in each segment. With :func:`lmforge.data.reward_pack.prefix_mask` every response
    token sees exactly the keys and positions of its own unpacked sequence (so the log-probs are those of
    :func:`collate`'s rows, to float rounding)."""
    built = []
    for c, r in rows:
        first = min(next(i for i, t in enumerate(s.labels) if t >= 0) for s in (c, r))
        s = 0
        while s < first and c.input_ids[s] == r.input_ids[s]:
            s += 1
        ids = c.input_ids[:s] + c.input_ids[s:] + r.input_ids[s:]
        labels = [IGNORE] * s + c.labels[s:] + r.labels[s:]
        part = [0] * s + [1] * (len(c.input_ids) - s) + [2] * (len(r.input_ids) - s)
        pos = list(range(len(c.input_ids))) + list(range(s, len(r.input_ids)))
        built.append((ids, labels, part, pos))
    width = max(len(b[0]) for b in built)
    ids = torch.full((len(built), width), pad, dtype=torch.long)
    labels = torch.full((len(built), width), IGNORE, dtype=torch.long)
    part = torch.full((len(built), width), -1, dtype=torch.long)
    pos = torch.zeros((len(built), width), dtype=torch.long)
    for i, (a, b, p, q) in enumerate(built):
        n = len(a)
        ids[i, :n], labels[i, :n], part[i, :n], pos[i, :n] = (torch.tensor(a), torch.tensor(b), torch.tensor(p),
                                                             torch.tensor(q))
    seg = (part < 0).long()  # padding is its own block
    return {"input_ids": ids, "labels": labels, "part": part, "pack_seg": seg, "position_ids": pos,
            "index": torch.tensor(index, dtype=torch.long), "weight": torch.tensor(weights, dtype=torch.float64),
            "tokens": int((part >= 0).sum()),
            "sequence_tokens": sum(len(x.input_ids) for pair in rows for x in pair)}
