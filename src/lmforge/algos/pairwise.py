"""Pairwise verdicts -> a preference and a ranking: pure functions of log-odds tensors.

``L[i, j] = log P(A) - log P(B)`` is a pairwise judge's verdict with response i shown first (as A) and j second
(:mod:`lmforge.models.verdict_pairwise`).

=====================  =====================================================================================
name                   what
=====================  =====================================================================================
``both_orders``        ``r(a ≻ b) = ½ [ℓ(a, b) - ℓ(b, a)]``: the two positions averaged (position bias cancels).
``preference_matrix``  ``M = ½ (L - Lᵀ)``: :func:`both_orders` of every pair, antisymmetric, 0 on the diagonal.
``copeland``           ``c_i = Σ_{j≠i} sign(M_ij)``: round-robin wins minus losses (Copeland 1951).
``bradley_terry_fit``  strengths ``s`` maximising ``Σ_{i≠j} p_ij log σ(s_i - s_j)`` with ``p_ij = σ(M_ij)``.
=====================  =====================================================================================
"""
from __future__ import annotations

import torch


def both_orders(ab: torch.Tensor, ba: torch.Tensor) -> torch.Tensor:
    """``½ [ℓ(a, b) - ℓ(b, a)]``: the log-odds that a is better, read with a first (``ab``: ``log P(A) - log
    P(B)``) and with b first (``ba``, where answering A names b), averaged — the swap-and-average remedy for a
    judge's position bias (Zheng et al. 2023, "Judging LLM-as-a-Judge", §3.4; Wang et al. 2023, "Large Language
    Models are not Fair Evaluators", balanced position calibration). A judge that always answers A gets 0."""
    return 0.5 * (ab - ba)


def preference_matrix(L: torch.Tensor) -> torch.Tensor:
    """``M[i, j] = ½ (L[i, j] - L[j, i])`` (:func:`both_orders` of every pair of ``L [K, K]``; the diagonal
    and any NaN pair are 0): the log-odds that i beats j."""
    M = both_orders(L, L.transpose(-1, -2))
    return torch.nan_to_num(M, nan=0.0) * (1 - torch.eye(L.shape[-1], dtype=L.dtype, device=L.device))


def copeland(M: torch.Tensor) -> torch.Tensor:
    """Copeland scores of a round robin, ``c_i = Σ_{j≠i} sign(M_ij)`` — wins minus losses, a tie 0 (Copeland
    1951; the "win rate" ranking of pairwise judges). Robust to the judge's scale, coarse: ties are common."""
    return torch.sign(M).sum(-1)


def bradley_terry_fit(M: torch.Tensor, iters: int = 200, prior: float = 0.01) -> torch.Tensor:
    """Bradley–Terry strengths from pairwise log-odds (Bradley & Terry 1952): the ``s`` maximising

        Σ_{i≠j} p_ij log σ(s_i - s_j) - prior/2 Σ_i s_i²,     p_ij = σ(M_ij)

    (the soft win counts ``p_ij`` of every ordered pair), by Newton steps on this concave objective; the
    gradient is ``g_i = Σ_j (p_ij - σ(s_i - s_j)) - prior s_i`` (``p_ij + p_ji = 1``) and the Hessian the
    graph Laplacian of ``w_ij = σ(s_i - s_j) σ(s_j - s_i)`` plus ``prior``. The small ridge ``prior``
    fixes the free shift and keeps a response that wins every comparison finite. Returns ``s`` centred to
    mean 0. With consistent verdicts, ``M_ij = t_i - t_j``, the fit recovers ``t`` up to the prior's shrinkage;
    unlike :func:`copeland` it weighs how clearly each comparison was won."""
    k = M.shape[-1]
    p = torch.sigmoid(M.double()) * (1 - torch.eye(k, dtype=torch.float64))
    s = torch.zeros(k, dtype=torch.float64)
    for _ in range(iters):
        d = torch.sigmoid(s[:, None] - s[None, :]) * (1 - torch.eye(k, dtype=torch.float64))
        g = (p - d).sum(-1) - prior * s
        w = d * d.transpose(0, 1)
        H = torch.diag(w.sum(-1)) - w + prior * torch.eye(k, dtype=torch.float64)
        step = torch.linalg.solve(H, g)
        s = s + step
        if float(step.abs().max()) < 1e-10:
            break
    return (s - s.mean()).to(M.dtype)
