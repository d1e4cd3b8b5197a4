"""The one resumable sampling order every batch source shares.

Items are visited in a seeded random permutation, epoch after epoch (the permutation of epoch e depends only
on (seed, e)). The position is one global counter, identical on every process: the global batch of a step is
cut into ``world x accum`` micro-batches and process r takes micro-batches r, r + world, ... So N processes see
exactly the items one process sees with N times the accumulation, and resuming needs only the counter.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class EpochSampler:
    """``allow_short`` accepts fewer than ``micro x world`` items (at least one): a micro-batch then runs on into
    the next epoch's permutation, so an item can appear in it more than once."""

    def __init__(self, n: int, micro: int, rank: int = 0, world: int = 1, seed: int = 0, *,
                 allow_short: bool = False):
        if n < 1:
            raise ValueError("no items to sample from")
        if n < micro * world and not allow_short:
            raise ValueError(f"only {n} items; need at least {micro * world} (one micro-batch per process)")
        self.n, self.micro, self.rank, self.world, self.seed = n, micro, rank, world, seed
        self.cursor = 0
        self._epoch, self._perm = -1, np.arange(0)

    def _order(self, k: int) -> int:
        epoch, pos = divmod(k, self.n)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[pos])

    def next_indices(self) -> list[int]:
        """This process's next micro-batch of item indices."""
        start = self.cursor + self.rank * self.micro
        self.cursor += self.micro * self.world
        return [self._order(start + j) for j in range(self.micro)]

    def epochs(self) -> float:
        return self.cursor / self.n

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = int(state["cursor"])
