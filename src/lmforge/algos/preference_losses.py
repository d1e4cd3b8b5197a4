"""Direct preference losses (the DPO family) as pure functions of per-response log-probabilities.

Inputs are ``[P]`` tensors, one value per pair (or per example for KTO): ``chosen`` / ``rejected`` are
``log π_θ(y | x)`` summed over the response tokens, ``ref_chosen`` / ``ref_rejected`` the same under the frozen
reference ``π_ref``. ORPO and SimPO need no reference and take *average* per-token log-probs instead. Every
function returns a loss per pair (per example for KTO), so the stage can sum and let the engine divide by the
global count. ``σ`` is the logistic function; ``-log σ(x) = softplus(-x)``.

With ``h = (log π_θ(y_w) - log π_ref(y_w)) - (log π_θ(y_l) - log π_ref(y_l))`` (the log-ratio margin):

==========  ==================================================================================  ================
name        per-pair loss                                                                       reference
==========  ==================================================================================  ================
``dpo``     ``-log σ(β h)``                                                                     Rafailov 2023
``cdpo``    ``-(1-ε) log σ(β h) - ε log σ(-β h)``                                               Mitchell 2023
``robust``  ``(-(1-ε) log σ(β h) + ε log σ(-β h)) / (1 - 2ε)``                                  Chowdhury 2024
``ipo``     ``(h - 1/(2β))^2`` (h from per-token means when lengths are given)                  Azar 2023
``kto``     ``w_d (1 - σ(β(r - z0)))`` desirable, ``w_u (1 - σ(β(z0 - r)))`` undesirable         Ethayarajh 2024
``orpo``    ``NLL(y_w) - λ log σ(log odds(y_w) - log odds(y_l))``                               Hong 2024
``simpo``   ``-log σ(β (ā_w - ā_l) - γ)``, ``ā`` the average log-prob                             Meng 2024
``rpo``     ``-log σ(β h) + α NLL(y_w) / |y_w|``                                                Pang 2024
==========  ==================================================================================  ================
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lmforge.algos.registry import pick


def logratio_margin(chosen, rejected, ref_chosen, ref_rejected) -> torch.Tensor:
    """``h = (log π_θ(y_w) - log π_ref(y_w)) - (log π_θ(y_l) - log π_ref(y_l))``."""
    return (chosen - ref_chosen) - (rejected - ref_rejected)


def dpo(chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, eq. 7): ``-log σ(β h)``, the Bradley–Terry likelihood of the preference under
    the implicit reward ``r(x, y) = β log π_θ(y|x) / π_ref(y|x)``."""
    return F.softplus(-beta * logratio_margin(chosen, rejected, ref_chosen, ref_rejected))


def cdpo(chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1, label_smoothing: float = 0.0
         ) -> torch.Tensor:
    """Conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"): labels flipped with probability
    ε, so the target is the smoothed label: ``-(1-ε) log σ(β h) - ε log σ(-β h)``. ε = 0 is :func:`dpo`."""
    x = beta * logratio_margin(chosen, rejected, ref_chosen, ref_rejected)
    return (1 - label_smoothing) * F.softplus(-x) + label_smoothing * F.softplus(x)


def robust(chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1, label_smoothing: float = 0.0
           ) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO", eq. 8): an unbiased estimate of the clean DPO
    loss under labels flipped with known probability ε < 1/2,
    ``((1-ε) ℓ(β h) - ε ℓ(-β h)) / (1 - 2ε)`` with ``ℓ(x) = -log σ(x)``."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    x = beta * logratio_margin(chosen, rejected, ref_chosen, ref_rejected)
    eps = label_smoothing
    return ((1 - eps) * F.softplus(-x) - eps * F.softplus(x)) / (1 - 2 * eps)


