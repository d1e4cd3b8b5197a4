"""Evaluation of answers that can be checked: greedy accuracy, pass@k and majority-vote accuracy.

The pure functions (:func:`pass_at_k`, :func:`majority_vote`, :func:`sample_scores`) know no models; the answer
of a response is :func:`lmforge.rewards.builtin.answer_value` (numbers) and correctness is
:func:`~lmforge.rewards.builtin.answers_match`, the same functions the RL reward uses, so the evaluation and
the reward cannot disagree about what counts as correct. :func:`evaluate_answers` runs a model through the one
generation engine.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from ..rewards.builtin import answer_counts, answer_value, answers_match, final_answer, parse_number


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of Chen et al. 2021 (eq. 1): the chance that at least one of ``k`` of the ``n``
    samples, ``c`` of them correct, drawn without replacement, is correct: ``1 - C(n-c, k) / C(n, k)``,
    computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (no huge binomials)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    p = 1.0
    for i in range(n - c + 1, n + 1):
        p *= 1.0 - k / i
    return 1.0 - p


def majority_vote(answers: Sequence[Fraction | None]) -> Fraction | None:
    """The most frequent parsed answer (self-consistency, Wang et al. 2023); a tie goes to the answer seen
    first; None when no sample has a parsable answer."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == top)


def sample_scores(samples: Sequence[Sequence[str]], references: Sequence[str], k: int) -> dict[str, float]:
    """Over problems with ``n >= k`` sampled responses each: mean ``pass@k``, majority-vote accuracy (over
    all ``n`` samples) and the mean accuracy of one sample."""
    if len(samples) != len(references):
        raise ValueError(f"{len(samples)} sample lists for {len(references)} references")
    if not samples:
        return {"pass_at_k": 0.0, "majority_accuracy": 0.0, "sample_accuracy": 0.0}
    passes, majority, single = 0.0, 0, 0.0
    for group, ref in zip(samples, references):
        right = [answers_match(r, ref) for r in group]
        passes += pass_at_k(len(group), sum(right), k)
        single += sum(right) / len(group)
        value = parse_number(final_answer(ref))
        vote = majority_vote([answer_value(r) for r in group])
        majority += int(vote is not None and vote == value)
    n = len(samples)
    return {"pass_at_k": passes / n, "majority_accuracy": majority / n, "sample_accuracy": single / n}


def evaluate_answers(model, tokenizer, prompts: Sequence[list[dict[str, str]]], references: Sequence[str],
                     kinds: Sequence[str] | None = None, k: int = 4, max_new_tokens: int = 128,
                     temperature: float = 1.0, batch_size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Greedy ``accuracy`` (with the correct / wrong / unparsable counts and accuracy per kind), and from
    ``k`` samples at ``temperature`` ``pass_at_k`` and ``majority_accuracy`` (``k`` = 0: greedy only).
    Seeded by ``seed`` alone, so two models are compared on the same sampling seeds."""
    from ..generation import SamplingParams
    from ..rollout.generate import complete

    was = model.training
    model.eval()
    try:
        greedy = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
        texts = [g[0].text for g in complete(model, tokenizer, prompts, greedy, batch_size=batch_size, step=0)]
        out: dict[str, Any] = {**answer_counts(texts, list(references))}
        out["accuracy"] = out["correct"] / max(1, out["n"])
        if kinds is not None:
            per: dict[str, list[bool]] = {}
            for kind, t, ref in zip(kinds, texts, references):
                per.setdefault(kind, []).append(answers_match(t, ref))
            out["accuracy_by_kind"] = {kd: sum(v) / len(v) for kd, v in sorted(per.items())}
        if k > 0:
            sampled = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, n=k,
                                     seed=seed)
            groups = complete(model, tokenizer, prompts, sampled, batch_size=batch_size, step=1)
            out.update(sample_scores([[c.text for c in g] for g in groups], references, k))
            out["k"] = k
        out["examples"] = [{"question": p[-1]["content"], "response": t, "reference": r}
                           for p, t, r in list(zip(prompts, texts, references))[:4]]
    finally:
        model.train(was)
    return out
