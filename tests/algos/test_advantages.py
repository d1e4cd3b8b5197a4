"""Advantage estimators and masked statistics against computations done by hand."""
from __future__ import annotations

import math

import pytest
import torch

from lmforge.algos.advantages import (
    ADVANTAGES,
    advantage_estimator,
    gae,
    grpo_scores,
    informative_groups,
    mask_truncated,
    masked_mean,
    masked_var,
    masked_whiten,
    overlong_penalty,
    returns_to_go,
    rloo_scores,
)
from lmforge.errors import InputError

NAN = float("nan")


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_masked_statistics_by_hand() -> None:
    x, m = t(1.0, 2.0, 3.0, 100.0), torch.tensor([1, 1, 1, 0])
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    # unbiased: ((1-2)^2 + 0 + (3-2)^2) / (3 - 1) = 1; biased: 2/3
    assert masked_var(x, m).item() == pytest.approx(1.0)
    assert masked_var(x, m, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_whiten(x, m).tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-7)
    assert masked_whiten(x, m, shift_mean=False).tolist() == pytest.approx([1.0, 2.0, 3.0, 0.0], abs=1e-7)
    rows = t([1.0, 3.0], [5.0, 9.0])
    assert masked_mean(rows, torch.tensor([[1, 1], [1, 0]]), dim=-1).tolist() == [2.0, 5.0]


def test_gae_by_hand() -> None:
    # γ = 1, λ = 0.9, V = (0.5, 0.6, 0.7), reward 1 at the end:
    # δ2 = 1 - 0.7 = 0.3; δ1 = 0.7 - 0.6 = 0.1; δ0 = 0.6 - 0.5 = 0.1
    # A2 = 0.3; A1 = 0.1 + 0.9·0.3 = 0.37; A0 = 0.1 + 0.9·0.37 = 0.433; R = A + V
    rewards, values = t([0.0, 0.0, 1.0]), t([0.5, 0.6, 0.7])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.9)
    assert adv[0].tolist() == pytest.approx([0.433, 0.37, 0.3], abs=1e-12)
    assert ret[0].tolist() == pytest.approx([0.933, 0.97, 1.0], abs=1e-12)
    # λ = 1: Monte-Carlo return minus the value, A_t = Σ r - V_t
    adv1, _ = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert adv1[0].tolist() == pytest.approx([0.5, 0.4, 0.3], abs=1e-12)
    # γ = 0.5, λ = 1: A0 = 0.25 - 0.5, A1 = 0.5 - 0.6, A2 = 1 - 0.7
    adv2, _ = gae(rewards, values, torch.ones(1, 3), gamma=0.5, lam=1.0)
    assert adv2[0].tolist() == pytest.approx([-0.25, -0.1, 0.3], abs=1e-12)


def test_gae_skips_masked_tokens_and_padding() -> None:
    # token 1 is not the policy's (mask 0): its reward and value are skipped, the chain runs through it:
    # A2 = 1 - 0.7 = 0.3; A0 = (0 + 0.7 - 0.5) + 0.9·0.3 = 0.47; the padded row is all zeros
    rewards = t([0.0, 99.0, 1.0], [5.0, 5.0, 5.0])
    values = t([0.5, 99.0, 0.7], [1.0, 1.0, 1.0])
    adv, ret = gae(rewards, values, torch.tensor([[1, 0, 1], [0, 0, 0]]), gamma=1.0, lam=0.9)
    assert adv.tolist()[0] == pytest.approx([0.47, 0.0, 0.3], abs=1e-12)
    assert ret.tolist()[0] == pytest.approx([0.97, 0.0, 1.0], abs=1e-12)
    assert adv.tolist()[1] == [0.0, 0.0, 0.0] and ret.tolist()[1] == [0.0, 0.0, 0.0]


def test_returns_to_go_by_hand() -> None:
    # γ = 0.5: G2 = 2, G1 = 0 + 0.5·2 = 1, G0 = 1 + 0.5·1 = 1.5; padding stays 0
    out = returns_to_go(t([1.0, 0.0, 2.0, 7.0]), torch.tensor([[1, 1, 1, 0]]), gamma=0.5)
    assert out[0].tolist() == [1.5, 1.0, 2.0, 0.0]


