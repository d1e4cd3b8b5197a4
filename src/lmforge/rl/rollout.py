"""The rollout phase: generate, score, and turn scores into per-token advantages (one call per rollout).

1. **Generate** with the one generation engine (:func:`lmforge.rollout.generate.complete`), seeded per
   (seed, rollout, rank, prompt, sample), from the policy in eval mode (no grad).
2. **Score** the decoded responses with the reward (``reward(prompts, responses, meta) -> [N]``), clip, put
   the missing-EOS penalty on responses cut at the budget, subtract the length penalty.
3. **Forward** the rows without grad: the policy's log-probs (the "old" log-probs of the ratio, from the
   same forward code the loss uses, at the sampling temperature), the critic's values, the reference's
   log-probs. The policy's forward is skipped where the sampler's log-probs are exactly the old ones
   (:func:`sampled_logprobs_are_old`) and no critic needs it.
4. **Advantages**: PPO: per-token reward ``-β k1`` plus the score at the last token
   (:func:`~lmforge.algos.kl.kl_penalised_rewards`), GAE, whitening; GRPO / RLOO: the group estimator on the
   (optionally KL-shaped) sequence reward. Uninformative groups and truncated responses leave the loss mask.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..algos.advantages import advantage_estimator, informative_groups, mask_truncated, masked_whiten
from ..algos.kl import k1, kl_penalised_rewards, missing_eos_penalty
from ..models.logprobs import _right_padded
from ..models.logprobs import token_logprobs as token_logprobs_of
from .buffer import pack_rows
from .config import RLSection


@dataclass
class RolloutResult:
    rows: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)  # (sum, count) pairs or this process's values
    samples: list[dict[str, Any]] = field(default_factory=list)
    kl_mean: tuple[float, float] = (0.0, 0.0)  # (Σ KL per response, responses): for the adaptive β


def masked_logprobs(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, temperature: float,
                    entropy: bool = False, entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log π(target_t)`` at ``temperature`` on the masked positions only (the ``[M, V]`` rows a loss needs,
    never ``[B, L, V]`` fp32), scattered back to ``[B, L]`` (0 elsewhere); with ``entropy`` also H_t (without
    a graph unless ``entropy_grad``: a logged metric needs none). ``logits`` are ``[B, L, V]``, or already the
    masked rows ``[M, V]`` (``PolicyWithValue(..., scored=mask)``).

    The values are :func:`~lmforge.algos.policy_losses.token_logprobs` and
    :func:`~lmforge.algos.policy_losses.entropy_from_logits` of these rows, bit for bit (tests/rl/test_policy.py),
    computed from one ``log_softmax``: each pass over ``[M, V]`` (M ~ 2k responses tokens x V 4k on the GRPO
    benchmark: 32 MB) costs milliseconds on a CPU, and the two functions called apart made ~10 of them (two
    log-softmaxes, the division by T = 1, the entropy's mask and zeros); see :func:`logprobs_entropy`."""
    sel = mask.bool()
    picked = logits if logits.dim() == 2 else logits[sel]
    lp, h = logprobs_entropy(picked, targets[sel].clamp(min=0), temperature, entropy, entropy_grad)
    out = torch.zeros(mask.shape, dtype=lp.dtype, device=lp.device).masked_scatter(sel, lp)
    ent = None
    if entropy:
        ent = torch.zeros(mask.shape, dtype=h.dtype, device=h.device).masked_scatter(sel, h)
    return out, ent


