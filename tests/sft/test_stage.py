"""The SFT recipe end to end on a tiny model: run folder, summary, exact resume, LoRA outputs, and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.config import load_config
from lmforge.stages.sft import SFTConfig, sft

FAST = ["data.sources=[{world: sft, max_examples: 40}, {world: safety, max_examples: 16}]", "data.max_length=128",
        "train.batch_size=4", "train.log_every=1", "train.warmup_steps=0", "eval.heldout_facts=6",
        "eval.seen_facts=3", "eval.per_kind=2", "eval.during=3", "eval.nshot=1", "eval.max_new_tokens=6"]


def config(tmp_path: Path, model: Path, *extra: str) -> SFTConfig:
    return load_config(SFTConfig, None, [f"model.path={model}", f"run.root={tmp_path / 'runs'}", *FAST, *extra])


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_full_sft_writes_the_run_folder_and_summary(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = config(tmp_path, tiny_model_dir, "epochs=null", "train.steps=3", "train.eval_every=2",
                 "protect.freeze_embeddings=except_special")
    summary = sft(cfg)
    run = tmp_path / "runs" / "sft"
    for key in ("heldout_fact_accuracy", "format_ok", "base_heldout_fact_accuracy", "base_format_ok",
                "nshot_heldout_fact_accuracy", "seen_fact_accuracy", "heldout_refusal_rate",
                "false_premise_correction_rate", "heldout_over_refusal_rate", "seconds"):
        assert key in summary, key
    assert summary["steps"] == 3 and summary["examples"] == 56
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))
    metrics = rows(run / "metrics.jsonl")
    assert [m["step"] for m in metrics if m["split"] == "train"] == [1, 2, 3]
    assert [m["step"] for m in metrics if m["split"] == "eval"] == [2, 3]
    data = next(m for m in metrics if m["split"] == "data")
    assert data["kept"] == 56 and data["dropped_too_long"] == 0
    assert {s["suite"] for s in rows(run / "samples.jsonl")} >= {"base_heldout_fact", "nshot_heldout_fact",
                                                                  "heldout_fact", "heldout_refusal"}
    assert (run / "data_report.json").exists() and (run / "baseline.json").exists()
    AutoModelForCausalLM.from_pretrained(run / "final")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = AutoModelForCausalLM.from_pretrained(run / "final")
    w0, w1 = base.get_input_embeddings().weight, tuned.get_input_embeddings().weight
    changed = (w0 != w1).any(dim=1).nonzero().flatten().tolist()
    assert changed and set(changed) <= set(range(7))  # only the special-token rows moved


def test_resume_continues_exactly(tmp_path: Path, tiny_model_dir: Path) -> None:
    common = ["epochs=null", "train.schedule=constant", "eval.baseline=false", "eval.nshot=0", "eval.world=false"]
    straight = sft(config(tmp_path, tiny_model_dir, *common, "train.steps=4", "run.name=straight"))
    sft(config(tmp_path, tiny_model_dir, *common, "train.steps=2", "run.name=split"))
    resumed = sft(config(tmp_path, tiny_model_dir, *common, "train.steps=4", "run.name=split"), resume=True)
    assert resumed["train_loss"] == straight["train_loss"]
    losses = [[m["loss"] for m in rows(tmp_path / "runs" / n / "metrics.jsonl") if m["split"] == "train"]
              for n in ("straight", "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_lora_run_saves_adapter_and_merged_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = config(tmp_path, tiny_model_dir, "epochs=null", "train.steps=2", "peft.method=lora", "peft.r=4",
                 "peft.merge=true", "eval.baseline=false", "eval.nshot=0")
    summary = sft(cfg)
    run = tmp_path / "runs" / "sft"
    assert summary["trainable_params"] < summary["params"] / 4
    assert (run / "final" / "adapter_config.json").exists()
    x = torch.tensor([[5, 6, 7, 8]])
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(run / "final"))
    merged = AutoModelForCausalLM.from_pretrained(summary["model_dir"])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=x).logits, adapted.eval()(input_ids=x).logits,
                                   atol=1e-4, rtol=1e-4)


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``lmforge ARGS`` in this process (the subprocess start costs ~20 s on a loaded 2-core machine)."""
    from lmforge.cli.main import main

    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_inspect_and_bad_input(tmp_path: Path, tiny_model_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"messages": [{"role": "robot", "content": "x"}]}\n')
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model:\n  path: {tiny_model_dir}\ndata:\n  sources:\n    - path: {bad}\n")
    code, _, err = cli(["sft", str(cfg)], capsys)
    assert code == 2 and f"{bad}:2" in err and "unknown role 'robot'" in err
    code, out, _ = cli(["sft", "inspect", f"model.path={tiny_model_dir}", "-n", "1",
                        "data.sources=[{world: sft, max_examples: 5}]"], capsys)
    assert code == 0
    assert "[[" in out and "<|end|>]]" in out and "carry loss" in out and "dropped_too_long 0" in out
    code, _, err = cli(["sft", "model.path=x", "train.lrr=1"], capsys)
    assert code == 2 and "did you mean 'train.lr'" in err


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    from lmforge.errors import InputError

    with pytest.raises(InputError, match="model.path is required"):
        sft(load_config(SFTConfig, None, [f"run.root={tmp_path}"]))


def test_default_lr_follows_width_and_method() -> None:
    from types import SimpleNamespace

    def lr(width: int, *extra: str) -> float:
        model = SimpleNamespace(config=SimpleNamespace(hidden_size=width))
        return load_config(SFTConfig, None, list(extra)).with_lr_for(model).train.lr

    assert lr(192) == pytest.approx(1.04e-3, rel=0.01)  # the demo model's width: ~1e-3 measured best
    assert lr(768) < lr(192)
    assert lr(192, "peft.method=lora") == 2e-3
    assert lr(192, "train.lr=5e-5") == 5e-5


def test_demo_config_uses_the_base_runs_world(tmp_path: Path) -> None:
    from lmforge.stages.sft import demo_config

    (tmp_path / "pretrain" / "final").mkdir(parents=True)
    (tmp_path / "pretrain" / "config.yaml").write_text("data:\n  world_seed: 3\ntrain:\n  seed: 5\n")
    cfg = demo_config(str(tmp_path / "pretrain" / "final"), str(tmp_path))
    assert (cfg.data.world_seed, cfg.train.seed) == (3, 5)
    assert cfg.protect.freeze_embeddings == "except_special" and cfg.peft.method == "none"
    assert cfg.run.path == tmp_path / "sft"
    assert demo_config(str(tmp_path / "nowhere"), str(tmp_path)).data.world_seed == 0
