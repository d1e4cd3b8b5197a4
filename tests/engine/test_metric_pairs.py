"""Engine extensions RL uses: (sum, count) metrics, a source's phase metrics, per-group learning rates."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.engine import DistInfo, LossOutput, TrainConfig, Trainer
from lmforge.engine.optim import build_optimizer
from lmforge.runs import Run


class Uneven:
    """Micro-batches of different sizes: row i of the step has weight (tokens) i + 1."""

    def __init__(self):
        self.calls = 0

    def next_batch(self):
        self.calls += 1
        n = 1 if self.calls % 2 else 3  # micro-batches of 1 row, then 3 rows
        return {"x": torch.ones(n, 2), "w": torch.arange(1, n + 1, dtype=torch.float32)}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, s):
        self.calls = s["calls"]

    def phase_metrics(self):
        return {"reward_mean": (6.0, 4.0), "seconds_generation": 0.5} if self.calls == 2 else {}


def loss_fn(model, batch) -> LossOutput:
    out = model(batch["x"]).squeeze(-1)
    tokens = batch["w"]
    # per token: the loss units; per sequence: a pair with its own count
    return LossOutput((out * tokens).sum(), float(tokens.sum()), int(tokens.sum()),
                      {"per_token": tokens.sum() * 2.0, "seq_len": (float(tokens.sum()), float(len(tokens)))})


def test_pairs_divide_by_their_own_count_and_phase_metrics_are_logged(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=2, batch_size=2, micro_batch_size=1, lr=0.1, log_every=100)
    run = Run.create(tmp_path / "r", cfg)
    torch.manual_seed(0)
    Trainer(torch.nn.Linear(2, 1), cfg, run, loss_fn, Uneven(), DistInfo()).fit()
    rows = run.read_metrics()
    first = rows[0]
    # step 1: micro-batches of 1 row (1 token) and 3 rows (1 + 2 + 3 = 6 tokens): 7 tokens, 4 sequences
    assert first["step"] == 1 and first["per_token"] == pytest.approx(2.0)  # plain sum / unit count
    assert first["seq_len"] == pytest.approx(7 / 4)  # not the mean of the micro-batch means, (1 + 2) / 2
    assert first["reward_mean"] == pytest.approx(1.5) and first["seconds_generation"] == 0.5
    assert "reward_mean" not in rows[-1]  # phase metrics appear once, on the step that produced them


class TwoPart(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(2, 2)
        self.value_head = torch.nn.Linear(2, 1)

    def lr_overrides(self):
        return {"value_head.": 0.5}


def test_lr_overrides_get_their_own_groups_and_share_the_schedule(tmp_path: Path) -> None:
    from lmforge.engine.schedule import build_scheduler

    cfg = TrainConfig(steps=10, lr=0.01, schedule="linear", warmup_steps=0)
    model = TwoPart()
    opt = build_optimizer(model, cfg)
    head = {id(p) for p in model.value_head.parameters()}
    lrs = sorted({g["lr"] for g in opt.param_groups if all(id(p) in head for p in g["params"])})
    body = sorted({g["lr"] for g in opt.param_groups if not any(id(p) in head for p in g["params"])})
    assert lrs == [0.5] and body == [0.01]
    sched = build_scheduler(opt, 10, 0, "linear", 0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    ratios = {round(g["lr"] / (0.5 if all(id(p) in head for p in g["params"]) else 0.01), 9)
              for g in opt.param_groups}
    assert len(ratios) == 1 and ratios.pop() < 1  # one multiplier scales every group
    plain = build_optimizer(torch.nn.Linear(2, 2), cfg)  # no overrides: the old two groups, in the old order
    assert [g["weight_decay"] for g in plain.param_groups] == [cfg.weight_decay, 0.0]
