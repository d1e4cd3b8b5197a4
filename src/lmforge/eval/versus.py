"""Helpful: each model's win rate against a reference model on the very same prompts, judged by a reward model
or by the built-in world's noise-free labeler.

Both answers to a prompt are scored on their own (a reward model, or the labeler's overall 1-7 score), so
there is no position to be biased by; a win is the higher score, a tie (within ``TIE``) counts half, and the
figure is wins + ties/2 over the prompts both models answered (Wilson interval)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .hhh import Figure, proportion

TIE = 1e-6
Scorer = Callable[[Sequence[dict[str, Any]]], list[float]]  # samples ({suite, id, prompt, completion}) -> scores


def outcomes(model_scores: Sequence[float], reference_scores: Sequence[float], tie: float = TIE) -> list[float]:
    """1 for a win, 0.5 for a tie, 0 for a loss, per prompt."""
    return [1.0 if m > r + tie else 0.5 if abs(m - r) <= tie else 0.0
            for m, r in zip(model_scores, reference_scores, strict=True)]


def paired(samples: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The samples of both models on the prompts both answered, in the same order (joined on suite and id)."""
    ref = {(r["suite"], r["id"]): r for r in reference}
    mine = [s for s in samples if (s["suite"], s["id"]) in ref]
    return mine, [ref[(s["suite"], s["id"])] for s in mine]


def win_rate(samples, reference, scorer: Scorer, name: str) -> Figure | None:
    mine, theirs = paired(samples, reference)
    if not mine:
        return None
    return proportion("helpful", f"win_rate_vs_{name}", outcomes(scorer(mine), scorer(theirs)), "versus")


def reward_model_scorer(rm_dir: str, batch_size: int = 32) -> Scorer:
    """Scores by a trained reward model (either head; its first head = the overall reward)."""
    from ..models.reward_scores import RewardScorer

    scorer = RewardScorer(rm_dir)

    def score(samples):
        prompts = [s.get("messages") or [{"role": "user", "content": s["prompt"]}] for s in samples]
        return scorer.score(prompts, [s["completion"] for s in samples], batch_size=batch_size)[:, 0].tolist()
    return score


def world_scorer(world_seed: int = 0, n_per_suite: int = 64) -> Scorer:
    """Scores by the built-in world's noise-free simulated labeler (overall 1-7), for the world suite's prompts."""
    from ..world import SimulatedLabeler, World
    from .chat_eval import world_suites

    world = World(seed=world_seed)
    items = {it["id"]: it for s in world_suites(world, heldout_facts=n_per_suite, seen_facts=None,
                                                   per_kind=n_per_suite) for it in s.items}
    labeler = SimulatedLabeler(world, noise=0.0)

    def score(samples):
        return [labeler.overall(items[s["id"]], s["completion"]) for s in samples]
    return score
