"""The reward interface RL trains against, until :mod:`lmforge.rewards` (reward models, functions, the judge,
weighted sums) lands: ``build_reward(section) -> Reward``, ``reward(prompts, responses, meta) -> Tensor[N]``.

Only what RL needs now: reward-model and ``module:function`` terms with weights. A reward model's score is
normalised by the mean/std it saved (so its training responses score mean 0, std 1).
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Literal

import torch
from pydantic import Field

from ..config import Section
from ..errors import InputError


class RewardTerm(Section):
    kind: Literal["model", "function"] = "model"
    path: str | None = Field(None, description="kind=model: a reward-model folder (lmforge rm's final/)")
    function: str | None = Field(None, description="kind=function: 'module:function' called as "
                                 "fn(prompts, responses, meta) -> list[float | None]")
    weight: float = 1.0
    normalize: bool = Field(True, description="model: (score - saved mean) / saved std")


class RewardSection(Section):
    terms: list[RewardTerm] = Field(default_factory=list)


class _ModelTerm:
    def __init__(self, term: RewardTerm, device: str = "cpu"):
        from ..models.reward import load_reward_model

        if not term.path:
            raise InputError("a reward term of kind 'model' needs a path", field="reward.terms.path")
        self.model, self.tokenizer, self.meta = load_reward_model(term.path)
        if not (math.isfinite(self.meta.reward_std) and self.meta.reward_std > 0):
            raise InputError(f"the reward model's saved std is {self.meta.reward_std}", file=term.path)
        self.model.to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.term = term

    def __call__(self, prompts, responses, meta) -> torch.Tensor:
        from ..data.reward_encode import encode
        from ..eval.reward_eval import score_encoded

        enc = [encode(self.tokenizer, self.meta.input_format, p, r, self.meta.max_length)
               for p, r in zip(prompts, responses)]
        with torch.no_grad():
            s = score_encoded(self.model, enc, self.tokenizer.pad_token_id, batch_size=64)[:, 0].double()
        if self.term.normalize:
            s = (s - self.meta.reward_mean) / self.meta.reward_std
        return s


class _FunctionTerm:
    def __init__(self, term: RewardTerm):
        spec = term.function or ""
        mod, _, name = spec.partition(":")
        if not mod or not name:
            raise InputError(f"reward function {spec!r} is not 'module:function'", field="reward.terms.function")
        try:
            self.fn = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError) as e:
            raise InputError(f"reward function {spec!r} does not exist ({e})", field="reward.terms.function") from None
        self.spec = spec

    def __call__(self, prompts, responses, meta) -> torch.Tensor:
        try:
            out = self.fn(prompts, responses, meta)
        except Exception as e:  # a user's function: name it, whatever it raised
            raise InputError(f"reward function {self.spec} raised {type(e).__name__}: {e}",
                             field="reward.terms.function") from e
        vals = [float("nan") if v is None else float(v) for v in out]
        if len(vals) != len(responses):
            raise InputError(f"reward function {self.spec} returned {len(vals)} values for {len(responses)} "
                             "responses", field="reward.terms.function")
        if any(v is not None and not math.isfinite(float(v)) for v in out):
            raise InputError(f"reward function {self.spec} returned NaN or infinity", field="reward.terms.function")
        return torch.tensor(vals, dtype=torch.float64)


class Reward:
    def __init__(self, terms: list[tuple[float, Any]]):
        self.terms = terms

    def __call__(self, prompts: list[list[dict]], responses: list[str], meta: list[dict | None]) -> torch.Tensor:
        total = torch.zeros(len(responses), dtype=torch.float64)
        for w, fn in self.terms:
            total = total + w * fn(prompts, responses, meta)
        return total


def build_reward(section: RewardSection) -> Reward:
    if not section.terms:
        raise InputError("no reward: add at least one reward term", field="reward.terms")
    return Reward([(t.weight, _ModelTerm(t) if t.kind == "model" else _FunctionTerm(t)) for t in section.terms])
