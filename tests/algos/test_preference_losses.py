"""DPO-family losses against computations done by hand (numbers written out from the equations)."""
from __future__ import annotations

import math

import pytest
import torch

from lmforge.algos.preference_losses import (
    PREFERENCE_LOSSES,
    cdpo,
    dpo,
    implicit_rewards,
    ipo,
    kto,
    kto_reference_point,
    log1mexp,
    orpo,
    orpo_log_odds_ratio,
    preference_accuracy,
    preference_loss,
    reward_margin,
    robust,
    rpo,
    simpo,
)
from lmforge.errors import InputError


def t(*xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


# one pair: log π_θ(y_w) = -10, log π_θ(y_l) = -12, both -11 under the reference -> h = 1 - (-1) = 2;
# β = 0.5 -> β h = 1, and -log σ(1) = log(1 + e^-1) = 0.3132617, -log σ(-1) = 1.3132617
PAIR = (t(-10.0), t(-12.0), t(-11.0), t(-11.0))


def test_dpo_by_hand() -> None:
    assert dpo(*PAIR, beta=0.5).item() == pytest.approx(0.3132617, abs=1e-7)


def test_cdpo_by_hand() -> None:
    # 0.9 · 0.3132617 + 0.1 · 1.3132617 = 0.4132617; ε = 0 is DPO
    assert cdpo(*PAIR, beta=0.5, label_smoothing=0.1).item() == pytest.approx(0.4132617, abs=1e-7)
    assert cdpo(*PAIR, beta=0.5).item() == dpo(*PAIR, beta=0.5).item()


def test_robust_by_hand() -> None:
    # (0.9 · 0.3132617 - 0.1 · 1.3132617) / 0.8 = 0.1882617; ε = 0 is DPO; ε must be < 1/2
    assert robust(*PAIR, beta=0.5, label_smoothing=0.1).item() == pytest.approx(0.1882617, abs=1e-7)
    assert robust(*PAIR, beta=0.5).item() == pytest.approx(dpo(*PAIR, beta=0.5).item(), abs=1e-15)
    with pytest.raises(ValueError):
        robust(*PAIR, label_smoothing=0.5)


def test_robust_is_unbiased_under_known_flips() -> None:
    # Chowdhury et al.'s point: averaged over the label noise it equals the clean DPO loss
    eps = 0.2
    clean = robust(*PAIR, beta=0.5, label_smoothing=eps)
    flipped = robust(PAIR[1], PAIR[0], PAIR[3], PAIR[2], beta=0.5, label_smoothing=eps)
    assert ((1 - eps) * clean + eps * flipped).item() == pytest.approx(dpo(*PAIR, beta=0.5).item(), abs=1e-12)


def test_ipo_by_hand() -> None:
    # (h - 1/(2β))^2 = (2 - 1)^2 = 1; per-token means with 2 and 4 tokens: 1/2 - (-1/4) = 0.75 -> 0.0625
    assert ipo(*PAIR, beta=0.5).item() == pytest.approx(1.0)
    assert ipo(*PAIR, beta=0.5, chosen_len=t(2.0), rejected_len=t(4.0)).item() == pytest.approx(0.0625)


def test_kto_by_hand() -> None:
    # z0 = mean((-3) - (-3.5), (-4) - (-4.1)) = 0.3; β = 1, λ_D = 1, λ_U = 1.5; r = (1, -1, 0)
    z0 = kto_reference_point(t(-3.0, -4.0), t(-3.5, -4.1))
    assert z0.item() == pytest.approx(0.3, abs=1e-12)
    out = kto(t(-5.0, -5.0, -8.0), t(-6.0, -4.0, -8.0), torch.tensor([True, False, True]), z0, beta=1.0,
              undesirable_weight=1.5)
    # good, r = 1: 1 - σ(0.7) = 0.3318122; bad, r = -1: 1.5 (1 - σ(0.3 + 1)) = 0.3212475; good, r = 0: 1 - σ(-0.3)
    assert out.tolist() == pytest.approx([0.3318122, 0.3212475, 0.5744425], abs=1e-7)
    # the reference point is never negative and carries no gradient
    kl = t(-4.0, -4.0).requires_grad_()
    z = kto_reference_point(kl, t(-3.0, -3.0))
    assert z.item() == 0.0 and not z.requires_grad


def test_orpo_by_hand() -> None:
    # P(y_w) = 0.5 (odds 1), P(y_l) = 0.25 (odds 1/3): log odds ratio ln 3 = 1.0986123
    # L_OR = -log σ(ln 3) = -ln(3/4) = 0.2876821; with λ = 0.1 and NLL = -ln 0.5: 0.6931472 + 0.0287682 = 0.7219154
    c, r = t(math.log(0.5)), t(math.log(0.25))
    assert orpo_log_odds_ratio(c, r).item() == pytest.approx(math.log(3), abs=1e-12)
    assert orpo(c, r, beta=0.1).item() == pytest.approx(0.7219154, abs=1e-7)
    assert orpo(c, r, beta=0.1, chosen_nll=t(2.0)).item() == pytest.approx(2.0287682, abs=1e-7)


def test_log1mexp_is_stable_at_both_ends() -> None:
    # log(1 - e^x): near 0 it is log(-x) to first order, far below it is -e^x
    out = log1mexp(t(-1e-10, -50.0, math.log(0.5)))
    assert out.tolist() == pytest.approx([math.log(1e-10), -math.exp(-50.0), math.log(0.5)], rel=1e-9)


def test_simpo_by_hand() -> None:
    # β = 2, γ = 0.5, average log-probs -1 and -1.5: 2 · 0.5 - 0.5 = 0.5 -> -log σ(0.5) = 0.4740770
    assert simpo(t(-1.0), t(-1.5), beta=2.0, gamma=0.5).item() == pytest.approx(0.4740770, abs=1e-7)
    # smoothed as cDPO: 0.9 · softplus(-0.5) + 0.1 · softplus(0.5)
    smooth = 0.9 * math.log1p(math.exp(-0.5)) + 0.1 * math.log1p(math.exp(0.5))
    assert simpo(t(-1.0), t(-1.5), 2.0, 0.5, label_smoothing=0.1).item() == pytest.approx(smooth, abs=1e-12)


def test_metrics_helpers() -> None:
    rc = implicit_rewards(t(-10.0, -5.0), t(-11.0, -5.0), beta=0.5)
    rr = implicit_rewards(t(-12.0, -5.0), t(-11.0, -5.0), beta=0.5)
    assert rc.tolist() == [0.5, 0.0] and rr.tolist() == [-0.5, 0.0]
    assert reward_margin(rc, rr).tolist() == [1.0, 0.0]
    assert preference_accuracy(rc, rr).tolist() == [1.0, 0.0]  # a tie is not a win
    # held out: a tie (within tol) counts half
    assert preference_accuracy(t(0.5, 1e-7, -2.0), t(0.0, 0.0, -1.0), tie=0.5, tol=1e-6).tolist() == [1.0, 0.5, 0.0]


def test_rpo_by_hand() -> None:
    # PAIR: β = 0.5 -> DPO 0.3132617; chosen NLL 10 over 4 tokens = 2.5, α = 0.2 -> + 0.5
    assert rpo(*PAIR, beta=0.5, alpha=0.2, chosen_len=t(4.0)).item() == pytest.approx(0.8132617, abs=1e-7)
    assert rpo(*PAIR, beta=0.5, alpha=0.0).item() == pytest.approx(dpo(*PAIR, beta=0.5).item())
    assert rpo(*PAIR, beta=0.5, alpha=1.0).item() == pytest.approx(10.3132617, abs=1e-7)  # no length: the sum


def test_gradients_push_the_right_way() -> None:
    for name in ("dpo", "cdpo", "robust", "ipo", "rpo"):
        c, r = t(-10.0).requires_grad_(), t(-10.0).requires_grad_()
        fn = PREFERENCE_LOSSES[name].fn
        fn(c, r, t(-10.0), t(-10.0)).sum().backward()
        assert c.grad.item() < 0 < r.grad.item(), name
    for fn in (orpo, simpo):
        c, r = t(-1.0).requires_grad_(), t(-1.0).requires_grad_()
        fn(c, r).sum().backward()
        assert c.grad.item() < 0 < r.grad.item()


def test_registry_and_what_each_needs() -> None:
    assert set(PREFERENCE_LOSSES) == {"dpo", "ipo", "cdpo", "robust", "kto", "orpo", "simpo", "rpo"}
    assert not preference_loss("orpo").reference and preference_loss("simpo").average
    assert not preference_loss("kto").paired and preference_loss("dpo").reference
    with pytest.raises(InputError, match="did you mean 'dpo'"):
        preference_loss("dop")
