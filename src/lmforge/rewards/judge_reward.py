"""The AI judge of ``lmforge judge`` as a reward: a local model or an OpenAI-compatible URL.

The judge compares responses in pairs (both orders) and scores each response alone on a criterion from 1 to 7
(:func:`lmforge.feedback.judge.prompts.score_query`). A reward needs a pointwise score, so this uses the second
mode: per response and per configured criterion, the expected digit ``sum_d d * P(d)`` over the judge's
probabilities of 1..7 (:func:`lmforge.feedback.judge.core.expected_score`; a server without log-probabilities
gives its written digit), averaged over the criteria. With ``normalize`` the 1-7 scale maps to ``[-1, 1]`` as
``(s - 4) / 3``; then the score is clipped. Pairwise verdicts are not used: they rank responses of one prompt
against each other, which GRPO-style group baselines already do with pointwise rewards.

A criterion whose verdict is unreadable (neither log-probabilities nor a digit) counts as the midpoint 4 and is
counted in ``stats["unscored"]``; when no response of a batch gets any readable score the call fails instead.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError
from ..feedback.judge.core import choice_probs, expected_score
from ..feedback.judge.prompts import SCORE_CHOICES, score_query
from ..feedback.judge.rubric import Rubric, load_rubric
from .base import Messages, RewardError, check_batch, check_scores, clip_scores
from .config import JudgeSection

MIDPOINT = 4.0  # of the judge's 1-7 scale


class JudgeReward:
    def __init__(self, backend, criteria: Sequence[str], *, rubric: Rubric | None = None, normalize: bool = True,
                 clip: float | None = None, name: str = "judge"):
        self.backend, self.criteria = backend, list(criteria)
        self.rubric = rubric or load_rubric(None)
        self.normalize, self.clip, self.name = normalize, clip, name
        self.stats: Counter = Counter()
        self.last_terms: dict[str, torch.Tensor] = {}

    @classmethod
    def from_section(cls, cfg: JudgeSection, *, normalize: bool = True, clip: float | None = None,
                     batch_size: int = 8, device: str = "cpu", name: str = "judge") -> JudgeReward:
        """Load the local judge or reach the endpoint now, so a bad path or URL fails before training."""
        rubric = load_rubric(cfg.rubric)
        if cfg.endpoint is not None:
            from ..feedback.judge.endpoint import EndpointBackend

            key = os.environ.get(cfg.api_key_env) or os.environ.get("OPENAI_API_KEY")
            backend = EndpointBackend(cfg.endpoint, model=cfg.api_model, api_key=key, timeout=cfg.timeout,
                                      retries=cfg.retries, concurrency=cfg.concurrency)
            backend.check()
        else:
            from ..feedback.judge.local import LocalBackend

            backend = LocalBackend.load(cfg.model, dtype=cfg.dtype, device=device, batch_size=batch_size)
        return cls(backend, cfg.criteria, rubric=rubric, normalize=normalize, clip=clip, name=name)

    def judge_scores(self, prompts: list[Messages], responses: list[str]) -> torch.Tensor:
        """``[N, len(criteria)]`` expected 1-7 scores (NaN where the verdict was unreadable)."""
        queries = [score_query(self.rubric, p, r, c, i)
                   for i, (p, r) in enumerate(zip(prompts, responses)) for c in self.criteria]
        try:
            answers = self.backend.answer(queries)
        except InputError as e:
            raise RewardError(f"reward {self.name}: {e.message}", field=e.field) from None
        values = [expected_score(choice_probs(a, SCORE_CHOICES)) for a in answers]
        return torch.tensor([float("nan") if v is None else v for v in values],
                            dtype=torch.float32).reshape(len(responses), len(self.criteria))

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor:
        check_batch(self.name, prompts, responses, meta)
        if not responses:
            self.last_terms = {self.name: torch.zeros(0)}
            return torch.zeros(0)
        per = self.judge_scores(prompts, responses)
        unread = torch.isnan(per)
        if bool(unread.all()):
            raise RewardError(f"reward {self.name}: the judge ({self.backend.name}) gave no readable 1-7 score "
                              f"for any of {len(responses)} responses")
        self.stats["unscored"] += int(unread.sum())
        self.stats["scored"] += int((~unread).sum())
        s = torch.where(unread, torch.full_like(per, MIDPOINT), per).mean(dim=1)
        if self.normalize:
            s = (s - MIDPOINT) / 3.0
        s = clip_scores(check_scores(self.name, s, len(responses)), self.clip)
        self.last_terms = {self.name: s}
        return s
