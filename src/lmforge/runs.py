"""The run folder, the same for every stage.

::

    runs/<name>/
      config.yaml          the resolved config
      metrics.jsonl        one JSON object per log step ({"step", "split", ...})
      samples.jsonl        generations logged at eval time
      checkpoints/step-N/  resumable state, written atomically
      final/               a Hugging Face model folder
      summary.json         the stage's headline numbers

Only the main process writes; other ranks get a Run whose writes are no-ops.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .config import Section, dump_config
from .errors import InputError


class RunConfig(Section):
    """Where a stage writes: ``<root>/<name>/``."""

    name: str = "run"
    root: str = "runs"

    @property
    def path(self) -> Path:
        return Path(self.root) / self.name


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask alone must set one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_modes(folder: str | Path) -> None:
    """Give every file under ``folder`` the mode a plain ``open()`` gives (0o666 & ~umask).

    safetensors writes its files through a private temp file, mode 0600, so weights saved by
    ``save_pretrained`` could not be read by other users, containers or a serving process.
    """
    mode = 0o666 & ~current_umask()
    for p in Path(folder).rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.chmod(p, mode)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def discard_failed_start(path: str | Path, *, resume: bool = False, overwrite: bool = False,
                         main: bool | None = None) -> Iterator[None]:
    """Around a stage: if it fails before writing its first complete checkpoint, remove the run folder it
    created, so the corrected rerun needs no ``--overwrite`` (nothing half-written is left behind).

    A folder that was there before (``--resume``, or the "already exists" refusal) is never touched, and
    neither is one holding a checkpoint (``--resume`` continues it). Only the main process removes.
    """
    path = Path(path)
    main = os.environ.get("RANK", "0") == "0" if main is None else main
    existed = path.is_dir() and any(path.iterdir())
    try:
        yield
    except Exception:
        ours = not existed or (overwrite and not resume)  # --overwrite already deleted the old one
        if main and ours and path.is_dir() and not Run(path).checkpoint_dirs():
            shutil.rmtree(path, ignore_errors=True)
        raise


class Run:
    def __init__(self, path: str | Path, *, main: bool = True):
        self.path = Path(path)
        self.main = main
        self.t0 = time.time()
        self._log_cfg = None  # the config's ``log`` section: trackers mirroring metrics.jsonl
        self._config: dict[str, Any] = {}
        self._trackers = None
        self._resume_step: int | None = None

    # ----------------------------------------------------------------- creation

    @classmethod
    def create(cls, path: str | Path, config: BaseModel | None = None, *, resume: bool = False,
               overwrite: bool = False, main: bool = True) -> Run:
        """Make (or reopen with ``resume``) a run folder and write the resolved config."""
        run = cls(path, main=main)
        if main:
            exists = run.path.exists() and any(run.path.iterdir())
            if exists and not (resume or overwrite):
                raise InputError("run folder already exists; pass --resume to continue it or "
                                 "--overwrite to start again", file=run.path)
            if exists and overwrite and not resume:
                shutil.rmtree(run.path)
            run.path.mkdir(parents=True, exist_ok=True)
            run.checkpoints.mkdir(exist_ok=True)
            if config is not None:
                atomic_write_text(run.path / "config.yaml", dump_config(config))
        log_cfg = getattr(config, "log", None)
        if main and log_cfg is not None and getattr(log_cfg, "to", None):
            from .trackers import check

            check(log_cfg)  # an unknown or missing tracker fails before any work
            run._log_cfg, run._config = log_cfg, config.model_dump(mode="json")
        return run

    # ----------------------------------------------------------------- paths

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    def checkpoint_dirs(self) -> list[Path]:
        """Complete checkpoints, oldest first (temp folders from a crash are ignored)."""
        if not self.checkpoints.exists():
            return []
        done = [p for p in self.checkpoints.iterdir()
                if p.is_dir() and p.name.startswith("step-") and (p / "COMPLETE").exists()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def latest_checkpoint(self) -> Path | None:
        dirs = self.checkpoint_dirs()
        return dirs[-1] if dirs else None

    # ----------------------------------------------------------------- logs

    def _append(self, name: str, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")

    def log_metrics(self, step: int, metrics: dict[str, Any], split: str = "train") -> None:
        self._append("metrics.jsonl", {"step": step, "split": split,
                                       "time": round(time.time() - self.t0, 3), **metrics})
        if self._log_cfg is not None:
            if self._trackers is None:  # opened at the first metric, when a resume has said its step
                from .trackers import Trackers

                self._trackers = Trackers(self.path, self._log_cfg, name=self.path.name, config=self._config,
                                          resume_step=self._resume_step)
            self._trackers.log(step, metrics, split)

    def close_trackers(self) -> None:
        if self._trackers is not None:
            self._trackers.close()
            self._trackers = None

    def log_sample(self, step: int, prompt: str, completion: str, **extra: Any) -> None:
        self._append("samples.jsonl", {"step": step, "prompt": prompt, "completion": completion, **extra})

    def read_metrics(self, split: str | None = "train") -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if split is None or r.get("split") == split]

    def truncate_logs(self, step: int) -> None:
        """After a resume from ``step``, drop log lines written past it by the crashed process."""
        if not self.main:
            return
        self._resume_step = step
        for name in ("metrics.jsonl", "samples.jsonl"):
            path = self.path / name
            if path.exists():
                keep = [line for line in path.read_text().splitlines()
                        if line.strip() and json.loads(line).get("step", 0) <= step]
                atomic_write_text(path, "".join(line + "\n" for line in keep))

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.close_trackers()  # the summary is a stage's last word
        if self.main:
            atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2, default=_jsonable) + "\n")

    def staging_dir(self, name: str) -> Path:
        """A temp folder beside ``name``; pass it to :meth:`commit_dir` when fully written."""
        tmp = self.path / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_dir(self, tmp: Path, name: str) -> Path:
        """Atomically move a fully written temp folder into place (replacing any older one)."""
        dest = self.path / name
        if dest.exists():
            old = self.path / f".{name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
        return dest
