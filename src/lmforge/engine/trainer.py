"""The one training loop every stage uses.

A stage hands the trainer a model, a :class:`BatchSource` (micro-batches for this process, with a resumable
position) and a loss function that returns a *sum* over units (tokens, pairs, ...) and their count. The
trainer normalises by the global count of the whole optimizer step (all micro-batches, all processes), so
gradient accumulation and data parallelism give the same update as one big batch.
"""
from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import TrainingStopped
from ..runs import Run
from . import checkpoint, faults
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_sum, unwrap, wrap
from .optim import build_optimizer
from .progress import TrainProgress
from .schedule import build_scheduler, warmup_warning


@dataclass
class LossOutput:
    loss: torch.Tensor  # summed over units; the trainer divides by the global unit count
    count: float  # units in this micro-batch (tokens with a label, pairs, sequences...)
    tokens: int  # tokens processed, for throughput
    # a plain value is a sum over the loss's units (logged divided by the global unit count); a pair
    # ``(sum, count)`` has its own count (e.g. a per-sequence reward beside a per-token loss): both halves are
    # summed over micro-batches and processes and logged as sum / count
    metrics: dict[str, float | torch.Tensor | tuple] = field(default_factory=dict)


class BatchSource(Protocol):
    """Micro-batches with a resumable position. A source may also define ``phase_metrics() -> dict`` (``(sum, count)``
    pairs, reduced across processes, or plain values, this process's own): merged into the step's logged metrics, e.g. an RL
    source's rollout reward and seconds per phase; it must return the same keys on every process."""
    def next_batch(self) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _add_metric(sums: dict[str, list[float]], key: str, value: Any) -> None:
    """Accumulate a metric as [sum, count]; count None means "per the loss's units"."""
    if isinstance(value, tuple):
        s, c = float(value[0]), float(value[1])
        prev = sums.setdefault(key, [0.0, 0.0])
        prev[0] += s
        prev[1] += c
    else:
        prev = sums.setdefault(key, [0.0, None])
        prev[0] += float(value)


def reduce_metrics(sums: dict[str, list[float]], unit_count: float | None, info: DistInfo) -> dict[str, float]:
    """All-reduce ``{key: [sum, count]}`` in one collective and divide: a pair by its own count, a plain sum by
    ``unit_count`` (the global unit count of the step; None: the value as is)."""
    keys = sorted(sums)
    if not keys:
        return {}
    packed = torch.tensor([[sums[k][0], sums[k][1] if sums[k][1] is not None else 0.0] for k in keys],
                          dtype=torch.float64)
    packed = all_reduce_sum(packed.to(info.device), info).cpu()
    out = {}
    for i, k in enumerate(keys):
        s, c = packed[i, 0].item(), packed[i, 1].item()
        if sums[k][1] is not None:
            out[k] = s / c if c > 0 else float("nan")
        else:
            out[k] = s / unit_count if unit_count else s
    return out