def test_grpo_by_hand() -> None:
    # (1, 0, 0, 1): mean 0.5, unbiased std sqrt(4·0.25/3) = 0.5773503 -> ±0.8660254; Dr. GRPO: ±0.5
    scores = t([1.0, 0.0, 0.0, 1.0])
    assert grpo_scores(scores, eps=0.0)[0].tolist() == pytest.approx([0.8660254, -0.8660254, -0.8660254, 0.8660254], abs=1e-7)
    # ε = 1e-6 (veRL) in the denominator: 0.5 / (0.5773503 + 1e-6)
    assert grpo_scores(scores)[0, 0].item() == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-6), abs=1e-12)
    assert grpo_scores(scores, scale="none")[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    # batch scale: group means 0.5 and 4, std of (1, 0, 3, 5) = sqrt(14.75 / 3) = 2.2173558
    two = grpo_scores(t([1.0, 0.0], [3.0, 5.0]), scale="batch", eps=0.0)
    s = math.sqrt(14.75 / 3)
    assert s == pytest.approx(2.2173558, abs=1e-7)
    assert two.flatten().tolist() == pytest.approx([0.5 / s, -0.5 / s, -1 / s, 1 / s], abs=1e-12)
    # all equal: zero advantage, not NaN
    assert grpo_scores(t([2.0, 2.0, 2.0]))[0].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        grpo_scores(scores, scale="grp")


def test_grpo_leaves_unscorable_responses_out() -> None:
    # (1, NaN, 0): statistics over (1, 0): mean 0.5, std sqrt(0.5) -> ±0.7071068, the NaN one gets 0;
    # a group with one scorable response has nothing to compare against -> 0
    out = grpo_scores(t([1.0, NAN, 0.0], [2.0, NAN, NAN]), eps=0.0)
    assert out.flatten().tolist() == pytest.approx([0.7071068, 0.0, -0.7071068, 0.0, 0.0, 0.0], abs=1e-7)


def test_rloo_by_hand() -> None:
    # (3, 1, 2): baselines (1+2)/2 = 1.5, (3+2)/2 = 2.5, (3+1)/2 = 2 -> (1.5, -1.5, 0) = 3/2 (r - mean)
    assert rloo_scores(t([3.0, 1.0, 2.0]))[0].tolist() == [1.5, -1.5, 0.0]
    # NaN left out of the siblings: (3, NaN, 1) -> (3 - 1, 0, 1 - 3); a lone response -> 0
    assert rloo_scores(t([3.0, NAN, 1.0], [4.0, NAN, NAN])).tolist() == [[2.0, 0.0, -2.0], [0.0, 0.0, 0.0]]


def test_registry_estimators_broadcast_to_tokens() -> None:
    assert set(ADVANTAGES) == {"gae", "grpo", "rloo", "reinforce"}
    # 2 prompts x 2 responses, the score on each response's last token, response lengths 2, 1, 2, 2
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1]])
    rewards = t([0.0, 1.0], [3.0, 0.0], [0.0, 5.0], [0.0, 5.0])
    adv, ret = advantage_estimator("rloo")(rewards, mask, 2)
    assert adv.tolist() == [[-2.0, -2.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]] and torch.equal(adv, ret)
    adv, _ = advantage_estimator("grpo")(rewards, mask, 2, scale="none")
    assert adv.tolist() == [[-1.0, -1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    # REINFORCE with the batch-mean baseline: returns-to-go (1, 1), (3), (5, 5), (5, 5); mean of G0 = 3.5
    adv, _ = advantage_estimator("reinforce")(rewards, mask, 2)
    assert adv.tolist() == [[-2.5, -2.5], [-0.5, 0.0], [1.5, 1.5], [1.5, 1.5]]
    adv, ret = advantage_estimator("gae")(rewards, mask, 2, values=torch.zeros(4, 2, dtype=torch.float64),
                                          gamma=1.0, lam=1.0)
    assert adv.tolist() == [[1.0, 1.0], [3.0, 0.0], [5.0, 5.0], [5.0, 5.0]]
    # the baseline reads each row's whole return even where the response does not start at column 0
    left = advantage_estimator("reinforce")(t([0.0, 0.0, 2.0], [0.0, 4.0, 0.0], [9.0, 9.0, 9.0]),
                                            torch.tensor([[0, 1, 1], [1, 1, 0], [0, 0, 0]]), 1)[0]
    assert left.tolist() == [[0.0, -1.0, -1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="critic"):
        advantage_estimator("gae")(rewards, mask, 2)
    with pytest.raises(ValueError, match="groups of 3"):
        advantage_estimator("grpo")(rewards, mask, 3)


def test_unknown_estimator_names_the_closest() -> None:
    with pytest.raises(InputError, match="did you mean 'grpo'.*gae, grpo, reinforce, rloo"):
        advantage_estimator("grp")


def test_dapo_helpers_by_hand() -> None:
    scores = t([1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [NAN, 2.0, 2.0], [NAN, NAN, 1.0], [1.0, NAN, 0.0])
    assert informative_groups(scores).tolist() == [False, True, False, False, True]
    mask = torch.ones(3, 2)
    assert mask_truncated(mask, torch.tensor([False, True, False])).tolist() == [[1, 1], [0, 0], [1, 1]]
    # L_max 20, cache 4: free up to 16; 18 -> (16 - 18)/4 = -0.5; 20 -> -1; beyond -> -1
    out = overlong_penalty(torch.tensor([10, 16, 18, 20, 25]), max_len=20, cache=4)
    assert out.tolist() == [0.0, 0.0, -0.5, -1.0, -1.0]
