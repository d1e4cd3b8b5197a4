"""Measure the demo's reward-model recipe (``lmforge.stages.rm.demo_config``) on the built-in world.

Training data stands in for the demo's feedback export: 3 noisy simulated labelers (noise 0.5) label K=4 world
candidate responses for 300 train-split prompts. ``--data ranking`` writes their rankings only;
``--data export`` runs the real export rules (:func:`lmforge.feedback.export.build_records`: rankings, Borda
pairs, Likert medians, binary) on the same labels; ``--train FILE`` trains on an existing feedback file instead
(e.g. the demo's own export, ``runs/demo/feedback/preferences.jsonl``). Held-out:
:func:`lmforge.stages.rm.world_heldout_eval`; ``--breakdown`` adds the accuracy per pair of candidate types
(``reference>hedge``) from ``bench/rm_knowledge.py``.

    python bench/rm_demo.py --base runs/demo/pretrain/final --seeds 0 1 [--data export] [KEY=VALUE ...]
    python bench/rm_demo.py --base runs/demo/pretrain/final --train runs/demo/feedback/preferences.jsonl \
        --n-eval 200 --breakdown [KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path


def world_train_feedback(world, n_prompts: int = 300, k: int = 4, labelers: int = 3, noise: float = 0.5,
                         seed: int = 0) -> list:
    """Rankings like the demo's feedback export: ``labelers`` noisy simulated labelers each rank the same
    ``k`` world candidates of ``n_prompts`` train-split prompts (source ``simulated:sim-<i>``)."""
    from lmforge.stages.rm import world_rankings

    out = []
    for i in range(labelers):
        out += world_rankings(world, "train", n_prompts, k, seed, noise=noise, labeler_seed=seed * 100 + i,
                              source=f"simulated:sim-{i + 1}")
    return out


def export_records(world, n_prompts: int, k: int, labelers: int, noise: float, seed: int):
    from lmforge.feedback.export import build_records
    from lmforge.feedback.labels import LabelRecord
    from lmforge.world import SimulatedLabeler
    from lmforge.world.text import rng_for

    now = datetime.now(timezone.utc)
    labs = [SimulatedLabeler(world, noise=noise, seed=seed * 100 + i) for i in range(labelers)]
    recs = []
    for n, item in enumerate(world.eval_prompts("train", n=n_prompts, seed=seed)):
        responses = world.candidate_responses(item, k, rng_for("rm-candidates", world.seed, seed, item["id"]))
        for i, lab in enumerate(labs):
            out = lab.label(item, responses)
            recs.append(LabelRecord(
                label_id=len(recs), assignment_id=len(recs), batch="demo", item_id=n, item_key=item["id"],
                prompt=item["messages"], item_meta={"split": "train", "kind": item["kind"]}, responses=responses,
                labeler=f"sim-{i + 1}", labeler_kind="simulated", ranking=out["ranking"], ties=[],
                scores=out["scores"], unsafe=out["unsafe"], comment=None, rewrite=None, revision=1,
                created_at=now, updated_at=now, opened_at=None))
    records, report = build_records(recs)
    return records, report.as_dict()


def breakdown(world, rm_dir: Path, n_eval: int, k: int, seed: int) -> dict:
    """Accuracy per (better type > worse type) on the same held-out candidates as ``world_heldout_eval``."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from rm_knowledge import by_type_pair, candidate_groups, rm_scores

    groups = candidate_groups(world, n_eval, k, seed)
    return by_type_pair(groups, rm_scores(str(rm_dir), groups))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the pre-trained world model folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--world-seed", type=int, default=0, help="the world the base model was trained on")
    ap.add_argument("--data", choices=["ranking", "export"], default="ranking")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-eval", type=int, default=300)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--noise", type=float, default=0.5, help="the simulated labelers' noise")
    ap.add_argument("--train", help="train on this feedback file instead of generated rankings")
    ap.add_argument("--breakdown", action="store_true", help="also report accuracy per pair of candidate types")
    ap.add_argument("--out", default="runs/bench_rm_demo")
    ap.add_argument("overrides", nargs="*", help="RMConfig overrides applied to demo_config")
    args = ap.parse_intermixed_args()

    from lmforge.config import load_config
    from lmforge.data.preference import write_feedback
    from lmforge.stages.rm import RMConfig, demo_config, train_rm, world_heldout_eval
    from lmforge.world import World

    world = World(args.world_seed)
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        data = out / f"data-{args.data}-{seed}"
        data.mkdir(parents=True, exist_ok=True)
        train = args.train or str(data / "train.jsonl")
        if args.train:  # the rm stage reads (and validates) the file itself
            rep = {"from": args.train}
        elif args.data == "ranking":
            records, rep = world_train_feedback(world, args.n_train, args.k, 3, args.noise, seed=seed), {}
        else:
            records, rep = export_records(world, args.n_train, args.k, 3, args.noise, seed)
        if not args.train:
            write_feedback(train, records)
        write_feedback(data / "eval.jsonl", world_heldout_eval(world, args.n_eval, args.k, seed=seed))
        base = demo_config(args.base, train, str(data / "eval.jsonl"), str(out))
        cfg = load_config(RMConfig, None, [f"run.name=rm-{args.data}-{seed}", f"train.seed={seed}", *args.overrides],
                          base=base.model_dump(mode="json"))
        t0, c0 = time.time(), time.process_time()
        s = train_rm(cfg, overwrite=True)
        rows.append({"seed": seed, "data": args.data, "heldout_pair_accuracy": round(s["heldout_pair_accuracy"], 4),
                     "heldout_pairs": s["heldout_pairs"], "by_source": s["accuracy_by_source"],
                     "ece": s["calibration_ece"], "steps": s["steps"], "train_seconds": s["train_seconds"],
                     "seconds": s["seconds"], "cpu_seconds": round(time.process_time() - c0, 1),
                     "wall": round(time.time() - t0, 1), "load": round(os.getloadavg()[0], 2), "export": rep,
                     "overrides": args.overrides})
        if args.breakdown:
            rows[-1]["by_type_pair"] = breakdown(world, cfg.run.path / "final", args.n_eval, args.k, seed)
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
