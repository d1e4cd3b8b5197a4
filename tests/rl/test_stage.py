"""The RL recipe end to end on a tiny model: GRPO, RLOO and PPO run, log, save; bad input stops early."""
from __future__ import annotations

import json

import pytest

from lmforge.stages.rl import rl_train

from .conftest import rl_cfg


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_algorithms_run_a_few_steps(tmp_path, tiny_lm, prompt_file, algorithm):
    over = {"rl__prompts_per_rollout": 8, "rl__ppo_epochs": 2} if algorithm == "ppo" else {}
    s = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, algorithm=algorithm, **over))
    rows, epochs = (8, 2) if algorithm == "ppo" else (16, 1)
    assert s["steps"] == 2 * epochs * rows // 8 and s["rollouts"] == 2  # rollouts x epochs x minibatches
    metrics = [json.loads(x) for x in (tmp_path / "runs/rl/metrics.jsonl").read_text().splitlines()]
    first = metrics[0]
    for key in ("loss", "policy_loss", "entropy", "clip_fraction", "approx_kl", "reward_mean", "kl_ref",
                "response_length", "no_eos_share", "seconds_generation", "seconds_scoring"):
        assert key in first, key
    assert abs(first["approx_kl"]) < 1e-5  # the first minibatch: the policy is the old policy
    if algorithm == "ppo":
        assert "value_loss" in first and "explained_variance" in first
        assert (tmp_path / "runs/rl/value_head.pt").exists()
    assert (tmp_path / "runs/rl/final/config.json").exists()
    mem = s["weight_bytes"]
    assert mem["reference"] == mem["policy"] > 0  # full fine-tuning: a frozen copy for the reference
    assert mem["total"] < mem["naive_four_models"]
    assert (tmp_path / "runs/rl/samples.jsonl").read_text().strip()


def test_lora_reference_is_the_base_model(tmp_path, tiny_lm):
    """With an adapter the reference is the same model with the adapter off: the base model's log-probs."""
    import torch

    from lmforge.models.load import load_causal_lm
    from lmforge.models.peft import PeftSection, apply_peft
    from lmforge.rl.policy import PolicyWithValue, Reference
    from lmforge.rl.rollout import masked_logprobs

    base = load_causal_lm(str(tiny_lm)).eval()
    policy = apply_peft(load_causal_lm(str(tiny_lm)), PeftSection(method="lora", r=4))
    torch.manual_seed(1)
    for name, p in policy.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # a trained adapter: the policy now differs from the base
    model = PolicyWithValue(policy, "shared").eval()
    ref = Reference(policy, adapter=True)
    assert ref.copy is None  # no second copy of the weights
    ids = torch.randint(5, 300, (3, 12))
    att = torch.ones_like(ids)
    tgt, mask = ids.roll(-1, 1), torch.ones(3, 12)
    with torch.no_grad():
        with ref.model(model.policy) as r:
            got, _ = masked_logprobs(r(input_ids=ids, attention_mask=att).logits, tgt, mask, 0.7)
        want, _ = masked_logprobs(base(input_ids=ids, attention_mask=att).logits, tgt, mask, 0.7)
        moved, _ = masked_logprobs(model(ids, att, values=False)[0], tgt, mask, 0.7)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (moved - want).abs().max() > 1e-2


def test_grpo_with_lora_saves_an_adapter(tmp_path, tiny_lm, prompt_file):
    s = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, peft__method="lora", peft__r=4, rl__rollouts=1))
    assert s["steps"] == 2 and (tmp_path / "runs/rl/final/adapter_config.json").exists()
    assert s["weight_bytes"]["reference"] == 0  # the adapter switched off: no second copy


