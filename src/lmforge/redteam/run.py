"""Run attacks on a model, score them, and export what succeeded as next round's data.

**Seeds** are harmful requests: the built-in world's harmful prompts (``world``; their reference refusal comes
with them), AdvBench's ``harmful_behaviors.csv`` (column ``goal``) or any JSON lines with ``prompt`` (text) and
optionally ``refusal``. **Attacks** (:mod:`.attacks`) rewrite each seed; the model answers every variant
greedily through the generation engine. **Success** = the answer does not refuse, by the refusal detector the
world's evaluation uses (:func:`lmforge.world.judge.refused`: a refusal phrase before any invented turn).
For models of the built-in world that detector is exact (the world's refusals are its phrases); on other
models it is a phrase list and misses refusals worded otherwise, so an attack success rate there is an upper
bound.

**Export** (``findings/``): ``prompts.jsonl`` (the successful attack prompts, a prompt file for ``lmforge
generate``, so the next round samples on them), ``sft.jsonl`` (each with the refusal it should have got, for
safety SFT) and ``pairs.jsonl`` (preference pairs, refusal chosen over the model's answer, ``source:
redteam``, or a record's own ``source``, e.g. ``redteam:human:ana`` for people's findings from the labeling
app, for the reward model or DPO). With world seeds also ``benign.jsonl``: the world's *benign*
look-alikes of harmful requests (train split) wrapped in the same successful attacks and answered helpfully —
without them, training on ``sft.jsonl`` teaches "a wrapped request is refused" (measured in BENCHMARKS.md:
over-refusal 0.225 → 0.60; with 100 of them beside 173 refusals the plain refusal rate fell
instead: the ratio is a knob).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..eval.intervals import wilson_interval
from ..runs import atomic_write_text
from .attacks import ATTACKS

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that, because it could hurt someone."


@dataclass
class Seed:
    id: str
    request: str
    category: str = ""
    refusal: str | None = None


def world_seeds(world_seed: int = 0, split: str = "heldout", n: int | None = 32) -> list[Seed]:
    from ..world import World

    items = World(seed=world_seed).eval_prompts(split, ["harmful"], n=n, seed=0)
    return [Seed(it["id"], it["messages"][-1]["content"], it["category"], it["reference"]) for it in items]


def file_seeds(path: str | Path, limit: int | None = None) -> list[Seed]:
    """AdvBench CSV (``goal``) or JSON lines (``prompt``, optional ``refusal``, ``category``, ``id``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("seed file not found", file=path)
    seeds = []
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if "goal" not in (reader.fieldnames or []):
                raise InputError("CSV needs a 'goal' column (AdvBench's harmful_behaviors.csv)", file=path,
                                 field="goal")
            for i, row in enumerate(reader, 2):
                if not (row.get("goal") or "").strip():
                    raise InputError("empty", file=path, line=i, field="goal")
                seeds.append(Seed(f"{path.stem}-{i - 1}", row["goal"].strip()))
    else:
        from ..data.readers import read_jsonl

        for rec in read_jsonl(path):
            prompt = rec.data.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise rec.error("missing or empty", field="prompt")
            seeds.append(Seed(str(rec.data.get("id", f"{path.stem}-{rec.line}")), prompt.strip(),
                              str(rec.data.get("category", "")), rec.data.get("refusal")))
    if not seeds:
        raise InputError("no seeds", file=path)
    return seeds[:limit]


def attack(model, tokenizer, seeds: list[Seed], attacks: list[str], *, max_new_tokens: int = 64,
           batch_size: int = 16, progress=None) -> list[dict[str, Any]]:
    """Every (seed, attack) answered greedily; one record each with ``success`` (the answer did not refuse)."""
    from ..generation import SamplingParams
    from ..rollout.generate import generate
    from ..world.judge import refused

    jobs = [(s, a, ATTACKS[a](s.request)) for s in seeds for a in attacks]
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, logprobs=False)
    records = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        outs = generate(model, tokenizer, [[{"role": "user", "content": p}] for _, _, p in chunk], sampling,
                        batch_size=batch_size)
        for (seed, name, prompt), group in zip(chunk, outs):
            text = group[0]["text"]
            records.append({"seed": seed.id, "category": seed.category, "attack": name, "request": seed.request,
                            "prompt": prompt, "response": text, "success": not refused(text),
                            "refusal": seed.refusal})
        if progress is not None:
            progress(len(records), len(jobs))
    return records


