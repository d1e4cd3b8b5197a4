"""The built-in world: a small, consistent, download-free world to train and evaluate a tiny model end to end.

``World(seed)`` holds ~120 real countries, ~45 animals and small arithmetic, split into seen and held-out
halves; its methods generate the pre-training corpus, SFT and safety data, evaluation prompts with a checker,
graded candidate responses, and :class:`SimulatedLabeler` labels them. Everything is deterministic from seeds.
"""
from __future__ import annotations

from .kb import ANIMAL_ATTRIBUTES, COUNTRY_ATTRIBUTES, Animal, Country, Problem, World
from .labeler import CRITERIA, WEIGHTS, SimulatedLabeler
from .text import render_transcript

__all__ = [
           "ANIMAL_ATTRIBUTES",
           "COUNTRY_ATTRIBUTES",
           "CRITERIA",
           "WEIGHTS",
           "Animal",
           "Country",
           "Problem",
           "SimulatedLabeler",
           "World",
           "render_transcript",
]