def _no_template(tmp_path, lm):
    import shutil

    out = tmp_path / "plain-lm"
    shutil.copytree(lm, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((out / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(tc))
    return out


def test_bad_input_stops_before_training_and_leaves_no_run(tmp_path, tiny_lm, prompt_file):
    from lmforge.errors import InputError

    with pytest.raises(InputError, match="chat template"):
        rl_train(rl_cfg(tmp_path, _no_template(tmp_path, tiny_lm), prompt_file))
    with pytest.raises(InputError, match="has no .nope."):
        rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, reward__terms=[{"kind": "function",
                                                                          "function": "rl.rewards:nope"}]))
    with pytest.raises(InputError, match="no lmforge reward model|reward.json"):
        rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, reward__terms=[{"kind": "model", "path": str(tiny_lm)}]))
    # a routed term whose tag no prompt carries (the prompt file's meta holds only "i")
    with pytest.raises(InputError, match=r"selects none of the 16 prompts .*the prompts' tags: i: 0, 1, 10"):
        rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, reward__terms=[
            {"kind": "function", "function": "rl.rewards:vowels", "when": {"kind": "harmful"}}]))
    assert not (tmp_path / "runs/rl").exists()


@pytest.mark.parametrize("fn, message", [("raises", "raised at response 0: RuntimeError: the scorer is down"),
                                         ("nan", "nan")])
def test_a_reward_function_that_fails_is_named(tmp_path, tiny_lm, prompt_file, fn, message):
    from lmforge.errors import InputError

    with pytest.raises(InputError, match=message) as e:
        rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, reward__terms=[{"kind": "function",
                                                                          "function": f"rl.rewards:{fn}"}]))
    assert f"rl.rewards:{fn}" in str(e.value)
    assert not (tmp_path / "runs/rl").exists()  # failed before the first checkpoint: nothing half-written


def test_prompts_longer_than_the_context_are_dropped_and_counted(tmp_path, tiny_lm):
    from lmforge.errors import InputError

    from .conftest import write_prompts

    path = write_prompts(tmp_path / "p.jsonl")
    long = json.dumps({"prompt": "cats " * 400, "meta": {"kind": "long"}})
    path.write_text(path.read_text() + long + "\n")
    s = rl_train(rl_cfg(tmp_path, tiny_lm, path, rl__rollouts=1))
    assert s["prompts"] == {"prompts": 16, "dropped_too_long": 1}
    with pytest.raises(InputError, match="prompt 17 has .* tokens"):
        rl_train(rl_cfg(tmp_path, tiny_lm, path, "strict", prompts__on_too_long="error"))
    # a term routed only to prompts too long for the context would score nothing: an error, not a silent zero
    with pytest.raises(InputError, match=r"selects none of the 16 prompts \(1 longer than the context dropped\)"):
        rl_train(rl_cfg(tmp_path, tiny_lm, path, "routed", reward__terms=[
            {"kind": "function", "function": "rl.rewards:vowels", "when": {"kind": "long"}}]))
    # both input errors leave no run folder (discard_failed_start removes a folder without a checkpoint)
    assert not (tmp_path / "runs/strict").exists() and not (tmp_path / "runs/routed").exists()


def test_a_routed_term_logs_its_mean_over_the_prompts_it_scores(tmp_path, tiny_lm, prompt_file):
    # `one` scores 1.0 on the prompts with i < 8 and is 0 elsewhere: its logged mean is 1.0 (not the routed
    # share of the rollout), and the other term's is over every response
    rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, rl__prompts_per_rollout=8, reward__terms=[
        {"kind": "function", "function": "rl.rewards:vowels"},
        {"kind": "function", "function": "rl.rewards:one", "when": {"i": [str(i) for i in range(8)]}}]))
    metrics = [json.loads(x) for x in (tmp_path / "runs/rl/metrics.jsonl").read_text().splitlines()]
    logged = [m for m in metrics if "reward_one" in m]
    assert logged and all(m["reward_one"] == 1.0 for m in logged)
    assert all(0.0 < m["reward_vowels"] < 1.0 for m in logged)
    rollouts = [json.loads(x) for x in (tmp_path / "runs/rl/samples.jsonl").read_text().splitlines()]
    assert {r["reward"] >= 1.0 for r in rollouts} == {True, False}  # both routed and unrouted prompts sampled


