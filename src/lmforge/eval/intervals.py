"""95 % confidence intervals for evaluation figures: every number the evaluation reports comes with its sample
count and an interval, so two models' figures can be told apart from noise."""
from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the
    normal approximation for small ``n`` and rates near 0 or 1):

        centre = (p + z²/2n) / (1 + z²/n),  half = z √(p(1−p)/n + z²/4n²) / (1 + z²/n)

    ``successes`` may be fractional (ties counted half). ``n = 0`` gives ``(nan, nan)``.
    """
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends (rounding leaves ~1e-17)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval of a mean, ``x̄ ± z s/√n`` with the sample standard deviation ``s``
    (for per-item scores in [0, 1] that are not 0/1, such as TruthfulQA MC2). Fewer than two values give
    ``(nan, nan)``."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_difference(mine: Sequence[float], theirs: Sequence[float], z: float = Z95
                      ) -> tuple[float, float, float]:
    """``(d̄, lo, hi)``: the mean of the per-item differences ``mine[i] - theirs[i]`` of two models scored on
    the same items in the same order, with :func:`mean_interval` of those differences. Pairing removes the
    items' own spread (an easy question is easy for both models), so the interval of a difference is much
    narrower than the two figures' intervals side by side: what "within 0.02 of the base model" needs."""
    if len(mine) != len(theirs):
        raise ValueError(f"paired scores differ in length ({len(mine)} vs {len(theirs)})")
    d = [float(a) - float(b) for a, b in zip(mine, theirs)]
    lo, hi = mean_interval(d, z)
    return (sum(d) / len(d) if d else math.nan), lo, hi
