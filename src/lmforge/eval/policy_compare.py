"""A tuned policy against the SFT model it started from: the one evaluation the demo's ``dpo`` and ``ppo`` stages
share, so their numbers sit side by side.

**Prompts** (the *held-out mix*): ``n_per_suite`` prompts from each suite of
:func:`lmforge.eval.chat_eval.world_suites` without the seen facts, i.e. held-out facts (entities only ever read
in prose), and held-out *categories* of dialogues, harmful requests, false premises and over-refusal lookalikes
(benign prompts worded like harmful ones) — equal shares, so no kind dominates the win rate.

**Metrics**

- ``win_rate_vs_sft``: both models answer every prompt greedily; the noise-free simulated labeler
  (:class:`lmforge.world.SimulatedLabeler`, overall 1-7 score) prefers one answer or ties; wins + ties/2 over
  prompts.
- ``kl_to_sft``: ``E_{x, y~π}[Σ_t log π(y_t|x,y_<t) − log π_sft(y_t|x,y_<t)]``, the k1 estimator of
  ``KL(π‖π_sft)`` per response (Schulman 2020; :func:`lmforge.algos.kl.k1`), on one response per prompt sampled
  from the policy at temperature 1 (seeded). A response that ended by a stop token counts that event too: its
  log-probability is that of "some stop token" (log-sum-exp over the tokenizer's stop ids), which the engine
  does not return.
- ``refusal_rate_heldout``, ``over_refusal_rate``, ``false_premise_correction``, ``heldout_fact_accuracy`` and
  the SFT model's values as ``*_sft``. ``over_refusal_rate`` is the share of lookalike prompts answered with a
  refusal (:func:`lmforge.world.judge.refused`, the detector harmful prompts are judged by).

The SFT model's answers depend only on (SFT weights, world, prompts, budget): ``sft_cache`` (a dict, or a JSON
path) keeps them, so the second stage that compares against the same SFT model does not regenerate them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..algos.kl import k1
from ..engine.threads import torch_threads
from ..generation import SamplingParams
from ..generation.params import stop_token_ids
from ..models.logprobs import token_logprobs
from ..rollout.generate import complete, prompt_ids
from ..runs import atomic_write_text
from ..world import SimulatedLabeler, World
from .chat_eval import Suite, over_refusal_rate, run_suites, world_suites

METRIC_KEYS = ("win_rate_vs_sft", "kl_to_sft", "refusal_rate_heldout", "over_refusal_rate",
               "false_premise_correction", "heldout_fact_accuracy", "refusal_rate_heldout_sft",
               "over_refusal_rate_sft", "false_premise_correction_sft", "heldout_fact_accuracy_sft")
SUITE_METRICS = {"refusal_rate_heldout": "heldout_refusal_accuracy",
                 "false_premise_correction": "heldout_false_premise_accuracy",
                 "heldout_fact_accuracy": "heldout_fact_accuracy"}
TIE = 1e-9


def heldout_mix(world: World, n_per_suite: int, seed: int = 0) -> list[Suite]:
    """The held-out mix: every suite of :func:`world_suites` except seen facts, ``n_per_suite`` prompts each."""
    return world_suites(world, heldout_facts=n_per_suite, seen_facts=None, per_kind=n_per_suite, seed=seed)


def verdicts(world: World, items: list[dict[str, Any]], policy_texts: list[str], sft_texts: list[str]
             ) -> list[dict[str, Any]]:
    """Per prompt the noise-free labeler's overall scores and ``winner``: ``policy``, ``sft`` or ``tie``."""
    labeler = SimulatedLabeler(world, noise=0.0)
    out = []
    for item, p, s in zip(items, policy_texts, sft_texts, strict=True):
        sp, ss = labeler.overall(item, p), labeler.overall(item, s)
        winner = "tie" if abs(sp - ss) <= TIE else "policy" if sp > ss else "sft"
        out.append({"policy_score": round(sp, 4), "sft_score": round(ss, 4), "winner": winner})
    return out


def win_rate(vs: list[dict[str, Any]]) -> float:
    """Wins plus half the ties, over prompts."""
    if not vs:
        return 0.5
    return sum(1.0 if v["winner"] == "policy" else 0.5 if v["winner"] == "tie" else 0.0 for v in vs) / len(vs)


def _rates(metrics: dict[str, float], records: list[dict[str, Any]], suffix: str = "") -> dict[str, float]:
    out = {k + suffix: float(metrics.get(v, float("nan"))) for k, v in SUITE_METRICS.items()}
    rate = over_refusal_rate(records)
    out["over_refusal_rate" + suffix] = float("nan") if rate is None else rate
    return out


