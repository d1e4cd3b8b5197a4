"""Each reward loss against a computation done by hand (numbers written out from the equations)."""
from __future__ import annotations

import math

import pytest
import torch

from lmforge.algos.reward_losses import (
    bradley_terry,
    centring,
    logistic,
    plackett_luce,
    ranking_pairs,
    regression,
)


def sp(x: float) -> float:
    """-log σ(x)."""
    return math.log1p(math.exp(-x))


def t(*xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_bradley_terry_by_hand() -> None:
    # -log σ(2 - 0.5) = log(1 + e^-1.5) = 0.2014133
    out = bradley_terry(t(2.0, 0.0), t(0.5, 1.0))
    assert out.tolist() == pytest.approx([0.2014133, 1.3132617], abs=1e-6)


def test_bradley_terry_margin_llama2() -> None:
    # Llama 2 eq. 2: -log σ(2 - 0.5 - 1) = log(1 + e^-0.5) = 0.4740770; a NaN margin is no margin
    out = bradley_terry(t(2.0, 2.0), t(0.5, 0.5), margin=t(1.0, float("nan")))
    assert out.tolist() == pytest.approx([0.4740770, 0.2014133], abs=1e-6)


def test_ranking_pairs_instructgpt_by_hand() -> None:
    # rewards in rank order 3 > 1 > 0: pairs (3,1), (3,0), (1,0); mean of -log σ(2), -log σ(3), -log σ(1)
    ranked, tie, valid = t(3.0, 1.0, 0.0, 9.0).unsqueeze(0), torch.tensor([[0, 1, 2, 3]]), \
        torch.tensor([[True, True, True, False]])  # a 4th, padded position must not count
    expect = (sp(2) + sp(3) + sp(1)) / 3
    assert expect == pytest.approx(0.1629257, abs=1e-6)
    assert ranking_pairs(ranked, tie, valid).item() == pytest.approx(expect, abs=1e-9)


def test_ranking_pairs_skips_tied_pairs() -> None:
    # positions 1 and 2 tied: only (3,1) and (3,0) remain, mean over 2 pairs
    out = ranking_pairs(t(3.0, 1.0, 0.0).unsqueeze(0), torch.tensor([[0, 1, 1]]), torch.ones(1, 3, dtype=torch.bool))
    assert out.item() == pytest.approx((sp(2) + sp(3)) / 2, abs=1e-9)
    # all tied: nothing to learn, loss 0
    none = ranking_pairs(t(3.0, 1.0).unsqueeze(0), torch.tensor([[0, 0]]), torch.ones(1, 2, dtype=torch.bool))
    assert none.item() == 0.0


def test_ranking_pairs_of_two_is_bradley_terry() -> None:
    two = ranking_pairs(t(2.0, 0.5).unsqueeze(0), torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool))
    assert two.item() == pytest.approx(bradley_terry(t(2.0), t(0.5)).item(), abs=1e-12)


def test_plackett_luce_by_hand() -> None:
    # stage 1: -log(e^3 / (e^3 + e^1 + e^0)) = log(e^3 + e + 1) - 3; stage 2: -log(e / (e + 1)); mean of 2 stages
    s1 = math.log(math.exp(3) + math.e + 1) - 3
    s2 = math.log(math.e + 1) - 1
    assert s1 == pytest.approx(0.1698460, abs=1e-6)  # log(23.80384) - 3
    out = plackett_luce(t(3.0, 1.0, 0.0, -5.0).unsqueeze(0), torch.tensor([[0, 1, 2, 3]]),
                        torch.tensor([[True, True, True, False]]))
    assert out.item() == pytest.approx((s1 + s2) / 2, abs=1e-9)


def test_plackett_luce_of_two_is_bradley_terry_and_ties() -> None:
    pl2 = plackett_luce(t(2.0, 0.5).unsqueeze(0), torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool))
    assert pl2.item() == pytest.approx(0.2014133, abs=1e-6)
    # positions 1, 2 tied: stage 1 keeps every competitor, stage 2 has none left -> only stage 1 counts
    tied = plackett_luce(t(3.0, 1.0, 0.0).unsqueeze(0), torch.tensor([[0, 1, 1]]), torch.ones(1, 3, dtype=torch.bool))
    assert tied.item() == pytest.approx(math.log(math.exp(3) + math.e + 1) - 3, abs=1e-9)


def test_regression_by_hand() -> None:
    pred, target = t(1.0, 0.5).unsqueeze(0), t(0.0, 1.0).unsqueeze(0)
    # ((1-0)^2 + (0.5-1)^2) / 2 = 0.625; with the second criterion unrated only the first counts
    assert regression(pred, target, torch.tensor([[True, True]])).item() == pytest.approx(0.625)
    assert regression(pred, target, torch.tensor([[True, False]])).item() == pytest.approx(1.0)


def test_logistic_by_hand() -> None:
    # good: -log σ(2) = 0.1269280; bad: -log σ(-2) = 2.1269280
    out = logistic(t(2.0, 2.0), torch.tensor([1.0, 0.0]))
    assert out.tolist() == pytest.approx([0.1269280, 2.1269280], abs=1e-6)


def test_centring_by_hand() -> None:
    # mean of (1, 3) is 2 -> 4; Eisenstein et al.'s pair term (1 + 3)^2 = 16 is 4x this
    out = centring(t(1.0, 3.0, 99.0).unsqueeze(0), torch.tensor([[True, True, False]]))
    assert out.item() == pytest.approx(4.0)
    assert 4 * out.item() == pytest.approx((1.0 + 3.0) ** 2)
    assert centring(t(5.0).unsqueeze(0), torch.tensor([[False]])).item() == 0.0


def test_gradients_push_the_right_way() -> None:
    r = t(0.0, 0.0).requires_grad_()
    bradley_terry(r[:1], r[1:]).sum().backward()
    assert r.grad[0] < 0 < r.grad[1]  # descending the loss raises chosen, lowers rejected
    ranked = t(0.0, 0.0, 0.0).unsqueeze(0).requires_grad_()
    plackett_luce(ranked, torch.tensor([[0, 1, 2]]), torch.ones(1, 3, dtype=torch.bool)).sum().backward()
    g = ranked.grad[0]
    assert g[0] < g[1] < g[2]
