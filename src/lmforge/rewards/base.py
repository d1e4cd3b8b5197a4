"""The reward interface RL codes against: text in, one float per response out.

A reward is any object with a ``name`` and ``__call__(prompts, responses, meta) -> Tensor[N]``:

- ``prompts[i]``: the chat messages (``[{"role": ..., "content": ...}, ...]``) that ``responses[i]`` answers;
- ``responses[i]``: the response text only (decoded by the policy's tokenizer: a reward re-tokenises it if it
  needs tokens, so the policy and a reward model may use different tokenizers);
- ``meta[i]``: the prompt item's extra fields (for the built-in world the whole eval item with its ``kind``,
  ``reference`` and ``meta`` truth; for a JSONL prompt file the row's other fields), or None.

After a call ``last_terms`` holds the score of every term by name (one entry for a single reward, one per term
for a :class:`~lmforge.rewards.combine.WeightedSum`), so RL can log each term's mean.

Errors: a non-finite score, a wrong number of scores, or an exception raised by a user's reward function is a
:class:`RewardError`. It subclasses :class:`~lmforge.errors.InputError`, not ``TrainingStopped``: the cause and
the fix are in what the user gave (their function, their reward model), it prints as one line and exits 2, and
the RL stage's checkpoints are written atomically, so nothing is half-written whichever is raised.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import InputError

Messages = list[dict[str, str]]


class RewardError(InputError):
    """A reward could not score a batch: it names the reward (and the response index where one is at fault)."""


@runtime_checkable
class Reward(Protocol):
    name: str
    last_terms: dict[str, torch.Tensor]

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor: ...


def check_batch(name: str, prompts: Sequence[Any], responses: Sequence[Any], meta: Sequence[Any]) -> None:
    """The three lists a reward is called with must be equally long (a caller's bug, named here)."""
    if not (len(prompts) == len(responses) == len(meta)):
        raise RewardError(f"reward {name}: got {len(prompts)} prompts, {len(responses)} responses and "
                          f"{len(meta)} meta entries; they must be equally long")


def check_scores(name: str, scores: Any, n: int) -> torch.Tensor:
    """``scores`` as a float32 ``[n]`` tensor, or a :class:`RewardError` naming ``name`` and the first bad index.

    Accepts a list/tuple of numbers (Python, numpy or one-element tensors), a numpy array or a 1-D tensor. Rejected: a count other than ``n``, a value that
    is not a number (None, a string, a bool), NaN or ±inf.
    """
    if isinstance(scores, torch.Tensor):
        values = scores.detach().float().cpu().reshape(-1) if scores.dim() <= 1 else None
        if values is None:
            raise RewardError(f"reward {name}: returned a tensor of shape {list(scores.shape)}, expected [{n}]")
    else:
        if hasattr(scores, "tolist"):  # numpy arrays
            scores = scores.tolist()
        if not isinstance(scores, (list, tuple)):
            raise RewardError(f"reward {name}: returned {type(scores).__name__}, expected a list of {n} numbers")
        for i, v in enumerate(scores):
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real):  # numpy scalars are Real
                raise RewardError(f"reward {name}: score of response {i} is {v!r}, not a number")
        values = torch.tensor([float(v) for v in scores], dtype=torch.float32)
    if values.numel() != n:
        raise RewardError(f"reward {name}: returned {values.numel()} scores for {n} responses")
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise RewardError(f"reward {name}: score of response {i} is {float(values[i])} "
                          f"({len(bad)} of {n} non-finite)")
    return values


def clip_scores(scores: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Scores clipped to ``[-clip, clip]`` (None: unchanged)."""
    return scores if clip is None else scores.clamp(-clip, clip)

