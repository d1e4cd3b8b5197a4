"""KL to the reference policy: per-token estimators, the KL-shaped reward, and the coefficient controllers.

All tensors are per response token, ``[B, T]``, with ``mask [B, T]`` (1 on response tokens). ``logp`` is
``log π_θ(a_t | s_t)`` and ``ref_logp`` is ``log π_ref(a_t | s_t)`` of the sampled token; the estimators are of
``KL(π_θ || π_ref)`` from samples of ``π_θ`` (Schulman 2020, "Approximating KL Divergence"), with
``r = π_ref / π_θ`` and ``log r = ref_logp - logp``:

=======  ========================  ==================================================================
name     per-token value           properties
=======  ========================  ==================================================================
``k1``   ``-log r``                unbiased, high variance, can be negative; the one to put in the reward
``k2``   ``(log r)^2 / 2``         biased (low for close policies), always >= 0; gradient is the KL's
``k3``   ``(r - 1) - log r``       unbiased, always >= 0, low variance; the one for a loss term (GRPO)
=======  ========================  ==================================================================

OpenRLHF warns when k1 is used as a loss term or k2/k3 in the reward; the stage decides which goes where.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from lmforge.algos.registry import pick


def k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k1 = log π_θ - log π_ref`` (Schulman 2020): the naive sample of ``E_π_θ[log π_θ/π_ref]``."""
    return logp - ref_logp


def k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k2 = ½ (log π_θ - log π_ref)^2`` (Schulman 2020; veRL's "mse")."""
    return 0.5 * (logp - ref_logp) ** 2


def k3(logp: torch.Tensor, ref_logp: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """``k3 = (r - 1) - log r`` with ``r = π_ref / π_θ`` (Schulman 2020), as in the GRPO paper's eq. 4.

    With ``clamp`` it is veRL's ``low_var_kl``: ``log r`` clamped to ±20 before ``exp`` (no overflow from a
    token the policy has all but ruled out) and the result clamped to ``[-clamp, clamp]`` (veRL uses 10), so a
    single far-off token cannot dominate a batch's loss.
    """
    log_r = ref_logp - logp
    if clamp is None:
        return torch.expm1(log_r) - log_r
    log_r = log_r.clamp(-20.0, 20.0)
    return (torch.expm1(log_r) - log_r).clamp(-clamp, clamp)


KL_ESTIMATORS = {"k1": k1, "k2": k2, "k3": k3}


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1", clamp: float | None = None
                ) -> torch.Tensor:
    """The per-token estimator named ``kind``; ``clamp`` applies to ``k3`` only."""
    fn = pick(KL_ESTIMATORS, kind, "KL estimator")
    return k3(logp, ref_logp, clamp) if fn is k3 else fn(logp, ref_logp)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask [B, T]`` (0 for an all-zero row)."""
    t = mask.shape[-1]
    positions = torch.arange(t, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).amax(-1)


def kl_penalised_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float | torch.Tensor
                         ) -> torch.Tensor:
    """Per-token reward of RLHF PPO (Ziegler et al. 2019, eq. 2; Ouyang et al. 2022, eq. 2; Stiennon et al. 2020):

    ``r_t = -β · KL_t`` on every response token, plus the reward model's score ``R(x, y)`` on the last one,
    so that ``Σ_t r_t = R(x, y) - β Σ_t KL_t`` — the sequence reward minus β times the sampled KL. ``score [B]``,
    ``kl [B, T]`` (usually :func:`k1`), ``mask [B, T]``; padding gets 0.
    """
    m = mask.to(kl.dtype)
    rewards = -beta * kl * m
    last = last_token_index(mask)
    has_token = mask.bool().any(-1)
    bonus = torch.where(has_token, score.to(kl.dtype), torch.zeros_like(score, dtype=kl.dtype))
    return rewards.scatter_add(-1, last.unsqueeze(-1), bonus.unsqueeze(-1))


def normalised_scores(score: torch.Tensor, mean: float = 0.0, std: float = 1.0, clip: float | None = None
                      ) -> torch.Tensor:
    """``clip((R - μ) / σ, -c, c)``: the reward model's score in the unit it was trained to (μ, σ saved with the
    reward model so reference responses score mean 0, std 1; Huang et al. 2024, detail on reward normalisation),
    clipped like OpenRLHF's ``reward_clip_range`` so one outlier cannot dominate a batch."""
    out = (score - mean) / std
    return out if clip is None else out.clamp(-clip, clip)


def missing_eos_penalty(score: torch.Tensor, has_eos: torch.Tensor, penalty: float = -1.0, add: bool = False
                        ) -> torch.Tensor:
    """Responses that never emitted EOS (cut at the length budget): their score is replaced by the fixed
    ``penalty`` (Huang et al. 2024, "N implementation details", detail on EOS: -1), or, with ``add``, the penalty
    is added to it (TRL's ``missing_eos_penalty``). Without it the policy can learn to ramble past the budget."""
    eos = has_eos.bool()
    hit = score + penalty if add else torch.full_like(score, penalty)
    return torch.where(eos, score, hit)


class FixedKLController:
    """A constant KL coefficient β; the same interface as :class:`AdaptiveKLController`."""

    def __init__(self, value: float):
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Adaptive β of Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences", §2.2):

    ``e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)``,  ``β_{t+1} = β_t (1 + K_β e_t)``, with ``K_β = n / horizon``
    for ``n`` samples (or steps) since the last update. The clipped proportional error keeps one noisy batch from
    moving β by more than 20 % of ``n / horizon``. State is the current β: :meth:`state_dict` /
    :meth:`load_state_dict` give an exact resume (a Python float round-trips bit for bit).
    """

    def __init__(self, init: float, target: float, horizon: float):
        if not (target > 0 and horizon > 0 and init >= 0 and math.isfinite(init)):
            raise ValueError(f"adaptive KL needs init >= 0, target > 0, horizon > 0; got {init}, {target}, {horizon}")
        self.value, self.target, self.horizon = float(init), float(target), float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.target, self.horizon = float(state["value"]), float(state["target"]), float(state["horizon"])
