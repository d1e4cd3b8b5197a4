"""Reward-model losses: pure functions of reward tensors, one per kind of feedback.

No registry: the stage picks each loss by the kind of record, and the one user choice (how rankings are
learned) is a typed config field (``loss.ranking`` of ``lmforge rm``), so a name table would be a second source of truth.

Every function returns a loss *per record* (per pair, per ranking, per rated response, per prompt group), so the
stage can weight records, sum them and let the engine divide by the global record count. ``r`` is a reward
(a logit, unbounded); ``σ`` is the logistic function and ``-log σ(x) = softplus(-x)``, computed that way for
stability.

=================  ==========================================================================================
name               per-record loss
=================  ==========================================================================================
``bradley_terry``  ``-log σ(r_c - r_r - m)`` for a chosen/rejected pair; ``m = 0`` without a margin.
``ranking_pairs``  ``1/P Σ_{i above j} -log σ(r_i - r_j)`` over a ranking's P = C(K,2) ordered pairs.
``plackett_luce``  ``1/(K-1) Σ_i -log( exp r_(i) / Σ_{j >= i} exp r_(j) )`` over a ranking's positions.
``regression``     ``1/|C| Σ_c (ŝ_c - s_c)^2`` over the criteria a response was rated on.
``logistic``       ``-log σ(y r)`` with ``y = +1`` (good) or ``-1`` (bad).
``centring``       ``(1/K Σ_i r_i)^2`` over the K responses of one prompt.
``pair_verdicts``  ``1/2 [-log σ(r_c) - log σ(-r_r)]``: the chosen response as a yes, the rejected as a no.
``ranking_verdicts`` ``1/P Σ_{i above j} 1/2 [-log σ(r_i) - log σ(-r_j)]`` over a ranking's P ordered pairs.
``lm_nll``         ``1/T Σ_t -log p(y_t | y_<t)`` over the response tokens of a micro-batch.
=================  ==========================================================================================

A generative reward model's reward is the verdict log-odds ``r = log P(yes) - log P(no)``
(:mod:`lmforge.models.verdict`), so every loss above applies to it unchanged — Bradley–Terry on two log-odds is
``-log σ(r_c - r_r)``, and ``logistic`` is the yes/no cross-entropy of the two answer tokens, ``-log P(y)`` with
``P(yes) = σ(r)``. The two ``*_verdicts`` losses turn comparisons into such yes/no targets instead (pointwise,
as Zhang et al. 2024 train a verifier), each pair one yes and one no.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """Bradley–Terry negative log-likelihood of each pair, ``-log σ(r_c - r_r - m)``.

    The preference model ``P(c ≻ r) = σ(r_c - r_r)`` is Bradley & Terry (1952); as a reward-model loss it is
    InstructGPT eq. 1 (Ouyang et al. 2022) for K = 2. With ``margin`` it is Llama 2's margin loss
    (Touvron et al. 2023, eq. 2): ``-log σ(r_c - r_r - m(r))``, where ``m`` grows with how clearly the labelers
    preferred the chosen response, so clear preferences must be separated by more. A NaN margin counts as 0.
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - torch.nan_to_num(margin, nan=0.0)
    return F.softplus(-diff)


