"""``lmforge demo``: every stage that exists, end to end, on the built-in world, with no download.

Each stage writes its own run folder under ``--out`` and adds its headline numbers to
``<out>/summary.json`` (rewritten after every stage, so a crash keeps what finished). ``--resume`` skips
stages whose run finished and continues an interrupted one from its last checkpoint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs import RunConfig, atomic_write_text
from .demo_align import stage_dpo, stage_ppo
from .demo_reft import stage_reft
from .demo_report import stage_report
from .demo_stages import _finished, stage_feedback, stage_reward_model, stage_sft


def stage_pretrain(out: Path, seed: int, resume: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    from ..eval.probes import capital_recall
    from ..models.load import load_causal_lm, load_tokenizer
    from ..world import World
    from .pretrain import PretrainConfig, pretrain

    run_dir = out / "pretrain"
    t0 = time.time()
    done = _finished(run_dir) if resume else None
    skipped = done is not None
    if done is None:
        cfg = PretrainConfig(run=RunConfig(name="pretrain", root=str(out)))  # its defaults: the measured recipe
        cfg = cfg.model_copy(update={
            "train": cfg.train.model_copy(update={"seed": seed}),
            "data": cfg.data.model_copy(update={"world_seed": seed}),
        })
        n = demo_processes()
        done = _pretrain_data_parallel(cfg, out, n, resume and run_dir.exists()) if n > 1 else None
        if done is None:  # in this process, continuing from any checkpoint a failed launch left
            cont = (resume or n > 1) and any((run_dir / "checkpoints").glob("step-*"))
            done = pretrain(cfg, resume=cont, overwrite=not cont)
    final = str(run_dir / "final")
    ctx["base_model"] = final
    world = World(seed)
    model, tok = load_causal_lm(final), load_tokenizer(final)
    seconds = done["seconds"] if skipped else round(time.time() - t0, 2)
    return {
        "val_loss": done["val_loss"], "val_bpb": done["val_bpb"], "unigram_entropy": done["unigram_entropy"],
        "tokens": done["tokens"], "steps": done["steps"], "params": done["params"],
        "tokens_per_s": round(done["tokens_per_s"], 1), "train_seconds": done["train_seconds"],
        "seconds": seconds,  # wall clock: launch, data preparation, training, saving
        "seen_capital_recall": capital_recall(model, tok, world.seen_countries),
        "heldout_capital_recall": capital_recall(model, tok, world.heldout_countries),
        "samples": str(run_dir / "samples.jsonl"),
    }


def demo_processes() -> int:
    """Processes for the demo's pre-training: one single-threaded process per core (1, 2 or 4; the batch of 4
    must split evenly). Measured on 2 cores: 2 processes x 1 thread (DDP, gloo) 4,500 tokens/s against 3,500
    for 1 process x 2 threads, as single-threaded processes never wait on OpenMP threads (see docs/demo.md)."""
    wanted = os.environ.get("LMFORGE_DEMO_PROCESSES")  # e.g. 1 keeps it in this process
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise InputError(f"LMFORGE_DEMO_PROCESSES must be a positive whole number, not {wanted!r}")
        return int(wanted)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 4 if cores >= 4 else 2 if cores >= 2 else 1


def _pretrain_data_parallel(cfg, out: Path, n: int, resume: bool) -> dict[str, Any] | None:
    """Run the pre-training under torchrun as a user would (``torchrun -m lmforge pretrain cfg.yaml``); its
    summary, or None when the launch failed (the caller then continues in this process)."""
    import yaml

    cfg_path = out / "pretrain.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "lmforge", "pretrain", str(cfg_path), "threads=1", "--resume" if resume else "--overwrite"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"pretrain: {n} data-parallel processes x 1 thread (torchrun)", flush=True)
    try:
        code = subprocess.run(cmd, env=env).returncode
    except OSError as e:  # the interpreter could not be started at all
        code = f"an error ({e})"
    summary = Path(cfg.run.path) / "summary.json"
    if code == 0 and summary.exists():
        return json.loads(summary.read_text())
    print(f"pretrain: the data-parallel launch exited with {code}; continuing in this process", flush=True)
    return None


STAGES: dict[str, Callable[[Path, int, bool, dict[str, Any]], dict[str, Any]]] = {
    "pretrain": stage_pretrain,
    "sft": stage_sft,
    "reft": stage_reft,
    "feedback": stage_feedback,
    "reward_model": stage_reward_model,
    "dpo": stage_dpo,
    "ppo": stage_ppo,
    "report": stage_report,
}


def _moved(summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """A summary read back from a demo folder that was copied or moved: its recorded paths (the report, the
    samples) rebased from the folder it was written in to ``out``, so a resumed or ``--stages loop`` run prints
    and links this folder's files, not the original's. The old folder is the summary's ``out`` or, in summaries
    written before it was recorded, the one above the report's ``report/report.html``."""
    report = summary.get("stages", {}).get("report", {}).get("report")
    was = summary.get("out") or (str(Path(report).parents[1]) if isinstance(report, str) else None)
    new = str(out.resolve())
    if not was or was == new:
        return summary

    def rebase(v: Any) -> Any:
        if isinstance(v, str) and (v == was or v.startswith(was + "/")):
            return new + v[len(was):]
        if isinstance(v, dict):
            return {k: rebase(x) for k, x in v.items()}
        return [rebase(x) for x in v] if isinstance(v, list) else v

    return rebase(summary)


def demo(out: Path, seed: int = 0, resume: bool = False, only: list[str] | None = None, loop: int = 0
         ) -> dict[str, Any]:
    """``loop``: after the stages, that many rounds of ``lmforge loop`` from the demo's SFT model and reward model
    (:mod:`.demo_loop`; ``only=["loop"]`` runs no stage, on a demo folder that has them), written to the
    summary's ``loop.round_N``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary_path = out / "summary.json"
    summary: dict[str, Any] = {"stages": {}, "seconds_total": 0.0, "seed": seed}
    if (resume or loop) and summary_path.exists():  # the loop adds to the stages' summary
        summary = _moved(json.loads(summary_path.read_text()), out)
        summary.setdefault("stages", {})
    summary["out"] = str(out.resolve())
    ctx: dict[str, Any] = {}
    ran = False
    for name, fn in STAGES.items():
        if only and name not in only:
            continue
        ran = True
        ts = time.time()
        result = fn(out, seed, resume, ctx)
        result.setdefault("seconds", round(time.time() - ts, 2))
        summary["stages"][name] = result
        summary["seconds_total"] = round(time.time() - t0, 2)
        atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    if loop:
        from .demo_loop import stage_loop

        ts = time.time()
        summary["stages"]["loop"], summary["loop"] = stage_loop(out, seed, loop, summary.get("loop"))
        summary["stages"]["loop"]["seconds"] = round(time.time() - ts, 2)
        if ran or not summary.get("seconds_total"):  # --stages loop alone keeps the stages' total
            summary["seconds_total"] = round(time.time() - t0, 2)
        atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    return summary