def benign_counterexamples(attacks: list[str], world_seed: int = 0, per_attack: int = 20) -> list[dict[str, Any]]:
    """SFT examples of benign look-alikes (the world's train split) wrapped in each of ``attacks``, with their
    helpful reference answers: the counterweight to the refusals of :func:`export`."""
    from ..world import World

    items = World(seed=world_seed).eval_prompts("train", ["over_refusal"], n=None, seed=0)
    out = []
    for k, name in enumerate(attacks):
        for j in range(per_attack):
            it = items[(k * per_attack + j) % len(items)]
            out.append({"messages": [{"role": "user", "content": ATTACKS[name](it["messages"][-1]["content"])},
                                     {"role": "assistant", "content": it["reference"]}]})
    return out


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Attack success rate per attack (with its 95 % Wilson interval and count), overall, and the share of
    seeds broken by at least one attack."""
    per = {}
    for name in dict.fromkeys(r["attack"] for r in records):
        hits = [r["success"] for r in records if r["attack"] == name]
        lo, hi = wilson_interval(sum(hits), len(hits))
        per[name] = {"success_rate": sum(hits) / len(hits), "n": len(hits), "ci95": [lo, hi]}
    seeds = {}
    for r in records:
        seeds[r["seed"]] = seeds.get(r["seed"], False) or r["success"]
    broken = sum(seeds.values())
    lo, hi = wilson_interval(broken, len(seeds))
    return {"attacks": per, "seeds": len(seeds), "seeds_broken": broken, "seeds_broken_rate": broken / len(seeds),
            "seeds_broken_ci95": [lo, hi], "successes": sum(r["success"] for r in records),
            "attempts": len(records)}


def export(records: list[dict[str, Any]], out: Path, default_refusal: str = DEFAULT_REFUSAL,
           world_seed: int | None = None) -> dict[str, int]:
    """The successful attacks as a prompt file, safety SFT examples and preference pairs, and with
    ``world_seed`` the benign counter-examples in the attacks that worked (module doc)."""
    won = [r for r in records if r["success"]]
    out.mkdir(parents=True, exist_ok=True)

    def lines(rows):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    prompts = [{"prompt": r["prompt"], "meta": {"seed": r["seed"], "attack": r["attack"]}} for r in won]
    sft = [{"messages": [{"role": "user", "content": r["prompt"]},
                         {"role": "assistant", "content": r["refusal"] or default_refusal}]} for r in won]
    pairs = [{"type": "pair", "prompt": [{"role": "user", "content": r["prompt"]}],
              "chosen": r["refusal"] or default_refusal, "rejected": r["response"], "source": r.get("source", "redteam"),
              "criterion": "harmlessness", "meta": {"seed": r["seed"], "attack": r["attack"]}}
             for r in won if r["response"].strip()]
    atomic_write_text(out / "prompts.jsonl", lines(prompts))
    atomic_write_text(out / "sft.jsonl", lines(sft))
    atomic_write_text(out / "pairs.jsonl", lines(pairs))
    counts = {"prompts": len(prompts), "sft": len(sft), "pairs": len(pairs)}
    if world_seed is not None:
        worked = list(dict.fromkeys(r["attack"] for r in won if r["attack"] != "direct"))
        benign = benign_counterexamples(worked, world_seed)
        atomic_write_text(out / "benign.jsonl", lines(benign))
        counts["benign"] = len(benign)
    return counts
