"""A start that fails on bad input leaves no run folder behind, so the corrected rerun needs no --overwrite;
a folder that was already there, or one holding a checkpoint, is kept."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_PRETRAIN, run_cli, synthetic_text
from lmforge.runs import Run, discard_failed_start


@pytest.fixture
def base(tmp_path: Path) -> Path:
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    tok = train_bpe(synthetic_text(60).split("\n\n"), vocab_size=400)
    torch.manual_seed(0)
    return save_hf(create_model(ModelConfig(depth=1, aspect=32, head_dim=32, max_seq_len=128), tok), tok,
                   tmp_path / "base")


def write(path: Path, rows: list[dict], broken_line: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if broken_line is not None:
        lines[broken_line - 1] = lines[broken_line - 1][:-3]  # a truncated line
    path.write_text("\n".join(lines) + "\n")
    return path


def chat_rows(n: int = 8) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
            for i in range(n)]


def pair_rows(n: int = 8) -> list[dict]:
    return [{"type": "pair", "prompt": f"Tell me about {i}.", "chosen": "sure here is the answer",
             "rejected": "no wrong"} for i in range(n)]


@pytest.mark.slow
def test_pretrain_bad_data_then_fixed_rerun(tmp_path: Path) -> None:
    data = tmp_path / "docs.jsonl"
    docs = [{"text": d} for d in synthetic_text(40).split("\n\n") if d.strip()]
    write(data, docs, broken_line=3)
    args = ["pretrain", f"data.paths=[{data}]", "run.name=p", "train.steps=1", *TINY_PRETRAIN]
    bad = run_cli(args, tmp_path, check=False)
    assert bad.returncode == 2 and "docs.jsonl:3" in bad.stderr, bad.stderr[-2000:]
    assert not (tmp_path / "runs/p").exists()
    write(data, docs)
    run_cli(args, tmp_path)  # no "run folder already exists"
    assert (tmp_path / "runs/p/final/config.json").exists()


@pytest.mark.slow
def test_sft_bad_data_then_fixed_rerun(tmp_path: Path, base: Path) -> None:
    from lmforge.config import load_config
    from lmforge.errors import InputError
    from lmforge.stages.sft import SFTConfig, sft

    data = write(tmp_path / "chat.jsonl", chat_rows(), broken_line=5)
    cfg = load_config(SFTConfig, None, [f"run.root={tmp_path}/runs", "run.name=s", f"model.path={base}",
                                        f"data.sources=[{{path: {data}}}]", "eval.world=false", "epochs=null",
                                        "train.steps=1", "train.batch_size=2", "train.warmup_steps=0",
                                        "data.max_length=32", "threads=1"])
    with pytest.raises(InputError, match="chat.jsonl:5"):
        sft(cfg)
    assert not (tmp_path / "runs/s").exists()
    write(data, chat_rows())
    assert sft(cfg)["steps"] == 1


@pytest.mark.slow
def test_rm_bad_data_then_fixed_rerun(tmp_path: Path, base: Path) -> None:
    from lmforge.config import load_config
    from lmforge.errors import InputError
    from lmforge.stages.rm import RMConfig, train_rm

    data = write(tmp_path / "fb.jsonl", pair_rows(), broken_line=2)
    cfg = load_config(RMConfig, None, [f"run.root={tmp_path}/runs", "run.name=r", f"model.path={base}",
                                       f"data.train=[{data}]", "data.eval_fraction=0.25", "epochs=null",
                                       "train.steps=1", "train.batch_size=2", "train.warmup_steps=0",
                                       "model.max_length=32"])
    with pytest.raises(InputError, match="fb.jsonl:2"):
        train_rm(cfg)
    assert not (tmp_path / "runs/r").exists()
    write(data, pair_rows())
    assert train_rm(cfg)["steps"] == 1


def test_what_a_failed_start_keeps(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.yaml").write_text("x: 1\n")
    for resume in (False, True):  # the "already exists" refusal, and a resume failing early
        with pytest.raises(RuntimeError), discard_failed_start(old, resume=resume):
            raise RuntimeError("boom")
        assert (old / "config.yaml").exists()

    new = tmp_path / "new"
    with pytest.raises(RuntimeError), discard_failed_start(new):
        run = Run.create(new)
        (run.checkpoints / "step-2").mkdir()
        (run.checkpoints / "step-2" / "COMPLETE").write_text("2")
        raise RuntimeError("crashed after a checkpoint: --resume continues it")
    assert (new / "checkpoints/step-2/COMPLETE").exists()

    with pytest.raises(RuntimeError), discard_failed_start(old, overwrite=True):
        Run.create(old, overwrite=True)
        raise RuntimeError("the old run was replaced on purpose; the failed new one goes too")
    assert not old.exists()
