"""``build_reward(section)``: every term loaded and checked before any training starts.

Checked here, each failure an :class:`~lmforge.errors.InputError` naming the term and what is wrong: a function
that does not import, does not exist (closest names suggested) or cannot take the arguments; a reward-model
folder without ``reward.json``, without a trained reward head, or (with ``normalize``) without saved mean/std;
a judge model that does not load, or an endpoint that does not answer or does not serve the model.
"""
from __future__ import annotations

from ..errors import InputError
from .base import Reward
from .combine import WeightedSum
from .config import NO_TERMS, RewardSection, RewardTerm


def build_term(term: RewardTerm, batch_size: int = 32, device: str = "cpu") -> Reward:
    """One term as a reward (normalised and clipped as configured, routed by ``when``; its weight is applied by
    the caller)."""
    reward = _build_kind(term, batch_size, device)
    if term.when:
        from .routing import Routed

        return Routed(reward, term.when)
    return reward


def _build_kind(term: RewardTerm, batch_size: int, device: str) -> Reward:
    name = term.label()
    if term.kind == "function":
        from .functions import FunctionReward

        return FunctionReward(term.function, kwargs=term.kwargs, name=name, clip=term.clip)
    if term.kind == "model":
        from .model_reward import ModelReward

        return ModelReward(term.path, normalize=term.normalized, clip=term.clip, batch_size=batch_size,
                           device=device, dtype=term.dtype, name=name, head=term.head)
    from .judge_reward import JudgeReward

    return JudgeReward.from_section(term.judge, normalize=term.normalized, clip=term.clip, batch_size=batch_size,
                                    device=device, name=name)


def build_reward(section: RewardSection, device: str = "cpu") -> Reward:
    """The reward of ``section``: the term itself when there is one with weight 1, else a
    :class:`~lmforge.rewards.combine.WeightedSum` (which keeps each term's scores in ``last_terms``)."""
    if not section.terms:
        raise InputError(NO_TERMS, field="reward.terms")
    terms = []
    for i, term in enumerate(section.terms):
        try:
            terms.append(build_term(term, section.batch_size, device))
        except InputError as e:  # say which term of the list is at fault
            where = f"reward.terms.{i}" + (f".{e.field}" if e.field else "")
            raise InputError(e.message, file=e.file, line=e.line, field=where) from None
    if len(terms) == 1 and section.terms[0].weight == 1.0:
        return terms[0]
    return WeightedSum(terms, [t.weight for t in section.terms])


def check_routes(section: RewardSection, metas: list, note: str = "") -> None:
    """Every term with ``when`` must select at least one of the prompts (a tag typo would silently zero it).
    ``note`` says which prompts these are (e.g. those left after dropping the ones too long)."""
    from .routing import known_tags, matches

    which = f"{len(metas)} prompts" + (f" ({note})" if note else "")
    for i, term in enumerate(section.terms):
        if term.when and not any(matches(m, term.when) for m in metas):
            tags = ", ".join(f"{k}: {'|'.join(v)}" for k, v in term.when.items())
            raise InputError(f"reward term {term.label()!r} selects none of the {which} "
                             f"(when {{{tags}}}); {known_tags(metas)}", field=f"reward.terms.{i}.when")
