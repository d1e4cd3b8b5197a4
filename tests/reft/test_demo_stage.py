"""The demo's reft stage: registered after sft, a valid recipe, and on a tiny model it runs, reports the
headline numbers and resumes without training again."""
from __future__ import annotations

from lmforge.stages import demo, demo_reft
from lmforge.stages.reft import ReftConfig


def test_reft_stage_is_registered_after_sft():
    names = list(demo.STAGES)
    assert names.index("reft") == names.index("sft") + 1 and demo.STAGES["reft"] is demo_reft.stage_reft


def test_demo_config_is_a_valid_reft_config():
    cfg = demo_reft.reft_demo_config("sft/final", "out", seed=3)
    assert isinstance(cfg, ReftConfig) and cfg.model.path == "sft/final" and cfg.run.path.name == "reft"
    assert cfg.data.world.eval == demo_reft.EVAL_PROBLEMS and cfg.rl.train.seed == 3 and cfg.threads == 1
    assert cfg.rl.reward.terms[0].kwargs == {"partial": 0.3}


def test_stage_runs_reports_and_resumes(tmp_path, tiny_lm, monkeypatch):
    real = demo_reft.reft_demo_config

    def small(*a, **k):
        cfg = real(*a, **k)
        return cfg.model_copy(update={
            "data": cfg.data.model_copy(update={"world": cfg.data.world.model_copy(update={"train": 8, "eval": 2})}),
            "sft": cfg.sft.model_copy(update={"epochs": 1.0}),
            "rl": cfg.rl.model_copy(update={
                "rl": cfg.rl.rl.model_copy(update={"rollouts": 1, "prompts_per_rollout": 2, "group_size": 2}),
                "train": cfg.rl.train.model_copy(update={"batch_size": 4}),
                "sampling": cfg.rl.sampling.model_copy(update={"max_new_tokens": 8})}),
            "eval": cfg.eval.model_copy(update={"k": 2, "max_new_tokens": 8})})
    monkeypatch.setattr(demo_reft, "reft_demo_config", small)
    out = demo_reft.stage_reft(tmp_path, 0, False, {"sft_model": str(tiny_lm)})
    assert {"accuracy", "accuracy_sft", "accuracy_base", "pass_at_k", "majority_accuracy", "seconds"} <= set(out)
    assert out["eval_problems"] == 2 and out["rl_steps"] == 1 and 0 <= out["accuracy"] <= 1

    def fail(*a, **k):
        raise AssertionError("a finished stage must not train again")
    monkeypatch.setattr("lmforge.stages.reft.reft_train", fail)
    assert demo_reft.stage_reft(tmp_path, 0, True, {"sft_model": str(tiny_lm)})["accuracy"] == out["accuracy"]
