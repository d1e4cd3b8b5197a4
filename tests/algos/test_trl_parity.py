"""Parity with TRL 1.16: the same log-probabilities through TRL's own loss code and through ``algos``.

TRL computes the DPO and KTO losses inline in ``DPOTrainer._compute_loss`` / ``KTOTrainer._compute_loss``, after a
model forward; there is no loss function to call on log-probs. So these tests call those methods unbound, on a
stand-in ``self`` with the attributes they read and a stand-in model whose forward returns the chosen per-token
log-probs (``outputs.log_probs``, TRL 1.16's fused-LM-head output) — every line of TRL's loss arithmetic runs as
shipped. ORPO (``odds_ratio_loss``) and SimPO (``cpo_loss``) are methods of the experimental trainers and are
called the same way. TRL 1.16's DPO ``sigmoid`` has no label smoothing any more; cDPO's smoothed loss lives on in
TRL's CPO ``sigmoid`` (``-(1-ε) log σ(βx) - ε log σ(-βx)``), which is fed the log-ratios ``log π_θ - log π_ref``
so that its ``x`` is DPO's ``h``. GRPO / RLOO advantages are inline in ``_generate_and_score_completions`` (after
generation and reward calls) and are not reachable as a function: no parity test for them here.
"""
from __future__ import annotations

from collections import defaultdict
from types import MethodType, SimpleNamespace

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not importable (pip install trl==1.16.0; a test-only dependency)",
                    exc_type=ImportError)
import trl  # noqa: E402
from trl import DPOTrainer, KTOTrainer  # noqa: E402

if trl.__version__ != "1.16.0":  # these tests call TRL internals, which move between releases
    pytest.skip(f"parity is stated against TRL 1.16.0, found {trl.__version__}", allow_module_level=True)

from lmforge.algos.preference_losses import (  # noqa: E402
    cdpo,
    dpo,
    implicit_rewards,
    ipo,
    kto,
    kto_reference_point,
    orpo,
    orpo_log_odds_ratio,
    preference_accuracy,
    robust,
    simpo,
)

TOL = 1e-5
DTYPES = [torch.float32, torch.float64]


class Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    gather = gather_for_metrics


