"""The ``harmful`` and ``benign`` evaluation suites: any prompt files (:mod:`lmforge.data.prompt_files`), each
answered greedily through the model's chat template by the one generation engine and judged by the refusal
detector :func:`lmforge.world.judge.refused` (its precision / recall on a real model is in docs/eval.md).

- ``harmful`` NAME=FILE -> **harmless** ``refusal_rate_NAME`` (refusing is right);
- ``benign`` NAME=FILE -> **harmless** ``over_refusal_NAME`` (lower is better), and, so a model that stopped
  refusing by producing degenerate text shows it, **fluency** ``distinct2_NAME`` — the mean over answers of
  distinct word bigrams / bigrams (Li et al. 2016, per answer: a looping answer scores low) — and
  ``mean_words_NAME`` (words per answer; reported beside the reference model's, neither direction is better).

Samples carry ``suite: harmful:NAME`` / ``benign:NAME``, so ``lmforge eval --versus-suite benign:NAME`` can
restrict a win rate to one file's prompts.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .hhh import Figure, item_ids, proportion
from .intervals import mean_interval

_WORD = re.compile(r"\w+(?:'\w+)?")


def distinct2(text: str) -> float:
    """Distinct word bigrams over word bigrams of one text (1.0 when it has fewer than two words)."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = list(zip(words, words[1:]))
    return len(set(grams)) / len(grams) if grams else 1.0


def n_words(text: str) -> int:
    return len(_WORD.findall(text))


def answer_prompts(model, tokenizer, path: str | Path, suite: str, *, limit: int | None = None,
                   batch_size: int = 16, max_new_tokens: int = 64) -> list[dict[str, Any]]:
    """Greedy answers to the first ``limit`` prompts of ``path``, one record each (suite, id, prompt, messages,
    completion, refused)."""
    from ..data.prompt_files import read_prompt_file
    from ..generation import SamplingParams
    from ..rollout.generate import generate
    from ..world.judge import refused

    items = read_prompt_file(path, limit)
    outs = generate(model, tokenizer, [it.messages for it in items],
                    SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, logprobs=False),
                    batch_size=batch_size)
    return [{"suite": suite, "id": it.id, "prompt": it.text, "messages": it.messages, "completion": g[0]["text"],
             "refused": refused(g[0]["text"])} for it, g in zip(items, outs)]


def harmful_figures(name: str, records: Sequence[dict[str, Any]]) -> list[Figure]:
    return [proportion("harmless", f"refusal_rate_{name}", [r["refused"] for r in records], "harmful",
                       ids=[r.get("id") for r in records])]


def benign_figures(name: str, records: Sequence[dict[str, Any]]) -> list[Figure]:
    ids = [r.get("id") for r in records]
    figs = [proportion("harmless", f"over_refusal_{name}", [r["refused"] for r in records], "benign",
                       higher_is_better=False, ids=ids)]
    for fig_name, values in ((f"distinct2_{name}", [distinct2(r["completion"]) for r in records]),
                             (f"mean_words_{name}", [float(n_words(r["completion"])) for r in records])):
        lo, hi = mean_interval(values)
        figs.append(Figure("fluency", fig_name, sum(values) / len(values), len(values), lo, hi, True, "benign",
                           list(values), item_ids(ids, len(values))))
    return figs


def prompt_suite(model, tokenizer, kind: str, files: dict[str, Path], **kw) -> tuple[list[Figure], list[dict]]:
    """Every NAME=FILE of one kind (``harmful`` or ``benign``): figures and the answers behind them."""
    figures, samples = [], []
    for name, path in files.items():
        records = answer_prompts(model, tokenizer, path, f"{kind}:{name}", **kw)
        figures += (harmful_figures if kind == "harmful" else benign_figures)(name, records)
        samples += records
    return figures, samples
