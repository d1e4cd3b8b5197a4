"""The validation split of user data (``data.val_fraction``): how many, which, never trained on, logged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.data.chat import SourceSpec, load_mixture
from lmforge.stages.sft import SFTConfig, sft
from lmforge.stages.sft_val import load_mixture_with_val, split_validation, val_count, val_loss

from .conftest import example


def user_jsonl(path: Path, n: int = 40) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i % 7}?"},
                          {"role": "assistant", "content": f"{i} plus {i % 7} is {i + i % 7}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_val_count() -> None:
    assert [val_count(n, 0.05) for n in (0, 1, 2, 10, 40, 100, 1000)] == [0, 0, 1, 1, 2, 5, 50]
    assert val_count(100, 0.0) == 0 and val_count(10, 0.95) == 9  # one is always left to train on


def test_split_is_seeded_disjoint_and_in_order() -> None:
    exs = [example([{"role": "user", "content": "q"}, {"role": "assistant", "content": str(i)}], i)
           for i in range(1, 101)]
    train, val = split_validation(exs, 0.1, seed=0, name="a.jsonl")
    assert len(val) == 10 and len(train) == 90
    assert sorted(e.line for e in train + val) == list(range(1, 101))
    assert [e.line for e in val] == sorted(e.line for e in val)
    again = split_validation(exs, 0.1, seed=0, name="a.jsonl")[1]
    other = split_validation(exs, 0.1, seed=1, name="a.jsonl")[1]
    assert [e.line for e in again] == [e.line for e in val] != [e.line for e in other]


def test_world_only_mixture_is_unchanged() -> None:
    specs = [SourceSpec(world="sft", max_examples=30), SourceSpec(world="safety", weight=2.0, max_examples=8)]
    want, counts = load_mixture(specs, 0, 3)
    got, val, got_counts = load_mixture_with_val(specs, 0, 3, 0.05)
    assert val == [] and got_counts == counts
    assert [(e.where, e.messages) for e in got] == [(e.where, e.messages) for e in want]


def test_held_out_examples_never_reach_training(tmp_path: Path) -> None:
    path = user_jsonl(tmp_path / "u.jsonl")
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(20)))
    specs = [SourceSpec(path=str(path), weight=2.5), SourceSpec(world="sft", max_examples=10),
             SourceSpec(path=str(docs), format="text")]  # replay text is never held out
    train, val, counts = load_mixture_with_val(specs, 0, 0, 0.1)
    assert len(val) == 4 and counts[str(path)] == {"read": 40, "used": 90, "val": 4}
    assert counts[str(docs)] == {"read": 20, "used": 20} and counts["world:sft"] == {"read": 10, "used": 10}
    assert not {e.where for e in val} & {e.where for e in train}
    assert len({e.where for e in train if e.file == str(path)}) == 36


def test_val_loss_does_not_depend_on_batching(tiny_model_dir: Path, tokenizer, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from lmforge.data.chat import load_source
    from lmforge.data.sft_tokenize import tokenize_examples

    exs = load_source(SourceSpec(path=str(user_jsonl(tmp_path / "u.jsonl", 9))))
    toks, _ = tokenize_examples(tokenizer, exs, 128)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    one = val_loss(model, toks, tokenizer.pad_token_id, batch_size=1)
    assert one == pytest.approx(val_loss(model, toks, tokenizer.pad_token_id, batch_size=4, chunk_tokens=40),
                                rel=1e-5)
    assert 1.0 < one < 20.0  # a random model's NLL per token, near log(vocab) = 6.4


def config(tmp_path: Path, model: Path, data: Path, *extra: str) -> SFTConfig:
    return load_config(SFTConfig, None, [
        f"model.path={model}", f"run.root={tmp_path / 'runs'}", f"data.sources=[{{path: {data}}}]",
        "data.max_length=64", "epochs=null", "train.steps=4", "train.eval_every=2", "train.batch_size=4",
        "train.warmup_steps=0", "train.log_every=1", "eval.max_new_tokens=4", "eval.samples=2", "threads=1",
        *extra])


def test_sft_on_user_data_logs_val_loss_and_samples(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = user_jsonl(tmp_path / "u.jsonl")
    summary = sft(config(tmp_path, tiny_model_dir, data, "data.val_fraction=0.05"))
    run = tmp_path / "runs" / "sft"
    evals = [m for m in rows(run / "metrics.jsonl") if m["split"] == "eval"]
    assert [m["step"] for m in evals] == [2, 4] and all(m["val_examples"] == 2 for m in evals)
    assert all(0 < m["val_loss"] < 20 for m in evals)
    assert summary["val_loss"] == evals[-1]["val_loss"] and summary["val_examples"] == 2
    assert summary["examples"] == 38 and "base_val_loss" in summary
    samples = rows(run / "samples.jsonl")
    assert [s["step"] for s in samples] == [2, 2, 4, 4] and {s["suite"] for s in samples} == {"val"}
    report = json.loads((run / "data_report.json").read_text())
    assert report["val"] == {"examples": 2, "kept": 2} and report["sources"][str(data)]["val"] == 2
    held = {s["source"] for s in samples}
    assert all(s["reference"].startswith(s["prompt"].split()[2]) for s in samples), samples
    assert len(held) == 2


def test_val_fraction_zero_disables_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = user_jsonl(tmp_path / "u.jsonl", 12)
    summary = sft(config(tmp_path, tiny_model_dir, data, "data.val_fraction=0", "train.steps=2"))
    run = tmp_path / "runs" / "sft"
    assert summary["examples"] == 12 and summary["val_examples"] == 0 and "val_loss" not in summary
    assert not (run / "samples.jsonl").exists()
    assert not [m for m in rows(run / "metrics.jsonl") if m["split"] == "eval"]
