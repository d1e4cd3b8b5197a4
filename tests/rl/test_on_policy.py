"""Work the rollout can skip: no reference when no KL coefficient reads it, no old-log-prob forward when the
rollout is one optimizer step (on-policy) or when the sampler's log-probs are exactly the old ones. The losses
must be those of the run that does the forwards."""
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
        calls.append((policy, reference.needed if reference is not None else None, len(rows["mask"])))
        return real(model, reference, rows, *a, policy=policy, **k)

    over = {"rl__kl_coef": 0.0, "train__batch_size": 16, "train__micro_batch_size": 8}  # 4 x 4 rows: one step
    # a KL budget needs the reference, a KL in the reward (times beta 0) needs the old log-probs now
    kl = {"rl__kl_budget": 1e9, "rl__kl_mode": "reward"}
    rollout.forward_rows = spy
    try:
        fast = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="fast", **over))
        # the same training with the old log-probs taken from the sampler, and with both forwards forced
        rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="sampled", **kl, **over))
        full = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="full", rl__recompute_old_logprobs=True,
                               **kl, **over))
    finally:
        rollout.forward_rows = real
    # the sampled run: rows that stopped at another stop token than the end-of-turn token trained on (none in
    # the first rollout, some in the second here) get their old log-probs from a policy-only forward
    assert calls == [(False, False, 16)] * 2 + [(False, True, 16)] * 2 + [(True, None, 1)] + [(True, True, 16)] * 2
    assert fast["weight_bytes"]["reference"] == 0 < full["weight_bytes"]["reference"]
    a, s, b = (_metrics(tmp_path / f"runs/{n}/metrics.jsonl") for n in ("fast", "sampled", "full"))
    assert "kl_ref" not in a[0] and "kl_ref" in b[0] and "logprob_mismatch" not in a[0]
    assert "logprob_mismatch" not in s[0] and b[0]["logprob_mismatch"] < 1e-5
    assert [m["step"] for m in a] == [m["step"] for m in s] == [m["step"] for m in b] == [1, 2]
    for x, z, y in zip(a, s, b):
        assert x["reward_mean"] == pytest.approx(y["reward_mean"], abs=1e-9) and z["reward_mean"] == x["reward_mean"]
        assert x["policy_loss"] == pytest.approx(y["policy_loss"], rel=1e-4, abs=1e-7)
        assert z["policy_loss"] == pytest.approx(y["policy_loss"], rel=1e-4, abs=1e-7)
        assert x["approx_kl"] == z["approx_kl"] == 0.0 and abs(y["approx_kl"]) < 1e-5
        assert z["kl_ref"] == pytest.approx(y["kl_ref"], abs=1e-4)  # k1 of the sampler's vs the forward's


@pytest.mark.parametrize("recompute", [False, True])
def test_on_policy_grpo_with_a_kl_loss_has_true_old_logprobs_so_kl_ref_is_true(tmp_path, tiny_lm, prompt_file,
                                                                                 recompute):
    """GRPO's k3 KL is a loss term, but the rollout's kl_ref (logged, read by the adaptive β and the KL budget)
    is k1 of the old log-probs against the reference: zeros for them would make it −log π_ref. They come from
    the sampler (no forward) or, recomputed, from the forward."""
    over = {"train__batch_size": 16, "train__micro_batch_size": 8}  # one optimizer step per rollout
    run = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, name="kl", rl__kl_coef=0.05, rl__kl_mode="loss",
                          rl__recompute_old_logprobs=recompute, **over))
    m = _metrics(tmp_path / "runs/kl/metrics.jsonl")[0]
    assert run["weight_bytes"]["reference"] > 0
    # policy and reference start equal: the first rollout's KL is ~0, not the reference's negative log-prob
    assert abs(m["kl_ref"]) < 1e-4 and ("logprob_mismatch" in m) == recompute


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_the_samplers_logprobs_equal_the_old_logprob_forward(tiny_lm, temperature):
    """What lets the rollout skip the forward: the sampler's log-probs, laid out as the rows (the stop token's
    last), equal the no-grad forward's within 1e-5; and the condition refuses a changed distribution."""
    import torch

    from lmforge.generation import SamplingParams
    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.rl.buffer import pack_rows
    from lmforge.rl.policy import PolicyWithValue
    from lmforge.rl.rollout import forward_rows, sampled_logprob_rows, sampled_logprobs_are_old
    from lmforge.rollout.generate import complete, prompt_ids

    tok = load_tokenizer(str(tiny_lm))
    model = PolicyWithValue(load_causal_lm(str(tiny_lm)), "none").eval()
    prompts = [[{"role": "user", "content": f"Tell me about number {i}."}] for i in range(4)]
    sp = SamplingParams(max_new_tokens=16, temperature=temperature, seed=0, n=3)
    free = [c for g in complete(model.policy, tok, prompts, sp, step=0) for c in g]
    eot = free[0].token_ids[2]  # a token the sampler picks: as the stop token, some rows stop at it
    comps = [c for g in complete(model.policy, tok, prompts, sp.model_copy(update={"stop_token_ids": [eot]}),
                                 step=0) for c in g]
    assert any(c.finish_reason == "stop" for c in comps) and sampled_logprobs_are_old(sp, model)
    p_ids = [ids for ids in prompt_ids(tok, prompts) for _ in range(3)]
    rows = pack_rows(p_ids, [c.token_ids + ([eot] if c.finish_reason == "stop" else []) for c in comps], 0)
    fwd = forward_rows(model, None, rows, temperature, 8, values=False)
    got, missing = sampled_logprob_rows(comps, rows["mask"], eot)
    assert missing == [] and (got - fwd["old_logp"]).abs().max() < 1e-5 and (got != 0).sum() == rows["mask"].sum()
    # stopped at a token that is not the one trained on: those rows are left to the forward
    _, missing = sampled_logprob_rows(comps, rows["mask"], eot + 1)
    assert missing == [i for i, c in enumerate(comps) if c.finish_reason == "stop"]
    for change in ({"top_k": 5}, {"top_p": 0.9}, {"repetition_penalty": 1.1}, {"temperature": 0.0}):
        assert not sampled_logprobs_are_old(sp.model_copy(update=change), model)
    assert not sampled_logprobs_are_old(sp, model.to(torch.bfloat16))
