"""Policy and value losses for PPO-style training, their aggregation, and the metrics logged beside them.

Per-token losses ``[B, T]`` are reduced by :func:`aggregate` to a ``(sum, count)`` pair: the engine adds sums
and counts over micro-batches and processes and divides once (``LossOutput.loss`` / ``LossOutput.count``), so
the loss of a step does not depend on how it was split.

The registry :data:`POLICY_LOSSES` maps the names a user picks to functions of one signature,
``(logp, old_logp, advantages, **options) -> (loss [B, T], clipped [B, T] bool)``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from lmforge.algos.registry import pick


def ppo_clip(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_low: float = 0.2,
             clip_high: float | None = None, dual_clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate of PPO (Schulman et al. 2017, eq. 7), per token, as a loss to minimise:

    ``ρ_t = exp(log π_θ - log π_old)``,  ``L_t = -min(ρ_t Â_t, clip(ρ_t, 1 - ε_low, 1 + ε_high) Â_t)``.

    ``clip_high`` (ε_high > ε_low) is DAPO's clip-higher (Yu et al. 2025, eq. 10: 0.28 vs 0.2), which lets
    unlikely tokens with positive advantage grow and so keeps entropy up; ``None`` means symmetric.
    ``dual_clip`` ``c > 1`` is dual-clip PPO (Ye et al. 2020, "Mastering Complex Control in MOBA Games", eq. 5):
    for ``Â_t < 0`` the loss is capped at ``-c Â_t``, so a huge ratio on a bad action cannot blow up the step.
    The log-ratio is clamped to ±20 before ``exp`` (as veRL) so ``ρ`` stays finite. Returns the per-token loss
    and where the clip was active (ratio outside the trust region, gradient cut).
    """
    eps_high = clip_low if clip_high is None else clip_high
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        cap = -advantages * dual_clip
        capped = (advantages < 0) & (loss > cap)
        loss = torch.where(capped, cap, loss)
        was_clipped = was_clipped | capped
    return loss, was_clipped


def vanilla_pg(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, **_
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unclipped policy gradient ``L_t = -ρ_t Â_t`` (REINFORCE, Williams 1992, with the importance ratio so that
    the gradient at ``π_θ = π_old`` is ``-Â_t ∇ log π_θ``); nanochat's on-policy RL uses this form."""
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    loss = -advantages * ratio
    return loss, torch.zeros_like(loss, dtype=torch.bool)


PolicyLoss = Callable[..., tuple[torch.Tensor, torch.Tensor]]
POLICY_LOSSES: dict[str, PolicyLoss] = {"ppo": ppo_clip, "vanilla": vanilla_pg}


def policy_loss(name: str) -> PolicyLoss:
    return pick(POLICY_LOSSES, name, "policy loss")


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float | None = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO value loss with value clipping (Huang et al. 2024, N implementation details #9; OpenAI baselines):

    ``V^clip = V_old + clip(V - V_old, -ε_v, ε_v)``,  ``L^V_t = ½ max((V - R)^2, (V^clip - R)^2)``.

    ``clip=None`` is the plain ``½ (V - R)^2``. Returns the per-token loss and where the clipped term won.
    """
    plain = (values - returns) ** 2
    if clip is None:
        return 0.5 * plain, torch.zeros_like(plain, dtype=torch.bool)
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (v_clipped - returns) ** 2
    return 0.5 * torch.maximum(plain, clipped), clipped > plain


AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean", norm: float | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduce per-token ``loss [B, T]`` over ``mask`` to ``(sum, count)``; the mean is ``sum / count``, the counts
    added over every micro-batch and rank first (veRL's ``agg_loss`` names):

    - ``token-mean``: ``Σ_i Σ_t l_it / Σ_i |o_i|`` — every token weighs the same (DAPO eq. 12's token-level loss).
    - ``seq-mean-token-mean``: ``1/B Σ_i (1/|o_i| Σ_t l_it)`` — the GRPO paper's eq. 3; long responses' tokens
      weigh less (the length bias Dr. GRPO removes).
    - ``seq-mean-token-sum``: ``1/B Σ_i Σ_t l_it``.
    - ``seq-mean-token-sum-norm``: ``1/B Σ_i Σ_t l_it / L`` with a constant ``L`` (``norm``; default the mask's
      width ``T`` — set it to the generation budget): Dr. GRPO (Liu et al. 2025, eq. 5 / §3.2), unbiased in length.

    A row with no response token (e.g. a truncated response masked out by DAPO's overlong filter) counts in none
    of the sequence counts: it carries no signal, and counting it would shrink every other sequence's weight.
    """
    m = mask.to(loss.dtype)
    per_token = loss * m
    if mode == "token-mean":
        return per_token.sum(), m.sum()
    n_seq = (m.sum(-1) > 0).to(loss.dtype).sum()
    if mode == "seq-mean-token-mean":
        return (per_token.sum(-1) / m.sum(-1).clamp(min=1)).sum(), n_seq
    if mode == "seq-mean-token-sum":
        return per_token.sum(), n_seq
    if mode == "seq-mean-token-sum-norm":
        return per_token.sum() / (norm if norm is not None else mask.shape[-1]), n_seq
    raise ValueError(f"unknown loss aggregation '{mode}'; choose one of: {', '.join(AGGREGATIONS)}")


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log π(a_t | s_t)`` of ``tokens [B, T]`` under ``logits [B, T, V]`` divided by the sampling temperature
    (the ratio must use the distribution the tokens were sampled from; Huang et al. 2024, detail 6)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-position entropy ``H = -Σ_v p_v log p_v`` of ``softmax(z / temperature)``. Terms with ``p_v = 0`` count
    0 (the limit), so logits of ``-inf`` (tokens a sampler ruled out) do not turn it into ``0 · -inf = NaN``."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def masked_sum_count(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ x·mask, Σ mask)``: a per-token metric as the engine's (sum, count) pair."""
    m = mask.to(x.dtype if x.is_floating_point() else torch.float32)
    return (x.to(m.dtype) * m).sum(), m.sum()


def clip_fraction(clipped: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of response tokens where the clip was active, as (sum, count)."""
    return masked_sum_count(clipped.float(), mask)


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(π_old || π_θ)`` estimated with Schulman's k3 on tokens sampled from π_old, ``(ρ - 1) - log ρ``
    (never negative, unlike the k1 ``mean(log π_old - log π_θ)``), as (sum, count) for early stopping and logs."""
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    return masked_sum_count(torch.expm1(log_ratio) - log_ratio, mask)


def explained_variance_sums(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[n, Σ R, Σ R², Σ e, Σ e²]`` with ``e = R - V`` over masked tokens: sums that add across ranks, for
    :func:`explained_variance`."""
    m = mask.to(returns.dtype)
    err = returns - values
    return torch.stack([m.sum(), (returns * m).sum(), (returns ** 2 * m).sum(), (err * m).sum(), (err ** 2 * m).sum()])


def explained_variance(sums: torch.Tensor) -> torch.Tensor:
    """``1 - Var[R - V] / Var[R]`` from :func:`explained_variance_sums` (1: the critic predicts returns exactly;
    0: no better than their mean; negative: worse). NaN when the returns have no variance."""
    n, s_r, s_r2, s_e, s_e2 = sums.unbind()
    var_r = s_r2 / n - (s_r / n) ** 2
    var_e = s_e2 / n - (s_e / n) ** 2
    return torch.where(var_r > 0, 1 - var_e / var_r, torch.full_like(var_r, float("nan")))
