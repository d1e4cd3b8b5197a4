"""Chat prompts (or raw strings) in, completions out: the chat template and tokenisation in front of the one
generation engine (:mod:`lmforge.generation`).

Used by evaluation (held-out prompts), response collection for labeling, and RL rollouts. A call counter is
kept per model (the default ``step`` of the seeding), so two successive calls draw different samples and a
rerun of the same calls repeats them.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from ..generation import Completion, GenerationEngine, SamplingParams

Prompt = list[dict[str, str]] | str

_calls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> calls so far (the default step)
_calls_lock = threading.Lock()


def next_step(model) -> int:
    """How many times this model generated through here: the seeding's ``step`` when the caller gives none.
    Kept per model, weakly, so a model (and its memory) is not held alive by its counter."""
    with _calls_lock:
        step = _calls.get(model, 0)
        _calls[model] = step + 1
        return step


def render_prompts(tokenizer, prompts: Sequence[Prompt]) -> list[str]:
    """Chat prompts through the chat template (with the generation prompt); raw strings pass through."""
    out = []
    for p in prompts:
        if isinstance(p, str):
            out.append(p)
        else:
            out.append(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True))
    return out


def prompt_ids(tokenizer, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Token ids of the rendered prompts (special tokens come from the template or the string itself)."""
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in render_prompts(tokenizer, prompts)]


def complete(model, tokenizer, prompts: Sequence[Prompt], sampling: SamplingParams | None = None,
             batch_size: int = 16, step: int | None = None, rank: int | None = None) -> list[list[Completion]]:
    """For each prompt, ``sampling.n`` :class:`~lmforge.generation.Completion` s (ids, log-probs, reasons)."""
    sampling = sampling or SamplingParams()
    step = next_step(model) if step is None else step
    return GenerationEngine(model, tokenizer).generate(prompt_ids(tokenizer, prompts), sampling, step=step,
                                                       rank=rank, batch_size=batch_size)


def generate(model, tokenizer, prompts: Sequence[Prompt], sampling: SamplingParams | None = None,
             batch_size: int = 16, step: int | None = None, rank: int | None = None) -> list[list[dict]]:
    """For each prompt, ``sampling.n`` completions as ``{"text", "tokens", "finished", "finish_reason"}``.

    ``finished`` is True when the completion ended with a stop token or stop string rather than the length limit.
    """
    groups = complete(model, tokenizer, prompts, sampling, batch_size, step, rank)
    return [[c.record() for c in group] for group in groups]
