"""The rm recipe's pairwise-verdict pieces (``model.verdict.mode: pairwise``): comparisons -> ordered-pair
sequences -> micro-batches, the loss, the held-out evaluation.

Training (Mahan et al. 2024): every comparison a record states — a pair, or a ranking's comparable pairs
(InstructGPT's C(K,2), each weighted 1/C(K,2) so a ranking counts once; ties skipped) — is read in both
positions, the better response once as A and once as B, and each reading is a next-token target:

    loss = ½ [-log σ(ℓ(x; u, v)) - log σ(-ℓ(x; v, u))]       (u better than v)

which is :func:`lmforge.algos.reward_losses.pair_verdicts` of the two readings (the cross-entropy of the
A / B answer token in each order; a judge stuck on one position pays for it in the other). Good/bad labels and
Likert ratings carry no comparison of two responses: they are skipped and counted.

Sequences are :func:`lmforge.models.verdict_pairwise.pair_encoded` trunks with branches, so the packed path
(prompt once per group, each first response once, the second responses as branches) and the padded path (a row
per ordered pair) give the same log-odds; ``check_sharing`` is not run (pairwise packing is checked by the
tests), ``model.share_prompt=false`` takes the padded path.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from ..algos.pairwise import both_orders
from ..algos.reward_losses import pair_verdicts
from ..data.reward_data import DataReport, Group
from ..data.reward_encode import Encoded, collate
from ..data.reward_pack import pack
from ..data.sampler import EpochSampler
from ..engine import LossOutput
from ..errors import InputError
from ..eval.reward_eval import EvalPair, eval_pairs, pair_accuracy
from ..models.reward_scores import branch_scores, generative_scores
from ..models.verdict import Verdict
from ..models.verdict_pairwise import pair_encoded, pair_pieces


@dataclass
class PairGroup:
    """One prompt's ordered-pair sequences and its comparisons (better, worse, weight) as branch indices."""
    encoded: list[Encoded] = field(default_factory=list)
    where: dict[tuple[int, int], int] = field(default_factory=dict)  # (first, second) -> branch index
    comparisons: list[tuple[int, int, float]] = field(default_factory=list)  # (ℓ(u,v), ℓ(v,u), weight)
    records: float = 0.0


def comparisons(g: Group) -> tuple[list[tuple[int, int, float]], float]:
    """(better, worse, weight) of a group's pairs and rankings (a ranking's comparable pairs share its weight),
    and the records they come from (their summed weights)."""
    out: list[tuple[int, int, float]] = []
    records = 0.0
    for c, r, _m, w, _h in g.pairs:
        out.append((c, r, w))
        records += w
    for order, ties, w, _h in g.rankings:
        pairs = [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))
                 if ties[i] != ties[j] and order[i] != order[j]]
        out += [(u, v, w / len(pairs)) for u, v in pairs]
        records += w if pairs else 0.0
    return out, records


def encode_pairs(tokenizer, verdict: Verdict, g: Group, wanted: list[tuple[int, int]], max_length: int,
                 report: DataReport | None = None) -> PairGroup:
    """The sequences reading every (better, worse) of ``wanted`` in both orders."""
    ordered: dict[int, list[int]] = {}
    for u, v in wanted:
        for i, j in ((u, v), (v, u)):
            if j not in ordered.setdefault(i, []):
                ordered[i].append(j)
    p, resp, cut = pair_pieces(tokenizer, verdict, g.prompt, g.responses, max_length)
    if cut and report is not None:
        report.add("pairwise sequences truncated to max_length")
    pg = PairGroup()
    at = 0
    for i, js, e in pair_encoded(verdict, p, resp, ordered, cut):
        pg.encoded.append(e)
        for j in js:
            pg.where[(i, j)] = at
            at += 1
    return pg


def pair_groups(groups: list[Group], tokenizer, verdict: Verdict, max_length: int, report: DataReport
                ) -> list[PairGroup]:
    """Training groups as pairwise sequences (groups with no comparison are dropped and counted)."""
    out = []
    for g in groups:
        cmp, records = comparisons(g)
        if not cmp:
            report.add("pairwise: prompts without a comparison")
            continue
        pg = encode_pairs(tokenizer, verdict, g, [(u, v) for u, v, _ in cmp], max_length, report)
        pg.comparisons = [(pg.where[(u, v)], pg.where[(v, u)], w) for u, v, w in cmp]
        pg.records = records
        out.append(pg)
    report.add("pairwise: comparisons", sum(len(pg.comparisons) for pg in out))
    return out


def collate_pairs(groups: list[PairGroup], pad_id: int, row_tokens: int | None = None) -> dict[str, Any]:
    """One micro-batch: the groups' sequences packed (``row_tokens``) or padded, and the comparisons as
    indices into the batch's branch scores."""
    batch = pack([g.encoded for g in groups], pad_id, row_tokens) if row_tokens else collate(
        [e for g in groups for e in g.encoded], pad_id)
    if not row_tokens:
        batch["tokens"] = int(batch["attention_mask"].sum())
    ab, ba, w = [], [], []
    off = 0
    for g in groups:
        ab += [off + a for a, _, _ in g.comparisons]
        ba += [off + b for _, b, _ in g.comparisons]
        w += [x for *_, x in g.comparisons]
        off += sum(len(e.branches) for e in g.encoded)
    batch["cmp_ab"], batch["cmp_ba"] = torch.tensor(ab, dtype=torch.long), torch.tensor(ba, dtype=torch.long)
    batch["cmp_w"] = torch.tensor(w, dtype=torch.float32)
    batch["count"] = sum(g.records for g in groups)
    return batch


