"""A reward term that scores only the prompts it is meant for: ``when: {kind: [harmful]}``.

Safety RLHF scores a response by what its prompt calls for. Llama 2 (Touvron et al. 2023, sec. 3.2.2) uses its
safety reward model on prompts tagged safety-relevant and its helpfulness model on the rest; Rule-Based Rewards
(Mu et al. 2024) add a rule score per prompt category ("hard refuse", "comply") to a helpful-only reward model.
Both need the same thing from the reward interface: a term that applies to some prompts only, chosen by a tag
the prompt data carries. A term's ``when`` names those tags; :class:`Routed` calls the term on the matching
responses only and gives the others 0 for it (so a weighted sum adds nothing there).

Tags are read from the prompt's ``meta`` (what RL passes: a world item's fields such as ``kind``; a prompt
file's ``meta`` object, e.g. written by ``lmforge data split --tag kind=harmful``), at its top level first, then in
a nested ``meta`` dict (the world's truth fields).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .base import Messages, Reward, check_batch, check_scores

_MISSING = object()


def tag_value(meta: Mapping[str, Any] | None, key: str) -> Any:
    """``meta[key]``, else ``meta["meta"][key]``, else a sentinel that equals nothing."""
    if not isinstance(meta, Mapping):
        return _MISSING
    if key in meta:
        return meta[key]
    inner = meta.get("meta")
    if isinstance(inner, Mapping) and key in inner:
        return inner[key]
    return _MISSING


def matches(meta: Mapping[str, Any] | None, when: Mapping[str, Sequence[str]]) -> bool:
    """Whether every key of ``when`` has one of its listed values in ``meta`` (compared as strings)."""
    for key, allowed in when.items():
        v = tag_value(meta, key)
        if v is _MISSING or str(v) not in allowed:
            return False
    return True


def known_tags(metas: Sequence[Mapping[str, Any] | None], limit: int = 8) -> str:
    """The tag keys and some values the prompts carry, for the error of a ``when`` that selects none."""
    seen: dict[str, set[str]] = {}
    for m in metas:
        if not isinstance(m, Mapping):
            continue
        inner = m.get("meta") if isinstance(m.get("meta"), Mapping) else {}
        for k in {**inner, **m}:
            v = tag_value(m, k)  # the value a ``when`` on this key would compare
            if isinstance(v, (str, int, bool)) and k not in ("id", "reference", "prompt"):
                seen.setdefault(k, set()).add(str(v))
    if not seen:
        return "the prompts carry no tags"
    parts = []
    for k in sorted(seen)[:limit]:
        vals = sorted(seen[k])
        parts.append(f"{k}: {', '.join(vals[:5])}{', ...' if len(vals) > 5 else ''}")
    return "the prompts' tags: " + "; ".join(parts)


class Routed:
    """``term`` on the responses whose prompt matches ``when``; 0.0 on the others (the term is not called on
    them, so a reward model's forward is spent only where it counts). ``last_terms`` holds NaN where the term
    did not score, so RL logs the term's mean over the responses it scored, not diluted by the zeros."""

    def __init__(self, term: Reward, when: Mapping[str, Sequence[str]]):
        self.term, self.when = term, {k: [str(v) for v in vs] for k, vs in when.items()}
        self.name = term.name
        self.last_terms: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor:
        check_batch(self.name, prompts, responses, meta)
        scored = torch.full((len(responses),), float("nan"))
        idx = [i for i, m in enumerate(meta) if matches(m, self.when)]
        if idx:
            scored[torch.tensor(idx)] = check_scores(self.name, self.term(
                [prompts[i] for i in idx], [responses[i] for i in idx], [meta[i] for i in idx]), len(idx))
        self.last_terms = {self.name: scored}
        return scored.nan_to_num(0.0)  # check_scores leaves no NaN among the scored
