"""PPO policy/value losses, loss aggregation and the logged metrics against computations done by hand."""
from __future__ import annotations

import math

import pytest
import torch

from lmforge.algos.policy_losses import (
    POLICY_LOSSES,
    aggregate,
    approx_kl,
    clip_fraction,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    explained_variance_sums,
    policy_loss,
    ppo_clip,
    token_logprobs,
    vanilla_pg,
)
from lmforge.errors import InputError


def t(*xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def ratios(*rs) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp, old_logp) whose ratio exp(logp - old_logp) is each of ``rs``."""
    return t(*[math.log(r) for r in rs]), torch.zeros(len(rs), dtype=torch.float64)


def test_ppo_clip_by_hand() -> None:
    # ε = 0.2. ratio 1.5, A = +1: max(-1.5, -1.2) = -1.2 (clipped); ratio 0.5, A = +1: max(-0.5, -0.8) = -0.5;
    # ratio 1.1, A = -1: 1.1 both ways; ratio 0.7, A = -1: max(0.7, 0.8) = 0.8 (clipped)
    logp, old = ratios(1.5, 0.5, 1.1, 0.7)
    loss, clipped = ppo_clip(logp, old, t(1.0, 1.0, -1.0, -1.0), clip_low=0.2)
    assert loss.tolist() == pytest.approx([-1.2, -0.5, 1.1, 0.8], abs=1e-12)
    assert clipped.tolist() == [True, False, False, True]


def test_ppo_clip_higher_dapo() -> None:
    # ε_low 0.2, ε_high 0.28: ratio 1.25 with A = +1 is inside [0.8, 1.28] -> -1.25, symmetric it is cut to -1.2;
    # ratio 1.5 is cut at 1.28; the lower side is unchanged (0.7 with A = -1 -> 0.8)
    logp, old = ratios(1.25, 1.5, 0.7)
    adv = t(1.0, 1.0, -1.0)
    sym, _ = ppo_clip(logp, old, adv, 0.2)
    high, clipped = ppo_clip(logp, old, adv, 0.2, clip_high=0.28)
    assert sym.tolist() == pytest.approx([-1.2, -1.2, 0.8], abs=1e-12)
    assert high.tolist() == pytest.approx([-1.25, -1.28, 0.8], abs=1e-12)
    assert clipped.tolist() == [False, True, True]


def test_ppo_dual_clip_ye_2020() -> None:
    # ratio 5, A = -1: max(5, 1.2) = 5, capped at -c·A = 3; the same ratio with A = +1 is the usual -1.2;
    # ratio 2, A = -1: 2 < 3, untouched
    logp, old = ratios(5.0, 5.0, 2.0)
    loss, clipped = ppo_clip(logp, old, t(-1.0, 1.0, -1.0), 0.2, dual_clip=3.0)
    assert loss.tolist() == pytest.approx([3.0, -1.2, 2.0], abs=1e-12)
    assert clipped.tolist() == [True, True, False]
    with pytest.raises(ValueError):
        ppo_clip(logp, old, t(-1.0, 1.0, -1.0), dual_clip=1.0)


def test_clipped_tokens_get_no_gradient() -> None:
    logp, old = ratios(1.5, 1.1)
    logp.requires_grad_()
    loss, _ = ppo_clip(logp, old, t(1.0, 1.0))
    loss.sum().backward()
    # d/dlogp of -A·ρ is -A·ρ: 0 where clipped, -1.1 inside the trust region
    assert logp.grad.tolist() == pytest.approx([0.0, -1.1], abs=1e-12)


def test_vanilla_and_registry() -> None:
    logp, old = ratios(2.0, 0.5)
    loss, clipped = vanilla_pg(logp, old, t(1.0, -2.0))
    assert loss.tolist() == pytest.approx([-2.0, 1.0]) and not clipped.any()
    assert set(POLICY_LOSSES) == {"ppo", "vanilla"} and policy_loss("ppo") is ppo_clip
    with pytest.raises(InputError, match="did you mean 'ppo'"):
        policy_loss("ppoo")


def test_clipped_value_loss_by_hand() -> None:
    # V 1.0 from 0.5, R 2: plain (1-2)^2 = 1, clipped V 0.7: (0.7-2)^2 = 1.69 -> ½·1.69 = 0.845 (clip wins)
    # V 0.6 from 0.5, R 1: inside the clip, ½ (0.6-1)^2 = 0.08
    v, old, ret = t(1.0, 0.6), t(0.5, 0.5), t(2.0, 1.0)
    loss, clipped = clipped_value_loss(v, old, ret, clip=0.2)
    assert loss.tolist() == pytest.approx([0.845, 0.08], abs=1e-12)
    assert clipped.tolist() == [True, False]
    plain, _ = clipped_value_loss(v, old, ret, clip=None)
    assert plain.tolist() == pytest.approx([0.5, 0.08], abs=1e-12)


LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # the third row has no response token


@pytest.mark.parametrize(("mode", "norm", "want"), [
    ("token-mean", None, (10.0, 4.0)),  # (1+2+3+4) over 4 tokens
    ("seq-mean-token-mean", None, (6.0, 2.0)),  # per-sequence means 2 and 4 over 2 sequences
    ("seq-mean-token-sum", None, (10.0, 2.0)),  # sums 6 and 4 over 2 sequences
    ("seq-mean-token-sum-norm", None, (10.0 / 3, 2.0)),  # Dr. GRPO: sums / T = 3
    ("seq-mean-token-sum-norm", 5.0, (2.0, 2.0)),  # ... / the generation budget
])
def test_aggregate_by_hand(mode: str, norm: float | None, want: tuple[float, float]) -> None:
    s, n = aggregate(LOSS, MASK, mode, norm)
    assert (s.item(), n.item()) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_aggregate_splits_into_micro_batches_exactly(mode: str) -> None:
    # the engine adds (sum, count) over micro-batches: any split gives the loss of the whole batch
    whole = aggregate(LOSS, MASK, mode)
    parts = [aggregate(LOSS[i:i + 1], MASK[i:i + 1], mode) for i in range(3)]
    assert sum(p[0] for p in parts).item() / sum(p[1] for p in parts).item() == pytest.approx(
        whole[0].item() / whole[1].item(), abs=1e-12)


def test_aggregate_unknown_mode() -> None:
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(LOSS, MASK, "token-sum")


def test_entropy_and_logprobs_by_hand() -> None:
    # uniform over 4: ln 4 = 1.3862944; (0.5, 0.25, 0.25): 0.5 ln 2 + 0.5 ln 4 = 1.5 ln 2 = 1.0397208
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0]], [[math.log(0.5), math.log(0.25), math.log(0.25), -math.inf]]])
    assert entropy_from_logits(logits).flatten().tolist() == pytest.approx([1.3862944, 1.0397208], abs=1e-6)
    # random logits: torch's Categorical entropy
    z = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(entropy_from_logits(z), torch.distributions.Categorical(logits=z).entropy())
    # logits (0, ln 3), token 1: ln(3/4); at temperature 2 the logits halve: ln(√3 / (1 + √3))
    lg = torch.tensor([[[0.0, math.log(3.0)]]])
    tok = torch.tensor([[1]])
    assert token_logprobs(lg, tok).item() == pytest.approx(math.log(0.75), abs=1e-6)
    assert token_logprobs(lg, tok, temperature=2.0).item() == pytest.approx(
        math.log(math.sqrt(3) / (1 + math.sqrt(3))), abs=1e-6)


def test_clip_fraction_and_approx_kl_by_hand() -> None:
    mask = torch.tensor([1, 1, 0])
    s, n = clip_fraction(torch.tensor([True, False, True]), mask)
    assert (s.item(), n.item()) == (1.0, 2.0)
    # ρ = 2: (2 - 1) - ln 2 = 0.3068528; ρ = 1: 0; the masked token (ρ = 10) is left out
    logp, old = ratios(2.0, 1.0, 10.0)
    s, n = approx_kl(logp, old, mask)
    assert (s.item(), n.item()) == pytest.approx((0.3068528, 2.0), abs=1e-7)


def test_explained_variance_by_hand() -> None:
    ret, mask = t(1.0, 2.0, 3.0, 4.0), torch.ones(4)
    assert explained_variance(explained_variance_sums(ret, ret, mask)).item() == pytest.approx(1.0)
    assert explained_variance(explained_variance_sums(torch.full((4,), 2.5, dtype=torch.float64), ret, mask)
                              ).item() == pytest.approx(0.0, abs=1e-12)
    # e = (-0.5, 0, 0, 0.5): Var e = 0.125, Var R = 1.25 -> 1 - 0.1 = 0.9
    v = t(1.5, 2.0, 3.0, 3.5)
    assert explained_variance(explained_variance_sums(v, ret, mask)).item() == pytest.approx(0.9, abs=1e-12)
    # sums from two "ranks" add up to the whole batch's
    halves = explained_variance_sums(v[:2], ret[:2], mask[:2]) + explained_variance_sums(v[2:], ret[2:], mask[2:])
    assert explained_variance(halves).item() == pytest.approx(0.9, abs=1e-12)
    assert math.isnan(explained_variance(explained_variance_sums(v, torch.ones(4, dtype=torch.float64), mask)).item())
