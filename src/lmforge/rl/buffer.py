"""The rollout buffer: one rollout's rows as tensors, and the order its micro-batches are served in.

Layout (``[N, L]``, right-padded): ``input_ids`` = prompt + response (+ the end-of-turn token when the model
stopped); position ``t`` holds the logits that choose token ``t + 1``, so every per-token tensor is aligned
with the logits: ``targets[t] = input_ids[t + 1]`` on response tokens, ``mask`` 1 there. The algorithms in
:mod:`lmforge.algos` take any such masked layout (GAE runs right to left over the masked positions).

The order is a seeded permutation per (seed, rollout, epoch), so a resumed run serves the same micro-batches
without saving the permutation; the buffer itself is saved (tensors, per process) by :class:`~.source.RLSource`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE = -100
ROW_KEYS = ("input_ids", "attention_mask", "targets", "mask", "loss_mask", "old_logp", "ref_logp",
            "old_values", "advantages", "returns")


def pack_rows(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad: int
              ) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask``, ``targets`` (IGNORE off the response) and ``mask`` of
    prompt + response rows, right-padded to the longest."""
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    n = len(prompts)
    ids = torch.full((n, width), pad, dtype=torch.long)
    att = torch.zeros((n, width), dtype=torch.long)
    tgt = torch.full((n, width), IGNORE, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        row = list(p) + list(r)
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        att[i, :len(row)] = 1
        if r:
            tgt[i, len(p) - 1:len(row) - 1] = torch.tensor(list(r), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": att, "targets": tgt, "mask": (tgt >= 0).float()}


def permutation(n: int, seed: int, rollout: int, epoch: int) -> torch.Tensor:
    """The serving order of one epoch of one rollout (a fixed function of its arguments)."""
    from ..generation import row_seed

    g = torch.Generator().manual_seed(row_seed(seed, rollout, 0, epoch, 0))
    return torch.randperm(n, generator=g)


class RolloutBuffer:
    """Rows of one rollout, served as ``epochs`` passes of micro-batches of ``micro`` rows in a seeded order."""

    def __init__(self, rows: dict[str, torch.Tensor], epochs: int, micro: int, seed: int, rollout: int):
        self.rows, self.epochs, self.micro, self.seed, self.rollout = rows, epochs, micro, seed, rollout
        self.n = int(rows["input_ids"].shape[0])
        if self.n % micro:
            raise ValueError(f"{self.n} rollout rows do not split into micro-batches of {micro}")
        self.epoch, self.index = 0, 0  # next micro-batch: epoch, and its number within the epoch
        self._order = permutation(self.n, seed, rollout, 0)

    @property
    def per_epoch(self) -> int:
        return self.n // self.micro

    @property
    def exhausted(self) -> bool:
        return self.epoch >= self.epochs

    def next_micro(self) -> dict[str, torch.Tensor]:
        if self.exhausted:
            raise IndexError("the rollout buffer is exhausted")
        idx = self._order[self.index * self.micro:(self.index + 1) * self.micro]
        batch = {k: v[idx] for k, v in self.rows.items()}
        width = int(batch["attention_mask"].sum(-1).max())  # cut the padding every row of this batch has
        batch = {k: (v[:, :width] if v.dim() == 2 else v) for k, v in batch.items()}
        self.index += 1
        if self.index == self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
            if not self.exhausted:
                self._order = permutation(self.n, self.seed, self.rollout, self.epoch)
        return batch

    def state_dict(self) -> dict:
        return {"rows": self.rows, "epochs": self.epochs, "micro": self.micro, "seed": self.seed,
                "rollout": self.rollout, "epoch": self.epoch, "index": self.index}

    @classmethod
    def from_state(cls, state: dict) -> RolloutBuffer:
        buf = cls(state["rows"], state["epochs"], state["micro"], state["seed"], state["rollout"])
        buf.epoch, buf.index = state["epoch"], state["index"]
        if not buf.exhausted:
            buf._order = permutation(buf.n, buf.seed, buf.rollout, buf.epoch)
        return buf
