"""Score a JSONL of (prompt, response) with a trained reward model, in batches.

Input rows: ``{"prompt": str | [messages], "response": str}`` or ``{"prompt": ..., "responses": [str, ...]}``
(other fields are kept). Output: the same rows with ``reward`` (a number, or a list for ``responses``), with
``scores`` (every head by name) when the model has criterion heads, and ``reward_normalized`` =
(reward - mean) / std with ``--normalize``. Rows are written in input order; the output is written atomically.

Either head scores through :class:`lmforge.models.reward_scores.RewardScorer` (a generative verifier's reward is
its verdict log-odds); :func:`score_texts` is the in-process call for RL and judges. A pairwise verifier
(``verdict.mode: pairwise``) reads rows with ``responses`` (ranked: ``reward`` the Bradley–Terry strengths,
``ranking`` the indices best first) or with ``response`` and ``reference`` (``reward`` the log-odds that the
response beats the reference).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..data.preference import Message, as_messages
from ..data.readers import read_records, write_jsonl_atomic
from ..errors import InputError
from ..models.reward_scores import RewardScorer, score_encoded, score_texts  # noqa: F401 (score_texts re-exported)


def _prompt(rec) -> list[dict[str, str]]:
    raw = rec.get("prompt", (str, list))
    try:
        msgs = [Message(**m).model_dump() for m in as_messages(raw)]
    except (TypeError, ValueError) as e:
        raise rec.error(f"prompt is not text or a list of chat messages ({e})", "prompt") from None
    if not msgs or msgs[-1]["role"] != "user":
        raise rec.error("prompt must end with a user message", "prompt")
    return msgs


def score_file(model_dir: str | Path, inputs: str | Path, out: str | Path | None = None, batch_size: int = 32,
               normalize: bool = False) -> dict[str, Any]:
    t0 = time.time()
    scorer = RewardScorer(model_dir)
    if scorer.pairwise:
        return _pairwise_file(scorer, inputs, out, batch_size, t0)
    meta = scorer.meta
    rows, spans, encoded = [], [], []
    for rec in read_records(inputs):
        prompt = _prompt(rec)
        if "responses" in rec.data:
            texts = rec.get("responses", list)
        else:
            texts = [rec.get("response", str)]
        if not all(isinstance(t, str) for t in texts):
            raise rec.error("responses must be strings", "responses")
        start = len(encoded)
        encoded += [scorer.encode(prompt, t) for t in texts]
        rows.append(rec.data)
        spans.append((start, len(encoded), "responses" in rec.data))
    if not rows:
        raise InputError("no rows to score", file=inputs)
    scores = score_encoded(scorer.model, encoded, scorer.tokenizer.pad_token_id, batch_size)
    names = scorer.names
    out_rows = []
    for row, (a, b, many) in zip(rows, spans):
        rewards = [round(float(x), 6) for x in scores[a:b, 0]]
        new = dict(row)
        new["reward"] = rewards if many else rewards[0]
        if normalize:
            z = [round((r - meta.reward_mean) / meta.reward_std, 6) for r in rewards]
            new["reward_normalized"] = z if many else z[0]
        if len(names) > 1:
            per = [{n: round(float(scores[i, h]), 6) for h, n in enumerate(names)} for i in range(a, b)]
            new["scores"] = per if many else per[0]
        out_rows.append(new)
    out = Path(out) if out else Path(inputs).with_suffix(".scored.jsonl")
    write_jsonl_atomic(out, out_rows)
    return {"rows": len(rows), "responses": len(encoded), "truncated": scorer.truncated, "out": str(out),
            "seconds": round(time.time() - t0, 2)}


def _pairwise_file(scorer: RewardScorer, inputs, out, batch_size: int, t0: float) -> dict[str, Any]:
    """A pairwise verifier over the rows: rank ``responses``, or compare ``response`` with ``reference``."""
    out_rows, n = [], 0
    for rec in read_records(inputs):
        prompt = _prompt(rec)
        new = dict(rec.data)
        if "responses" in rec.data:
            texts = rec.get("responses", list)
            if not all(isinstance(t, str) for t in texts):
                raise rec.error("responses must be strings", "responses")
            order, strength = scorer.rank(prompt, texts, batch_size=batch_size)
            new["reward"] = [round(float(x), 6) for x in strength]
            new["ranking"] = order
            n += len(texts)
        elif "reference" in rec.data:
            new["reward"] = round(scorer.compare(prompt, rec.get("response", str), rec.get("reference", str),
                                                 batch_size), 6)
            n += 1
        else:
            raise rec.error("a pairwise reward model needs 'responses' to rank or a 'reference' to compare the "
                            "response with", "reference")
        out_rows.append(new)
    if not out_rows:
        raise InputError("no rows to score", file=inputs)
    out = Path(out) if out else Path(inputs).with_suffix(".scored.jsonl")
    write_jsonl_atomic(out, out_rows)
    return {"rows": len(out_rows), "responses": n, "truncated": scorer.truncated, "out": str(out),
            "seconds": round(time.time() - t0, 2)}
