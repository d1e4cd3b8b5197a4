"""Where the demo reward model's errors are, and whether the pre-trained world model knows the facts it misses.

    python bench/rm_knowledge.py --base runs/demo/pretrain/final [--rm runs/demo/reward_model/final]

1. ``--rm``: accuracy of a trained reward model on the demo's held-out evaluation (200 held-out prompts x 4 world
   candidates, the noise-free simulated labeler's order, ties not scored), broken down by the candidate types of
   each pair (``reference>wrong_entity``: the reference should beat an answer naming another entity).
2. The same pairs ordered by the base language model's mean token log-probability of the response
   (transcript input), a zero-training "reader" of what pre-training stored.
3. Reference vs wrong-entity answers to every fact question: the base model's mean log-probability, against a
   linear probe (pairwise logistic regression, L2) on the base model's hidden state at the last token — the
   position a sequence-classification reward head reads — fitted on train-split facts, tested on held-out facts.
"""
from __future__ import annotations

import argparse
import collections
import json
import random

import torch


def candidate_groups(world, n: int = 200, k: int = 4, seed: int = 0, split: str = "heldout"):
    """(item, [(type, text)], noise-free overall) for the demo's held-out evaluation (same candidates); with
    ``split="train"`` the same draw on train-split prompts."""
    from lmforge.world import SimulatedLabeler
    from lmforge.world.responses import typed_candidates
    from lmforge.world.text import rng_for

    lab = SimulatedLabeler(world, 0.0, 0)
    out = []
    for item in world.eval_prompts(split, n=n, seed=seed):
        typed = typed_candidates(world, item, k, rng_for("rm-candidates", world.seed, seed, item["id"]))
        out.append((item, typed, [lab.overall(item, t) for _, t in typed]))
    return out


def ordered_pairs(groups, scores):
    """``(item, better type, worse type, 1 / 0.5 / 0)`` for every pair the noise-free labeler orders (equal
    overall scores skipped); a tie of rewards counts half."""
    for (item, typed, ov), sc in zip(groups, scores):
        for i in range(len(typed)):
            for j in range(len(typed)):
                if ov[i] > ov[j] + 1e-9:
                    yield item, typed[i][0], typed[j][0], 1.0 if sc[i] > sc[j] else 0.5 if sc[i] == sc[j] else 0.0


def by_type_pair(groups, scores) -> dict:
    """Overall and per (better type > worse type) accuracy."""
    by: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    right = total = 0.0
    for _, better, worse, ok in ordered_pairs(groups, scores):
        by[f"{better}>{worse}"][0] += ok
        by[f"{better}>{worse}"][1] += 1
        right, total = right + ok, total + 1
    rows = sorted(by.items(), key=lambda kv: -(kv[1][1] - kv[1][0]))
    return {"accuracy": round(right / total, 4), "pairs": int(total),
            "worst": {k: f"{a:g}/{n}" for k, (a, n) in rows[:12]}}


@torch.no_grad()
def lm_read(lm, tok, item, text):
    """(mean log-prob of the response tokens, hidden state of every layer at the last token)."""
    from lmforge.data.reward_encode import encode_parts

    p, r = encode_parts(tok, "transcript", item["messages"], text)
    ids = torch.tensor([p + r])
    out = lm(ids, output_hidden_states=True)
    lp = torch.log_softmax(out.logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0][len(p) - 1:]
    return float(lp.mean()), [h[0, -1] for h in out.hidden_states[1:]]


def rm_scores(path, groups):
    """The reward (column 0) of every candidate, through the one scoring path
    (:class:`lmforge.models.reward_scores.RewardScorer`: scalar heads, verdicts, per-criterion verdicts)."""
    from lmforge.models.reward_scores import RewardScorer

    scorer = RewardScorer(path)
    prompts = [it["messages"] for it, typed, _ in groups for _ in typed]
    texts = [t for _, typed, _ in groups for _, t in typed]
    flat = scorer.score(prompts, texts)[:, 0].tolist()
    out, at = [], 0
    for _, typed, _ in groups:
        out.append(flat[at:at + len(typed)])
        at += len(typed)
    return out


def fact_pairs(world, split: str, seed: int = 0):
    """(item, reference, the same answer naming a wrong value) for every fact question of a split."""
    from lmforge.world.responses import _answer, _entity, wrong_value

    rng = random.Random(seed)
    out = []
    for item in world.eval_prompts(split, kinds=["fact_qa"], seed=seed):
        wrong = _answer(_entity(world, item["meta"]), item["meta"]["attribute"], wrong_value(world, item, rng))
        out.append((item, item["reference"], wrong))
    return out


def probe(lm, tok, world) -> dict:
    def feats(pairs):
        """(share ordered right by mean log-prob, per layer [pairs, hidden] of last-token state differences)."""
        lp_right, per_pair = 0, []
        for item, good, bad in pairs:
            (lg, hg), (lb, hb) = lm_read(lm, tok, item, good), lm_read(lm, tok, item, bad)
            lp_right += lg > lb
            per_pair.append([a - b for a, b in zip(hg, hb)])
        return lp_right / len(pairs), [torch.stack(layer) for layer in zip(*per_pair)]

    tr, te = fact_pairs(world, "train"), fact_pairs(world, "heldout")
    lp_tr, x_tr = feats(tr)
    lp_te, x_te = feats(te)
    out = {"train_pairs": len(tr), "heldout_pairs": len(te), "lm_mean_logprob": {"train": round(lp_tr, 3),
                                                                                 "heldout": round(lp_te, 3)}}
    for layer, (a, b) in enumerate(zip(x_tr, x_te), start=1):
        sd = a.std(0) + 1e-6
        xs = torch.cat([a / sd, -a / sd])
        ys = torch.cat([torch.ones(len(a)), torch.zeros(len(a))])
        w = torch.zeros(a.shape[1], requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=200)

        def closure(opt=opt, xs=xs, ys=ys, w=w):  # bound now: LBFGS calls it inside this iteration
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w, ys) + 1e-2 * w.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        out[f"last_token_probe_layer_{layer}"] = {"train": round(float(((a / sd) @ w > 0).float().mean()), 3),
                                                  "heldout": round(float(((b / sd) @ w > 0).float().mean()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the pre-trained world model (runs/demo/pretrain/final)")
    ap.add_argument("--rm", help="a trained reward model folder to break down")
    ap.add_argument("--world-seed", type=int, default=0)
    args = ap.parse_args()
    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.world import World

    torch.manual_seed(0)
    world = World(args.world_seed)
    groups = candidate_groups(world)
    tok, lm = load_tokenizer(args.base), load_causal_lm(args.base).eval()
    result = {}
    if args.rm:
        result["reward_model"] = by_type_pair(groups, rm_scores(args.rm, groups))
    result["base_lm_mean_logprob"] = by_type_pair(groups, [[lm_read(lm, tok, it, t)[0] for _, t in typed]
                                                          for it, typed, _ in groups])
    result["reference_vs_wrong_value"] = probe(lm, tok, world)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
