"""Work the rollout can skip: no reference when no KL coefficient reads it, no old-log-prob forward when the
rollout is one optimizer step (on-policy). The losses must be those of the run that does the forwards."""
from __future__ import annotations

import json

import pytest

from lmforge.stages.rl import rl_train

from .conftest import rl_cfg


def _metrics(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_on_policy_grpo_without_kl_skips_reference_and_old_forward(tmp_path, tiny_lm, prompt_file):
    import lmforge.rl.rollout as rollout

    calls = []
    real = rollout.forward_rows

    def spy(model, reference, rows, *a, policy=True, **k):
        calls.append((policy, reference.needed))
        return real(model, reference, rows, *a, policy=policy, **k)

    over = {"rl__kl_coef": 0.0, "train__batch_size": 16, "train__micro_batch_size": 8}  # 4 x 4 rows: one step
    rollout.forward_rows = spy
    try:
        fast = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="fast", **over))
        # the same training with both forwards forced: a KL budget needs the reference, a KL in the reward
        # (times beta 0) needs the old log-probs now
        full = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="full", rl__kl_budget=1e9,
                               rl__kl_mode="reward", **over))
    finally:
        rollout.forward_rows = real
    assert calls == [(False, False)] * 2 + [(True, True)] * 2
    assert fast["weight_bytes"]["reference"] == 0 < full["weight_bytes"]["reference"]
    a, b = _metrics(tmp_path / "runs/fast/metrics.jsonl"), _metrics(tmp_path / "runs/full/metrics.jsonl")
    assert "kl_ref" not in a[0] and "kl_ref" in b[0] and "logprob_mismatch" not in a[0]
    assert [m["step"] for m in a] == [m["step"] for m in b] == [1, 2]
    for x, y in zip(a, b):
        assert x["reward_mean"] == pytest.approx(y["reward_mean"], abs=1e-9)
        assert x["policy_loss"] == pytest.approx(y["policy_loss"], rel=1e-4, abs=1e-7)
        assert x["approx_kl"] == 0.0 and abs(y["approx_kl"]) < 1e-5


def test_on_policy_grpo_with_a_kl_loss_keeps_the_old_forward_so_kl_ref_is_true(tmp_path, tiny_lm, prompt_file):
    """GRPO's k3 KL is a loss term, but the rollout's kl_ref (logged, read by the adaptive β and the KL budget)
    is k1 of the old log-probs against the reference: skipping the old forward would make it −log π_ref."""
    over = {"train__batch_size": 16, "train__micro_batch_size": 8}  # one optimizer step per rollout
    run = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="kl", rl__kl_coef=0.05, rl__kl_mode="loss", **over))
    m = _metrics(tmp_path / "runs/kl/metrics.jsonl")[0]
    assert run["weight_bytes"]["reference"] > 0
    # policy and reference start equal: the first rollout's KL is ~0, not the reference's negative log-prob
    assert abs(m["kl_ref"]) < 1e-4 and "logprob_mismatch" in m
