"""Atomic, exactly resumable checkpoints.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and renamed to ``step-N`` only after every file,
and finally a ``COMPLETE`` marker, are on disk; a crash at any point leaves the previous checkpoint as the
latest. It holds the model, optimizer and scheduler states, the data position and every RNG state, so a
resumed run computes the same losses as one that never stopped.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import faults
from .distributed import DistInfo, barrier, is_sharded, unwrap


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_optimizer_state(model, optimizer) -> tuple[dict, dict]:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_model_optimizer_state(model, optimizer, model_sd: dict, optim_sd: dict) -> None:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                       options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))
        return
    unwrap(model).load_state_dict(model_sd)
    optimizer.load_state_dict(optim_sd)


def save(ckpt_root: Path, step: int, info: DistInfo, model, optimizer, scheduler, trainer_state: dict,
         keep: int) -> Path:
    """Write ``ckpt_root/step-N`` atomically; returns its path."""
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}"
    model_sd, optim_sd = model_optimizer_state(model, optimizer)  # collective under FSDP
    if info.main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier(info)
    if info.main:
        torch.save(model_sd, tmp / "model.pt")
        faults.maybe_kill("kill-in-checkpoint", step)
        torch.save(optim_sd, tmp / "optimizer.pt")
        torch.save({"scheduler": scheduler.state_dict(), **trainer_state}, tmp / "trainer.pt")
    torch.save({"rng": rng_state(), "data": trainer_state.get("data_rank", {})}, tmp / f"rank-{info.rank}.pt")
    barrier(info)
    if info.main:
        (tmp / "COMPLETE").write_text(str(step))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(ckpt_root, keep)
    barrier(info)
    return final


def _prune(root: Path, keep: int) -> None:
    done = sorted((p for p in root.iterdir() if p.name.startswith("step-") and (p / "COMPLETE").exists()),
                  key=lambda p: int(p.name.split("-")[1]))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def load(path: Path, info: DistInfo, model, optimizer, scheduler) -> dict:
    """Restore everything saved by :func:`save`; returns the trainer state (step, data position, ...)."""
    model_sd = torch.load(path / "model.pt", map_location="cpu", weights_only=False)
    optim_sd = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False)
    load_model_optimizer_state(model, optimizer, model_sd, optim_sd)
    state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    scheduler.load_state_dict(state.pop("scheduler"))
    rank_file = path / f"rank-{info.rank}.pt"
    if rank_file.exists():
        rank_state = torch.load(rank_file, map_location="cpu", weights_only=False)
        set_rng_state(rank_state["rng"])
        state["data_rank"] = rank_state["data"]
    return state