def test_command_and_config_must_agree_on_the_algorithm(tmp_path):
    from conftest import run_cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text("rl:\n  algorithm: ppo\nreward:\n  terms: [{kind: function, function: 'rl.rewards:vowels'}]\n")
    proc = run_cli(["grpo", str(cfg), "model.path=x"], tmp_path, check=False)
    assert proc.returncode == 2 and "rl.algorithm=ppo" in proc.stderr + proc.stdout


def test_demo_registers_ppo_after_the_reward_model():
    from lmforge.stages.demo import STAGES
    from lmforge.stages.demo_align import ppo_demo_config

    names = list(STAGES)
    # both alignment stages need the reward model's inputs; dpo and ppo sit side by side after it
    assert names.index("ppo") > names.index("reward_model") and names.index("dpo") > names.index("reward_model")
    cfg = ppo_demo_config("sft/final", "rm/final", "out", 0).with_steps()
    assert cfg.rl.algorithm == "ppo" and cfg.train.steps == cfg.rl.rollouts * cfg.rl.ppo_epochs * (
        cfg.rl.prompts_per_rollout // cfg.train.batch_size)


def test_the_saved_config_of_a_reward_model_run_loads_back(tmp_path):
    """config.yaml writes every field; a reward term's defaults of other kinds must not read as given."""
    from lmforge.config import dump_config, load_config
    from lmforge.stages.demo_align import ppo_demo_config
    from lmforge.stages.rl import RLConfig

    cfg = ppo_demo_config("sft/final", "rm/final", "out", 0)
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(RLConfig, path) == cfg


def test_demo_ppo_stage_reports_the_shared_evaluation_and_resumes(tmp_path, tiny_lm, prompt_file, monkeypatch):
    """stage_ppo: trains, is scored by the dpo stage's evaluation (same keys, same SFT answers file), keeps its
    rollout samples.jsonl, and a finished stage neither trains nor evaluates again."""
    from lmforge.stages import demo_align

    monkeypatch.setattr(demo_align, "ppo_demo_config",
                        lambda sft, rm, root, seed: rl_cfg(tmp_path, tiny_lm, prompt_file, name="ppo", algorithm="ppo",
                                                           run__root=root, rl__prompts_per_rollout=8))
    monkeypatch.setattr(demo_align, "EVAL_PROMPTS", 2)
    out = demo_align.stage_ppo(tmp_path, 0, False, {"sft_model": str(tiny_lm)})
    keys = {"win_rate_vs_sft", "kl_to_sft", "refusal_rate_heldout", "over_refusal_rate", "false_premise_correction",
            "heldout_fact_accuracy", "refusal_rate_heldout_sft", "over_refusal_rate_sft",
            "false_premise_correction_sft", "heldout_fact_accuracy_sft", "reward_mean_start", "reward_mean_end",
            "steps", "seconds"}
    assert keys <= set(out) and 0 <= out["win_rate_vs_sft"] <= 1
    run = tmp_path / "ppo"
    assert (run / "samples.jsonl").read_text().strip() and (run / "eval_samples.jsonl").read_text().count("\n") == 10
    assert (tmp_path / demo_align.SFT_ANSWERS).is_file()

    def fail(*a, **k):
        raise AssertionError("a finished stage must not train or evaluate again")
    monkeypatch.setattr("lmforge.stages.rl.rl_train", fail)
    monkeypatch.setattr("lmforge.eval.policy_compare.compare_to_sft", fail)
    again = demo_align.stage_ppo(tmp_path, 0, True, {"sft_model": str(tiny_lm)})
    assert again["win_rate_vs_sft"] == out["win_rate_vs_sft"] and again["steps"] == out["steps"]
