"""SFT batches: examples padded one per row, or packed several per row with attention kept inside each example.

Packing (Krell et al. 2021, "Efficient sequence packing without cross-contamination") puts several examples
in one row with position ids restarting at 0 at each example start. In transformers >= 4.53
``masking_utils.find_packed_sequence_indices`` reads such position ids (when no 2-D attention mask is passed)
and builds a block-diagonal causal mask for sdpa/eager, and flash-attention uses them as varlen boundaries;
:func:`block_causal_mask` builds the same mask explicitly as a 4-D boolean tensor for models that ignore
position ids. Labels are shifted *per example* (``labels[t]`` is the target of ``logits[t]``), so the last
token of one example never predicts the first token of the next.

Rows are formed once (first-fit decreasing, Johnson 1973) and visited in a seeded random order, one epoch
permutation after another; the position is a single counter, so resume is exact and data-parallel ranks take
disjoint slices of the same global batch (:class:`lmforge.data.sampler.EpochSampler`, as
:class:`lmforge.data.shards.PackedBatches`).
"""
from __future__ import annotations

from typing import Any

import torch

from ..algos.lm import IGNORE
from .sampler import EpochSampler
from .sft_tokenize import Tokenized


def shifted_labels(ids: list[int], mask: list[bool]) -> list[int]:
    """``labels[t] = ids[t+1]`` where token t+1 is a target, else IGNORE; the last position predicts nothing."""
    return [ids[t + 1] if mask[t + 1] else IGNORE for t in range(len(ids) - 1)] + [IGNORE]


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins (lists of indices) of total length <= ``capacity``; longest items placed first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return [sorted(b) for b in bins]


def block_causal_mask(seq_ids: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T, T]`` boolean mask: query t sees key s iff s <= t and both belong to the same example.

    ``seq_ids[b, t]`` numbers the examples of row b (padding gets its own id).
    """
    same = seq_ids[:, :, None] == seq_ids[:, None, :]
    t = seq_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=seq_ids.device).tril()
    return (same & causal)[:, None]


def collate(examples: list[list[Tokenized]], pad_id: int, packed: bool, mask_4d: bool = False) -> dict[str, Any]:
    """One micro-batch: each row is a list of examples (one example per row when not packed), right-padded.

    Packed rows carry ``position_ids`` restarting at each example and no 2-D attention mask (or an explicit
    4-D block mask with ``mask_4d``); unpacked rows carry a 2-D ``attention_mask``. Padding is found by
    length, never by token id (pad may equal EOS).
    """
    width = max(sum(len(e) for e in row) for row in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(examples), width), dtype=torch.long)
    seq = torch.full((len(examples), width), -1, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    for r, row in enumerate(examples):
        at = 0
        for k, ex in enumerate(row):
            n = len(ex)
            ids[r, at:at + n] = torch.tensor(ex.input_ids)
            labels[r, at:at + n] = torch.tensor(shifted_labels(ex.input_ids, ex.mask))
            pos[r, at:at + n] = torch.arange(n)
            seq[r, at:at + n] = k
            attn[r, at:at + n] = 1
            at += n
        seq[r, at:] = len(row)  # padding: its own block
        pos[r, at:] = torch.arange(width - at)
    # real (non-padding) tokens, for throughput (an int, so it never travels to the device), and per row
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "tokens": int(attn.sum()), "lengths": attn.sum(-1)}
    if not packed:
        batch["attention_mask"] = attn
        return batch
    batch["position_ids"] = pos
    if mask_4d:
        batch["attention_mask"] = block_causal_mask(seq)
    return batch


class SFTBatches:
    """Resumable micro-batches of SFT rows for one process (see the module docstring)."""

    def __init__(self, examples: list[Tokenized], max_length: int, micro: int, pad_id: int, packed: bool = True,
                 rank: int = 0, world: int = 1, seed: int = 0, mask_4d: bool = False):
        if not examples:
            raise ValueError("no SFT examples to train on")
        self.examples, self.pad_id, self.packed = examples, pad_id, packed
        self.max_length, self.mask_4d = max_length, mask_4d
        if packed:
            self.rows = first_fit_decreasing([len(e) for e in examples], max_length)
        else:
            self.rows = [[i] for i in range(len(examples))]
        self.n = len(self.rows)
        # fewer rows than one global micro-batch (small data, tight packing) is allowed: the order wraps
        self.sampler = EpochSampler(self.n, micro, rank, world, seed, allow_short=True)

    def fill(self) -> float:
        """Share of row slots holding real tokens (1.0 = no padding), for the run log."""
        tokens = sum(len(e) for e in self.examples)
        return tokens / (self.max_length * self.n) if self.packed else 1.0

    def next_batch(self) -> dict[str, Any]:
        rows = [[self.examples[i] for i in self.rows[r]] for r in self.sampler.next_indices()]
        return collate(rows, self.pad_id, self.packed, self.mask_4d)

    def state_dict(self) -> dict[str, Any]:
        return {**self.sampler.state_dict(), "rows": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("rows", self.n)) != self.n:
            raise ValueError(f"the checkpoint was written with {state['rows']} rows of data, this run has {self.n}: "
                             "the data or its settings changed, so the run cannot resume exactly")
        self.sampler.load_state_dict(state)
