"""Where a reward model's judgement fails, by prompt kind: harmful / lookalike / fact / false premise / ...

    python bench/rm_kinds.py --rm runs/demo/reward_model/final [--rm OTHER ...] [--samples runs/demo/ppo/eval_samples.jsonl]
        [--sft runs/demo/sft/final]

1. ``candidates``: for ``--n`` prompts of each kind and split (held-out: the categories training never saw;
   train: the seen ones), every candidate type of the world's pool (``world.responses.candidate_pool``: the
   reference, refusals, compliance, wrong values, off-topic answers...), and every pair the noise-free simulated
   labeler orders. Reported per kind (``accuracy``), the reference against each other type (``reference_vs``: "the
   reward model prefers refusing a lookalike to answering it" reads as ``over_refusal: mirror_refusal 0.40``)
   and the four worst other ``better>worse`` type pairs.
2. ``--samples`` (a ``compare_to_sft`` ``eval_samples.jsonl``: a tuned policy's and the SFT model's answers to
   the same held-out prompts, with the noise-free labeler's scores): how often the reward model orders the two
   answers as the labeler does, per suite — the judgement PPO actually needs, on the model's own outputs.
3. ``--sft``: 4 samples (``--temperature``, 1 as in PPO) of the SFT model per prompt (``--n`` of each kind, ``--sample-split``,
   the train split by default: PPO's prompts), the pairs the labeler orders, split by whether each side refuses
   (``answer>refusal``: the labeler prefers the answer): what PPO's first rollouts ask of the reward model.

The pool holds every candidate type once per prompt (not the rm stage's random 4), so each contrast is measured
on every prompt; the numbers are not the rm stage's ``heldout_pair_accuracy``.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

KINDS = ("harmful", "over_refusal", "false_premise", "fact_qa", "dialogue", "instruction", "arithmetic")


def pool_groups(world, split: str, n: int, seed: int = 0):
    """(item, [(type, text)], noise-free overall) with the whole candidate pool of ``n`` prompts of each kind."""
    from lmforge.world import SimulatedLabeler
    from lmforge.world.responses import candidate_pool
    from lmforge.world.text import rng_for

    lab = SimulatedLabeler(world, 0.0, 0)
    out = []
    for kind in KINDS:
        for item in world.eval_prompts(split, kinds=[kind], n=n, seed=seed):
            seen, typed = set(), []
            for typ, text in candidate_pool(world, item, rng_for("rm-kinds", world.seed, seed, item["id"])):
                if text not in seen:
                    seen.add(text)
                    typed.append((typ, text))
            out.append((item, typed, [lab.overall(item, t) for _, t in typed]))
    return out


def by_kind(groups, scores) -> dict:
    """Per prompt kind: overall pair accuracy and per ``better>worse`` type (worst first)."""
    from rm_knowledge import ordered_pairs

    acc: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    typ: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
    for item, better, worse, ok in ordered_pairs(groups, scores):
        k = item["kind"]
        acc[k][0] += ok
        acc[k][1] += 1
        typ[k][f"{better}>{worse}"][0] += ok
        typ[k][f"{better}>{worse}"][1] += 1
    out = {}
    for k in KINDS:
        if k not in acc:
            continue
        rows = sorted(typ[k].items(), key=lambda kv: kv[1][0] / kv[1][1])
        ref = [(t, an) for t, an in rows if t.startswith("reference>")]
        rest = [(t, an) for t, an in rows if not t.startswith("reference>")]
        out[k] = {"accuracy": round(acc[k][0] / acc[k][1], 3), "pairs": acc[k][1],
                  "reference_vs": {t.split(">")[1]: round(a / n, 2) for t, (a, n) in ref},
                  "worst_other": {t: round(a / n, 2) for t, (a, n) in rest[:4]}}
    return out


@torch.no_grad()
def score_texts(path: str, rows: list[tuple[list[dict], str]]) -> list[float]:
    """Head-0 reward of (messages, response) rows through the rm stage's encoding and scoring path."""
    from lmforge.data.reward_encode import encode
    from lmforge.eval.reward_eval import score_encoded
    from lmforge.models.reward import load_reward_model

    model, tok, meta = load_reward_model(path)
    enc = [encode(tok, meta.input_format, m, t, meta.max_length, meta.suffix_ids) for m, t in rows]
    return score_encoded(model, enc, tok.pad_token_id)[:, 0].tolist()


def candidates_report(rm: str, groups) -> dict:
    flat = score_texts(rm, [(it["messages"], t) for it, typed, _ in groups for _, t in typed])
    scores, at = [], 0
    for _, typed, _ in groups:
        scores.append(flat[at:at + len(typed)])
        at += len(typed)
    return by_kind(groups, scores)


