"""The demo's dpo stage on a tiny model: trained from the feedback export, compared to the SFT model, resumable."""
from __future__ import annotations

import json

from lmforge.stages import demo, demo_align
from lmforge.stages.dpo import DPOConfig

from .conftest import records, write_jsonl

KEYS = {"win_rate_vs_sft", "kl_to_sft", "refusal_rate_heldout", "over_refusal_rate", "false_premise_correction",
        "heldout_fact_accuracy", "refusal_rate_heldout_sft", "over_refusal_rate_sft", "false_premise_correction_sft",
        "heldout_fact_accuracy_sft", "seconds", "steps"}


def test_dpo_stage_is_registered_after_the_reward_model():
    names = list(demo.STAGES)
    assert names.index("dpo") == names.index("reward_model") + 1 and demo.STAGES["dpo"] is demo_align.stage_dpo


def test_demo_config_is_a_valid_dpo_config():
    cfg = demo_align.dpo_demo_config("sft/final", "feedback/preferences.jsonl", "out", seed=3)
    assert isinstance(cfg, DPOConfig) and cfg.train.seed == 3 and cfg.run.path.name == "dpo"


def test_stage_trains_compares_to_sft_and_resumes(tmp_path, tiny_lm, monkeypatch):
    prefs = write_jsonl(tmp_path / "feedback" / "preferences.jsonl", records(30))
    real = demo_align.dpo_demo_config

    def small(*a, **k):
        cfg = real(*a, **k)
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 2, "batch_size": 4})})
    monkeypatch.setattr(demo_align, "dpo_demo_config", small)
    monkeypatch.setattr(demo_align, "EVAL_PROMPTS", 2)
    ctx = {"sft_model": str(tiny_lm), "preferences": str(prefs)}
    out = demo_align.stage_dpo(tmp_path, 0, False, ctx)
    assert KEYS <= set(out) and out["steps"] == 2 and 0 <= out["win_rate_vs_sft"] <= 1
    assert json.loads((tmp_path / "dpo" / demo_align.EVAL_FILE).read_text())["win_rate_vs_sft"] == \
        out["win_rate_vs_sft"]
    assert (tmp_path / "dpo" / "eval_samples.jsonl").read_text().count("\n") == 10  # 2 prompts x 5 suites
    assert (tmp_path / demo_align.SFT_ANSWERS).is_file()  # for the ppo stage's comparison to the same SFT model

    def fail(*a, **k):
        raise AssertionError("a finished stage must not train or evaluate again")
    monkeypatch.setattr("lmforge.stages.dpo.dpo", fail)
    monkeypatch.setattr("lmforge.eval.policy_compare.compare_to_sft", fail)
    again = demo_align.stage_dpo(tmp_path, 0, True, ctx)
    assert again["win_rate_vs_sft"] == out["win_rate_vs_sft"] and again["steps"] == 2