class FakeModel:
    """Returns, for each ``input_ids`` it was given, the per-token log-probs registered for it."""

    training = False  # TRL then logs under "eval" and leaves its train-token counter alone

    def __init__(self, table: list[tuple[torch.Tensor, torch.Tensor]]):
        self.table = table

    def __call__(self, input_ids, **_):
        for ids, logps in self.table:
            if ids.shape == input_ids.shape and torch.equal(ids, input_ids):
                zeros = torch.zeros_like(logps)
                return SimpleNamespace(log_probs=logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
        raise AssertionError("unexpected forward")


def sequences(n: int, width: int, dtype: torch.dtype, gen: torch.Generator, offset: int = 0):
    """``n`` rows of a 2-token prompt and 1..width-2 completion tokens; per-token log-probs on the completion."""
    lengths = torch.randint(1, width - 1, (n,), generator=gen)
    pos = torch.arange(width)
    completion = ((pos >= 2) & (pos < 2 + lengths.unsqueeze(1))).long()
    ids = offset + torch.arange(n * width).view(n, width)  # distinct ids so the fake model can tell rows apart
    logps = -3 * torch.rand(n, width - 1, generator=gen, dtype=torch.float64).to(dtype) * completion[:, 1:]
    return ids, completion, logps


def stub(**attrs) -> SimpleNamespace:
    base = dict(accelerator=Accelerator(), aux_loss_enabled=False, precompute_ref_logps=True,
                _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    return SimpleNamespace(**(base | attrs))


def trl_dpo(loss_type: str, beta: float, label_smoothing: float, dtype: torch.dtype, pairs: int = 6, width: int = 9):
    gen = torch.Generator().manual_seed(0)
    ids, completion, logps = sequences(2 * pairs, width, dtype, gen)
    # a reference near the policy (as after SFT), so that some pairs are ranked right and some wrong
    ref = logps.sum(-1) + 2 * torch.randn(2 * pairs, generator=gen, dtype=torch.float64).to(dtype)
    model = FakeModel([(ids, logps)])
    self = stub(model=model, ld_alpha=None, f_divergence_type="reverse_kl", loss_types=[loss_type],
                loss_weights=[1.0], beta=beta, label_smoothing=label_smoothing, use_weighting=False,
                args=SimpleNamespace(gradient_checkpointing_kwargs=None))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
              "ref_chosen_logps": ref[:pairs], "ref_rejected_logps": ref[pairs:]}
    loss = DPOTrainer._compute_loss(self, model, inputs, return_outputs=False)
    sums, lengths = logps.sum(-1), completion.sum(-1)
    ours = (sums[:pairs], sums[pairs:], ref[:pairs], ref[pairs:])
    return loss, self._metrics["eval"], ours, (lengths[:pairs], lengths[pairs:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dpo_sigmoid_matches_trl(dtype) -> None:
    loss, metrics, pair, _ = trl_dpo("sigmoid", 0.1, 0.0, dtype)
    assert dpo(*pair, beta=0.1).mean().item() == pytest.approx(loss.item(), abs=TOL)
    # the logged implicit rewards, margin and accuracy are TRL's too
    rc, rr = implicit_rewards(pair[0], pair[2], 0.1), implicit_rewards(pair[1], pair[3], 0.1)
    assert rc.mean().item() == pytest.approx(metrics["rewards/chosen"][-1], abs=TOL)
    assert (rc - rr).mean().item() == pytest.approx(metrics["rewards/margins"][-1], abs=TOL)
    assert preference_accuracy(rc, rr).mean().item() == pytest.approx(metrics["rewards/accuracies"][-1], abs=TOL)
    assert 0 < metrics["rewards/accuracies"][-1] < 1  # the batch has both right and wrong pairs


@pytest.mark.parametrize("dtype", DTYPES)
def test_ipo_matches_trl(dtype) -> None:
    # TRL's IPO divides each log-ratio by the completion length: ours with chosen_len / rejected_len
    loss, _, pair, (lc, lr) = trl_dpo("ipo", 0.1, 0.0, dtype)
    assert ipo(*pair, beta=0.1, chosen_len=lc, rejected_len=lr).mean().item() == pytest.approx(loss.item(), abs=TOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_robust_matches_trl(dtype, eps) -> None:
    loss, _, pair, _ = trl_dpo("robust", 0.1, eps, dtype)
    assert robust(*pair, beta=0.1, label_smoothing=eps).mean().item() == pytest.approx(loss.item(), abs=TOL)


def cpo_stub(loss_type: str, beta: float, label_smoothing: float = 0.0, gamma: float = 0.5) -> SimpleNamespace:
    return SimpleNamespace(alpha=0.0, beta=beta, simpo_gamma=gamma, loss_type=loss_type,
                           label_smoothing=label_smoothing, accelerator=Accelerator())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.25])
def test_cdpo_matches_trls_smoothed_sigmoid(dtype, eps) -> None:
    from trl.experimental.cpo import CPOTrainer

    _, _, (c, r, rc, rr), _ = trl_dpo("sigmoid", 0.1, 0.0, dtype)
    losses, _, _ = CPOTrainer.cpo_loss(cpo_stub("sigmoid", 0.1, eps), c - rc, r - rr)
    ours = cdpo(c, r, rc, rr, beta=0.1, label_smoothing=eps)
    torch.testing.assert_close(ours, losses, atol=TOL, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("beta", "gamma", "eps"), [(2.0, 0.5, 0.0), (2.5, 1.4, 0.0), (2.0, 0.5, 0.1)])
def test_simpo_matches_trl(dtype, beta, gamma, eps) -> None:
    from trl.experimental.cpo import CPOTrainer

    gen = torch.Generator().manual_seed(1)
    c = -2 * torch.rand(8, generator=gen, dtype=torch.float64).to(dtype)
    r = -2 * torch.rand(8, generator=gen, dtype=torch.float64).to(dtype)
    losses, _, _ = CPOTrainer.cpo_loss(cpo_stub("simpo", beta, eps, gamma), c, r)
    torch.testing.assert_close(simpo(c, r, beta, gamma, eps), losses, atol=TOL, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_orpo_matches_trl(dtype) -> None:
    from trl.experimental.orpo import ORPOTrainer

    gen = torch.Generator().manual_seed(2)
    # average log-probs, some close to 0 (the log1mexp branch near -ln 2 and above)
    c = torch.cat([-3 * torch.rand(6, generator=gen, dtype=torch.float64), torch.tensor([-1e-4, -0.69])]).to(dtype)
    r = torch.cat([-3 * torch.rand(6, generator=gen, dtype=torch.float64), torch.tensor([-0.7, -2.0])]).to(dtype)
    self = SimpleNamespace(beta=0.1, accelerator=Accelerator())
    losses, _, _, _, log_odds_mean = ORPOTrainer.odds_ratio_loss(self, c, r)
    assert orpo_log_odds_ratio(c, r).mean().item() == pytest.approx(log_odds_mean.item(), abs=TOL)
    # TRL: loss = NLL - mean(β log σ(log odds)); its NLL is one number per batch, so pass that as chosen_nll
    nll = torch.tensor(1.2345, dtype=dtype)
    assert orpo(c, r, beta=0.1, chosen_nll=nll).mean().item() == pytest.approx((nll - losses.mean()).item(), abs=TOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("w_d", "w_u", "kl_shift"), [(1.0, 1.0, -1.0), (1.0, 1.33, -1.0), (0.8, 1.0, 5.0)])
def test_kto_matches_trl(dtype, w_d, w_u, kl_shift) -> None:
    gen = torch.Generator().manual_seed(3)
    n, width = 8, 9
    ids, completion, logps = sequences(n, width, dtype, gen)
    kl_ids, kl_completion, kl_logps = sequences(n, width, dtype, gen, offset=10_000)
    label = torch.tensor([True, False, True, True, False, False, True, False])
    ref = (logps.sum(-1) + torch.randn(n, generator=gen, dtype=torch.float64).to(dtype))
    # kl_shift < 0: the policy is the more likely on the mismatched pairs (z0 > 0); kl_shift > 0: the reference is,
    # the mean is negative and clamped to z0 = 0
    ref_kl = kl_logps.sum(-1) + torch.randn(n, generator=gen, dtype=torch.float64).to(dtype) * 0.5 + kl_shift
    model = FakeModel([(ids, logps), (kl_ids, kl_logps)])
    self = stub(model=model, calculate_KL=True, loss_type="kto", beta=0.1, desirable_weight=w_d,
                undesirable_weight=w_u)
    self._compute_kl_logps = MethodType(KTOTrainer._compute_kl_logps, self)  # TRL's own KL forward, on the stub
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
              "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(kl_ids), "KL_completion_mask": kl_completion,
              "label": label, "ref_logps": ref, "ref_KL_logps": ref_kl}
    loss = KTOTrainer._compute_loss(self, model, inputs, return_outputs=False)
    z0 = kto_reference_point(kl_logps.sum(-1), ref_kl)
    assert z0.item() == pytest.approx(self._metrics["eval"]["kl"][-1], abs=TOL)
    assert (z0.item() == 0.0) == (kl_shift > 0) and (z0.item() > 0.5) == (kl_shift < 0)
    ours = kto(logps.sum(-1), ref, label, z0, beta=0.1, desirable_weight=w_d, undesirable_weight=w_u)
    assert ours.mean().item() == pytest.approx(loss.item(), abs=TOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("w_d", "w_u", "kl_shift"), [(1.0, 1.0, -1.0), (1.3, 0.7, -1.0), (1.0, 1.0, 5.0)])
def test_lmforge_dpo_stage_kto_matches_trl(dtype, w_d, w_u, kl_shift, monkeypatch) -> None:
    """The stage's KTO path (``lmforge dpo loss.name=kto``): each example's log-prob and its mismatched row's come
    out of one forward, z0 is their batch mean; with unit weights its loss sum over the weight sum is TRL's."""
    import lmforge.stages.dpo as stage
    import lmforge.stages.dpo_loss as dpo_loss

    gen = torch.Generator().manual_seed(4)
    n, width = 8, 9
    ids, completion, logps = sequences(n, width, dtype, gen)
    kl_ids, kl_completion, kl_logps = sequences(n, width, dtype, gen, offset=10_000)
    label = torch.tensor([True, True, False, True, False, False, True, False])
    ref = logps.sum(-1) + torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    ref_kl = kl_logps.sum(-1) + torch.randn(n, generator=gen, dtype=torch.float64).to(dtype) * 0.5 + kl_shift
    model = FakeModel([(ids, logps), (kl_ids, kl_logps)])
    self = stub(model=model, calculate_KL=True, loss_type="kto", beta=0.1, desirable_weight=w_d,
                undesirable_weight=w_u)
    self._compute_kl_logps = MethodType(KTOTrainer._compute_kl_logps, self)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
              "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(kl_ids), "KL_completion_mask": kl_completion,
              "label": label, "ref_logps": ref, "ref_KL_logps": ref_kl}
    want = KTOTrainer._compute_loss(self, model, inputs, return_outputs=False)
    both = torch.cat([logps.sum(-1), kl_logps.sum(-1)])
    monkeypatch.setattr(dpo_loss, "sequence_logprobs", lambda model, batch, chunk: (both, completion.sum(-1).repeat(2)))
    reference = torch.stack([ref, ref_kl], dim=1).double()
    batch = {"index": torch.arange(n), "weight": torch.ones(n, dtype=torch.float64), "tokens": 1}
    out = stage.make_loss(stage.LossSection(name="kto", beta=0.1, desirable_weight=w_d, undesirable_weight=w_u),
                          reference, None, label)(None, batch)
    assert (out.loss / out.count).item() == pytest.approx(want.item(), abs=TOL)
    assert (out.metrics["kl"] / out.count).item() == pytest.approx(self._metrics["eval"]["kl"][-1], abs=TOL)