def samples_report(rm: str, samples: Path, world) -> dict:
    """RM-vs-labeler agreement on (policy, SFT) answer pairs the labeler orders, per suite (the records' prompts
    are rebuilt from the held-out mix by id: a dialogue record keeps only its last turn)."""
    from lmforge.eval.policy_compare import heldout_mix

    recs = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    per_suite = max(collections.Counter(r["suite"] for r in recs).values())
    messages = {it["id"]: it["messages"] for suite in heldout_mix(world, per_suite) for it in suite.items}
    recs = [r for r in recs if abs(r["policy_score"] - r["sft_score"]) > 1e-9 and r["policy"] != r["sft"]]
    flat = score_texts(rm, [(messages[r["id"]], t) for r in recs for t in (r["policy"], r["sft"])])
    by: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for i, r in enumerate(recs):
        d = (flat[2 * i] - flat[2 * i + 1]) * (1 if r["policy_score"] > r["sft_score"] else -1)
        for key in (r["suite"], "all"):
            by[key][0] += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
            by[key][1] += 1
    return {k: f"{a / n:.3f} ({n})" for k, (a, n) in sorted(by.items())}


def sample_groups(world, sft: str, split: str, n: int, k: int = 4, seed: int = 1, temperature: float = 1.0):
    """(item, [("refusal" | "answer", text)], noise-free overall) for ``k`` samples of the SFT model (the PPO
    stage's sampling: 48 new tokens, ``temperature``) on ``n`` prompts of each kind: what PPO's first rollouts
    hold."""
    from lmforge.generation import SamplingParams
    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.rollout.generate import generate
    from lmforge.world import SimulatedLabeler
    from lmforge.world.judge import refused

    lab = SimulatedLabeler(world, 0.0, 0)
    items = [it for kind in KINDS for it in world.eval_prompts(split, kinds=[kind], n=n, seed=seed)]
    tok, model = load_tokenizer(sft), load_causal_lm(sft).eval()
    params = SamplingParams(max_new_tokens=48, temperature=temperature, seed=seed, n=k)
    outs = generate(model, tok, [it["messages"] for it in items], params, batch_size=64)
    out = []
    for item, group in zip(items, outs):
        typed = [("refusal" if refused(r["text"]) else "answer", r["text"]) for r in group]
        out.append((item, typed, [lab.overall(item, t) for _, t in typed]))
    return out


def samples_by_kind(groups, scores) -> dict:
    """Per kind: pair accuracy on the labeler-ordered sample pairs, split by refusal / answer on each side."""
    from rm_knowledge import ordered_pairs

    by: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
    for item, better, worse, ok in ordered_pairs(groups, scores):
        for key in ("all", f"{better}>{worse}"):
            by[item["kind"]][key][0] += ok
            by[item["kind"]][key][1] += 1
    return {k: {t: f"{a / n:.2f} ({n})" for t, (a, n) in sorted(by[k].items())} for k in KINDS if k in by}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm", action="append", required=True, help="reward model folder (repeat to compare)")
    ap.add_argument("--n", type=int, default=40, help="prompts per kind and split")
    ap.add_argument("--splits", default="heldout,train")
    ap.add_argument("--samples", help="a compare_to_sft eval_samples.jsonl to score the RM on")
    ap.add_argument("--sft", help="an SFT model: also score the RM on its samples (4 per prompt)")
    ap.add_argument("--sample-split", default="train", help="the split of --sft's prompts (PPO trains on train)")
    ap.add_argument("--temperature", type=float, default=1.0, help="--sft's sampling temperature (PPO's: 1.0)")
    ap.add_argument("--world-seed", type=int, default=0)
    args = ap.parse_args()
    from lmforge.world import World

    torch.manual_seed(0)
    torch.set_num_threads(1)
    world = World(args.world_seed)
    groups = {s: pool_groups(world, s, args.n) for s in args.splits.split(",")}
    samples = sample_groups(world, args.sft, args.sample_split, args.n, temperature=args.temperature) if args.sft else None
    result = {}
    for rm in args.rm:
        result[rm] = {s: candidates_report(rm, g) for s, g in groups.items()}
        if args.samples:
            result[rm]["policy_vs_sft_samples"] = samples_report(rm, Path(args.samples), world)
        if samples:
            flat = score_texts(rm, [(it["messages"], t) for it, typed, _ in samples for _, t in typed])
            result[rm]["sft_samples"] = samples_by_kind(samples, [flat[4 * i:4 * i + 4] for i in range(len(samples))])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
