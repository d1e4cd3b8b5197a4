"""Revise recipe (``lmforge revise``): a model's own answers made into SFT and preference data, by context
distillation from a system prompt and / or constitutional critique -> revision under written principles.

Per prompt, all greedy by default and through the one generation engine:

1. ``initial``: the model's answer to the prompt as it is;
2. with ``system``: its answer with that system prompt put first (context distillation, Askell et al. 2021:
   the data teaches the behaviour the prompt induces, and the prompt is *not* kept in the training rows);
   with ``prefill`` (openers such as "I can't help with that, because"), the answer starts with an opener drawn
   per prompt and the model writes, in its own words, the sentence of explanation the opener begins (response
   priming: a model too small to refuse under a system prompt still explains a refusal it has begun);
3. for each of ``rounds`` rounds with ``principles``: a principle is drawn (seeded per prompt and round), the
   model is asked its critique request after the current answer, then its revision request after its critique,
   and the revision becomes the current answer (Bai et al. 2022, "Constitutional AI", the supervised stage).

With ``samples`` K > 1 (and a ``temperature`` > 0) steps 2 and 3 draw K answers each, all of them candidates
(rejection sampling against the expectation: a small model that refuses one time in K under the system prompt
still yields a refusal); the conversation goes on from the first. The initial answer stays one: it is the
model's behaviour as it is, the rejected side of the pairs.

The candidates are the initial answer, the system-prompted (or prefilled) ones and each revision. ``expect`` says what a good
answer does, judged by the refusal detector :func:`lmforge.world.judge.refused` (a row's ``meta.expect``
overrides it): ``refuse`` (harmful prompts), ``answer`` (benign ones: the look-alike that must not be refused)
or ``any``. For ``refuse`` a candidate must also be clean: no compliance phrase ("here's how", "step 1") and
no repetition (:func:`lmforge.world.judge.is_repetitive`), so a refusal that goes on to comply or loops is not
kept. The chosen answer is the latest candidate that meets it (``any``: the last one); a prompt with none is
dropped and counted. Written to ``out/``:

- ``sft.jsonl``: ``{"messages": [prompt..., {"assistant": chosen}]}`` (the prompt without the system prompt);
- ``pairs.jsonl``: preference pairs, the chosen answer over a candidate that fails the expectation (``any``: over
  the initial answer when it differs), ``source: revise``, for ``lmforge rm`` and ``lmforge dpo``;
- ``records.jsonl``: every prompt with all its candidates and critiques; ``summary.json``: the counts.
"""
from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

from ..errors import InputError

EXPECT = ("refuse", "answer", "any")
SENTENCE_END = (".", "!", "?")
# a revision's lead-in ("Here is the revised response:") is the model talking about its answer, not the answer
LEAD_IN = re.compile(r"^\s*(?:(?:here(?:'s| is) )?(?:a |the |my )?(?:revised|rewritten|new) "
                     r"(?:response|answer|version)[^:\n]{0,40}:|revision\s*:)\s*", re.I)


