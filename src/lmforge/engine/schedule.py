"""Learning-rate schedules as pure functions of the step (multipliers of the peak lr)."""
from __future__ import annotations

import math

import torch


def lr_multiplier(step: int, total: int, warmup: int, kind: str, min_ratio: float,
                  decay_fraction: float = 0.2) -> float:
    """Linear warmup to 1, then:

    - ``cosine``: half-cosine from 1 to ``min_ratio`` (Loshchilov & Hutter 2017, SGDR eq. 5);
    - ``wsd``: warmup-stable-decay, constant then linear to ``min_ratio`` over the last ``decay_fraction``
      of training (Hu et al. 2024, MiniCPM §4);
    - ``linear``: linear from 1 to ``min_ratio``;
    - ``constant``: 1.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1 - (1 - min_ratio) * progress
    if kind == "wsd":
        decay_start = total - int(round(decay_fraction * total))
        if step < decay_start:
            return 1.0
        frac = (step - decay_start) / max(1, total - decay_start)
        return 1 - (1 - min_ratio) * frac
    raise ValueError(f"unknown schedule {kind!r}")


def warmup_warning(total: int, warmup: int) -> str | None:
    """One line when warmup fills the whole run (a stage's default warmup on a short run, e.g. SFT's 10 steps
    when epochs give 4): the lr then only rises, peaks at ``total / warmup`` of ``train.lr`` and never decays."""
    if not warmup or warmup < total:
        return None
    return (f"warning: train.warmup_steps={warmup} >= train.steps={total}: the learning rate warms up for the "
            f"whole run (reaching {total / warmup:.0%} of train.lr) and never decays; lower train.warmup_steps")


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, warmup: int, kind: str, min_ratio: float,
                    decay_fraction: float = 0.2) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total, warmup, kind, min_ratio, decay_fraction))
