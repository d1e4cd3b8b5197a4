"""Import existing preference data as :mod:`lmforge.data.preference` records.

Formats (``auto`` picks one from the first row):

- ``hh-rlhf``: Anthropic HH-RLHF rows ``{"chosen", "rejected"}``, each a whole dialogue
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. The prompt is the longest common prefix cut back to its last
  ``"\\n\\nAssistant:"``, split into user/assistant turns; the rest of each text is the reply. -> ``pair``.
- ``ultrafeedback``: rows ``{"instruction", "completions": [{"response", "annotations": {aspect: {"Rating"}},
  "fine-grained_score", "overall_score"}]}``. -> one ``ranking`` by the mean aspect rating (equal means are
  ``ties``) and one ``likert`` per completion with the aspects' own names on the 1-5 scale ("N/A" left out).
- ``pairs``: plain ``{"prompt", "chosen", "rejected"}`` (text, or chat-message lists whose last message is the
  reply, as in ultrafeedback_binarized; ``chosen_response``/``rejected_response`` also accepted). -> ``pair``.

Rows that cannot make a valid record (identical replies, a prompt not ending with a user turn, fewer than two
completions) are skipped and counted; a row that is not of the format at all is an error naming its line.
Files: ``.jsonl``, ``.jsonl.gz``, ``.json``, ``.parquet`` or a saved Hugging Face dataset folder.
"""
from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..data.preference import Feedback, Likert, Pair, Ranking, as_messages
from ..data.readers import Record, read_records
from ..errors import InputError

FORMATS = ("auto", "hh-rlhf", "ultrafeedback", "pairs")
_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_ASSISTANT = "\n\nAssistant:"


def read_rows(path: str | Path) -> Iterator[Record]:
    """Records from any reader-supported file, plus gzip-compressed JSON Lines."""
    path = Path(path)
    if path.name.endswith(".jsonl.gz"):
        if not path.exists():
            raise InputError("file not found", file=path)
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"line does not parse as JSON ({e.msg})", file=path, line=i) from None
                if not isinstance(obj, dict):
                    raise InputError("expected a JSON object", file=path, line=i)
                yield Record(obj, str(path), i)
        return
    yield from read_records(path)


def detect_format(row: dict[str, Any]) -> str:
    if "completions" in row:
        return "ultrafeedback"
    chosen = row.get("chosen")
    if isinstance(chosen, str) and chosen.lstrip("\n").startswith("Human:") and "prompt" not in row:
        return "hh-rlhf"
    if ("chosen" in row and "rejected" in row) or "chosen_response" in row:
        return "pairs"
    raise InputError(f"cannot tell the format from the fields {sorted(row)}; pass --format "
                     f"({', '.join(FORMATS[1:])})")