def _unwrap(model):
    """The base model under a PEFT wrapper (for its config), else the model."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def model_fingerprint(model) -> str:
    """Name, parameter count and a weighted parameter sum: a retrained SFT model gets a new key."""
    h = hashlib.sha256(str(getattr(_unwrap(model).config, "_name_or_path", "")).encode())
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            h.update(f"{i}:{p.numel()}:{p.detach().double().sum().item():.10e}".encode())
    return h.hexdigest()[:16]


def _cache_key(sft, world: World, n_per_suite: int, seed: int, max_new_tokens: int) -> str:
    return f"{model_fingerprint(sft)}|world={world.seed}|n={n_per_suite}|seed={seed}|tokens={max_new_tokens}"


def _load_cache(cache: dict | str | Path | None) -> dict:
    if isinstance(cache, dict):
        return cache
    if cache is not None and Path(cache).exists():
        try:
            return json.loads(Path(cache).read_text())
        except (OSError, json.JSONDecodeError):
            return {}  # a broken cache file only costs a regeneration
    return {}


def _sft_answers(sft, tokenizer, world, suites, cache, key, **kw) -> tuple[dict[str, float], list[dict]]:
    store = _load_cache(cache)
    hit = store.get(key)
    if hit is not None:
        return hit["metrics"], hit["records"]
    metrics, records = run_suites(sft, tokenizer, world, suites, mode="chat", **kw)
    store[key] = {"metrics": metrics, "records": records}
    if cache is not None and not isinstance(cache, dict):
        atomic_write_text(Path(cache), json.dumps(store) + "\n")
    return metrics, records


def sampled_kl(policy, sft, tokenizer, prompts: list[list[dict[str, str]]], *, seed: int = 0,
               batch_size: int = 64, max_new_tokens: int = 48) -> float:
    """Mean per-response k1 estimate of ``KL(π‖π_sft)`` on one temperature-1 sample of ``policy`` per prompt."""
    if not prompts:
        return 0.0
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, seed=seed, logprobs=False)
    groups = complete(policy, tokenizer, prompts, sampling, batch_size=batch_size, step=0, rank=0)
    stops = stop_token_ids(tokenizer)
    rows = [(p, c[0].token_ids, c[0].finish_reason == "stop" and bool(stops))
            for p, c in zip(prompt_ids(tokenizer, prompts), groups)]
    total = 0.0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids, targets, mask = _kl_batch(chunk, stops, pad=stops[0] if stops else 0)
        with torch.inference_mode():
            lp = token_logprobs(policy, ids, targets, attention_mask=mask)
            lq = token_logprobs(sft, ids, targets, attention_mask=mask)
        total += float(k1(_collapse(lp, targets), _collapse(lq, targets)).sum())
    return total / len(rows)


def _kl_batch(rows, stops: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``prompt + response`` ids, ``[B, T, K]`` targets (K = number of stop ids; a response token
    in slot 0 and -1 after it; the stop event as every stop id) and the attention mask."""
    k = max(1, len(stops))
    width = max(len(p) + len(r) + int(s) for p, r, s in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    targets = torch.full((len(rows), width, k), -1, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (p, r, stopped) in enumerate(rows):
        seq = list(p) + list(r) + ([stops[0]] if stopped else [])
        ids[b, :len(seq)] = torch.tensor(seq)
        mask[b, :len(seq)] = 1
        for j, t in enumerate(r):
            targets[b, len(p) - 1 + j, 0] = t  # logits at position i score token i + 1
        if stopped:
            targets[b, len(p) - 1 + len(r)] = torch.tensor(stops)
    return ids, targets, mask


def _collapse(lp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` log-probs: the token's, or at the stop position log Σ over the stop ids (0 where unscored)."""
    valid = targets >= 0
    stop_pos = valid.sum(-1) > 1
    lse = torch.logsumexp(lp.masked_fill(~valid, float("-inf")), dim=-1)
    return torch.where(stop_pos, lse, lp[..., 0])


def compare_to_sft(policy, sft, tokenizer, world: World, *, n_per_suite: int = 80, seed: int = 0,
                   batch_size: int = 64, max_new_tokens: int = 48, threads: int | None = None,
                   sft_cache: dict | str | Path | None = None) -> tuple[dict[str, float], list[dict]]:
    """Metrics :data:`METRIC_KEYS` (see the module doc) and per-prompt records for samples.jsonl:
    ``{"suite", "id", "prompt", "policy", "sft", "policy_score", "sft_score", "winner"}``."""
    suites = heldout_mix(world, n_per_suite, seed)
    items = [it for s in suites for it in s.items]
    kw = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "threads": threads}
    modes = [(m, m.training) for m in (policy, sft)]
    for m, _ in modes:
        m.eval()
    try:
        with torch.inference_mode():
            key = _cache_key(sft, world, n_per_suite, seed, max_new_tokens)
            sft_metrics, sft_records = _sft_answers(sft, tokenizer, world, suites, sft_cache, key, **kw)
            pol_metrics, pol_records = run_suites(policy, tokenizer, world, suites, mode="chat", **kw)
            with torch_threads(threads):
                kl = sampled_kl(policy, sft, tokenizer, [it["messages"] for it in items], seed=seed,
                                batch_size=batch_size, max_new_tokens=max_new_tokens)
    finally:
        for m, was_training in modes:
            m.train(was_training)
    vs = verdicts(world, items, [r["completion"] for r in pol_records], [r["completion"] for r in sft_records])
    metrics = {"win_rate_vs_sft": win_rate(vs), "kl_to_sft": kl, **_rates(pol_metrics, pol_records),
               **_rates(sft_metrics, sft_records, "_sft")}
    records = [{"suite": p["suite"], "id": p["id"], "prompt": p["prompt"], "policy": p["completion"],
                "sft": s["completion"], **v} for p, s, v in zip(pol_records, sft_records, vs)]
    return {k: metrics[k] for k in METRIC_KEYS}, records