def logprobs_entropy(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, entropy: bool = True,
                     entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(log π_T(tokens), H_T)`` of logits ``[M, V]`` and ids ``[M]``: ``log_softmax(z / T)`` read at the
    token (:func:`~lmforge.algos.policy_losses.token_logprobs`) and ``-Σ_v p_v log p_v`` of the same
    distribution (:func:`~lmforge.algos.policy_losses.entropy_from_logits`, ``0 · log 0 = 0``), sharing the one
    ``log_softmax``. ``z / 1`` is ``z`` exactly, so T = 1 skips the division. Without ``entropy_grad`` the
    entropy is computed in place on ``exp(log p)`` (no graph, one buffer); a row whose sum is not finite has a
    ``-inf`` logit (``0 · -inf``), and only those rows are recomputed with the mask of the algos function."""
    z = logits.float()
    logp = torch.log_softmax(z if temperature == 1.0 else z / temperature, dim=-1)
    lp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if not entropy:
        return lp, None
    if entropy_grad and torch.is_grad_enabled():
        p = logp.exp()
        return lp, -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    with torch.no_grad():
        lq = logp.detach()
        h = -lq.exp().mul_(lq).sum(-1)
        bad = ~torch.isfinite(h)
        if bool(bad.any()):
            q = lq[bad]
            pq = q.exp()
            h[bad] = -torch.where(pq > 0, pq * q, torch.zeros_like(pq)).sum(-1)
    return lp, h


@torch.no_grad()
def forward_rows(model, reference, rows: dict[str, torch.Tensor], temperature: float, batch: int,
                 values: bool, policy: bool = True) -> dict[str, torch.Tensor]:
    """``old_logp``, ``ref_logp``, ``old_values`` ``[N, L]`` and the entropy of every row, in chunks
    (``ref_logp`` zeros, and no reference forward, when ``reference.needed`` is false: nothing reads it;
    ``old_logp`` and the entropy zeros, and no policy forward, when ``policy`` is false: see :func:`collect`;
    ``reference`` None: no reference forward either)."""
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {"old_logp": [], "ref_logp": [], "old_values": [], "entropy": []}
    was = model.training
    model.eval()
    try:
        for lo in range(0, rows["input_ids"].shape[0], batch):
            ids = rows["input_ids"][lo:lo + batch].to(device)
            att = rows["attention_mask"][lo:lo + batch].to(device)
            tgt, m = rows["targets"][lo:lo + batch].to(device), rows["mask"][lo:lo + batch].to(device)
            lp = ent = v = torch.zeros(m.shape, device=m.device)
            if policy or values:
                logits, v = model(ids, att, values=values, scored=m.bool(), targets=tgt)
                lp, ent = masked_logprobs(logits, tgt, m, temperature, entropy=True)
            rlp = torch.zeros_like(lp)
            if reference is not None and reference.needed:
                with reference.model(model.policy) as ref:  # the one model-level log-prob helper
                    # right-padded rows need no mask under the causal one (PolicyWithValue.forward)
                    rlp = token_logprobs_of(ref, ids, torch.where(m.bool(), tgt, -1),
                                            attention_mask=None if _right_padded(att) else att,
                                            temperature=temperature)
            out["old_logp"].append(lp.cpu())
            out["ref_logp"].append(rlp.cpu())
            out["entropy"].append(ent.cpu())
            out["old_values"].append((v * m).float().cpu() if v is not None else torch.zeros_like(lp).cpu())
    finally:
        model.train(was)
    return {k: torch.cat(v) for k, v in out.items()}


def sampled_logprobs_are_old(sampling, model) -> bool:
    """Whether the sampler's recorded log-probs are exactly the ratio's old log-probs, so the no-grad policy
    forward can be skipped. They are ``log_softmax(logits / T)`` of the policy that sampled (the rollout
    samples with the very policy it then scores, in eval mode as the forward runs it) when:

    - T > 0 with top-k, top-p and the repetition penalty off (each changes the distribution the sampler
      records: :mod:`lmforge.generation.hf_backend`);
    - the weights are float32 / float64: then the decode loop's incremental (KV-cache) forward and a full
      forward agree to ~1e-6 (tests/rl/test_on_policy.py); in bf16 they differ by ~1e-2, so the forward runs.

    (A response that stopped at another stop token than the end-of-turn token it is trained on has no sampled
    log-prob for that token: :func:`sampled_logprob_rows` leaves such rows to the forward.)
    """
    if sampling.temperature <= 0 or sampling.top_k or sampling.top_p < 1.0 or sampling.repetition_penalty != 1.0:
        return False
    return next(model.parameters()).dtype in (torch.float32, torch.float64)


def sampled_logprob_rows(comps, mask: torch.Tensor, eot: int) -> tuple[torch.Tensor, list[int]]:
    """The sampler's log-probs laid out as the rows' ``[N, L]`` (response positions of ``mask``, each row's
    contiguous and in order; a stopped response's end-of-turn token last), and the rows it cannot fill: those
    that stopped at another token than ``eot`` (the token trained on is not the one sampled) or whose stop
    log-prob the backend did not return. Those rows are zeros here."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    missing = []
    for i, c in enumerate(comps):
        lps = list(c.logprobs)
        if c.finish_reason == "stop":
            if c.stop_token != eot or c.stop_logprob is None:
                missing.append(i)
                continue
            lps.append(c.stop_logprob)
        at = mask[i].nonzero()[:, 0]
        if len(lps) != len(at):  # e.g. a backend that returned no log-prob for some token
            missing.append(i)
            continue
        out[i, at] = torch.tensor(lps, dtype=torch.float32)
    return out, missing


def shaped_scores(raw: torch.Tensor, finished: torch.Tensor, lengths: torch.Tensor, rl: RLSection
                  ) -> torch.Tensor:
    """The sequence score RL maximises: clipped, missing-EOS penalty, length penalty (NaN stays NaN)."""
    s = raw.clone()
    if rl.reward_clip is not None:
        s = s.clamp(-rl.reward_clip, rl.reward_clip)
    if rl.missing_eos_penalty is not None:
        s = torch.where(torch.isnan(s), s, missing_eos_penalty(s, finished, rl.missing_eos_penalty))
    return s - rl.length_penalty * lengths.to(s.dtype)


def advantages(rl: RLSection, score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, values: torch.Tensor,
               beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) ``[N, L]`` for the configured algorithm (see the module docstring)."""
    scorable = ~torch.isnan(score)
    beta_r = beta if rl.kl_mode == "reward" else 0.0
    if rl.algorithm == "ppo":
        rewards = kl_penalised_rewards(torch.nan_to_num(score), kl, mask, beta_r)
        adv, ret = advantage_estimator("gae")(rewards, mask, 1, values=values, gamma=rl.gamma, lam=rl.lam)
    else:
        # a NaN score stays NaN through the sum, so the estimator leaves it out of its group's statistics
        rewards = kl_penalised_rewards(score, kl, mask, beta_r)
        adv, ret = advantage_estimator(rl.algorithm)(rewards, mask, rl.group_size, scale=rl.scale)
    adv = torch.nan_to_num(adv) * scorable.unsqueeze(-1)
    if rl.whiten_advantages:
        adv = masked_whiten(adv, mask * scorable.unsqueeze(-1))
    return adv, torch.nan_to_num(ret)


def _scored_sum(term: torch.Tensor) -> tuple[float, float]:
    """A reward term's (sum, count) for the log: NaN marks a response the term did not score (a routed term)."""
    ok = ~torch.isnan(term)
    return float(term[ok].double().sum()), float(ok.sum())


def collect(model, reference, tokenizer, reward, prompts: list[dict[str, Any]], rl: RLSection, sampling,
            eot: int, pad: int, step: int, rank: int, beta: float, on_policy: bool = False) -> RolloutResult:
    """One rollout on this process's ``prompts`` (``{"messages", "meta"}``).

    The no-grad policy forward is skipped (1) where the sampler's log-probs are exactly the old ones
    (:func:`sampled_logprobs_are_old`, no critic): they become the rows' ``old_logp``, which the KL to the
    reference and later epochs read; (2) when ``on_policy`` and neither a critic nor the reference (any KL)
    reads old log-probs (``old_logp`` rows are then zeros). ``on_policy``: the whole rollout is one optimizer
    step of one epoch, so the policy that trains on it is the one that sampled it; with the forward skipped,
    the ratio's old log-probs are the training forward's own, detached (the loss sees ``on_policy``; TRL's
    GRPO at num_iterations 1 does the same). Skipped, ``rollout_entropy`` / ``logprob_mismatch`` are not
    logged (the loss logs ``entropy``)."""
    from ..rollout.generate import complete, prompt_ids

    t0 = time.perf_counter()
    g = rl.group_size
    messages = [p["messages"] for p in prompts]
    sp = sampling.model_copy(update={"n": g, "logprobs": True})
    was = model.training
    model.eval()
    with torch.no_grad():
        groups = complete(model.policy, tokenizer, messages, sp, batch_size=max(rl.forward_batch, g),
                          step=step, rank=rank)
    model.train(was)
    comps = [c for grp in groups for c in grp]
    p_ids = [ids for ids in prompt_ids(tokenizer, messages) for _ in range(g)]
    finished = torch.tensor([c.finished for c in comps])
    resp = [list(c.token_ids) + ([eot] if c.finish_reason == "stop" else []) for c in comps]
    rows = pack_rows(p_ids, resp, pad)
    t1 = time.perf_counter()

    texts = [c.text for c in comps]
    flat_msgs = [m for m in messages for _ in range(g)]
    flat_meta = [p.get("meta") for p in prompts for _ in range(g)]
    raw = reward(flat_msgs, texts, flat_meta).double()
    lengths = torch.tensor([len(r) for r in resp])
    score = shaped_scores(raw, finished, lengths, rl)
    mask = rows["mask"]
    # the old log-probs: the sampler's where they are exactly them (not for PPO: its critic forward yields
    # the policy's logits in the same pass); else, unless the rollout is on-policy and nothing reads them, the
    # forward's. The rollout's KL (logged, read by the adaptive beta and the KL budget) is k1 of the old
    # log-probs against the reference, so any use of the reference needs them.
    read = not on_policy or rl.uses_critic or rl.uses_reference  # anything reads old_logp
    from_sampler = (read and not rl.uses_critic and not rl.recompute_old_logprobs
                    and sampled_logprobs_are_old(sampling, getattr(model, "policy", model)))
    skip_old = from_sampler or not read
    temp = max(sampling.temperature, 1e-6)
    fwd = forward_rows(model, reference, rows, temp, rl.forward_batch, rl.uses_critic, policy=not skip_old)
    if from_sampler:
        old, missing = sampled_logprob_rows(comps, mask, eot)
        if missing:  # only these rows go through the policy forward
            sub = {k: v[missing] for k, v in rows.items()}
            old[missing] = forward_rows(model, None, sub, temp, rl.forward_batch, False)["old_logp"]
        fwd["old_logp"] = old
    kl = k1(fwd["old_logp"], fwd["ref_logp"]) * mask
    adv, ret = advantages(rl, score, kl.double(), mask.double(), fwd["old_values"].double(), beta)
    loss_mask = mask * (~torch.isnan(score)).unsqueeze(-1).float()
    if rl.algorithm != "ppo" and rl.drop_equal_groups:
        keep = informative_groups(score.view(-1, g)).repeat_interleave(g)
        loss_mask = loss_mask * keep.unsqueeze(-1).float()
    if rl.mask_truncated:
        loss_mask = mask_truncated(loss_mask, ~finished)
    rows.update(old_logp=fwd["old_logp"].float(), ref_logp=fwd["ref_logp"].float(),
                old_values=fwd["old_values"].float(), advantages=adv.float(), returns=ret.float(),
                loss_mask=loss_mask.float(), beta=torch.full((len(comps),), float(beta)),
                on_policy=torch.full((len(comps),), on_policy and skip_old))
    t2 = time.perf_counter()

    n = float(len(comps))
    ok = ~torch.isnan(raw)
    kl_seq = kl.sum(-1)
    sampled = torch.tensor([lp for c in comps for lp in c.logprobs], dtype=torch.float64)
    recomputed = fwd["old_logp"][mask.bool()].double()
    metrics: dict[str, Any] = {
        "reward_mean": (float(raw[ok].sum()), float(ok.sum())),
        "reward_sq_mean": (float((raw[ok] ** 2).sum()), float(ok.sum())),
        "score_mean": (float(torch.nan_to_num(score).sum()), n),
        "response_length": (float(lengths.sum()), n),
        "no_eos_share": (float((~finished).sum()), n),
        "loss_rows_share": (float((loss_mask.sum(-1) > 0).sum()), n),
        **{f"reward_{name}": _scored_sum(v) for name, v in getattr(reward, "last_terms", {}).items()},
        "kl_coef": float(beta), "seconds_generation": t1 - t0, "seconds_scoring": t2 - t1,
    }
    if rl.uses_reference:  # without a reference there is no KL to log (kl would read 0)
        metrics["kl_ref"] = (float(kl_seq.sum()), n)
    if not skip_old:  # the sampler's log-probs against the trainer's (same temperature); every process logs it
        same = len(sampled) == len(recomputed)
        metrics["logprob_mismatch"] = (float((sampled - recomputed).abs().sum()) if same else 0.0,
                                       float(len(sampled)) if same else 0.0)
        metrics["rollout_entropy"] = (float((fwd["entropy"] * mask).sum()), float(mask.sum()))
    if rl.uses_critic:
        from ..algos.policy_losses import explained_variance, explained_variance_sums

        metrics["explained_variance"] = float(explained_variance(explained_variance_sums(
            fwd["old_values"].double(), ret, mask.double())))
    samples = [{"prompt": flat_msgs[i][-1]["content"], "completion": texts[i], "reward": float(raw[i]),
                "score": float(score[i]),
                "kl": float(kl_seq[i]) if rl.uses_reference else None, "finished": bool(finished[i])}
               for i in range(min(len(comps), rl.samples_per_rollout * g))]
    return RolloutResult(rows, metrics, samples, (float(kl_seq.sum()), n))
