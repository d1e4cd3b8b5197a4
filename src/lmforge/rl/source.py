"""The RL batch source: the engine's :class:`~lmforge.engine.trainer.BatchSource` with a rollout phase.

``next_batch()`` serves the next micro-batch of the current rollout buffer; when the buffer's epochs are used
up it first runs the rollout phase (:func:`~.rollout.collect`) on the current policy and fills a new buffer.
One optimizer step is one minibatch, so the engine's loop, checkpoints, progress bar and DDP serve RL unchanged.

``state_dict()`` (saved per process in every checkpoint) holds the buffer (its tensors and position), the
rollout counter, the prompt sampler's position, the KL controller and the metrics not yet logged: a run killed
mid-epoch resumes on the same rows in the same order with the same β, so its losses equal an uninterrupted
run's. Generation is seeded by (seed, rollout, rank, prompt, sample), never by the global RNG.
"""
from __future__ import annotations

import random
import sys
import time
from typing import Any

import torch

from ..algos.kl import AdaptiveKLController, FixedKLController
from ..errors import TrainingStopped
from .buffer import RolloutBuffer
from .config import RLSection
from .rollout import collect


class PromptSampler:
    """An endless shuffled pass over the prompts, one seeded order per epoch; ``take(n)`` the next n."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle()
            out.append(self._order[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._shuffle()


def kl_controller(rl: RLSection):
    if rl.kl_target is not None:
        return AdaptiveKLController(rl.kl_coef, rl.kl_target, rl.kl_horizon)
    return FixedKLController(rl.kl_coef)


def _all_reduce(values: list[float]) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else t.device
        t = t.to(dev)
        dist.all_reduce(t)
    return t.cpu().tolist()


class RLSource:
    def __init__(self, model, reference, tokenizer, reward, prompts: list[dict[str, Any]], rl: RLSection,
                 sampling, micro: int, eot: int, pad: int, rank: int, world_size: int, seed: int, run=None):
        self.model, self.reference, self.tokenizer, self.reward = model, reference, tokenizer, reward
        self.prompts, self.rl, self.sampling, self.micro = prompts, rl, sampling, micro
        self.eot, self.pad, self.rank, self.world, self.seed, self.run = eot, pad, rank, world_size, seed, run
        self.sampler = PromptSampler(len(prompts), seed)
        self.kl = kl_controller(rl)
        self.rollout = 0  # rollouts done
        self.buffer: RolloutBuffer | None = None
        self.pending: dict[str, Any] = {}  # rollout metrics for the next logged step
        self.train_started: float | None = None
        self.reward_first: float | None = None
        self.reward_last: float | None = None

    # ------------------------------------------------------------------ the rollout phase

    def _rollout(self) -> None:
        rl = self.rl
        train_s = time.perf_counter() - self.train_started if self.train_started is not None else None
        per_rank = rl.prompts_per_rollout // self.world
        chosen = self.sampler.take(rl.prompts_per_rollout)[self.rank * per_rank:(self.rank + 1) * per_rank]
        beta = self.kl.value
        res = collect(self.model, self.reference, self.tokenizer, self.reward, [self.prompts[i] for i in chosen],
                      rl, self.sampling, self.eot, self.pad, step=self.rollout, rank=self.rank, beta=beta,
                      on_policy=self.steps_per_rollout == 1)
        self.buffer = RolloutBuffer(res.rows, rl.ppo_epochs, self.micro, self.seed, self.rollout)
        self.rollout += 1
        kl_sum, n, r_sum, r_n = _all_reduce([res.kl_mean[0], res.kl_mean[1], *res.metrics["reward_mean"]])
        kl_mean = kl_sum / max(n, 1)
        self.kl.update(kl_mean, int(n))
        reward_mean = r_sum / max(r_n, 1)
        self.reward_first = reward_mean if self.reward_first is None else self.reward_first
        self.reward_last = reward_mean
        self.pending = {**res.metrics, "rollout": self.rollout}
        if train_s is not None:
            self.pending["seconds_training"] = train_s
        if self.run is not None and rl.samples_every and (self.rollout - 1) % rl.samples_every == 0:
            for s in res.samples:
                self.run.log_sample(self.step_of_next_batch, s.pop("prompt"), s.pop("completion"),
                                    rollout=self.rollout, **s)
        if rl.kl_budget is not None and kl_mean > rl.kl_budget:
            why = (f"KL to the reference is {kl_mean:.3f} per response at rollout {self.rollout}, past "
                   f"rl.kl_budget={rl.kl_budget:g} (reward hacking? raise rl.kl_coef or lower train.lr)")
            if rl.stop_on_kl_budget:
                raise TrainingStopped(why)
            if self.rank == 0:
                print(f"warning: {why}", file=sys.stderr, flush=True)
        self.train_started = time.perf_counter()

    @property
    def step_of_next_batch(self) -> int:
        """The optimizer step the next buffer's first minibatch trains (samples are logged with it)."""
        return (self.rollout - 1) * self.steps_per_rollout + 1

    @property
    def steps_per_rollout(self) -> int:
        rows = self.rl.prompts_per_rollout * self.rl.group_size
        return self.rl.ppo_epochs * rows // self.minibatch_rows

    minibatch_rows: int = 1  # set by the stage: train.batch_size (global rows per optimizer step)

    # ------------------------------------------------------------------ BatchSource

    def next_batch(self) -> dict[str, Any]:
        if self.buffer is None or self.buffer.exhausted:
            self._rollout()
        return self.buffer.next_micro()

    def phase_metrics(self) -> dict[str, Any]:
        """The last rollout's metrics, once (the trainer logs them with the step that trained on it)."""
        out, self.pending = self.pending, {}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout, "sampler": self.sampler.state_dict(), "kl": self.kl.state_dict(),
                "buffer": self.buffer.state_dict() if self.buffer is not None else None,
                "pending": dict(self.pending), "reward_first": self.reward_first, "reward_last": self.reward_last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollout = state["rollout"]
        self.sampler.load_state_dict(state["sampler"])
        self.kl.load_state_dict(state["kl"])
        self.buffer = RolloutBuffer.from_state(state["buffer"]) if state["buffer"] is not None else None
        self.pending = dict(state.get("pending") or {})
        self.reward_first, self.reward_last = state.get("reward_first"), state.get("reward_last")
