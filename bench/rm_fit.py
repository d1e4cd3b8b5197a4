"""Does a reward model fit its own training distribution? Accuracy by pair category on train- or held-out-split prompts.

    python bench/rm_fit.py --rm runs/demo/reward_model/final --split train
    python bench/rm_fit.py --rm runs/demo/reward_model/final --split heldout

The same evaluation as the demo's (``n`` prompts of the split, K world candidates drawn as
:func:`lmforge.stages.rm.world_rankings` draws them, the noise-free simulated labeler's order, equal scores not
scored), split into *knowledge* pairs (one side names a wrong value, a wrong correction, accepts or ignores a false
premise, or lists too few entities: telling them apart needs the facts) and *format* pairs (everything else:
hedges, repetition, rambling, truncation, refusals), each per prompt kind. On the train split the prompts are the
kind the reward model was trained on (many of the same prompts), so a low figure there is under-fitting, not a
failure to generalise to held-out entities.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

KNOWLEDGE = ("wrong_entity", "wrong_attribute", "wrong_correction", "accepts_premise", "ignores_premise", "too_few")


def by_category(groups, scores) -> dict[str, dict[str, float]]:
    from rm_knowledge import ordered_pairs

    acc: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for item, better, worse, ok in ordered_pairs(groups, scores):
        cat = "knowledge" if better in KNOWLEDGE or worse in KNOWLEDGE else "format"
        for key in ("all", cat, f"{cat}:{item['kind']}"):
            acc[key][0] += ok
            acc[key][1] += 1
    return {k: {"accuracy": round(a / n, 3), "pairs": n} for k, (a, n) in sorted(acc.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm", required=True, help="a trained reward-model folder")
    ap.add_argument("--split", choices=["train", "heldout"], default="heldout")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world-seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from lmforge.world import World
    from rm_knowledge import candidate_groups, rm_scores

    groups = candidate_groups(World(args.world_seed), args.n, args.k, args.seed, args.split)
    print(json.dumps({"rm": args.rm, "split": args.split, **by_category(groups, rm_scores(args.rm, groups))},
                     indent=1))


if __name__ == "__main__":
    main()