class PairBatches:
    """Micro-batches of ``micro`` whole prompt groups, as :class:`lmforge.data.reward_data.GroupBatches`."""

    def __init__(self, groups: list[PairGroup], micro: int, pad_id: int, rank: int = 0, world: int = 1,
                 seed: int = 0, row_tokens: int | None = None):
        try:
            self.sampler = EpochSampler(len(groups), micro, rank, world, seed)
        except ValueError:
            raise InputError(f"only {len(groups)} training prompts with a comparison; need at least "
                             f"{micro * world} (one micro-batch per process)", field="data.train") from None
        self.groups, self.pad_id, self.row_tokens = groups, pad_id, row_tokens

    def next_batch(self) -> dict[str, Any]:
        return collate_pairs([self.groups[i] for i in self.sampler.next_indices()], self.pad_id, self.row_tokens)

    def epochs(self) -> float:
        return self.sampler.epochs()

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def make_pairwise_loss(chunk_tokens: int | None = None):
    """Per comparison ``w · pair_verdicts(ℓ(u, v), ℓ(v, u))`` (the module's equation), summed."""

    def loss_fn(model, batch) -> LossOutput:
        s = generative_scores(model, batch, chunk_tokens)[0][:, 0]
        ab, ba, w = s[batch["cmp_ab"]], s[batch["cmp_ba"]], batch["cmp_w"]
        loss = (w * pair_verdicts(ab, ba)).sum()
        right = (w * (both_orders(ab, ba) > 0).float()).sum().detach()
        # position bias: how often the judge answers A, over all readings (0.5 for an unbiased judge)
        says_a = ((ab > 0).float() + (ba > 0).float()).sum().detach() / 2
        return LossOutput(loss, float(batch["count"]), int(batch["tokens"]),
                          {"loss_pairwise": loss.detach(), "ordered_right": right,
                           "answers_a": (says_a, float(len(ab)))})

    return loss_fn


def pair_margins(model, tokenizer, verdict: Verdict, groups: list[Group], pairs: list[EvalPair],
                 max_length: int, batch_size: int = 32, chunk_tokens: int | None = None) -> list[float]:
    """The both-orders log-odds ``r(better ≻ worse)`` of every held-out pair."""
    by_group: dict[int, list[EvalPair]] = {}
    for p in pairs:
        by_group.setdefault(p.group, []).append(p)
    coded, rows, at = {}, [], 0
    for gi, ps in by_group.items():
        pg = encode_pairs(tokenizer, verdict, groups[gi], [(p.better, p.worse) for p in ps], max_length)
        coded[gi] = (pg, at)
        rows += pg.encoded
        at += sum(len(e.branches) for e in pg.encoded)
    flat = branch_scores(model, rows, tokenizer.pad_token_id, batch_size, chunk_tokens)
    out = []
    for p in pairs:
        pg, off = coded[p.group]
        out.append(float(both_orders(flat[off + pg.where[(p.better, p.worse)]],
                                     flat[off + pg.where[(p.worse, p.better)]])))
    return out


def make_pairwise_evaluate(held: list[Group], tokenizer, verdict: Verdict, max_length: int, batch_size: int,
                           chunk_tokens: int | None, bins: int, last: dict[str, Any]):
    """Held-out accuracy of the both-orders verdict (every held-out pair, criterion pairs included, read with
    the one overall question), with the same report as the pointwise heads."""
    pairs = eval_pairs(held)

    def evaluate(model, step: int) -> dict[str, float]:
        if not pairs:
            return {}
        d = pair_margins(model, tokenizer, verdict, held, pairs, max_length, batch_size, chunk_tokens)
        result = pair_accuracy(pairs, None, [], bins, diffs=d)
        last.clear()
        last.update(result)
        flat = {"heldout_pair_accuracy": result["heldout_pair_accuracy"], "heldout_pairs": result["heldout_pairs"],
                "calibration_ece": result["calibration"]["ece"],
                "knowledge_pair_accuracy": result["knowledge_pair_accuracy"],
                "format_pair_accuracy": result["format_pair_accuracy"]}
        return {k: v for k, v in flat.items() if v is not None}

    return evaluate


def pairwise_stats(model, groups: list[PairGroup], pad_id: int, n: int, seed: int, batch_size: int,
                   chunk_tokens: int | None) -> dict[str, float]:
    """Mean (0 by antisymmetry) and std of the both-orders log-odds over a seeded sample of training
    comparisons, in both directions."""
    sample = random.Random(seed).sample(groups, min(len(groups), max(1, n // 4)))
    rows = [e for g in sample for e in g.encoded]
    flat = branch_scores(model, rows, pad_id, batch_size, chunk_tokens)
    vals, off = [], 0
    for g in sample:
        for a, b, _ in g.comparisons:
            r = float(both_orders(flat[off + a], flat[off + b]))
            vals += [r, -r]
        off += sum(len(e.branches) for e in g.encoded)
    t = torch.tensor(vals)
    std = float(t.std()) if len(t) > 1 else 1.0
    return {"reward_mean": 0.0, "reward_std": std if std > 0 else 1.0, "responses": len(vals)}
