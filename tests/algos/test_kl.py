"""KL estimators, the KL-shaped reward and the KL controllers against computations done by hand."""
from __future__ import annotations

import json
import math

import pytest
import torch

from lmforge.algos.kl import (
    AdaptiveKLController,
    FixedKLController,
    k1,
    k2,
    k3,
    kl_estimate,
    kl_penalised_rewards,
    last_token_index,
    missing_eos_penalty,
    normalised_scores,
)
from lmforge.errors import InputError


def t(*xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_estimators_by_hand() -> None:
    logp, ref = t(-1.0, -2.0), t(-1.5, -1.0)
    assert k1(logp, ref).tolist() == pytest.approx([0.5, -1.0])
    assert k2(logp, ref).tolist() == pytest.approx([0.125, 0.5])
    # log r = ref - logp = (-0.5, 1): e^-0.5 - 1 + 0.5 = 0.1065307, e - 1 - 1 = 0.7182818
    assert k3(logp, ref).tolist() == pytest.approx([0.1065307, 0.7182818], abs=1e-7)
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx([0.1065307, 0.7182818], abs=1e-7)


def test_k1_and_k3_are_unbiased_over_the_whole_distribution() -> None:
    # p = (0.5, 0.3, 0.2), q = (0.2, 0.3, 0.5): KL(p||q) = 0.5 ln 2.5 + 0.2 ln 0.4 = 0.3 ln 2.5 = 0.2748872
    p, q = t(0.5, 0.3, 0.2), t(0.2, 0.3, 0.5)
    kl = 0.3 * math.log(2.5)
    assert kl == pytest.approx(0.2748872, abs=1e-7)
    assert (p * k1(p.log(), q.log())).sum().item() == pytest.approx(kl, abs=1e-12)
    assert (p * k3(p.log(), q.log())).sum().item() == pytest.approx(kl, abs=1e-12)
    assert bool((k3(p.log(), q.log()) >= 0).all())
    assert (p * k2(p.log(), q.log())).sum().item() != pytest.approx(kl, abs=1e-3)  # k2 is biased


def test_k3_clamp_is_verls_low_var_kl() -> None:
    # log r = 30 is clamped to 20 before exp, then the value e^20 - 21 to 10; unclamped it is e^30 - 31
    logp, ref = t(0.0, -1.0), t(30.0, -1.0)
    assert k3(logp, ref, clamp=10.0).tolist() == [10.0, 0.0]
    assert k3(logp, ref)[0].item() == pytest.approx(math.exp(30) - 31, rel=1e-12)


def test_unknown_estimator_names_the_closest() -> None:
    with pytest.raises(InputError, match="did you mean 'k3'"):
        kl_estimate(t(0.0), t(0.0), "kk3")


def test_kl_penalised_rewards_by_hand() -> None:
    score = t(1.0, 2.0, 5.0)
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, -0.5, 9.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    out = kl_penalised_rewards(score, kl, mask, beta=0.1)
    # row 0: -0.1 kl, score on the last token: (-0.01, -0.02, -0.03 + 1); row 1: the last real token is t = 1;
    # row 2 has no response token, so neither penalty nor score
    expect = [[-0.01, -0.02, 0.97], [-0.05, 2.05, 0.0], [0.0, 0.0, 0.0]]
    for row, want in zip(out.tolist(), expect, strict=True):
        assert row == pytest.approx(want, abs=1e-12)
    # Σ_t r_t = R - β Σ_t KL_t
    assert out.sum(-1)[:2].tolist() == pytest.approx([1.0 - 0.1 * 0.6, 2.0 - 0.1 * 0.0], abs=1e-12)
    assert last_token_index(torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])).tolist() == [1, 3]


def test_adaptive_controller_by_hand() -> None:
    c = AdaptiveKLController(init=0.1, target=6.0, horizon=10000)
    # KL 12: error 12/6 - 1 = 1 clipped to 0.2 -> β (1 + 0.2 · 256/10000) = 0.1 · 1.00512
    assert c.update(12.0, 256) == pytest.approx(0.100512, abs=1e-15)
    # KL 3: error -0.5 clipped to -0.2 -> x (1 - 0.00512)
    assert c.update(3.0, 256) == pytest.approx(0.100512 * 0.99488, abs=1e-15)
    # KL 6.6: error 0.1 inside the clip -> x (1 + 0.1 · 100/10000)
    assert c.update(6.6, 100) == pytest.approx(0.100512 * 0.99488 * 1.001, abs=1e-15)
    f = FixedKLController(0.05)
    assert f.update(100.0, 256) == 0.05


def test_controllers_resume_exactly() -> None:
    kls = [7.3, 2.1, 6.05, 11.0, 5.5, 0.3]
    a = AdaptiveKLController(0.05, 6.0, 10000)
    for kl in kls[:3]:
        a.update(kl, 64)
    saved = json.loads(json.dumps(a.state_dict()))  # what a checkpoint round trip does
    b = AdaptiveKLController(1.0, 1.0, 1.0)
    b.load_state_dict(saved)
    for kl in kls[3:]:
        assert a.update(kl, 64) == b.update(kl, 64)  # bit for bit
    f = FixedKLController(0.0)
    f.load_state_dict(FixedKLController(0.2).state_dict())
    assert f.value == 0.2


def test_adaptive_controller_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10000)


def test_score_normalisation_and_eos_penalty_by_hand() -> None:
    # (R - 1) / 2 clipped to ±1.5: (5 - 1)/2 = 2 -> 1.5; (0 - 1)/2 = -0.5
    assert normalised_scores(t(5.0, 0.0), mean=1.0, std=2.0, clip=1.5).tolist() == [1.5, -0.5]
    assert normalised_scores(t(5.0, 0.0), mean=1.0, std=2.0).tolist() == [2.0, -0.5]
    score, eos = t(0.7, 2.0), torch.tensor([True, False])
    assert missing_eos_penalty(score, eos).tolist() == [0.7, -1.0]
    assert missing_eos_penalty(score, eos, penalty=-0.5, add=True).tolist() == [0.7, 1.5]
