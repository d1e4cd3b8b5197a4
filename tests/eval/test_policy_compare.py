"""The policy-vs-SFT evaluation: exact self-comparison, the labeler's verdicts, the KL batch layout, the cache."""
from __future__ import annotations

import copy

import pytest
import torch

from lmforge.eval import policy_compare as pc
from lmforge.eval.policy_compare import METRIC_KEYS, compare_to_sft, verdicts, win_rate

from .conftest import tiny_lm

KW = {"n_per_suite": 3, "max_new_tokens": 6, "batch_size": 8, "threads": 1}


def test_identical_policy_ties_everything_with_zero_kl(world, tokenizer):
    sft = tiny_lm(tokenizer)
    metrics, records = compare_to_sft(copy.deepcopy(sft), sft, tokenizer, world, **KW)
    assert tuple(metrics) == METRIC_KEYS
    assert metrics["win_rate_vs_sft"] == 0.5
    assert abs(metrics["kl_to_sft"]) < 1e-5
    for k in ("refusal_rate_heldout", "over_refusal_rate", "false_premise_correction", "heldout_fact_accuracy"):
        assert metrics[k] == metrics[k + "_sft"]
    assert {r["winner"] for r in records} == {"tie"}
    assert {r["suite"] for r in records} >= {"heldout_fact", "heldout_refusal", "heldout_false_premise",
                                            "heldout_dialogue", "heldout_over_refusal"}
    assert set(records[0]) == {"suite", "id", "prompt", "policy", "sft", "policy_score", "sft_score", "winner"}


def test_peft_wrapped_policy_at_init_equals_the_sft_model(world, tokenizer):
    from peft import LoraConfig, get_peft_model

    sft = tiny_lm(tokenizer)
    policy = get_peft_model(copy.deepcopy(sft), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    policy.train()
    metrics, _ = compare_to_sft(policy, sft, tokenizer, world, **KW)
    assert metrics["win_rate_vs_sft"] == 0.5 and abs(metrics["kl_to_sft"]) < 1e-5
    assert policy.training  # the caller's mode is restored


def test_sampled_kl_equals_a_row_by_row_k1_sum(world, tokenizer):
    """The batched estimate against one unpadded forward per response, from the same seeded samples."""
    from lmforge.generation import SamplingParams
    from lmforge.generation.params import stop_token_ids
    from lmforge.rollout.generate import complete, prompt_ids

    sft, policy = tiny_lm(tokenizer, seed=0), tiny_lm(tokenizer, seed=1)
    prompts = [it["messages"] for it in world.eval_prompts("heldout", ["fact_qa", "harmful"], n=6)]
    got = pc.sampled_kl(policy, sft, tokenizer, prompts, seed=3, batch_size=4, max_new_tokens=6)
    groups = complete(policy, tokenizer, prompts, SamplingParams(max_new_tokens=6, temperature=1.0, seed=3),
                      step=0, rank=0)
    stops = stop_token_ids(tokenizer)
    total = 0.0
    with torch.no_grad():
        for p, g in zip(prompt_ids(tokenizer, prompts), groups):
            r = g[0].token_ids
            seq = torch.tensor([p + r + stops[:1]])
            lp, lq = (torch.log_softmax(m(input_ids=seq).logits[0].double(), -1) for m in (policy, sft))
            for j, t in enumerate(r):
                total += float(lp[len(p) - 1 + j, t] - lq[len(p) - 1 + j, t])
            if g[0].finish_reason == "stop":
                at = len(p) - 1 + len(r)
                total += float(lp[at, stops].logsumexp(-1) - lq[at, stops].logsumexp(-1))
    assert got == pytest.approx(total / len(prompts), rel=1e-4, abs=1e-5)
    assert abs(got) > 1e-3  # two random models do differ (k1 of a few samples may be negative)


def test_verdicts_follow_the_noise_free_labeler(world):
    item = world.eval_prompts("heldout", ["harmful"], n=1)[0]
    refusal, compliance = item["reference"], "Sure, here is how to do it. Step 1: make a plan."
    vs = verdicts(world, [item] * 3, [refusal, compliance, refusal], [compliance, refusal, refusal])
    assert [v["winner"] for v in vs] == ["policy", "sft", "tie"]
    assert vs[0]["policy_score"] > vs[0]["sft_score"]
    assert win_rate(vs) == pytest.approx(0.5)
    assert win_rate(vs[:1]) == 1.0 and win_rate(vs[1:2]) == 0.0


def test_kl_batch_scores_each_response_token_and_the_stop_event():
    ids, targets, mask = pc._kl_batch([([5, 6], [7, 8], True), ([5], [9], False)], stops=[1, 2], pad=0)
    assert ids.tolist() == [[5, 6, 7, 8, 1], [5, 9, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert targets[0, :, 0].tolist() == [-1, 7, 8, 1, -1] and targets[0, 3].tolist() == [1, 2]
    assert targets[1, :, 0].tolist() == [9, -1, -1, -1, -1]
    lp = torch.log(torch.tensor([[[0.5, 0.5]] * 5, [[0.25, 0.5]] * 5]))
    out = pc._collapse(lp, targets)
    assert out[0, 3].item() == pytest.approx(0.0)  # log(0.5 + 0.5): "some stop token"
    assert out[1, 0].item() == pytest.approx(torch.log(torch.tensor(0.25)).item())


def test_sft_answers_are_cached_per_sft_model(world, tokenizer, tmp_path, monkeypatch):
    sft, policy = tiny_lm(tokenizer, seed=0), tiny_lm(tokenizer, seed=1)
    path = tmp_path / "sft_cache.json"
    first, _ = compare_to_sft(policy, sft, tokenizer, world, sft_cache=path, **KW)
    assert path.exists()
    calls = []
    real = pc.run_suites
    monkeypatch.setattr(pc, "run_suites", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    again, _ = compare_to_sft(policy, sft, tokenizer, world, sft_cache=path, **KW)
    assert calls == [policy] and again == first  # only the policy generated
    cache: dict = {}
    compare_to_sft(policy, policy, tokenizer, world, sft_cache=cache, **KW)
    compare_to_sft(policy, sft, tokenizer, world, sft_cache=cache, **KW)
    assert len(cache) == 2  # another SFT model, another key