LossFn = Callable[[torch.nn.Module, dict[str, Any]], LossOutput]
EvalFn = Callable[[torch.nn.Module, int], dict[str, float]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, run: Run, loss_fn: LossFn, source: BatchSource,
                 info: DistInfo, evaluate: EvalFn | None = None, description: str = "train"):
        self.cfg, self.run, self.loss_fn, self.source, self.info = cfg, run, loss_fn, source, info
        self.evaluate = evaluate
        self.description = description
        self.raw_model = model.to(info.device)
        self.model = wrap(self.raw_model, info, cfg.distributed)
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.optimizer = build_optimizer(self.raw_model if cfg.distributed == "ddp" else self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg.steps, cfg.warmup_steps, cfg.schedule,
                                         cfg.min_lr_ratio, cfg.decay_fraction)
        warning = warmup_warning(cfg.steps, cfg.warmup_steps)
        if warning and info.main:
            print(warning, file=sys.stderr, flush=True)
        self.accum = cfg.grad_accum(info.world_size)
        self.step = 0
        self.tokens_seen = 0
        self.train_seconds = 0.0
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}

    # ------------------------------------------------------------------ resume

    def resume(self) -> bool:
        """Load the latest complete checkpoint of the run, if any. Returns whether one was found."""
        path = self.run.latest_checkpoint()
        if path is None:
            return False
        state = checkpoint.load(path, self.info, self.model, self.optimizer, self.scheduler)
        self.step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.source.load_state_dict(state.get("data_rank") or state["data"])
        self.run.truncate_logs(self.step)
        return True

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "tokens_seen": self.tokens_seen, "train_seconds": self.train_seconds,
                 "data": self.source.state_dict(), "data_rank": self.source.state_dict()}
        checkpoint.save(self.run.checkpoints, self.step, self.info, self.model, self.optimizer, self.scheduler,
                        state, self.cfg.keep_checkpoints)

    # ------------------------------------------------------------------ one optimizer step

    def _autocast(self):
        if self.cfg.dtype == "bfloat16" and self.info.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """Forward/backward every micro-batch, normalise by the global unit count, clip, step."""
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        count = torch.zeros((), dtype=torch.float64)
        tokens = torch.zeros((), dtype=torch.float64)
        metric_sums: dict[str, list[float]] = {}
        for i, batch in enumerate(micro_batches):
            sync = i == len(micro_batches) - 1
            no_sync = self.model.no_sync() if (not sync and hasattr(self.model, "no_sync")) else contextlib.nullcontext()
            with no_sync, self._autocast():
                out = self.loss_fn(self.model, _to_device(batch, self.info.device))
                out.loss.backward()
            loss_sum += out.loss.detach().double().cpu()
            count += float(out.count)
            tokens += out.tokens
            for k, v in out.metrics.items():
                _add_metric(metric_sums, k, v)
        packed = torch.stack([loss_sum, count, tokens])
        packed = all_reduce_sum(packed.to(self.info.device), self.info).cpu()
        g_loss, g_count, g_tokens = packed[0].item(), max(packed[1].item(), 1.0), packed[2].item()
        loss = g_loss / g_count
        if not math.isfinite(loss):
            self._stop(f"loss is {loss} at step {self.step + 1}")
        # grads hold the (process-averaged, under DDP) sum over units: rescale to the global mean
        scale = self.info.world_size / g_count
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        grad_norm = None
        if self.cfg.grad_clip:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
            if not math.isfinite(grad_norm):
                self._stop(f"gradient norm is {grad_norm} at step {self.step + 1}")
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += int(g_tokens)
        metrics = {"loss": loss, "lr": lr, "tokens": int(g_tokens)}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        metrics.update(reduce_metrics(metric_sums, g_count, self.info))
        return metrics

    def phase_metrics(self) -> dict[str, float]:
        """The source's own metrics for this step (see :class:`BatchSource`), reduced across processes."""
        fn = getattr(self.source, "phase_metrics", None)
        if fn is None:
            return {}
        sums: dict[str, list[float]] = {}
        for k, v in (fn() or {}).items():
            _add_metric(sums, k, v)
        return reduce_metrics({k: v for k, v in sums.items() if v[1] is not None}, None, self.info) | {
            k: v[0] for k, v in sums.items() if v[1] is None}

    def _stop(self, why: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        last = self.run.latest_checkpoint()
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        raise TrainingStopped(f"{why}; training stopped, {kept} (lower train.lr or check the data)")

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: bool = False) -> dict[str, Any]:
        if not (resume and self.resume()):
            seed_everything(self.cfg.seed + self.info.rank)
        cfg = self.cfg
        bar = TrainProgress(cfg.steps, self.step, self.description, enabled=self.info.main)
        window_tokens, window_t = 0, time.perf_counter()
        try:
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                micro = [self.source.next_batch() for _ in range(self.accum)]
                metrics = self.train_step(micro)
                phase = self.phase_metrics()
                metrics.update(phase)
                self.train_seconds += time.perf_counter() - t0
                window_tokens += metrics["tokens"]
                step = self.step
                self.last_train = metrics
                if step % cfg.log_every == 0 or step == cfg.steps or phase:
                    now = time.perf_counter()
                    metrics["tokens_per_s"] = window_tokens / max(now - window_t, 1e-9)
                    window_tokens, window_t = 0, now
                    self.run.log_metrics(step, {**metrics, "tokens_seen": self.tokens_seen})
                bar.update(step, {"loss": metrics["loss"],
                                  "tok/s": self.tokens_seen / max(self.train_seconds, 1e-9)})
                faults.maybe_kill("kill-at-step", step)
                if self.evaluate and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                    self._eval()
                if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
                    self.save_checkpoint()
                    window_t = time.perf_counter()
        finally:
            bar.close()
        if self.evaluate:
            self._eval()
        self.save_checkpoint()
        return {"steps": self.step, "tokens": self.tokens_seen, "train_seconds": round(self.train_seconds, 2),
                "tokens_per_s": self.tokens_seen / max(self.train_seconds, 1e-9),
                "train_loss": self.last_train.get("loss"), **self.last_eval}

    def _eval(self) -> None:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.last_eval = self.evaluate(unwrap(self.model), self.step) or {}
        self.run.log_metrics(self.step, self.last_eval, split="eval")
