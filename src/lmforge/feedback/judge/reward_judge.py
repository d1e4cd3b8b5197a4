"""A trained ``lmforge rm`` reward model as the judge of a labeling batch: ``lmforge judge BATCH --model RM``.

The reward model is read through :class:`lmforge.models.reward_scores.RewardScorer`, the path ``lmforge rm score``
and RL rewards take, so a generative verifier asks its own saved verdict question (``reward.json``) and a scalar
model reads its head; the judge never asks which. Unlike a chat model judge (:mod:`.local`), it answers no rubric
prompts: its verdict template is the one it was trained with.

**Pairs.** A pointwise model (scalar head, or a verifier in ``single`` / ``criteria`` mode) scores each response
alone, and ``p(i beats j) = σ(r_i − r_j)``: the Bradley–Terry probability both heads are trained under (the
scalar head's pair loss, the verifier's Bradley–Terry loss on verdict log-odds). A pairwise verifier reads every
pair in both orders, ``M_ij = ½ [ℓ(x; i, j) − ℓ(x; j, i)]`` (:meth:`RewardScorer.preferences`), and
``p(i beats j) = σ(M_ij)``; a pair is order-consistent when both orders pick the same response (``ℓ(x; i, j)``
and ``ℓ(x; j, i)`` of opposite signs), reported as the summary's ``order-consistent share`` as for chat judges.
Either way the ranking and ties are :func:`.core.rank`'s (Copeland, margin), as for every judge.

**Criterion scores** come only from a verifier with per-criterion verdicts covering the five criteria: criterion
c's probability of "yes" ``q = σ(ℓ_c)`` maps to the 1-7 scale as ``1 + 6 q``, rounded. A scalar model's criterion
heads are unbounded numbers with no such reading, so its labels rank only (counted as ``unscored``).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import torch

from ...algos.pairwise import preference_matrix
from ...data.preference import CRITERIA
from ..labels import LabelIn
from .core import ItemJudgement, rank, wins_comment


def likert(log_odds: float) -> int:
    """A verdict's log-odds of "yes" on the 1-7 scale: ``1 + 6 σ(ℓ)``, rounded (0.5 → 4)."""
    return min(7, max(1, math.floor(1 + 6 / (1 + math.exp(-log_odds)) + 0.5)))


class RewardModelJudge:
    """Judges items ``(prompt, responses)`` with a loaded :class:`RewardScorer` (see the module doc)."""

    def __init__(self, scorer, *, name: str, batch_size: int = 8):
        self.scorer = scorer
        self.name = name
        self.batch_size = batch_size
        self.stats: Counter = Counter()
        verdict = scorer.verdict
        self.head = "generative" if verdict is not None else "scalar"
        self.mode = verdict.mode if verdict is not None else "single"
        self.question = verdict.question if verdict is not None else None
        columns = {n: i for i, n in enumerate(scorer.names)}  # a scalar model's criterion heads are not read
        self.criterion_column = columns if self.mode == "criteria" and set(CRITERIA) <= set(columns) else None
        self.judges_positions = bool(scorer.pairwise)  # both orders read: the summary reports their agreement

    @classmethod
    def load(cls, path: str | Path, *, dtype: str = "float32", device: str = "auto", batch_size: int = 8
             ) -> RewardModelJudge:
        from ...rewards.model_reward import load_scorer

        return cls(load_scorer(path, dtype=dtype, device=device), name=str(path), batch_size=batch_size)

    def describe(self) -> str:
        what = f"reward model {self.name} (head {self.head}, verdict {self.mode}"
        return what + (f": {self.question!r})" if self.question else ")")

    def wins(self, prompt, responses: Sequence[str], scores: torch.Tensor | None = None
             ) -> tuple[dict[tuple[int, int], float], torch.Tensor | None, int]:
        """``p(i beats j)`` for i < j, the ``[K, heads]`` pointwise scores (None for a pairwise model) and the
        number of order-consistent pairs (0 for a pointwise model); ``scores``: a pointwise model's scores of
        these responses, when already computed."""
        k = len(responses)
        if self.scorer.pairwise:
            L = self.scorer.ordered_verdicts(prompt, list(responses), self.batch_size)
            M = preference_matrix(L)
            self.stats["pairwise verdicts"] += k * (k - 1)
            pairs = list(combinations(range(k), 2))
            consistent = sum(1 for i, j in pairs if float(L[i, j]) * float(L[j, i]) < 0)
            return {(i, j): float(torch.sigmoid(M[i, j])) for i, j in pairs}, None, consistent
        s = self._score([(prompt, responses)])[0] if scores is None else scores
        r = s[:, 0]
        return {(i, j): float(torch.sigmoid(r[i] - r[j])) for i, j in combinations(range(k), 2)}, s, 0

    def _score(self, items: Sequence[tuple[list[dict[str, str]], Sequence[str]]]) -> list[torch.Tensor]:
        """A pointwise model's ``[K, heads]`` scores of every item, the responses of all items in one scoring
        pass (full batches across items rather than one short batch per item)."""
        prompts = [prompt for prompt, responses in items for _ in responses]
        s = self.scorer.score(prompts, [r for _, responses in items for r in responses], self.batch_size).float()
        self.stats["responses scored"] += len(prompts)
        return list(torch.split(s, [len(responses) for _, responses in items]))

    def judge_items(self, items: Sequence[tuple[list[dict[str, str]], Sequence[str]]], criteria: bool,
                    margin: float, note: str) -> list[ItemJudgement]:
        out = []
        with torch.inference_mode():
            pointwise = [None] * len(items) if self.scorer.pairwise else self._score(items)
            for (prompt, responses), item_scores in zip(items, pointwise):
                k = len(responses)
                wins, scores, consistent = self.wins(prompt, responses, item_scores)
                counts: Counter = Counter(pairs=len(wins))
                if self.judges_positions:
                    counts["order-consistent pairs"] = consistent
                for p in wins.values():
                    counts["tied pairs" if abs(p - 0.5) <= margin else "decided pairs"] += 1
                ranking, ties, _ = rank(k, wins, margin)
                label_scores = None
                if criteria and scores is not None and self.criterion_column is not None:
                    label_scores = [{c: likert(float(scores[i, self.criterion_column[c]])) for c in CRITERIA}
                                    for i in range(k)]
                elif criteria:
                    counts["unscored"] += k * len(CRITERIA)
                label = LabelIn(ranking=ranking, ties=ties, scores=label_scores, comment=wins_comment(k, wins, note))
                out.append(ItemJudgement(label, wins, {}, None, counts))
        self.stats["truncated responses"] = self.scorer.truncated
        return out
