"""Experiment trackers beside ``metrics.jsonl``: TensorBoard, MLflow and Weights & Biases, each through its own
library (the optional extra ``lmforge[track]``), all writing inside the run folder and working offline.

``metrics.jsonl`` stays the source of truth: a tracker only mirrors what :meth:`lmforge.runs.Run.log_metrics`
writes, under ``<split>/<metric>`` names. On ``--resume`` each tracker continues the same run: TensorBoard
purges events written past the resumed step (as the run truncates its own logs), MLflow and W&B reopen the run
whose id the folder keeps in ``trackers.json``, so a resumed run is one run in every tracker, not two.

- ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``).
- ``mlflow``: a local SQLite store ``RUN/mlflow.db`` with artifacts in ``RUN/mlartifacts`` (``mlflow ui
  --backend-store-uri sqlite:///RUN/mlflow.db``; MLflow 3 put its ``./mlruns`` file store in maintenance
  mode); the resolved config is logged as the run's parameters (flattened ``section.key``).
- ``wandb``: offline mode in ``RUN/wandb`` (``wandb sync RUN/wandb/offline-run-*`` uploads it later).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from .config import Section
from .errors import InputError

KNOWN = ("tensorboard", "mlflow", "wandb")
MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


class LogConfig(Section):
    """Where a stage's metrics go besides ``metrics.jsonl``."""

    to: list[str] = Field(default_factory=list, description="trackers: tensorboard, mlflow, wandb")
    project: str = Field("lmforge", description="MLflow experiment / W&B project name")


def check(cfg: LogConfig) -> None:
    """Fail before any work when a tracker is unknown or its library is not installed."""
    import importlib.util

    for name in cfg.to:
        if name not in KNOWN:
            raise InputError(f"unknown tracker {name!r} (use {', '.join(KNOWN)})", field="log.to")
        if importlib.util.find_spec(MODULES[name]) is None:
            raise InputError(f"tracker {name!r} needs its library: pip install 'lmforge[track]'", field="log.to")


def _scalars(metrics: dict[str, Any], split: str) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{split}/{key}"] = float(value)
    return out


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:500]  # MLflow caps parameter values
    return out


class _TensorBoard:
    def __init__(self, run_path: Path, resume_step: int | None, **_: Any):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_path / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step is not None else None)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def tracking_uri(run_path: Path) -> str:
    """The run's MLflow store."""
    return f"sqlite:///{(run_path / 'mlflow.db').resolve()}"


class _MLflow:
    def __init__(self, run_path: Path, resume_step: int | None, name: str, project: str, config: dict,
                 ids: dict[str, str]):
        import mlflow

        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri(run_path))
        if ids.get("mlflow"):
            self.run_id = ids["mlflow"]
        else:
            exp = self.client.get_experiment_by_name(project)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(
                project, artifact_location=(run_path / "mlartifacts").resolve().as_uri())
            self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
            ids["mlflow"] = self.run_id
            for key, value in list(_flat(config).items())[:100]:
                self.client.log_param(self.run_id, key, value)
        self.client.update_run(self.run_id, status="RUNNING")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key.replace("/", "."), value, now, step) for key, value in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class _WandB:
    def __init__(self, run_path: Path, resume_step: int | None, name: str, project: str, config: dict,
                 ids: dict[str, str]):
        import secrets

        import wandb

        ids.setdefault("wandb", secrets.token_hex(4))  # W&B run ids: short, lowercase, unique per project
        self.run = wandb.init(mode="offline", dir=str(run_path), project=project, name=name, id=ids["wandb"],
                              resume="allow", config=config, settings=wandb.Settings(silent=True))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


BACKENDS = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}


class Trackers:
    """The trackers a run's ``log.to`` names (none: every call is a no-op)."""

    def __init__(self, run_path: Path, cfg: LogConfig | None, *, name: str, config: dict[str, Any] | None = None,
                 resume_step: int | None = None):
        self.backends = []
        if cfg is None or not cfg.to:
            return
        check(cfg)
        ids_file = run_path / "trackers.json"
        ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
        for tracker in cfg.to:
            self.backends.append(BACKENDS[tracker](run_path, resume_step, name=name, project=cfg.project,
                                                   config=config or {}, ids=ids))
        from .runs import atomic_write_text

        atomic_write_text(ids_file, json.dumps(ids, indent=1) + "\n")

    def log(self, step: int, metrics: dict[str, Any], split: str) -> None:
        scalars = _scalars(metrics, split)
        if scalars:
            for backend in self.backends:
                backend.log(step, scalars)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []
