"""The RL loss on one micro-batch of the rollout buffer, as the engine's (sum, count).

``L = L^clip(π) + vf_coef · L^V + β · KL_ref − entropy_coef · H``, each term aggregated over the loss mask
by :func:`~lmforge.algos.policy_losses.aggregate` (token-mean by default, DAPO's token-level loss); the
engine adds sums and counts over micro-batches and processes and divides once. The KL term is there only
when ``rl.kl_mode = loss`` (GRPO's k3); in ``reward`` mode it is already inside the advantages.
"""
from __future__ import annotations

from ..algos.kl import kl_estimate
from ..algos.policy_losses import aggregate, approx_kl, clip_fraction, clipped_value_loss, masked_sum_count, policy_loss
from ..engine import LossOutput
from .config import RLSection
from .rollout import masked_logprobs


def make_loss(rl: RLSection, temperature: float, max_new_tokens: int | None):
    pg_fn = policy_loss("ppo")
    norm = float(max_new_tokens) if max_new_tokens else None

    def loss_fn(model, batch) -> LossOutput:
        mask, lmask = batch["mask"], batch["loss_mask"]
        # the head runs on the response positions only (the logits come as their [M, V] rows)
        logits, values = model(batch["input_ids"], batch["attention_mask"], values=rl.uses_critic,
                               scored=mask.bool(), targets=batch["targets"])
        logp, ent = masked_logprobs(logits, batch["targets"], mask, temperature, entropy=True,
                                    entropy_grad=rl.entropy_coef > 0)
        # on-policy rollouts (rollout.collect) carry no old log-probs: the policy that sampled is this one
        on_policy = "on_policy" in batch and bool(batch["on_policy"][0])
        old = logp.detach() if on_policy else batch["old_logp"]
        pg, clipped = pg_fn(logp, old, batch["advantages"], clip_low=rl.clip_low,
                            clip_high=rl.clip_high, dual_clip=rl.dual_clip)
        loss, count = aggregate(pg, lmask, rl.loss_aggregation, norm)
        metrics = {"policy_loss": (float(loss.detach()), float(count)),
                   "clip_fraction": tuple(float(x) for x in clip_fraction(clipped, lmask)),
                   "approx_kl": tuple(float(x) for x in approx_kl(logp.detach(), old, lmask)),
                   "entropy": tuple(float(x) for x in masked_sum_count(ent.detach(), lmask))}
        if rl.uses_critic:
            vl, vclipped = clipped_value_loss(values, batch["old_values"], batch["returns"], rl.value_clip)
            v_sum, _ = aggregate(vl, lmask, rl.loss_aggregation, norm)
            loss = loss + rl.vf_coef * v_sum
            metrics["value_loss"] = (float(v_sum.detach()), float(count))
            metrics["value_clip_fraction"] = tuple(float(x) for x in masked_sum_count(vclipped.float(), lmask))
        if rl.kl_mode == "loss" and rl.kl_coef > 0:
            kl = kl_estimate(logp, batch["ref_logp"], rl.kl_estimator, clamp=10.0)
            kl_sum, _ = aggregate(kl, lmask, rl.loss_aggregation, norm)
            beta = batch["beta"][0]  # the coefficient of the rollout these rows came from
            loss = loss + beta * kl_sum
            metrics["kl_loss"] = (float(kl_sum.detach()), float(count))
        if rl.entropy_coef > 0:
            e_sum, _ = aggregate(ent, lmask, rl.loss_aggregation, norm)
            loss = loss - rl.entropy_coef * e_sum
        return LossOutput(loss, float(count), int(batch["attention_mask"].sum()), metrics)

    return loss_fn
