"""The demo's pre-training launch: torchrun with single-threaded processes, and the in-process fallback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_PRETRAIN
from lmforge.config import load_config
from lmforge.errors import InputError
from lmforge.stages import demo
from lmforge.stages.pretrain import PretrainConfig


def tiny_cfg(root: Path, corpus: Path) -> PretrainConfig:
    return load_config(PretrainConfig, None, [*TINY_PRETRAIN, f"data.paths=[{corpus}]", "train.steps=4",
                                              "train.eval_every=4", f"run.root={root}", "run.name=pretrain"])


def test_torchrun_launch_trains_with_two_processes(tmp_path: Path, corpus_file: Path) -> None:
    summary = demo._pretrain_data_parallel(tiny_cfg(tmp_path, corpus_file), tmp_path, 2, resume=False)
    assert summary is not None and summary["steps"] == 4
    cfg = (tmp_path / "pretrain" / "config.yaml").read_text()
    assert "threads: 1" in cfg  # the workers were told to use one thread each
    rows = [json.loads(x) for x in (tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
    assert (tmp_path / "pretrain" / "final" / "config.json").exists()


def test_a_failed_launch_returns_none_so_the_stage_runs_in_process(tmp_path: Path, corpus_file: Path,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(demo.sys, "executable", str(tmp_path / "no-such-python"))
    try:
        assert demo._pretrain_data_parallel(tiny_cfg(tmp_path, corpus_file), tmp_path, 2, resume=False) is None
    except FileNotFoundError:
        raise AssertionError("a launch that cannot start must fall back, not crash") from None


def test_processes_follow_the_cores_and_the_override(monkeypatch) -> None:
    monkeypatch.delenv("LMFORGE_DEMO_PROCESSES", raising=False)
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert demo.demo_processes() == 2
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert demo.demo_processes() == 1
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert demo.demo_processes() == 4
    monkeypatch.setenv("LMFORGE_DEMO_PROCESSES", "1")
    assert demo.demo_processes() == 1
    monkeypatch.setenv("LMFORGE_DEMO_PROCESSES", "two")
    with pytest.raises(InputError, match="LMFORGE_DEMO_PROCESSES"):
        demo.demo_processes()
