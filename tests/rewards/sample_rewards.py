"""Reward functions the tests name as ``rewards.sample_rewards:NAME`` (importable: tests/ is on sys.path)."""
from __future__ import annotations

import math

from lmforge.rewards import per_sample


def n_words(prompts, responses, meta):
    return [float(len(r.split())) for r in responses]


def scaled(prompts, responses, meta, factor=1.0):
    return [factor * len(r) for r in responses]


def nan_on_empty(prompts, responses, meta):
    return [math.nan if not r else 1.0 for r in responses]


def raises_on_boom(prompts, responses, meta):
    if any("boom" in r for r in responses):
        raise ValueError("cannot score a boom")
    return [0.0] * len(responses)


def too_few(prompts, responses, meta):
    return [1.0]


def text_score(prompts, responses, meta):
    return ["high" for _ in responses]


@per_sample
def one_at_a_time(prompt, response, meta):
    if meta is None:
        raise KeyError("needs meta")
    return float(meta["bonus"]) + len(prompt)


def two_args(prompts, responses):
    return [0.0] * len(responses)


NOT_A_FUNCTION = 3