def load_principles(path: str | Path) -> list[dict[str, str]]:
    """A YAML / JSON list of ``{name, critique, revision}``: the critique and revision requests of each principle."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("principles file not found", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(f"not valid YAML: {getattr(e, 'problem', e)}", file=path,
                         line=None if line is None else line + 1) from None
    if not isinstance(data, list) or not data:
        raise InputError("expected a non-empty list of {name, critique, revision}", file=path)
    out = []
    for i, p in enumerate(data):
        if not isinstance(p, dict):
            raise InputError(f"principle {i} is not a mapping", file=path, field=f"{i}")
        for key in ("critique", "revision"):
            if not isinstance(p.get(key), str) or not p[key].strip():
                raise InputError("missing or empty", file=path, field=f"{i}.{key}")
        unknown = set(p) - {"name", "critique", "revision"}
        if unknown:
            raise InputError(f"unknown key {sorted(unknown)[0]!r} (use name, critique, revision)", file=path,
                             field=f"{i}")
        out.append({"name": str(p.get("name") or f"principle-{i}"), "critique": p["critique"].strip(),
                    "revision": p["revision"].strip()})
    return out


def clean_revision(text: str) -> str:
    """The revision without a lead-in line or wrapping quotes."""
    text = LEAD_IN.sub("", text.strip(), count=1).strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def choose(candidates: list[str], flags: list[bool], expect: str,
           clean: list[bool] | None = None) -> tuple[int | None, int | None]:
    """(chosen, rejected) candidate indices. ``flags[i]``: candidate i refuses; ``clean[i]`` (default all): it may
    be chosen as a refusal. The chosen one is the latest that meets ``expect``; the rejected one the earliest
    that fails it (``any``: the initial answer, index 0, when its text differs from the chosen one's). ``None``
    where there is none."""
    if expect == "any":
        good = [i for i, c in enumerate(candidates) if c.strip()]
        chosen = good[-1] if good else None
        rejected = 0 if chosen not in (None, 0) and candidates[0].strip() != candidates[chosen].strip() else None
        return chosen, rejected
    want = expect == "refuse"
    clean = clean or [True] * len(candidates)
    good = [i for i, (c, f, ok) in enumerate(zip(candidates, flags, clean)) if c.strip() and f == want
            and (ok or not want)]
    bad = [i for i, (c, f) in enumerate(zip(candidates, flags)) if c.strip() and f != want]
    return (good[-1] if good else None), (bad[0] if bad and good else None)


def revise(model: str, prompts: str | Path, out: str | Path, *, system: str | None = None,
           principles: str | Path | None = None, rounds: int = 1, expect: str = "any", limit: int | None = None,
           max_new_tokens: int = 160, temperature: float = 0.0, seed: int = 0, batch_size: int = 8,
           samples: int = 1, repetition_penalty: float = 1.0, require: int = 0,
           prefill: list[str] | None = None, dtype: str = "float32") -> dict[str, Any]:
    """Run the recipe; returns the summary (also ``out/summary.json``). Inputs are checked before the model loads."""
    from ..data.prompt_files import read_prompt_file
    from ..data.readers import write_jsonl_atomic
    from ..generation import SamplingParams
    from ..models.peft import load_any
    from ..rollout.generate import generate, render_prompts
    from ..runs import atomic_write_text
    from ..world.judge import COMPLIANCE, is_repetitive, refused

    t0 = time.time()
    if expect not in EXPECT:
        raise InputError(f"unknown expectation {expect!r} (use {', '.join(EXPECT)})", field="expect")
    if rounds < 0:
        raise InputError(f"rounds must be >= 0, got {rounds}", field="rounds")
    if samples < 1 or (samples > 1 and temperature == 0):
        raise InputError(f"samples={samples} needs samples >= 1, and a temperature > 0 when above 1 (greedy "
                         "answers are all the same)", field="samples")
    items = read_prompt_file(prompts, limit)
    for it in items:
        if it.meta.get("expect", expect) not in EXPECT:
            raise InputError(f"unknown expectation {it.meta['expect']!r} (use {', '.join(EXPECT)})", file=it.file,
                             line=it.line, field="meta.expect")
    rules = load_principles(principles) if principles else []
    if system is not None and not system.strip():
        raise InputError("the system prompt is empty", field="system")
    openers = [o.strip() for o in (prefill or []) if o.strip()]  # no trailing space: the model's next token has it
    if prefill is not None and not openers:
        raise InputError("no prefill opener given (every one is empty)", field="prefill")
    if not rules and system is None and not openers:
        rounds = 0  # nothing to revise with: the initial answers are the data (e.g. benign prompts, expect answer)
    lm, tokenizer = load_any(str(model), dtype)
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError("the tokenizer has no chat template; revise needs a chat model", file=model)
    lm.eval()
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, logprobs=False,
                              repetition_penalty=repetition_penalty)

    def answer(convs: list[list[dict[str, str]]]) -> list[str]:
        return [g[0]["text"].strip() for g in generate(lm, tokenizer, convs, sampling, batch_size=batch_size)]

    def answers(convs: list[list[dict[str, str]]]) -> list[list[str]]:  # K per conversation
        many = sampling.model_copy(update={"n": samples})
        return [[c["text"].strip() for c in g] for g in generate(lm, tokenizer, convs, many, batch_size=batch_size)]

    records = [{"id": it.id, "prompt": it.messages, "candidates": [], "kinds": [], "critiques": [],
                "principles": []} for it in items]
    contexts = [list(it.messages) for it in items]
    for r, text in zip(records, answer(contexts)):
        r["candidates"].append(text)
        r["kinds"].append("initial")
    if system is not None:
        contexts = [[{"role": "system", "content": system}] + [m for m in c if m["role"] != "system"]
                    for c in contexts]
    if openers:  # the rendered prompt plus the opener: the model continues the answer it has begun
        picked_openers = [openers[random.Random(f"{seed}:{i}:opener").randrange(len(openers))]
                          for i in range(len(items))]
        primed = [t + o for t, o in zip(render_prompts(tokenizer, contexts), picked_openers)]
        # up to the first sentence end: a small model that explains on drifts, often into complying ("However, I
        # can certainly ..."); an answer the length limit cut is left empty (never chosen) and counted
        many = sampling.model_copy(update={"n": samples, "stop": list(SENTENCE_END)})
        for r, o, group in zip(records, picked_openers, generate(lm, tokenizer, primed, many, batch_size=batch_size)):
            texts = [(o + c["text"]).rstrip() if c["finished"] else "" for c in group]  # unstripped: goes on from o
            r["candidates"] += [t + "." if t and t[-1] not in SENTENCE_END else t for t in texts]
            r["kinds"] += ["prefill"] * len(group)
            r["opener"] = o
            r["prefill_cut"] = sum(not t for t in texts)
    elif system is not None:
        for r, texts in zip(records, answers(contexts)):
            r["candidates"] += texts
            r["kinds"] += ["system"] * len(texts)
    for k in range(rounds if rules else 0):
        picked = [rules[random.Random(f"{seed}:{i}:{k}").randrange(len(rules))] for i in range(len(items))]
        crit_convs = [c + [{"role": "assistant", "content": r["candidates"][len(r["candidates"]) - samples
                                                                            if r["kinds"][-1] != "initial" else 0]},
                           {"role": "user", "content": p["critique"]}]
                      for c, r, p in zip(contexts, records, picked)]
        critiques = answer(crit_convs)
        rev_convs = [c + [{"role": "assistant", "content": t}, {"role": "user", "content": p["revision"]}]
                     for c, t, p in zip(crit_convs, critiques, picked)]
        for r, p, crit, texts in zip(records, picked, critiques, answers(rev_convs)):
            r["critiques"].append(crit)
            r["principles"].append(p["name"])
            r["candidates"] += [clean_revision(t) for t in texts]
            r["kinds"] += [f"revision-{k + 1}"] * len(texts)
    sft, pairs = [], []
    for it, r in zip(items, records):
        r["refused"] = [refused(c) for c in r["candidates"]]
        r["clean"] = [not COMPLIANCE.search(c) and not is_repetitive(c) for c in r["candidates"]]
        r["expect"] = it.meta.get("expect", expect)
        chosen, rejected = choose(r["candidates"], r["refused"], r["expect"], r["clean"])
        r["chosen"], r["rejected"] = chosen, rejected
        if chosen is None:
            continue
        sft.append({"id": it.id, "messages": it.messages + [{"role": "assistant", "content": r["candidates"][chosen]}],
                    "meta": {"source": "revise", "kind": r["kinds"][chosen]}})
        if rejected is not None:
            pairs.append({"type": "pair", "id": it.id, "prompt": it.messages, "chosen": r["candidates"][chosen],
                          "rejected": r["candidates"][rejected], "source": "revise",
                          "meta": {"chosen": r["kinds"][chosen], "rejected": r["kinds"][rejected]}})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "records.jsonl", records)
    write_jsonl_atomic(out / "sft.jsonl", sft)
    write_jsonl_atomic(out / "pairs.jsonl", pairs)
    n = len(records)

    def share(kind: str) -> float | None:
        flags = [f for r in records for f, k in zip(r["refused"], r["kinds"]) if k == kind]
        return round(sum(flags) / len(flags), 4) if flags else None

    summary = {"model": str(model), "prompts": n, "expect": expect, "system_prompt": system is not None,
               "prefill_openers": len(openers),
               "principles": len(rules), "rounds": rounds if rules else 0, "sft_rows": len(sft),
               "dropped_no_candidate_meets_expectation": n - len(sft), "pairs": len(pairs),
               "refused_initial": share("initial"), "refused_system": share("system"),
               "prefill_cut_by_length": sum(r.get("prefill_cut", 0) for r in records) if openers else None,
               "clean_prefill": (round(sum(ok for r in records for ok, k in zip(r["clean"], r["kinds"])
                                           if k == "prefill") / max(1, n * samples), 4) if openers else None),
               "refused_final": round(sum(r["refused"][-1] for r in records) / n, 4),
               "refused_any": round(sum(any(r["refused"]) for r in records) / n, 4),
               "samples": samples,
               "chosen_by_kind": {k: sum(1 for r in records if r["chosen"] is not None
                                         and r["kinds"][r["chosen"]] == k) for k in dict.fromkeys(
                                             kk for r in records for kk in r["kinds"])},
               "seconds": round(time.time() - t0, 2)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if len(sft) < require:
        raise InputError(f"only {len(sft)} of {n} prompts have an answer that meets the expectation (--require "
                         f"{require}); see {out / 'records.jsonl'}: try --samples with a --temperature, another "
                         "--system prompt or principles", field="require")
    return summary
