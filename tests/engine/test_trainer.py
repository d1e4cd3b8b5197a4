"""The engine in-process: accumulation equals one big batch, schedules, a non-finite loss stops cleanly."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lmforge.engine import DistInfo, LossOutput, TrainConfig, Trainer
from lmforge.engine.schedule import lr_multiplier
from lmforge.errors import TrainingStopped
from lmforge.runs import Run


class Rows:
    """A resumable source of fixed (x, y) rows, ``micro`` at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, micro: int):
        self.x, self.y, self.micro, self.pos = x, y, micro, 0

    def next_batch(self):
        idx = torch.arange(self.pos, self.pos + self.micro) % len(self.x)
        self.pos += self.micro
        return {"x": self.x[idx], "y": self.y[idx]}

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, s):
        self.pos = s["pos"]


def mse_sum(model, batch) -> LossOutput:
    err = (model(batch["x"]).squeeze(-1) - batch["y"]) ** 2
    return LossOutput(err.sum(), len(err), len(err))


def make(tmp: Path, micro: int, steps: int = 3, loss_fn=mse_sum, **kw) -> Trainer:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, generator=gen), torch.randn(16, generator=gen)
    cfg = TrainConfig(steps=steps, batch_size=4, micro_batch_size=micro, lr=0.1, grad_clip=None, log_every=1, **kw)
    run = Run.create(tmp, cfg)
    return Trainer(model, cfg, run, loss_fn, Rows(x, y, micro), DistInfo())


def test_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    big = make(tmp_path / "a", micro=4)
    big.fit()
    small = make(tmp_path / "b", micro=1)
    assert small.accum == 4
    small.fit()
    for p, q in zip(big.raw_model.parameters(), small.raw_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    la = [r["loss"] for r in big.run.read_metrics()]
    lb = [r["loss"] for r in small.run.read_metrics()]
    assert la == pytest.approx(lb, rel=1e-5)  # one micro-batch of 4 vs 4 of 1: float32 sums in another order


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    calls = {"n": 0}

    def exploding(model, batch) -> LossOutput:
        calls["n"] += 1
        out = mse_sum(model, batch)
        if calls["n"] > 4:  # step 5 (one micro-batch per step)
            out.loss = out.loss * float("nan")
        return out

    trainer = make(tmp_path, micro=4, steps=10, loss_fn=exploding, save_every=2)
    with pytest.raises(TrainingStopped) as e:
        trainer.fit()
    msg = str(e.value)
    assert "loss is nan at step 5" in msg and "step-4" in msg
    assert [p.name for p in trainer.run.checkpoint_dirs()] == ["step-2", "step-4"]
    logged = [r["step"] for r in trainer.run.read_metrics()]
    assert logged == [1, 2, 3, 4]  # the bad step is never applied or logged
    state = torch.load(tmp_path / "checkpoints/step-4/model.pt")
    assert all(torch.isfinite(v).all() for v in state.values())


@pytest.mark.parametrize("kind,step,expected", [
    ("cosine", 0, 0.1),  # warmup: (0+1)/10
    ("cosine", 9, 1.0),
    ("cosine", 10, 1.0),  # start of decay
    ("cosine", 60, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))),
    ("cosine", 110, 0.1),
    ("linear", 60, 1 - 0.9 * 0.5),
    ("wsd", 80, 1.0),  # stable until the last 20% (decay starts at 110 - 22 = 88)
    ("wsd", 99, 1 - 0.9 * (99 - 88) / 22),
    ("constant", 100, 1.0),
])
def test_schedules(kind: str, step: int, expected: float) -> None:
    assert lr_multiplier(step, 110, 10, kind, 0.1, 0.2) == pytest.approx(expected)


@pytest.mark.parametrize("warmup, warned", [(0, False), (2, False), (3, True), (10, True)])
def test_warmup_filling_the_run_warns_once_in_one_line(tmp_path: Path, capsys, warmup: int, warned: bool) -> None:
    trainer = make(tmp_path, micro=4, steps=3, warmup_steps=warmup)
    trainer.fit()
    err = [line for line in capsys.readouterr().err.splitlines() if "warmup" in line]
    if not warned:
        assert err == []
        return
    assert err == [f"warning: train.warmup_steps={warmup} >= train.steps=3: the learning rate warms up for the "
                   f"whole run (reaching {3 / warmup:.0%} of train.lr) and never decays; lower train.warmup_steps"]
    lrs = [r["lr"] for r in trainer.run.read_metrics()]
    assert max(lrs) == pytest.approx(0.1 * 3 / warmup)  # what the line says: the lr never got higher
