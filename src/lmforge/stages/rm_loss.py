"""The reward-model stage's loss: one micro-batch of prompt groups -> the summed per-record loss and its parts.

Each kind of feedback is learned as it was given (:mod:`lmforge.algos.reward_losses`), on the model's rewards —
a scalar head's outputs or a generative verifier's verdict log-odds, the same tensors to every loss:

- pairs / rankings: ``loss.comparisons=bradley_terry`` (Bradley–Terry / InstructGPT's K-wise pairs or listwise
  Plackett–Luce on the rewards) or ``verdicts`` (each comparison as a yes for the better and a no for the worse
  response: pointwise targets, the zero of the reward means "undecided");
- Likert ratings: regression (scalar heads), or for the generative head a yes/no target by
  ``loss.likert.threshold`` (the stage turns them into binary records before batching);
- binary good/bad labels: logistic regression on the reward, or on their criterion's head (for the generative
  head, the yes/no cross-entropy of the two answer tokens; per-criterion verdicts: of that criterion's question);
- a reward-centring term, and for the generative head an optional auxiliary next-token loss on the response
  tokens (``model.lm_loss_weight``).

Pairwise verdicts (``verdict.mode: pairwise``) have their own loss, :func:`lmforge.stages.rm_pairwise.
make_pairwise_loss`.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from ..algos.reward_losses import (
    bradley_terry,
    centring,
    comparable,
    lm_nll,
    logistic,
    pair_verdicts,
    plackett_luce,
    ranking_pairs,
    ranking_verdicts,
    regression,
)
from ..config import Section
from ..engine import LossOutput
from ..models.reward_scores import forward_scores, generative_scores


class KindWeights(Section):
    pair: float = Field(1.0, ge=0)
    ranking: float = Field(1.0, ge=0)
    likert: float = Field(1.0, ge=0)
    binary: float = Field(1.0, ge=0)


class LikertSection(Section):
    mode: Literal["sum", "heads", "both"] = Field("both", description="sum: the reward regresses on the "
                                                  "weighted sum of the ratings; heads: a head per criterion; both")
    weights: dict[str, float] | None = Field(None, description="criterion weights of the sum; null: equal")
    scale: float = Field(2.0, gt=0, description="ratings map linearly from their scale to [-scale, scale]")
    threshold: float = Field(0.5, ge=0, le=1, description="generative head: a rating is a yes when its "
                             "weighted mean is at least lo + threshold x (hi - lo) of its scale, else a no")


class LossSection(Section):
    ranking: Literal["pairs", "plackett_luce"] = Field("pairs", description="pairs: InstructGPT's C(K,2) "
                                                       "pairs weighted 1/C(K,2); plackett_luce: listwise")
    comparisons: Literal["bradley_terry", "verdicts"] = Field(
        "bradley_terry", description="pairs and rankings: bradley_terry on the two rewards (loss.ranking for "
        "rankings), or verdicts: yes for the better, no for the worse response of each comparison")
    margin: float = Field(0.0, ge=0, description="Llama 2 margin: subtract margin x the pair's 'margin' field")
    centring: float = Field(0.01, ge=0, description="weight of the per-prompt (mean reward)^2 term")
    heads: bool = Field(True, description="a head per criterion found in the training data (scalar head)")
    weights: KindWeights = KindWeights()
    likert: LikertSection = LikertSection()

    @model_validator(mode="after")
    def _heads(self) -> LossSection:
        if not self.heads and self.likert.mode != "sum":
            raise ValueError("loss.heads=false leaves no criterion heads: set loss.likert.mode=sum")
        return self


LOSS_PARTS = ("loss_pair", "loss_ranking", "loss_likert", "loss_binary")


def make_loss(cfg: LossSection, chunk_tokens: int | None = None, generative: bool = False,
              lm_loss_weight: float = 0.0):
    rank_fn = ranking_pairs if cfg.ranking == "pairs" else plackett_luce
    verdicts = cfg.comparisons == "verdicts"
    kw = cfg.weights
    with_lm = generative and lm_loss_weight > 0

    def loss_fn(model, batch) -> LossOutput:
        if generative:
            s, nll, n_tok = generative_scores(model, batch, chunk_tokens, lm_loss=with_lm)
        else:
            s = forward_scores(model, batch, chunk_tokens)
        total = s.new_zeros(())
        # every part is always reported (0 when a micro-batch has none of its kind): data-parallel processes
        # all-reduce one vector of metrics, so each must send the same keys whatever kinds its records are
        m: dict[str, torch.Tensor | float] = {k: 0.0 for k in LOSS_PARTS}
        if cfg.centring:
            m["centring"] = 0.0
        right = s.new_zeros(())
        if batch["pair_c"].numel():
            h = batch["pair_h"]
            rc, rr = s[batch["pair_c"], h], s[batch["pair_r"], h]
            margin = cfg.margin * batch["pair_m"] if cfg.margin else None
            per = pair_verdicts(rc, rr) if verdicts else bradley_terry(rc, rr, margin)
            part = (batch["pair_w"] * per).sum()
            total = total + kw.pair * part
            m["loss_pair"] = part.detach()
            right = right + (batch["pair_w"] * (rc > rr).float()).sum().detach()
        if batch["rank_idx"].numel():
            ranked = s[batch["rank_idx"], batch["rank_h"].unsqueeze(-1)]
            fn = ranking_verdicts if verdicts else rank_fn
            part = (batch["rank_w"] * fn(ranked, batch["rank_tie"], batch["rank_valid"])).sum()
            total = total + kw.ranking * part
            m["loss_ranking"] = part.detach()
            right = right + (batch["rank_w"] * _ranking_right(ranked.detach(), batch["rank_tie"],
                                                              batch["rank_valid"])).sum()
        if batch["lik_idx"].numel():
            part = (batch["lik_w"] * regression(s[batch["lik_idx"]], batch["lik_t"], batch["lik_m"])).sum()
            total = total + kw.likert * part
            m["loss_likert"] = part.detach()
        if batch["bin_idx"].numel():
            part = (batch["bin_w"] * logistic(s[batch["bin_idx"], batch["bin_h"]], batch["bin_y"])).sum()
            total = total + kw.binary * part
            m["loss_binary"] = part.detach()
        if cfg.centring:
            part = centring(s[batch["cent_idx"], 0], batch["cent_valid"]).sum()
            total = total + cfg.centring * part
            m["centring"] = part.detach()
        if with_lm:  # a per-token mean for this micro-batch, counted once per record like the other parts
            part = lm_nll(nll, n_tok) * float(batch["count"])
            total = total + lm_loss_weight * part
            m["loss_lm"] = part.detach()
        m["ordered_right"] = right
        return LossOutput(total, float(batch["count"]), int(batch["tokens"]), m)

    return loss_fn


def _ranking_right(ranked: torch.Tensor, tie: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per ranking: the fraction of its comparable pairs the rewards order correctly."""
    mask = comparable(tie, valid)
    ok = (ranked.unsqueeze(-1) > ranked.unsqueeze(-2)) & mask
    return ok.sum((-1, -2)).float() / mask.sum((-1, -2)).clamp(min=1).float()
