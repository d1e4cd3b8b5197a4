"""Inter-annotator agreement: Kendall's tau-b between two rankings and Krippendorff's alpha.

Pure functions of plain numbers; ``None`` where a statistic is undefined (no variation, nothing pairable).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import combinations

METRICS = ("nominal", "ordinal", "interval")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired value lists (ties allowed); None if either list is constant.

    tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) with C/D the concordant/discordant pairs, n0 = n(n-1)/2 and
    n1, n2 the pairs tied in x and in y.
    """
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs lists of equal length, got {len(x)} and {len(y)}")
    concordant = discordant = tied_x = tied_y = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        tied_x += dx == 0
        tied_y += dy == 0
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    n0 = len(x) * (len(x) - 1) // 2
    denom = math.sqrt((n0 - tied_x) * (n0 - tied_y))
    return (concordant - discordant) / denom if denom else None


def mean_pairwise_tau(rank_lists: Iterable[Sequence[Sequence[float]]]) -> tuple[float | None, int]:
    """Mean tau-b over every pair of labelers within each unit, pooled over units: (mean, number of pairs).

    ``rank_lists`` yields, per prompt, the rank vectors (rank per response) of the labelers who labeled it.
    """
    taus = []
    for ranks in rank_lists:
        for a, b in combinations(ranks, 2):
            t = kendall_tau(a, b)
            if t is not None:
                taus.append(t)
    return (sum(taus) / len(taus) if taus else None), len(taus)


def _delta2(metric: str, values: list[float], n_c: list[float]):
    if metric == "nominal":
        return lambda i, j: 0.0 if i == j else 1.0
    if metric == "interval":
        return lambda i, j: float(values[i] - values[j]) ** 2
    if metric == "ordinal":
        cum = [0.0]
        for n in n_c:
            cum.append(cum[-1] + n)

        def ordinal(i: int, j: int) -> float:
            lo, hi = min(i, j), max(i, j)
            return (cum[hi + 1] - cum[lo] - (n_c[i] + n_c[j]) / 2) ** 2
        return ordinal
    raise ValueError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")


def krippendorff_alpha(units: Iterable[Sequence[float | None]], metric: str = "interval") -> float | None:
    """Krippendorff's alpha for reliability data given as units (e.g. one response) of coder values.

    Each unit lists the values the coders gave it (``None`` = that coder gave none); units with fewer than two
    values are not pairable and ignored. Computed from the coincidence matrix
    ``o_ck = sum_u (number of c-k value pairs in u) / (m_u - 1)``:
    ``alpha = 1 - (n - 1) * sum o_ck d2(c,k) / sum n_c n_k d2(c,k)``
    with the nominal, ordinal (``d2 = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2``) or interval (``(c-k)^2``)
    difference. None when nothing is pairable or every pairable value is the same.
    """
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [u for u in pairable if len(u) >= 2]
    if not pairable:
        return None
    values = sorted({v for u in pairable for v in u})
    index = {v: i for i, v in enumerate(values)}
    size = len(values)
    o = [[0.0] * size for _ in range(size)]
    for unit in pairable:
        counts = Counter(unit)
        for c, nc in counts.items():
            for k, nk in counts.items():
                o[index[c]][index[k]] += nc * (nk - (c == k)) / (len(unit) - 1)
    n_c = [sum(row) for row in o]
    n = sum(n_c)
    d2 = _delta2(metric, values, n_c)
    observed = sum(o[i][j] * d2(i, j) for i in range(size) for j in range(size))
    expected = sum(n_c[i] * n_c[j] * d2(i, j) for i in range(size) for j in range(size))
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected
