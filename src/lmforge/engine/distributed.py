"""torch.distributed glue: started by ``torchrun`` (env vars) or single-process when absent.

CPU runs use the gloo backend, GPUs nccl. DDP replicates the model; FSDP2 (``fully_shard``) shards it,
one unit per transformer block, for models that do not fit one GPU.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..models.blocks import transformer_blocks  # the FSDP units; re-exported for callers of this module


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


_joined = False  # this process joined a torchrun process group through init()


def init() -> DistInfo:
    """Join the process group that torchrun set up (idempotent); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        # torch asks for destroy_process_group before exit (and exit_worker below skips the teardown after it)
        atexit.register(_leave)
        global _joined
        _joined = True
    return DistInfo(rank, world, local, device)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """End a torchrun worker that joined its process group through :func:`init`, without interpreter finalization:
    non-daemon threads are joined and the exit handlers run (the process group is destroyed, logs flushed), then
    the process exits with ``code``. Returns at once in any other process.

    Why: a finished 2-rank FSDP run on CPU aborted about one time in 25 with "terminate called without an active
    exception" (SIGABRT, exit -6) after its last line of output and after destroy_process_group; faulthandler showed
    the main thread with no Python frame, i.e. in the interpreter's finalization, where C++ objects that own
    threads (gloo's) are destroyed in no fixed order. Nothing of ours runs there, so it is skipped."""
    if not _joined:
        return
    import sys
    import threading

    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(code)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def wrap(model: torch.nn.Module, info: DistInfo, strategy: str) -> torch.nn.Module:
    """DDP or FSDP2 around ``model`` when running on several processes; the model itself otherwise."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in transformer_blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.local_rank] if info.device.type == "cuda" else None
    # no buffer broadcast: it is a collective at every forward, and recipes may run a different number of
    # forwards per step on each process (length-chunked micro-batches); the models' buffers (rotary tables)
    # are computed identically on every process anyway
    return DDP(model, device_ids=ids, broadcast_buffers=False)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel) \
        else model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 (``fully_shard``) sharded any part of ``model``: its state dicts are then collectives."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())
