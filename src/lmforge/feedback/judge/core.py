"""Judging a batch: queries out, verdict probabilities in, a ranking (and 1-7 scores) stored as a label.

**Pairs, both orders.** For K responses every pair (i, j) is asked twice: i shown as A and j as B, then j as A
and i as B. With p1 = P(i wins | i shown first) and p2 = P(i wins | i shown second), each from the judge's
normalised probabilities of its two verdicts, the pair is decided by the mean log-odds::

    p(i beats j) = sigmoid((logit p1 + logit p2) / 2)          (p1, p2 clipped to [1e-4, 1 - 1e-4])

A position bias that adds b to the log-odds of whichever response is shown first cancels exactly: a judge that
always says A gets p1 = q, p2 = 1 - q and p = 0.5. A written verdict counts as probability 1 for the choice
it names (0.5 each when it names none).

**Ranking.** Copeland over the decided pairs: a response scores 1 per pair it wins with p > 0.5 + margin and
0.5 per undecided pair (|p - 0.5| <= margin); equal scores are ordered by expected wins (the sum of its win
probabilities, a Borda count). Neighbours in that order with equal Copeland scores whose pairs are all
undecided are stored as ties.

**Criterion scores** (optional): each response alone, once per criterion; the score is the expected digit
sum_d d * P(d) over the judge's probabilities of 1..7, rounded to the nearest whole number.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Protocol

from ...data.preference import CRITERIA
from ..labels import LabelIn, response_letter
from .prompts import PAIR_CHOICES, SCORE_CHOICES, Query, pair_query, score_query
from .rubric import Rubric

EPS = 1e-4
TIE_MARGIN = 0.05
COMBINATION_RULE = ("each pair of responses is judged twice, once in each order (A/B and B/A); with p1 and p2 "
                    "the probabilities that the first response wins when shown as A and as B, the pair is "
                    "decided by p = sigmoid((logit p1 + logit p2) / 2), which cancels a bias towards either "
                    "position; |p - 0.5| <= tie margin is a tie. The ranking is Copeland over the pairs "
                    "(1 per win, 0.5 per tie), broken by expected wins; undecided neighbours are stored as ties.")


class Backend(Protocol):
    """Anything that answers judge queries: per query, the log-probability of each allowed choice.

    A choice missing from the dict (or at -inf) is impossible; an empty dict is an undecided verdict.
    ``stats`` counts what happened (requests, verdicts read from log-probabilities or from text, ...).
    """
    name: str
    stats: Counter

    def answer(self, queries: Sequence[Query]) -> list[dict[str, float]]: ...


def choice_probs(logprobs: Mapping[str, float], choices: Sequence[str]) -> dict[str, float] | None:
    """Probabilities of ``choices`` renormalised among themselves; None when none of them is possible."""
    finite = {c: logprobs[c] for c in choices if c in logprobs and math.isfinite(logprobs[c])}
    if not finite:
        return None
    top = max(finite.values())
    weights = {c: math.exp(finite[c] - top) if c in finite else 0.0 for c in choices}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if not math.isfinite(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def combine(p_first: float | None, p_second: float | None) -> float:
    """p(i beats j) from P(i wins) when i was shown as A (``p_first``) and as B (``p_second``); None = 0.5."""
    z = (_logit(0.5 if p_first is None else p_first) + _logit(0.5 if p_second is None else p_second)) / 2
    return 1 / (1 + math.exp(-z))


def rank(k: int, wins: Mapping[tuple[int, int], float], margin: float = TIE_MARGIN
         ) -> tuple[list[int], list[list[int]], list[float]]:
    """(ranking best first, tie groups, Copeland scores) from ``wins[(i, j)] = p(i beats j)`` for i < j."""
    def p(i: int, j: int) -> float:
        return wins[(i, j)] if i < j else 1 - wins[(j, i)]

    def undecided(i: int, j: int) -> bool:
        return abs(p(i, j) - 0.5) <= margin

    copeland = [sum(0.5 if undecided(i, j) else float(p(i, j) > 0.5) for j in range(k) if j != i)
                for i in range(k)]
    expected = [sum(p(i, j) for j in range(k) if j != i) for i in range(k)]
    order = sorted(range(k), key=lambda i: (-copeland[i], -expected[i], i))
    groups: list[list[int]] = []
    for i in order:
        g = groups[-1] if groups else None
        if g and copeland[g[0]] == copeland[i] and all(undecided(i, j) for j in g):
            g.append(i)
        else:
            groups.append([i])
    return order, [g for g in groups if len(g) > 1], copeland


def expected_score(probs: Mapping[str, float] | None) -> float | None:
    return None if probs is None else sum(int(d) * probs[d] for d in SCORE_CHOICES)


@dataclass
class ItemJudgement:
    label: LabelIn
    wins: dict[tuple[int, int], float]
    order_probs: dict[tuple[int, int], tuple[float | None, float | None]]
    scores: list[dict[str, float | None]] | None = None
    counts: Counter = field(default_factory=Counter)


def item_queries(rubric: Rubric, prompt: list[dict[str, str]], responses: Sequence[str],
                 criteria: bool) -> list[Query]:
    """Every pair in both orders, then (with ``criteria``) every response on every criterion."""
    out = []
    for i, j in combinations(range(len(responses)), 2):
        out.append(pair_query(rubric, prompt, responses[i], responses[j], (i, j)))
        out.append(pair_query(rubric, prompt, responses[j], responses[i], (j, i)))
    if criteria:
        out += [score_query(rubric, prompt, r, c, i) for i, r in enumerate(responses) for c in CRITERIA]
    return out


def decide(k: int, answers: Sequence[Mapping[str, float]], criteria: bool, margin: float = TIE_MARGIN,
           note: str = "") -> ItemJudgement:
    """The label from the answers to :func:`item_queries` (same order)."""
    answers = iter(answers)
    counts: Counter = Counter()
    wins, order_probs = {}, {}
    for i, j in combinations(range(k), 2):
        first = choice_probs(next(answers), PAIR_CHOICES)  # i shown as A
        second = choice_probs(next(answers), PAIR_CHOICES)  # j shown as A
        p1 = first["A"] if first else None
        p2 = second["B"] if second else None
        for probs in (first, second):
            if probs is None:
                counts["undecided verdicts"] += 1
            else:
                counts["_p_a_sum"] += probs["A"]
                counts["_p_a_n"] += 1
        order_probs[(i, j)] = (p1, p2)
        wins[(i, j)] = combine(p1, p2)
        counts["pairs"] += 1
        if p1 is not None and p2 is not None and (p1 - 0.5) * (p2 - 0.5) > 0:
            counts["order-consistent pairs"] += 1
        counts["tied pairs" if abs(wins[(i, j)] - 0.5) <= margin else "decided pairs"] += 1
    ranking, ties, _ = rank(k, wins, margin)
    scores = label_scores = None
    if criteria:
        scores = [{c: expected_score(choice_probs(next(answers), SCORE_CHOICES)) for c in CRITERIA}
                  for _ in range(k)]
        counts["unscored"] += sum(v is None for row in scores for v in row.values())
        if all(v is not None for row in scores for v in row.values()):
            label_scores = [{c: min(7, max(1, math.floor(row[c] + 0.5))) for c in CRITERIA} for row in scores]
    comment = wins_comment(k, wins, note)
    label = LabelIn(ranking=ranking, ties=ties, scores=label_scores, comment=comment)
    return ItemJudgement(label, wins, order_probs, scores, counts)


def wins_comment(k: int, wins: Mapping[tuple[int, int], float], note: str) -> str:
    pairs = ", ".join(f"{response_letter(i)}>{response_letter(j)} {p:.2f}" for (i, j), p in wins.items())
    text = f"{note}P(win, both orders combined): {pairs}" if k > 1 else note
    return text[:4900]


def judge_views(backend, rubric: Rubric, views, criteria: bool, margin: float, note: str, counts: Counter
                ) -> list[ItemJudgement]:
    """Judgements of assignment views: a backend that judges whole items (a reward model,
    :mod:`.reward_judge`) does so; a query backend answers :func:`item_queries` and :func:`decide` reads them."""
    if hasattr(backend, "judge_items"):
        return backend.judge_items([(v.prompt, v.responses) for v in views], criteria, margin, note)
    queries = [item_queries(rubric, v.prompt, v.responses, criteria) for v in views]
    answers = backend.answer([q for qs in queries for q in qs])
    out, at = [], 0
    for view, qs in zip(views, queries):
        out.append(decide(len(view.responses), answers[at:at + len(qs)], criteria, margin, note))
        at += len(qs)
        counts["queries"] += len(qs)
    return out


def judge_batch(store, batch: str | int, backend: Backend, *, rubric: Rubric, name: str = "judge",
                criteria: bool = True, limit: int | None = None, chunk: int = 8, margin: float = TIE_MARGIN,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Label ``batch`` as the AI user ``name`` (kind ``ai``): pending prompts only, ``chunk`` prompts per
    backend call and per transaction. Returns counts (labels, pairs, position statistics, backend stats)."""
    store.get_batch(batch)  # an unknown batch fails before anything is written
    user = store.ensure_user(name, kind="ai")
    store.assign(batch, 1, users=[user.name])
    todo = store.pending(user.id, batch, limit=limit)
    counts: Counter = Counter({"created": 0, "unchanged": 0, "revised": 0})
    describe = getattr(backend, "describe", None)
    note = f"judge {describe() if describe else backend.name + ', rubric ' + rubric.name}. "
    for start in range(0, len(todo), chunk):
        views = [store.assignment_view(user.id, aid) for aid in todo[start:start + chunk]]
        judged = judge_views(backend, rubric, views, criteria, margin, note, counts)
        subs = [(view.id, j.label) for view, j in zip(views, judged)]
        for j in judged:
            counts.update(j.counts)
        for result in store.submit_labels(user.id, subs):
            counts[result.status] += 1
        if progress:
            progress(min(start + chunk, len(todo)), len(todo))
    p_a_n = counts.pop("_p_a_n", 0)
    p_a_sum = counts.pop("_p_a_sum", 0.0)
    summary: dict[str, Any] = {"judge": f"ai:{user.name}", "prompts judged": len(todo)}
    for key in ("created", "unchanged", "revised", "pairs", "decided pairs", "tied pairs"):
        summary[key] = counts.pop(key, 0)
    consistent = counts.pop("order-consistent pairs", 0)
    # chat judges ask both orders of every pair; a reward-model judge reads both orders only when pairwise
    if summary["pairs"] and (counts["queries"] or getattr(backend, "judges_positions", False)):
        summary["order-consistent share"] = round(consistent / summary["pairs"], 4)
    if p_a_n:
        summary["mean P(A)"] = round(p_a_sum / p_a_n, 4)
    summary.update(sorted(counts.items()))  # queries, undecided verdicts, unscored
    summary.update({f"backend: {k}": v for k, v in sorted(backend.stats.items())})
    return summary
