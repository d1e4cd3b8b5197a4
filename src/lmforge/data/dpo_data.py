"""DPO data: preference records -> weighted (prompt, chosen, rejected) pairs -> token rows -> micro-batches.

Pairs are used as they are; a K-wise ranking becomes all its C(K,2) ordered pairs, each weighted 1/C(K,2)
(InstructGPT's rule: a ranking counts as one unit however many responses it has). Binary and Likert records
are not pairs and are counted as skipped. Each response is rendered after its prompt with the chat template;
only the tokens of that last assistant turn (its content and end-of-turn token, as in SFT) are scored. An
over-long example loses prompt tokens from the left, never the response; one whose response alone does not fit
is dropped and counted.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from ..algos.lm import IGNORE
from .packing import shifted_labels
from .preference import Pair, Ranking, as_messages
from .sft_tokenize import assistant_spans, mask_from_offsets


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


def to_pairs(records: list[Any], counts: Counter) -> list[PrefPair]:
    """Pairs as they are; rankings as all their pairs, each weighted 1/C(K,2); other kinds counted, skipped."""
    out: list[PrefPair] = []
    for rec in records:
        if isinstance(rec, Pair):
            out.append(PrefPair(as_messages(rec.prompt), rec.chosen, rec.rejected, rec.weight))
        elif isinstance(rec, Ranking):
            k = len(rec.responses)
            w = rec.weight / (k * (k - 1) / 2)
            for p in _ranking_pairs(rec):
                out.append(PrefPair(as_messages(p.prompt), p.chosen, p.rejected, w))
        else:
            counts[f"skipped kind not used by this loss: {rec.type}"] += 1
    return out


def _ranking_pairs(rec: Ranking) -> list[Pair]:
    from .preference import ranking_to_pairs

    return ranking_to_pairs(rec)


def encode_response(tokenizer, messages: list[dict[str, str]], response: str, max_length: int,
                    method: str = "auto") -> Row | None:
    """The chat ``messages + [assistant: response]`` as ids with targets on the last assistant turn only;
    prompt tokens dropped from the left to fit ``max_length``; None when the response alone does not fit or
    is empty."""
    full = [*messages, {"role": "assistant", "content": response}]
    text, spans, _ = assistant_spans(tokenizer, full, method)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = mask_from_offsets(enc["offset_mapping"], spans[-1:])  # the response turn, not earlier ones
    ids = list(enc["input_ids"])
    first = next((i for i, m in enumerate(mask) if m), None)
    if first is None or first == 0:
        return None
    if len(ids) > max_length:
        cut = len(ids) - max_length
        if cut >= first:  # keeping the response would leave no prompt token to predict its first token from
            return None
        ids, mask = ids[cut:], mask[cut:]
    return Row(ids, shifted_labels(ids, mask), len(ids) < len(enc["input_ids"]))


def encode_pairs(tokenizer, pairs: list[PrefPair], max_length: int, counts: Counter, method: str = "auto"
                 ) -> tuple[list[PrefPair], list[tuple[Row, Row]]]:
    kept, rows = [], []
    for p in pairs:
        if not p.chosen.strip() or not p.rejected.strip():
            counts["dropped: empty response"] += 1
            continue
        c = encode_response(tokenizer, p.messages, p.chosen, max_length, method)
        r = encode_response(tokenizer, p.messages, p.rejected, max_length, method)
        if c is None or r is None:
            counts["dropped: response empty or longer than data.max_length"] += 1
            continue
        if c.truncated or r.truncated:
            counts["prompt truncated from the left"] += 1
        kept.append(p)
        rows.append((c, r))
    counts["pairs"] += len(rows)
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


def fingerprint_rows(rows: list[tuple[Row, Row]]) -> str:
    h = hashlib.sha256()
    for c, r in rows:
        for s in (c, r):
            h.update(str(s.input_ids).encode())
            h.update(str(s.labels).encode())
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

    def next_batch(self) -> dict[str, Any]:
        idx = []
        while len(idx) < self.micro:
            if self.pos >= len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._perm()
            idx.append(self._order[self.pos])
            self.pos += 1
        return self.collate([self.rows[i] for i in idx], idx, [self.weights[i] for i in idx], self.pad)

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
