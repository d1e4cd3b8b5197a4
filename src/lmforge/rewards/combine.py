"""A weighted sum of rewards: ``r = sum_i w_i * r_i``, each term's own score kept for logging."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import Messages, Reward, RewardError, check_batch, check_scores


class WeightedSum:
    """``sum_i weights[i] * terms[i](...)``. After a call, ``last_terms[name]`` is term i's score before its
    weight (after the term's own normalisation and clipping), so a log shows each term on its own scale; a term's
    own ``last_terms`` where it has them (a routed term's NaN marks the responses it did not score)."""

    def __init__(self, terms: Sequence[Reward], weights: Sequence[float], name: str = "reward"):
        if len(terms) != len(weights) or not terms:
            raise ValueError("a weighted sum needs one weight per term, and at least one term")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise RewardError(f"reward terms must have distinct names, got {names}")
        self.terms, self.weights, self.name = list(terms), [float(w) for w in weights], name
        self.last_terms: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor:
        check_batch(self.name, prompts, responses, meta)
        total = torch.zeros(len(responses), dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        for term, w in zip(self.terms, self.weights):
            scores = check_scores(term.name, term(prompts, responses, meta), len(responses))
            terms[term.name] = (getattr(term, "last_terms", None) or {}).get(term.name, scores)
            total += w * scores
        self.last_terms = terms
        return total
