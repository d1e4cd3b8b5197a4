"""Batch modes: what a batch's labelers give per prompt (see :mod:`lmforge.feedback.labels` for the rules).

Kept free of heavy imports: the CLI's help text reads it.
"""
from __future__ import annotations

from ..errors import InputError

MODES = ("rank", "rank+overall", "rank+criteria", "good-bad")
DEFAULT_MODE = "rank+criteria"
MODE_HELP = ("what labelers give per prompt: rank (ranking only), rank+overall (ranking and a 1-7 overall score "
             "per response), rank+criteria (ranking and 1-7 scores on the five criteria), good-bad (good or bad "
             "per response)")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown batch mode {mode!r} (use one of {', '.join(MODES)})", field="mode")
    return mode


def mode_ranks(mode: str) -> bool:
    """Whether labelers of a batch in this mode rank its responses (all modes but good-bad)."""
    return mode != "good-bad"
