"""``lmforge reft`` end to end on a tiny model: the warm-up, GRPO with the exact-answer reward, three
evaluations, the summary, and ``--resume`` reusing every finished part."""
from __future__ import annotations

import json
from pathlib import Path

from lmforge.config import load_config
from lmforge.stages.reft import ReftConfig, reft_train


def small(tmp_path: Path, lm: Path, *extra: str) -> ReftConfig:
    return load_config(ReftConfig, None, [
        f"model.path={lm}", f"run.root={tmp_path}", "run.name=reft", "data.world.train=16", "data.world.eval=4",
        "sft.epochs=1", "sft.train.batch_size=4", "sft.train.warmup_steps=0", "sft.train.lr=1e-3",
        "rl.rl.rollouts=1", "rl.rl.prompts_per_rollout=4", "rl.rl.group_size=2", "rl.rl.forward_batch=8",
        "rl.train.batch_size=8", "rl.sampling.max_new_tokens=12", "eval.k=2", "eval.max_new_tokens=12",
        "eval.batch_size=8", *extra])


def test_reft_runs_end_to_end_and_resume_reuses_the_parts(tmp_path: Path, tiny_lm: Path):
    cfg = small(tmp_path, tiny_lm)
    out = reft_train(cfg)
    run = tmp_path / "reft"
    for name in ("base", "sft", "rl"):
        e = json.loads((run / f"eval_{name}.json").read_text())
        assert e["n"] == 4 and e["correct"] + e["wrong"] + e["unparsable"] == 4
        assert 0 <= e["majority_accuracy"] <= 1 and e["sample_accuracy"] <= e["pass_at_k"] + 1e-9
        assert out[f"accuracy_{name}"] == e["accuracy"] and out[f"unparsable_{name}"] == e["unparsable"]
    assert out["accuracy"] == out["accuracy_rl"] and out["k"] == 2
    assert set(out["eval_kinds"]) <= {"gather_long", "shop_two", "legs_three", "gather_large"}
    assert (run / "sft" / "final" / "config.json").exists() and (run / "rl" / "final").exists()
    assert out["rl"]["stage"] == "grpo" and out["rl"]["steps"] == 1
    # the RL stage trained from the warm-up, on the recipe's prompts, with the verifiable reward
    rl_cfg = (run / "rl" / "config.yaml").read_text()
    assert str(run / "sft" / "final") in rl_cfg and "rl_prompts.jsonl" in rl_cfg and "exact_answer" in rl_cfg
    stamp = (run / "sft" / "summary.json").stat().st_mtime_ns
    again = reft_train(cfg, resume=True)
    assert (run / "sft" / "summary.json").stat().st_mtime_ns == stamp
    assert {k: again[k] for k in ("accuracy", "accuracy_sft", "accuracy_base")} == \
        {k: out[k] for k in ("accuracy", "accuracy_sft", "accuracy_base")}


def test_skip_sft_runs_rl_from_the_given_model(tmp_path: Path, tiny_lm: Path):
    out = reft_train(small(tmp_path, tiny_lm, "skip_sft=true", "eval.base=false", "eval.k=0"))
    assert "accuracy_sft" not in out and "accuracy_base" not in out and "pass_at_k" not in out
    assert not (tmp_path / "reft" / "sft").exists() and "accuracy" in out
