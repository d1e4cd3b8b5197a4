"""The DPO stage's loss: per-response log-probs of a (prompt-shared) batch, and the per-pair (or, for KTO,
per-example) loss of the configured preference loss with the metrics the engine logs.

The losses themselves are pure functions in :mod:`lmforge.algos.preference_losses`; this module turns a batch
into their inputs (policy log-probs, reference log-probs, lengths) and their outputs into an engine
:class:`~lmforge.engine.LossOutput` (a weighted sum plus the weight sum: the engine normalises globally).
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from ..algos.preference_losses import implicit_rewards, kto, kto_reference_point, preference_loss
from ..engine import LossOutput
from ..models.logprobs import token_logprobs

if TYPE_CHECKING:
    from .dpo import LossSection


def sequence_logprobs(model, batch: dict[str, Any], chunk_tokens: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``log π(y|x)`` summed over the response tokens ``[2B]`` (chosen, then rejected), and the response token
    counts; a prompt-shared batch (:func:`lmforge.data.dpo_data.collate_shared`) runs one row per pair."""
    if "part" in batch:
        from ..data.reward_pack import additive, prefix_mask

        dtype = next(model.parameters()).dtype
        part = batch["part"]
        mask = additive(prefix_mask(batch["pack_seg"], part.clamp(min=0)), dtype)
        lp = token_logprobs(model, batch["input_ids"], batch["labels"], attention_mask=mask,
                            position_ids=batch["position_ids"], chunk_tokens=chunk_tokens)
        scored = batch["labels"] >= 0
        sums = torch.cat([(lp * (part == k)).sum(-1) for k in (1, 2)])
        counts = torch.cat([(scored & (part == k)).sum(-1) for k in (1, 2)])
        return sums, counts
    lp = token_logprobs(model, batch["input_ids"], batch["labels"], attention_mask=batch["attention_mask"],
                        chunk_tokens=chunk_tokens)
    return lp.sum(-1), (batch["labels"] >= 0).sum(-1)


def _kwargs(fn, loss: LossSection, lengths: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, Any]:
    names = inspect.signature(fn).parameters
    kw: dict[str, Any] = {}
    for key in ("beta", "gamma", "alpha"):
        if key in names and getattr(loss, key) is not None:
            kw[key] = getattr(loss, key)
    if "label_smoothing" in names:
        kw["label_smoothing"] = loss.label_smoothing
    for key, value in zip(("chosen_len", "rejected_len"), lengths or ()):
        if key in names:
            kw[key] = value
    return kw


def pair_terms(loss: LossSection, logp: torch.Tensor, n_tok: torch.Tensor, ref: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair loss, chosen reward, rejected reward) from ``[2B]`` policy log-probs (chosen first) and
    ``[B, 2]`` reference log-probs; ORPO / SimPO get per-token averages, IPO and RPO the response lengths (RPO
    none when ``length_normalize`` already made them per-token means)."""
    spec = preference_loss(loss.name)
    b = logp.shape[0] // 2
    c, r = logp[:b], logp[b:]
    nc, nr = n_tok[:b].clamp(min=1).to(logp.dtype), n_tok[b:].clamp(min=1).to(logp.dtype)
    beta = loss.beta if loss.beta is not None else inspect.signature(spec.fn).parameters["beta"].default
    if spec.average:  # ORPO / SimPO: average per-token log-probs, no reference
        per = spec.fn(c / nc, r / nr, **_kwargs(spec.fn, loss, None))
        rc, rr = implicit_rewards(c / nc, 0.0, beta), implicit_rewards(r / nr, 0.0, beta)
    else:
        ref_c, ref_r = ref[:, 0].to(logp.dtype), ref[:, 1].to(logp.dtype)
        lengths: tuple | None = (nc, nr)
        if loss.length_normalize and loss.name != "ipo":  # IPO takes the lengths itself
            c, r, ref_c, ref_r = c / nc, r / nr, ref_c / nc, ref_r / nr
            lengths = None
        per = spec.fn(c, r, ref_c, ref_r, **_kwargs(spec.fn, loss, lengths))
        rc, rr = implicit_rewards(c, ref_c, beta), implicit_rewards(r, ref_r, beta)
    return per, rc, rr


def kto_terms(loss: LossSection, logp: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-example KTO loss, implicit reward, z0) from ``[2B]`` policy log-probs (the examples, then their
    mismatched rows) and ``[B, 2]`` reference log-probs; z0 is this batch's (all processes') mean mismatched
    log-ratio, clamped at 0 (:func:`lmforge.algos.preference_losses.kto_reference_point`)."""
    b = logp.shape[0] // 2
    own, ref_own = logp[:b], ref[:, 0].to(logp.dtype)
    mis, ref_mis = logp[b:].detach(), ref[:, 1].to(logp.dtype)
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        mean = (mis - ref_mis).mean()  # TRL gathers the per-process means before the clamp
        torch.distributed.all_reduce(mean, op=torch.distributed.ReduceOp.AVG)
        z0 = mean.clamp(min=0)
    else:
        z0 = kto_reference_point(mis, ref_mis)
    beta = loss.beta if loss.beta is not None else inspect.signature(kto).parameters["beta"].default
    per = kto(own, ref_own, desirable, z0, beta, loss.desirable_weight, loss.undesirable_weight)
    return per, implicit_rewards(own, ref_own, beta), z0


def _class_mean(w: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """This micro-batch's weighted mean of ``x`` over ``mask``, times its weight sum: the engine divides metric
    sums by the global weight, which makes this a weight-averaged per-micro-batch class mean."""
    wm = w * mask.to(w.dtype)
    return (wm * x).sum() / wm.sum().clamp(min=1e-12) * w.sum()


def make_loss(loss: LossSection, reference: torch.Tensor | None, chunk_tokens: int | None,
              desirable: torch.Tensor | None = None):
    def loss_fn(model, batch) -> LossOutput:
        logp, n_tok = sequence_logprobs(model, batch, chunk_tokens)
        ref = reference[batch["index"].cpu()].to(logp.device) if reference is not None else None
        if ref is not None and torch.isnan(ref).any():  # a row the reference plan did not cover
            raise RuntimeError("a training row has no reference log-prob (the planned rows missed it)")
        w = batch["weight"].to(logp.device, logp.dtype)
        b = len(w)
        if desirable is not None:  # KTO
            good = desirable[batch["index"].cpu()].to(logp.device)
            per, reward, z0 = kto_terms(loss, logp, ref, good)
            reward = reward.detach()
            metrics = {"reward_desirable": _class_mean(w, reward, good), "reward_undesirable":
                       _class_mean(w, reward, ~good), "kl": z0 * w.sum(),
                       "logp_drift": (w * (logp[:b] - ref[:, 0]).detach()).sum()}
            return LossOutput((w * per).sum(), float(w.sum()), int(batch["tokens"]), metrics)
        per, rc, rr = pair_terms(loss, logp, n_tok, ref)
        rc, rr = rc.detach(), rr.detach()
        metrics = {"reward_chosen": (w * rc).sum(), "reward_rejected": (w * rr).sum(),
                   "reward_margin": (w * (rc - rr)).sum(), "accuracy": (w * (rc > rr).to(w.dtype)).sum()}
        if ref is not None:  # how far the policy moved: mean log π_θ(y|x) - log π_ref(y|x) of both responses
            drift = (logp[:b] - ref[:, 0] + logp[b:] - ref[:, 1]).detach() / 2
            metrics["logp_drift"] = (w * drift).sum()
        return LossOutput((w * per).sum(), float(w.sum()), int(batch["tokens"]), metrics)
    return loss_fn