def ipo(chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1, chosen_len=None, rejected_len=None
        ) -> torch.Tensor:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm...", eq. 17): ``(h - 1/(2τ))^2`` with τ = ``beta``:
    regresses the log-ratio margin to a finite target instead of pushing it to infinity (no over-fitting to
    deterministic preferences). With ``chosen_len`` / ``rejected_len`` (response token counts) each log-ratio is a
    per-token mean first — TRL's choice, confirmed with the authors as the form behind the paper's results."""
    c, r = chosen - ref_chosen, rejected - ref_rejected
    if chosen_len is not None:
        c = c / torch.as_tensor(chosen_len, dtype=c.dtype).clamp(min=1)
    if rejected_len is not None:
        r = r / torch.as_tensor(rejected_len, dtype=r.dtype).clamp(min=1)
    return (c - r - 1 / (2 * beta)) ** 2


def rpo(chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1, alpha: float = 1.0, chosen_len=None
        ) -> torch.Tensor:
    """RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization", eq. 1; Liu et al. 2024 "Provably
    Mitigating Overoptimization in RLHF" derive the same sum): DPO plus the chosen response's negative
    log-likelihood, ``-log σ(β h) + α (-log π_θ(y_w|x)) / |y_w|``. The NLL keeps the chosen responses' likelihood
    from falling while DPO widens the margin (plain DPO can lower both). ``chosen_len`` is ``|y_w|`` (token
    count); ``None`` leaves the NLL unnormalised, for ``chosen`` that is already a per-token mean."""
    nll = -chosen if chosen_len is None else -chosen / torch.as_tensor(chosen_len, dtype=chosen.dtype).clamp(min=1)
    return dpo(chosen, rejected, ref_chosen, ref_rejected, beta) + alpha * nll


def kto_reference_point(kl_logp: torch.Tensor, kl_ref_logp: torch.Tensor) -> torch.Tensor:
    """KTO's reference point ``z0 = max(0, mean_j (log π_θ(y'_j|x_j) - log π_ref(y'_j|x_j)))`` (Ethayarajh et al.
    2024, eq. 6 and §4.1): a biased batch estimate of ``KL(π_θ || π_ref)`` from mismatched pairs (each prompt with
    another example's response), detached (no gradient flows through it). Under data parallelism average the
    per-rank means (TRL gathers them)."""
    return (kl_logp - kl_ref_logp).mean().detach().clamp(min=0)


def kto(logp, ref_logp, desirable, z0, beta: float = 0.1, desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0) -> torch.Tensor:
    """KTO (Ethayarajh et al. 2024, eq. 7-8) on unpaired examples, ``r = log π_θ(y|x) - log π_ref(y|x)``:

    ``λ_D (1 - σ(β (r - z0)))`` for a desirable response, ``λ_U (1 - σ(β (z0 - r)))`` for an undesirable one —
    the prospect-theory value of a gain or a loss relative to the reference point ``z0``
    (:func:`kto_reference_point`). Pick ``λ_D n_D / (λ_U n_U)`` in [1, 4/3] when the classes are unbalanced (§4.2).
    """
    r = logp - ref_logp
    good = torch.as_tensor(desirable, dtype=torch.bool, device=r.device)
    gain = desirable_weight * (1 - torch.sigmoid(beta * (r - z0)))
    loss = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - r)))
    return torch.where(good, gain, loss)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, switching form at ``-ln 2`` to avoid cancellation (Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_log_odds_ratio(chosen_avg, rejected_avg) -> torch.Tensor:
    """``log (odds(y_w) / odds(y_l))`` with ``odds(y) = P(y) / (1 - P(y))`` and ``log P(y)`` the *average*
    per-token log-prob (Hong et al. 2024, ORPO eq. 4)."""
    return (chosen_avg - rejected_avg) - (log1mexp(chosen_avg) - log1mexp(rejected_avg))


def orpo(chosen_avg, rejected_avg, beta: float = 0.1, chosen_nll=None) -> torch.Tensor:
    """ORPO (Hong et al. 2024, eq. 6-7): ``L_SFT + λ L_OR`` with ``L_OR = -log σ(log odds ratio)`` and λ =
    ``beta``; no reference model. ``L_SFT`` is ``chosen_nll`` when given (e.g. the chosen response's token-mean
    NLL), else ``-chosen_avg`` — the same thing per pair; TRL instead averages the NLL over all chosen tokens of
    the batch, which differs from a per-pair mean only when lengths differ."""
    nll = -chosen_avg if chosen_nll is None else chosen_nll
    return nll - beta * F.logsigmoid(orpo_log_odds_ratio(chosen_avg, rejected_avg))


def simpo(chosen_avg, rejected_avg, beta: float = 2.0, gamma: float = 0.5, label_smoothing: float = 0.0
          ) -> torch.Tensor:
    """SimPO (Meng et al. 2024, eq. 6): ``-log σ(β ā_w - β ā_l - γ)``, ``ā`` the length-normalised (average)
    log-prob — the implicit reward is the average log-likelihood the model generates by, with a target margin γ;
    no reference model. ``label_smoothing`` smooths as :func:`cdpo` does (TRL's CPO trainer offers it)."""
    x = beta * (chosen_avg - rejected_avg) - gamma
    return (1 - label_smoothing) * F.softplus(-x) + label_smoothing * F.softplus(x)


def implicit_rewards(logp, ref_logp, beta: float = 0.1) -> torch.Tensor:
    """DPO's implicit reward ``β (log π_θ(y|x) - log π_ref(y|x))`` (Rafailov et al. 2023, §5); for ORPO / SimPO
    pass ``ref_logp = 0`` (the reward is then β times the policy log-prob, as TRL logs it)."""
    return beta * (logp - ref_logp)


def reward_margin(chosen_reward, rejected_reward) -> torch.Tensor:
    return chosen_reward - rejected_reward


def preference_accuracy(chosen_reward, rejected_reward, tie: float = 0.0, tol: float = 0.0) -> torch.Tensor:
    """1 where the chosen response has the higher implicit reward by more than ``tol``, ``tie`` where the two are
    within ``tol``, else 0. The defaults (a tie counts as wrong) are TRL's training metric; held-out accuracy counts
    a tie as half (``tie=0.5``), so an untrained policy (every reward 0) scores 0.5, not 0."""
    diff = chosen_reward - rejected_reward
    return torch.where(diff.abs() <= tol, torch.full_like(diff, tie), (diff > 0).to(diff.dtype))


class PreferenceLoss(NamedTuple):
    """A loss and what the stage must compute for it."""

    fn: Callable[..., torch.Tensor]
    reference: bool  # needs reference log-probs
    average: bool  # takes average per-token log-probs instead of sums
    paired: bool  # chosen/rejected pairs (False: KTO's unpaired good/bad examples)


PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {
    "dpo": PreferenceLoss(dpo, True, False, True),
    "cdpo": PreferenceLoss(cdpo, True, False, True),
    "robust": PreferenceLoss(robust, True, False, True),
    "ipo": PreferenceLoss(ipo, True, False, True),
    "kto": PreferenceLoss(kto, True, False, False),
    "orpo": PreferenceLoss(orpo, False, True, True),
    "simpo": PreferenceLoss(simpo, False, True, True),
    "rpo": PreferenceLoss(rpo, True, False, True),
}


def preference_loss(name: str) -> PreferenceLoss:
    return pick(PREFERENCE_LOSSES, name, "preference loss")
