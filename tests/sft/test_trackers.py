"""``log.to``: TensorBoard, MLflow and W&B (offline) mirror metrics.jsonl, and a resumed run stays one run in
each of them."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lmforge.errors import InputError
from lmforge.stages.sft import sft
from lmforge.trackers import LogConfig, check, tracking_uri

from .test_stage import config, rows

HAVE = all(importlib.util.find_spec(m) for m in ("tensorboard", "mlflow", "wandb"))
COMMON = ["epochs=null", "train.schedule=constant", "eval.baseline=false", "eval.nshot=0", "eval.world=false",
          "log.to=[tensorboard,mlflow,wandb]", "run.name=tracked"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE, reason="tracker libraries not installed (pip install 'lmforge[track]')")
def test_trackers_mirror_metrics_and_survive_resume(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_SILENT", "true")
    sft(config(tmp_path, tiny_model_dir, *COMMON, "train.steps=2"))
    sft(config(tmp_path, tiny_model_dir, *COMMON, "train.steps=4"), resume=True)
    run = tmp_path / "runs" / "tracked"
    losses = {m["step"]: m["loss"] for m in rows(run / "metrics.jsonl") if m["split"] == "train"}
    assert sorted(losses) == [1, 2, 3, 4]

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tb = {e.step: e.value for e in events.Scalars("train/loss")}
    assert sorted(tb) == [1, 2, 3, 4]
    assert all(abs(tb[s] - losses[s]) < 1e-5 for s in tb)

    ids = json.loads((run / "trackers.json").read_text())
    client = MlflowClient(tracking_uri=tracking_uri(run))
    history = client.get_metric_history(ids["mlflow"], "train.loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]  # one run, continued, not two
    assert len(client.search_runs([client.get_experiment_by_name("lmforge").experiment_id])) == 1
    assert client.get_run(ids["mlflow"]).data.params["train.steps"] == "2"

    # W&B offline: one folder per process, both under the same run id (``wandb sync`` merges them); the
    # transaction logs are protobuf records, whose metric names are stored as plain bytes
    offline = sorted((run / "wandb").glob(f"offline-run-*-{ids['wandb']}"))
    assert len(offline) == 2
    for folder in offline:
        (log,) = folder.glob(f"run-{ids['wandb']}.wandb")
        assert b"train/loss" in log.read_bytes()


def test_unknown_or_missing_tracker_fails_before_work(monkeypatch) -> None:
    with pytest.raises(InputError, match="unknown tracker 'tensorbord'") as err:
        check(LogConfig(to=["tensorbord"]))
    assert err.value.field == "log.to"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install 'lmforge\[track\]'"):
        check(LogConfig(to=["mlflow"]))
