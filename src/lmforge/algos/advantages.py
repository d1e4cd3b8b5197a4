"""Advantage estimators for policy-gradient RL on language models, and the masked statistics they use.

Tokens are actions: ``[B, T]`` tensors hold one value per response token and ``mask [B, T]`` marks the real
ones. Critic-free estimators work on one scalar score per response, arranged ``[N, G]`` (N prompts, G sampled
responses each; a rollout of ``N·G`` rows is contiguous by prompt). A NaN score means "unscorable" (every reward
function returned None): it is left out of its group's statistics and gets advantage 0 (TRL's fix for #5902).

The registry :data:`ADVANTAGES` maps the names a user picks to functions of one signature,
``(token_rewards [B, T], mask [B, T], group_size, *, values=None, **options) -> (advantages, returns)``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from lmforge.algos.registry import pick


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (0 where there are none)."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over ``mask``; ``unbiased`` applies Bessel's ``n / (n - 1)`` as veRL and TRL do."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - μ) / sqrt(σ² + ε)`` with μ, σ² over the masked positions (advantage whitening, Huang et al. 2024
    detail 7); ``shift_mean=False`` adds μ back (the reward whitening variant that keeps the sign). Padding -> 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16), right to left over response tokens:

    ``δ_t = r_t + γ V_{t+1} - V_t``,  ``Â_t = δ_t + γ λ Â_{t+1}``,  returns ``R_t = Â_t + V_t`` (the value target).

    ``V`` after the last response token is 0 (the episode ends there). Masked positions inside a row (e.g. tool
    output tokens) are skipped: they neither add a TD error nor break the chain, as in veRL. Padding -> 0.
    """
    m = mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    out = torch.zeros_like(values)
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        next_value = torch.where(m[:, t] > 0, values[:, t], next_value)
        next_adv = torch.where(m[:, t] > 0, adv, next_adv)
        out[:, t] = adv
    out = out * m
    return out, (out + values) * m


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """``G_t = Σ_{k>=t} γ^{k-t} r_k`` over the masked tokens of each row (REINFORCE's return, Williams 1992)."""
    m = mask.to(rewards.dtype)
    running = torch.zeros_like(rewards[:, 0])
    out = torch.zeros_like(rewards)
    for t in reversed(range(rewards.shape[1])):
        running = torch.where(m[:, t] > 0, rewards[:, t] + gamma * running, running)
        out[:, t] = running
    return out * m


