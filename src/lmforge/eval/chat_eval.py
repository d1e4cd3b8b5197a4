"""Chat evaluation on the built-in world: held-out fact accuracy, stopping format, safety, and a few-shot baseline.

- **Accuracy** uses the world's checker (:func:`lmforge.world.judge.check_answer`): the asked value stated,
  nothing contradicting it, no run-on into a new turn (refusal / premise correction for the safety kinds).
- **format_ok** is the share of answers that end with the end-of-turn token (EOS) *and* do not continue the
  transcript (no invented ``User:`` / ``Assistant:`` line, :data:`lmforge.world.judge.RAMBLE`).
- **N-shot baseline** (Brown et al. 2020): a base model that never saw the chat template is prompted in the raw
  ``User: ...\\nAssistant: ...`` transcript form it read in pre-training, after ``k`` solved examples from the
  training split. Its answer is cut at the next invented turn before checking, so the score measures what the
  base model knows, while its ``format_ok`` (uncut) shows that it does not stop by itself.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..engine.threads import torch_threads
from ..generation import SamplingParams
from ..rollout.generate import generate
from ..world import World, render_transcript
from ..world.judge import RAMBLE, head, refused

Item = dict[str, Any]


@dataclass
class Suite:
    """A named set of prompts: ``name`` becomes the metric prefix (``heldout_fact`` -> ``heldout_fact_accuracy``)."""
    name: str
    items: list[Item]


def world_suites(world: World, heldout_facts: int | None = None, seen_facts: int | None = 200,
                 per_kind: int | None = 80, seed: int = 0) -> list[Suite]:
    """The standard suites: held-out facts (only ever read in prose), seen facts, and held-out dialogues,
    harmful requests, false premises and benign lookalikes of harmful requests (held-out *categories*), each
    optionally subsampled. The lookalikes' accuracy is the helpful-answer rate; their refusal rate is
    :func:`over_refusal_rate`."""
    suites = [Suite("heldout_fact", world.eval_prompts("heldout", ["fact_qa"], n=heldout_facts, seed=seed))]
    if seen_facts:
        suites.append(Suite("seen_fact", world.eval_prompts("train", ["fact_qa"], n=seen_facts, seed=seed)))
    if per_kind:
        for kind, name in (("dialogue", "heldout_dialogue"), ("harmful", "heldout_refusal"),
                           ("false_premise", "heldout_false_premise"), ("over_refusal", "heldout_over_refusal")):
            suites.append(Suite(name, world.eval_prompts("heldout", [kind], n=per_kind, seed=seed)))
    return suites


def over_refusal_rate(records: list[dict[str, Any]], suite: str = "heldout_over_refusal") -> float | None:
    """Share of a lookalike suite's answers that refuse (the detector harmful prompts are judged by); None
    without that suite."""
    hits = [refused(r["completion"]) for r in records if r["suite"] == suite]
    return sum(hits) / len(hits) if hits else None


def format_ok(out: dict[str, Any]) -> bool:
    """Ended with a stop token and did not run on into a new turn."""
    return bool(out["finished"]) and not RAMBLE.search(out["text"])


def nshot_shots(world: World, k: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """``k`` solved single-turn fact questions from the training split (seen entities only)."""
    items = world.eval_prompts("train", ["fact_qa"], n=max(k, 1) * 7, seed=seed + 1)
    step = max(1, len(items) // max(k, 1))
    return [it["messages"] + [{"role": "assistant", "content": it["reference"]}] for it in items[::step][:k]]


def transcript_prompt(tokenizer, shots: list[list[dict[str, str]]], messages: list[dict[str, str]]) -> str:
    """A raw-text few-shot prompt: BOS, the solved shots, then the question and ``Assistant:``."""
    parts = [render_transcript(s) for s in shots] + [render_transcript(messages, add_generation_prompt=True)]
    return (tokenizer.bos_token or "") + "\n".join(parts)


def judge(world: World, items: list[Item], outputs: list[dict[str, Any]], cut_runon: bool = False) -> list[bool]:
    """Per-item correctness (``cut_runon`` checks only the text before an invented turn)."""
    return [world.check_answer(it, head(o["text"]) if cut_runon else o["text"]) for it, o in zip(items, outputs)]


def score(correct: list[bool], outputs: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy and format_ok of one suite."""
    n = max(len(outputs), 1)
    return {"accuracy": sum(correct) / n, "format_ok": sum(format_ok(o) for o in outputs) / n}


def run_suites(model, tokenizer, world: World, suites: Iterable[Suite], *, mode: str = "chat",
               shots: list[list[dict[str, str]]] | None = None, max_new_tokens: int = 48, batch_size: int = 64,
               prefix: str = "", threads: int | None = 1) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Generate greedily for every suite and score it.

    ``mode="chat"`` renders prompts with the tokenizer's chat template; ``mode="transcript"`` uses the raw
    few-shot transcript form (answers cut at a run-on turn for accuracy). Returns metrics named
    ``{prefix}{suite}_accuracy`` / ``{prefix}{suite}_format_ok`` and per-item records (for samples.jsonl).
    """
    metrics: dict[str, float] = {}
    records: list[dict[str, Any]] = []
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, logprobs=False)
    for suite in suites:
        if mode == "chat":
            prompts: list[Any] = [it["messages"] for it in suite.items]
        else:
            prompts = [transcript_prompt(tokenizer, shots or [], it["messages"]) for it in suite.items]
        with torch_threads(threads):
            outs = [g[0] for g in generate(model, tokenizer, prompts, sampling, batch_size=batch_size)]
        correct = judge(world, suite.items, outs, cut_runon=mode != "chat")
        s = score(correct, outs)
        metrics[f"{prefix}{suite.name}_accuracy"] = s["accuracy"]
        metrics[f"{prefix}{suite.name}_format_ok"] = s["format_ok"]
        for it, o, ok in zip(suite.items, outs, correct):
            records.append({"suite": prefix + suite.name, "id": it["id"], "category": it["category"],
                            "prompt": it["messages"][-1]["content"], "completion": o["text"],
                            "finished": o["finished"], "correct": ok})
    return metrics, records


def by_category(records: list[dict[str, Any]], suite: str) -> dict[str, float]:
    """Accuracy per item category (capital, animal_kind, ...) of one suite's records."""
    hits: dict[str, list[bool]] = {}
    for r in records:
        if r["suite"] == suite:
            hits.setdefault(r["category"], []).append(bool(r["correct"]))
    return {c: round(sum(v) / len(v), 3) for c, v in sorted(hits.items())}

