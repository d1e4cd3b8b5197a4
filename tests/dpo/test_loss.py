"""The stage's dispatch to the registry's losses: which log-probs each loss gets, with hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from lmforge.stages.dpo import LossSection
from lmforge.stages.dpo_loss import make_loss, pair_terms

LOGP = torch.tensor([-2.0, -6.0, -5.0, -4.0], dtype=torch.float64)  # chosen rows, then rejected rows
N_TOK = torch.tensor([2, 3, 5, 4])
REF = torch.tensor([[-3.0, -4.0], [-5.0, -5.0]], dtype=torch.float64)  # [pair, (chosen, rejected)]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_dpo_gets_summed_logprobs_and_the_reference():
    per, rc, rr = pair_terms(LossSection(name="dpo", beta=0.5), LOGP, N_TOK, REF)
    # pair 0: h = (-2 - -3) - (-5 - -4) = 1 - (-1) = 2
    # pair 1: h = (-6 - -5) - (-4 - -5) = -1 - 1 = -2
    assert per.tolist() == pytest.approx([-math.log(sig(1.0)), -math.log(sig(-1.0))])
    assert rc.tolist() == pytest.approx([0.5, -0.5]) and rr.tolist() == pytest.approx([-0.5, 0.5])


def test_ipo_gets_per_token_means():
    per, _, _ = pair_terms(LossSection(name="ipo", beta=0.25), LOGP, N_TOK, REF)
    # pair 0: 1/2 - (-1)/5 = 0.7; target 1/(2*0.25) = 2
    assert per[0].item() == pytest.approx((0.7 - 2.0) ** 2)


def test_simpo_gets_averages_and_no_reference():
    per, rc, _ = pair_terms(LossSection(name="simpo", beta=2.0, gamma=0.5), LOGP, N_TOK, None)
    x = 2.0 * (-2.0 / 2 - -5.0 / 5) - 0.5  # averages -1 and -1
    assert per[0].item() == pytest.approx(-math.log(sig(x)))
    assert rc[0].item() == pytest.approx(2.0 * -1.0)


def test_loss_output_is_a_weighted_sum_over_pairs(monkeypatch):
    batch = {"index": torch.tensor([1, 0]), "weight": torch.tensor([1.0, 1 / 3], dtype=torch.float64),
             "tokens": 10}

    def fake_logprobs(model, batch, chunk_tokens):
        return LOGP[[1, 0, 3, 2]], N_TOK[[1, 0, 3, 2]]

    import lmforge.stages.dpo_loss as stage

    monkeypatch.setattr(stage, "sequence_logprobs", fake_logprobs)
    out = make_loss(LossSection(name="dpo", beta=0.5), REF, None)(None, batch)
    want = 1.0 * -math.log(sig(-1.0)) + (1 / 3) * -math.log(sig(1.0))
    assert out.loss.item() == pytest.approx(want) and out.count == pytest.approx(4 / 3)
    assert float(out.metrics["accuracy"]) == pytest.approx(1 / 3)


def test_length_normalised_dpo_uses_per_token_means_of_policy_and_reference():
    per, _, _ = pair_terms(LossSection(name="dpo", beta=0.5, length_normalize=True), LOGP, N_TOK, REF)
    # pair 0: (-2/2 - -3/2) - (-5/5 - -4/5) = 0.5 + 0.2 = 0.7
    assert per[0].item() == pytest.approx(-math.log(sig(0.5 * 0.7)))


def test_rpo_is_dpo_plus_the_chosen_per_token_nll():
    per, rc, _ = pair_terms(LossSection(name="rpo", beta=0.5, alpha=0.5), LOGP, N_TOK, REF)
    # DPO parts as above (β h = ±1); chosen NLL per token: pair 0 2/2 = 1, pair 1 6/3 = 2
    assert per.tolist() == pytest.approx([-math.log(sig(1.0)) + 0.5 * 1.0, -math.log(sig(-1.0)) + 0.5 * 2.0])
    assert rc.tolist() == pytest.approx([0.5, -0.5])  # the implicit reward is DPO's


def test_rpo_length_normalised_divides_by_the_length_once():
    per, _, _ = pair_terms(LossSection(name="rpo", beta=0.5, length_normalize=True), LOGP, N_TOK, REF)
    # means: chosen -1 (ref -1.5), rejected -1 (ref -0.8): h = 0.5 + 0.2 = 0.7; NLL is the mean already: 1; α = 1
    assert per[0].item() == pytest.approx(-math.log(sig(0.5 * 0.7)) + 1.0)