def _group_stats(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NaN-aware per-group mean, unbiased std and count of ``scores [N, G]``, each ``[N, 1]``."""
    ok = ~torch.isnan(scores)
    n = ok.sum(-1, keepdim=True)
    x = torch.where(ok, scores, torch.zeros_like(scores))
    mean = x.sum(-1, keepdim=True) / n.clamp(min=1)
    var = torch.where(ok, (x - mean) ** 2, torch.zeros_like(x)).sum(-1, keepdim=True) / (n - 1).clamp(min=1)
    return mean, var.sqrt(), n


def grpo_scores(scores: torch.Tensor, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome advantage (Shao et al. 2024, DeepSeekMath §4.1.2): ``Â_i = (r_i - mean(r)) / (std(r) + ε)``
    over the G responses to one prompt, given to every token of response i.

    ``scale="group"`` is the paper; ``"batch"`` divides by the std of the whole batch (Hu et al. 2025, REINFORCE++
    and TRL's ``scale_rewards="batch"``); ``"none"`` is Dr. GRPO (Liu et al. 2025, arXiv 2503.20783 §3.1), which
    drops the std because it up-weights prompts that are too easy or too hard. ε is 1e-6 in veRL, 1e-4 in TRL.
    A group of one scorable response has advantage 0.
    """
    mean, std, n = _group_stats(scores)
    adv = scores - mean
    if scale == "group":
        adv = adv / (std + eps)
    elif scale == "batch":
        ok = ~torch.isnan(scores)
        adv = adv / (masked_var(torch.nan_to_num(scores), ok).sqrt() + eps)
    elif scale != "none":
        raise ValueError(f"unknown GRPO scale '{scale}' (group, batch or none)")
    adv = torch.where(n > 1, adv, torch.zeros_like(adv))
    return torch.nan_to_num(adv, nan=0.0)


def rloo_scores(scores: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, eq. 7):
    ``Â_i = r_i - 1/(G-1) Σ_{j≠i} r_j = G/(G-1) (r_i - mean(r))``: each response's baseline is its siblings' mean,
    so it is unbiased (the baseline does not depend on the response it scores). Groups of one give 0."""
    ok = ~torch.isnan(scores)
    n = ok.sum(-1, keepdim=True)
    x = torch.where(ok, scores, torch.zeros_like(scores))
    baseline = (x.sum(-1, keepdim=True) - x) / (n - 1).clamp(min=1)
    adv = torch.where(ok & (n > 1), x - baseline, torch.zeros_like(x))
    return adv


def broadcast(seq_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One advantage per response ``[B]`` given to each of its tokens ``[B, T]``."""
    return seq_adv.reshape(-1, 1) * mask.to(seq_adv.dtype)


def _grouped(token_rewards: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    scores = (token_rewards * mask.to(token_rewards.dtype)).sum(-1)
    if scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} responses do not split into groups of {group_size}")
    return scores.view(-1, group_size)


def gae_estimator(token_rewards, mask, group_size, *, values=None, gamma=1.0, lam=0.95, **_):
    """PPO: :func:`gae` with a critic's ``values``."""
    if values is None:
        raise ValueError("the 'gae' advantage needs values from a critic")
    return gae(token_rewards, values, mask, gamma, lam)


def grpo_estimator(token_rewards, mask, group_size, *, scale="group", eps=1e-6, **_):
    """GRPO / Dr. GRPO: :func:`grpo_scores` of the summed token rewards; returns = advantages (no critic)."""
    adv = broadcast(grpo_scores(_grouped(token_rewards, mask, group_size), scale, eps).view(-1), mask)
    return adv, adv


def rloo_estimator(token_rewards, mask, group_size, **_):
    """RLOO: :func:`rloo_scores` of the summed token rewards."""
    adv = broadcast(rloo_scores(_grouped(token_rewards, mask, group_size)).view(-1), mask)
    return adv, adv


def reinforce_estimator(token_rewards, mask, group_size, *, gamma=1.0, baseline="batch", **_):
    """REINFORCE (Williams 1992): ``Â_t = G_t - b`` with the return-to-go :func:`returns_to_go` and a constant
    baseline ``b`` = the batch mean of whole-response returns (``baseline="batch"``) or 0 (``"none"``). Whitening
    the result (:func:`masked_whiten`) gives REINFORCE++ (Hu et al. 2025)."""
    g = returns_to_go(token_rewards, mask, gamma)
    if baseline == "batch":
        has = mask.bool().any(-1)
        first = mask.bool().int().argmax(-1, keepdim=True)  # the return from a row's first token is its whole return
        whole = g.gather(-1, first).squeeze(-1)
        g = (g - whole[has].mean()) * mask.to(g.dtype) if bool(has.any()) else g
    elif baseline != "none":
        raise ValueError(f"unknown REINFORCE baseline '{baseline}' (batch or none)")
    return g, g


Estimator = Callable[..., tuple[torch.Tensor, torch.Tensor]]
ADVANTAGES: dict[str, Estimator] = {
    "gae": gae_estimator,
    "grpo": grpo_estimator,
    "rloo": rloo_estimator,
    "reinforce": reinforce_estimator,
}


def advantage_estimator(name: str) -> Estimator:
    return pick(ADVANTAGES, name, "advantage estimator")


# DAPO (Yu et al. 2025, arXiv 2503.14476) helpers.

def informative_groups(scores: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    """DAPO dynamic sampling (§3.2, eq. 11): ``[N]`` bools, True where a group's rewards are not all equal.
    A group whose G responses all score the same has zero advantage under GRPO/RLOO and only dilutes the batch.
    NaN (unscorable) scores are ignored; a group with fewer than two scorable responses is dropped."""
    ok = ~torch.isnan(scores)
    hi = torch.where(ok, scores, torch.full_like(scores, -torch.inf)).amax(-1)
    lo = torch.where(ok, scores, torch.full_like(scores, torch.inf)).amin(-1)
    return (ok.sum(-1) > 1) & (hi - lo > atol)


def mask_truncated(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """DAPO overlong filtering (§3.4): zero the loss mask of responses cut off at the length budget
    (``truncated [B]``), whose reward says nothing about a finished answer."""
    return mask * (~truncated.bool()).unsqueeze(-1).to(mask.dtype)


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache: int) -> torch.Tensor:
    """DAPO soft overlong punishment (§3.4, eq. 13): 0 up to ``L_max - L_cache`` tokens, then a linear ramp
    ``((L_max - L_cache) - |y|) / L_cache`` down to -1 at ``L_max``, and -1 beyond. Added to the task reward."""
    free = max_len - cache
    ramp = (free - lengths.to(torch.get_default_dtype())) / max(cache, 1)
    return torch.where(lengths <= free, torch.zeros_like(ramp), torch.where(lengths <= max_len, ramp, -torch.ones_like(ramp)))