def hh_dialogue(text: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b"`` -> chat messages."""
    parts = _TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    if parts[0].strip():
        raise ValueError("text before the first 'Human:' turn")
    return [{"role": "user" if who == "Human" else "assistant", "content": body.strip()}
            for who, body in zip(parts[1::2], parts[2::2])]


def split_hh(chosen: str, rejected: str) -> tuple[list[dict[str, str]], str, str]:
    """(prompt messages, chosen reply, rejected reply) from two HH-RLHF transcripts."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    cut = chosen.rfind(_ASSISTANT, 0, n)  # the last Assistant turn both transcripts share in full
    if cut < 0:
        raise ValueError("the two transcripts share no prompt ending in an 'Assistant:' turn")
    prompt = hh_dialogue(chosen[:cut])
    return prompt, chosen[cut + len(_ASSISTANT):].strip(), rejected[cut + len(_ASSISTANT):].strip()


_ROLES = ("system", "user", "assistant")


def _chat(rec: Record, field: str) -> str | list[dict[str, str]]:
    """Field ``field`` of the row as a text or a list of chat messages, or an error naming line and field
    (a value of the wrong type is a malformed row, not a row to skip)."""
    value = rec.data[field]
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise rec.error(f"expected a text or a list of chat messages, got {type(value).__name__}", field)
    for j, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            got = type(m).__name__ if not isinstance(m, dict) else f"fields {sorted(m)}"
            raise rec.error(f"expected a chat message {{role: system|user|assistant, content: text}}, got {got}",
                            f"{field}.{j}")
    return value


def _reply(value: Any) -> tuple[list[dict[str, str]] | None, str]:
    """(context messages or None, reply text) from a text or a message list ending with the reply."""
    if isinstance(value, str):
        return None, value
    msgs = as_messages(value)
    if not msgs or msgs[-1]["role"] != "assistant":
        raise ValueError("a chosen/rejected message list must end with the assistant's reply")
    return msgs[:-1], msgs[-1]["content"]


def _pairs_row(rec: Record) -> list[Feedback]:
    d = rec.data
    names = [next((n for n in (f"{which}", f"{which}_response") if d.get(n) is not None), None)
             for which in ("chosen", "rejected")]
    if None in names:
        raise rec.error("expected 'chosen' and 'rejected'", "chosen" if names[0] is None else "rejected")
    ctx_c, chosen_text = _reply(_chat(rec, names[0]))
    _, rejected_text = _reply(_chat(rec, names[1]))
    prompt_field = next((n for n in ("prompt", "instruction") if d.get(n) is not None), None)
    prompt = ctx_c if ctx_c else _chat(rec, prompt_field) if prompt_field else None
    if prompt is None:
        raise rec.error("missing field (the prompt)", "prompt")
    margin = None
    if isinstance(d.get("score_chosen"), (int, float)) and isinstance(d.get("score_rejected"), (int, float)):
        margin = float(d["score_chosen"]) - float(d["score_rejected"])
    return [Pair(prompt=as_messages(prompt), chosen=chosen_text, rejected=rejected_text, margin=margin,
                 source="pairs", id=str(d["id"]) if d.get("id") is not None else None)]


def _hh_row(rec: Record) -> list[Feedback]:
    chosen, rejected = rec.get("chosen", str), rec.get("rejected", str)
    prompt, c, r = split_hh(chosen, rejected)
    return [Pair(prompt=prompt, chosen=c, rejected=r, source="hh-rlhf")]


def _rating(value: Any) -> float | None:
    try:
        return float(value.get("Rating") if isinstance(value, dict) else value)
    except (TypeError, ValueError):
        return None  # "N/A"


def _ultrafeedback_row(rec: Record) -> list[Feedback]:
    prompt_field = next((n for n in ("instruction", "prompt") if rec.data.get(n) is not None), None)
    if prompt_field is None:
        raise rec.error("missing field (the prompt)", "instruction")
    prompt = _chat(rec, prompt_field)
    completions = rec.get("completions", list)
    texts, means, out = [], [], []
    for j, comp in enumerate(completions):
        if not isinstance(comp, dict) or not isinstance(comp.get("response"), str):
            raise rec.error("each completion needs a 'response' text", f"completions.{j}.response")
        scores = {k: s for k, v in (comp.get("annotations") or {}).items() if (s := _rating(v)) is not None}
        scores = {k: s for k, s in scores.items() if 1 <= s <= 5}
        mean = sum(scores.values()) / len(scores) if scores else _rating(comp.get("fine-grained_score"))
        if mean is None:
            mean = _rating(comp.get("overall_score"))
        if mean is None:
            continue
        texts.append(comp["response"])
        means.append(mean)
        if scores:
            out.append(Likert(prompt=as_messages(prompt), response=comp["response"], scores=scores, scale=(1, 5),
                              source="ultrafeedback", meta={"model": comp.get("model")}))
    order = sorted(range(len(texts)), key=lambda i: -means[i])
    groups: dict[float, list[int]] = {}
    for i in order:
        groups.setdefault(means[i], []).append(i)
    ties = [g for g in groups.values() if len(g) > 1]
    out.insert(0, Ranking(prompt=as_messages(prompt), responses=texts, ranking=order, ties=ties,
                          source="ultrafeedback", meta={"scores": means}))
    return out


_READERS = {"hh-rlhf": _hh_row, "ultrafeedback": _ultrafeedback_row, "pairs": _pairs_row}


def import_records(path: str | Path, fmt: str = "auto", limit: int | None = None
                   ) -> tuple[list[Feedback], Counter]:
    """Records from ``path`` and a count of rows read and skipped (by reason)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})", field="format")
    records: list[Feedback] = []
    counts: Counter = Counter()
    for rec in read_rows(path):
        if limit is not None and counts["rows"] >= limit:
            break
        if fmt == "auto":
            try:
                fmt = detect_format(rec.data)
            except InputError as e:
                raise rec.error(e.message) from None
        counts["rows"] += 1
        try:
            records += _READERS[fmt](rec)
        except (ValueError, ValidationError) as e:  # a row of the right shape that makes no valid record
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            counts[f"skipped: {msg.removeprefix('Value error, ')}"] += 1
    if counts["rows"] == 0:
        raise InputError("no rows to import", file=path)
    counts["format: " + fmt] = 1
    return records, counts


def load_into_store(store, records: list[Feedback], batch: str, *, labeler: str, source: str | None = None,
                    seed: int = 0) -> dict[str, int]:
    """Pairs and rankings become a labeling batch whose existing preference is the label of ``labeler``
    (a user of kind ``imported``), so people can relabel it and be compared with the original.

    Responses are shown in a seeded random order, so their position does not give the original away.
    Likert and binary records are not stored (their criteria are the source's, not this app's).
    """
    from .batchfile import BatchItem
    from .labels import LabelIn

    rng = random.Random(seed)
    items, labels, seen = [], [], set()
    for n, r in enumerate(records):
        if isinstance(r, Pair):
            texts, ranking, ties = [r.chosen, r.rejected], [0, 1], []
        elif isinstance(r, Ranking):
            texts, ranking, ties = r.responses, r.ranking, r.ties
        else:
            continue
        order = list(range(len(texts)))
        rng.shuffle(order)  # shown position -> original index
        shown = {orig: pos for pos, orig in enumerate(order)}
        key = r.id if r.id and r.id not in seen else f"{n:06d}"
        seen.add(key)
        items.append(BatchItem(id=key, prompt=r.prompt, responses=[texts[o] for o in order],
                               meta={"source": r.source}))
        labels.append(LabelIn(ranking=[shown[o] for o in ranking], ties=[[shown[o] for o in g] for g in ties]))
    if not items:
        raise InputError("nothing to load into a batch: no pair or ranking records", field="batch")
    user = store.ensure_user(labeler, kind="imported")
    store.add_batch(batch, items, source=source, meta={"imported": True}, mode="rank")  # relabel as it was labeled
    store.assign(batch, 1, users=[labeler])
    pending = store.pending(user.id, batch)
    store.submit_labels(user.id, list(zip(pending, labels)))
    return {"items": len(items), "labels": len(labels)}