def comparable(group: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[R, K, K]`` mask of the pairs (i above j) a ranking states: both present, i ranked above j, not tied.

    ``group [R, K]`` holds tie-group ids of rank positions (equal ids are tied); ``valid [R, K]`` marks the real
    positions of rankings padded to K.
    """
    k = group.shape[-1]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=group.device), diagonal=1)
    both = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    untied = group.unsqueeze(-1) != group.unsqueeze(-2)
    return upper & both & untied


def ranking_pairs(ranked: torch.Tensor, group: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """InstructGPT's K-wise loss (Ouyang et al. 2022, eq. 1): for each ranking of K responses,
    ``-1/C(K,2) Σ_{i above j} log σ(r_i - r_j)`` — all K(K-1)/2 pairs of one prompt in one batch, weighted so
    that each ranking counts once (which, the paper notes, avoids over-fitting to correlated pairs).

    ``ranked [R, K]`` holds rewards in rank order (best first), padded; tied pairs are skipped and the mean is
    over the pairs that remain (C(K,2) when there are no ties). A ranking with no comparable pair gives 0.
    """
    mask = comparable(group, valid)
    diff = ranked.unsqueeze(-1) - ranked.unsqueeze(-2)  # [R, K, K]: r_i - r_j
    per_pair = torch.where(mask, F.softplus(-diff), torch.zeros_like(diff))
    n = mask.sum(dim=(-1, -2))
    return per_pair.sum(dim=(-1, -2)) / n.clamp(min=1)


def plackett_luce(ranked: torch.Tensor, group: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Listwise Plackett–Luce negative log-likelihood (Plackett 1975; as a reward-model MLE in Zhu, Jordan &
    Jiao 2023, "Principled RLHF with human feedback from pairwise or K-wise comparisons", §4):

    ``P(σ) = Π_i exp r_σ(i) / Σ_{j >= i} exp r_σ(j)``, loss ``-1/(K-1) Σ_{i<K} log(...)``.

    Dividing by the K-1 choice stages makes each ranking count once and makes K = 2 exactly Bradley–Terry.
    Ties: at stage i, responses tied with the one placed there are left out of the denominator (they are not
    its competitors), and a stage whose remaining competitors are all tied with it contributes nothing.
    """
    k = ranked.shape[-1]
    later = torch.triu(torch.ones(k, k, dtype=torch.bool, device=ranked.device), diagonal=0)  # j >= i
    both = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    same = group.unsqueeze(-1) == group.unsqueeze(-2)
    eye = torch.eye(k, dtype=torch.bool, device=ranked.device)
    competitors = later & both & (~same | eye)  # [R, i, j]: j competes with the response placed at stage i
    logits = ranked.unsqueeze(-2).expand(*ranked.shape[:-1], k, k)
    denom = torch.logsumexp(logits.masked_fill(~competitors, float("-inf")), dim=-1)  # [R, K]
    stages = valid & (competitors.sum(-1) > 1)  # the stage has at least one real competitor
    nll = torch.where(stages, denom - ranked, torch.zeros_like(ranked))
    n = stages.sum(-1)
    return nll.sum(-1) / n.clamp(min=1)


def regression(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Least-squares regression on ratings, ``1/|C| Σ_c (ŝ_c - s_c)^2`` per rated response, over the criteria
    ``mask [N, C]`` says it was rated on — the per-attribute regression reward model of SteerLM / HelpSteer2
    (Dong et al. 2023; Wang et al. 2024: an MSE-trained head per attribute). The stage rescales a rating on the
    scale ``[lo, hi]`` to ``[-a, a]`` first, so ratings of different scales share one reward unit.
    """
    err = torch.where(mask, (pred - target) ** 2, torch.zeros_like(pred))
    return err.sum(-1) / mask.sum(-1).clamp(min=1)


def logistic(reward: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary good/bad feedback as logistic regression (Cox 1958) on the reward: ``P(good) = σ(r)``, loss
    ``-log σ(y r)`` with ``y = 2·label - 1`` — the binary cross-entropy with the reward as the logit, so the
    decision boundary is the reward's zero (where the centring term also pulls the mean)."""
    y = label.to(reward.dtype) * 2 - 1
    return F.softplus(-y * reward)


def centring(rewards: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Reward centring, ``(1/K Σ_i r_i)^2`` per prompt over its K responses (``rewards [G, K]`` padded,
    ``valid [G, K]``).

    Pairwise losses only see reward differences, so the mean reward drifts freely. Eisenstein et al. 2023
    ("Helping or herding? Reward model ensembles mitigate but do not eliminate reward hacking") add
    ``η (r(x, y+) + r(x, y-))^2`` to the Bradley–Terry loss; for a pair this is ``4 η`` times the term here,
    which extends it to K responses. Groups with no response give 0.
    """
    n = valid.sum(-1)
    total = torch.where(valid, rewards, torch.zeros_like(rewards)).sum(-1)
    return torch.where(n > 0, (total / n.clamp(min=1)) ** 2, torch.zeros_like(total))


def pair_verdicts(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """A pair as two yes/no verdict targets, ``1/2 [-log σ(r_c) - log σ(-r_r)]`` per pair: the chosen response
    should be judged good, the rejected one bad (the :func:`logistic` loss of each, averaged, so a pair counts
    once). Unlike :func:`bradley_terry` it fixes the reward's zero: ``r > 0`` reads as "yes"."""
    return 0.5 * (F.softplus(-chosen) + F.softplus(rejected))


def ranking_verdicts(ranked: torch.Tensor, group: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A ranking as yes/no verdict targets, one per side of each of its comparable pairs:
    ``1/P Σ_{i above j} 1/2 [-log σ(r_i) - log σ(-r_j)]`` (P pairs, ties skipped, as :func:`ranking_pairs`).

    A response ranked above ``a`` others and below ``b`` gets ``a`` yes and ``b`` no targets — in effect the
    target ``P(yes) = a / (a + b)`` — so the top is a clear yes, the bottom a clear no, and the middle of the
    ranking keeps its place instead of being thrown away."""
    mask = comparable(group, valid)
    yes = F.softplus(-ranked).unsqueeze(-1)  # [R, K, 1]: the upper response of pair (i, j) is i
    no = F.softplus(ranked).unsqueeze(-2)  # [R, 1, K]: the lower one is j
    per_pair = torch.where(mask, 0.5 * (yes + no), torch.zeros_like(mask, dtype=ranked.dtype))
    return per_pair.sum(dim=(-1, -2)) / mask.sum(dim=(-1, -2)).clamp(min=1)


def lm_nll(nll_sum: torch.Tensor, tokens: int) -> torch.Tensor:
    """The auxiliary language-model loss, the mean next-token negative log-likelihood ``1/T Σ_t -log p(y_t)``
    of the ``tokens`` response tokens whose summed NLL is ``nll_sum`` (0 when there are none)."""
    return nll_sum / max(tokens, 1)
