"""Chat data for SFT: every supported record format becomes a list of messages; sources mix by weight.

Formats (``format: auto`` picks by the fields present):

- ``messages``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`` (multi-turn;
  ShareGPT's ``{"conversations": [{"from": "human"|"gpt"|"system", "value": str}]}`` is read too);
- ``alpaca``: ``{"instruction", "input" (optional), "output"}`` (Taori et al. 2023, Stanford Alpaca); the
  user turn is the instruction, followed by the input after a blank line when there is one;
- ``prompt_completion``: ``{"prompt", "completion"}``, each a string or a list of messages (TRL's
  conversational prompt-completion form);
- ``text``: plain documents (``text_field``) trained on every token, for replay of pre-training data.

Every example remembers its file and line, so a bad one (unknown role, no assistant turn, a template that
cannot render it) is reported as ``file:line: message``. A mixture weight is *copies per epoch*: 2 repeats a
source twice, 0.5 keeps a seeded random half.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section
from ..errors import InputError
from .readers import Record, read_records

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system"}
Format = Literal["auto", "messages", "alpaca", "prompt_completion", "text"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Example:
    """One training example: chat ``messages`` or plain ``text`` (replay), and where it came from."""
    file: str
    line: int
    messages: list[dict[str, str]] | None = None
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # kind/category for the built-in world, source name

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def error(self, message: str) -> InputError:
        return InputError(message, file=self.file, line=self.line)


class SourceSpec(Section):
    """One data source of an SFT mixture."""
    path: str | None = Field(None, description="a .jsonl/.json/.parquet file, a saved HF dataset folder, "
                             "or a hub id (needs network)")
    world: Literal["sft", "safety", "corpus"] | None = Field(
        None, description="a built-in world source instead of a path: sft (facts, arithmetic, instructions, "
        "dialogues), safety (refusals and false-premise corrections, training categories only), corpus "
        "(pre-training documents, for replay)")
    format: Format = "auto"
    weight: float = Field(1.0, gt=0, description="copies per epoch: 2 repeats the source, 0.5 keeps half")
    split: str | None = Field(None, description="split of a hub or saved HF dataset")
    max_examples: int | None = Field(None, ge=1, description="keep the first N examples of the source")
    text_field: str = "text"
    system_prompt: str | None = Field(None, description="prepended as a system turn where none is given")

    @model_validator(mode="after")
    def _one_origin(self) -> SourceSpec:
        if (self.path is None) == (self.world is None):
            raise ValueError("give exactly one of 'path' or 'world'")
        return self

    @property
    def name(self) -> str:
        return self.path if self.path is not None else f"world:{self.world}"


# ---------------------------------------------------------------------------- record -> messages

def detect_format(rec: Record) -> str:
    """The format of a record from its fields (``text`` is never guessed: it must be asked for)."""
    d = rec.data
    if "messages" in d or "conversations" in d:
        return "messages"
    if "instruction" in d and "output" in d:
        return "alpaca"
    if "prompt" in d and "completion" in d:
        return "prompt_completion"
    raise rec.error(f"cannot tell the format from the fields ({', '.join(sorted(d)) or 'none'}); expected "
                    "'messages', 'instruction'+'output' or 'prompt'+'completion' (set format: text for plain "
                    "documents)")


def check_messages(messages: Any, rec: Record, field_name: str = "messages") -> list[dict[str, str]]:
    """Validate a message list: roles known, contents strings, at least one assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise rec.error("expected a non-empty list of messages", field_name)
    out = []
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict):
            raise rec.error(f"message {i} is {type(m).__name__}, expected an object with role and content",
                            field_name)
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise rec.error(f"unknown role {role!r} in message {i} (expected system, user or assistant)",
                            field_name)
        if not isinstance(content, str):
            raise rec.error(f"message {i} content must be a string, got {type(content).__name__}", field_name)
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise rec.error("no assistant turn: nothing to train on", field_name)
    return out


def _sharegpt(turns: Any, rec: Record) -> list[dict[str, str]]:
    if not isinstance(turns, list):
        raise rec.error("expected a list of turns", "conversations")
    out = []
    for i, t in enumerate(turns, 1):
        if not isinstance(t, dict) or "from" not in t:
            out.append(t)  # let check_messages report it (it may be role/content already)
            continue
        role = SHAREGPT_ROLES.get(t["from"])
        if role is None:
            raise rec.error(f"unknown role {t['from']!r} in turn {i} (expected human, gpt or system)",
                            "conversations")
        out.append({"role": role, "content": t.get("value")})
    return out


def _as_turns(value: Any, role: str, rec: Record, name: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return list(value)
    raise rec.error(f"expected a string or a list of messages, got {type(value).__name__}", name)


def record_to_messages(rec: Record, fmt: str = "auto") -> list[dict[str, str]]:
    """The chat messages of one record in any supported format (errors name file, line and field)."""
    fmt = detect_format(rec) if fmt == "auto" else fmt
    if fmt == "messages":
        if "messages" in rec.data:
            return check_messages(rec.get("messages", list), rec)
        return check_messages(_sharegpt(rec.get("conversations", list), rec), rec, "conversations")
    if fmt == "alpaca":
        instruction = rec.get("instruction", str)
        extra = rec.data.get("input") or ""
        if not isinstance(extra, str):
            raise rec.error(f"expected str, got {type(extra).__name__}", "input")
        user = instruction + (f"\n\n{extra}" if extra.strip() else "")
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": rec.get("output", str)}]
        if isinstance(rec.data.get("system"), str) and rec.data["system"]:
            msgs.insert(0, {"role": "system", "content": rec.data["system"]})
        return check_messages(msgs, rec)
    if fmt == "prompt_completion":
        msgs = _as_turns(rec.get("prompt"), "user", rec, "prompt") + \
            _as_turns(rec.get("completion"), "assistant", rec, "completion")
        return check_messages(msgs, rec, "completion")
    raise rec.error(f"format {fmt!r} has no messages")


# ---------------------------------------------------------------------------- sources

def _hub_records(spec: SourceSpec):
    """Records of a hub dataset (``datasets.load_dataset``); a clear error when offline or unknown."""
    from datasets import load_dataset

    split = spec.split or "train"
    try:
        ds = load_dataset(spec.path, split=split)
    except Exception as e:  # noqa: BLE001 (offline, unknown id, gated...: the user acts on the message)
        raise InputError(f"cannot load hub dataset ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "give a local file or folder when offline", file=spec.path) from None
    source = f"{spec.path}[{split}]"
    return (Record(dict(row), source, i) for i, row in enumerate(ds, 1))


def _file_records(spec: SourceSpec):
    assert spec.path is not None
    path = Path(spec.path).expanduser()
    if not path.exists() and HUB_ID.match(spec.path):
        return _hub_records(spec)
    if path.is_dir():
        from .readers import read_hf_dataset

        return read_hf_dataset(path, spec.split)
    if path.suffix.lower() in (".txt", ".md", "") and spec.format != "text":
        raise InputError("plain text files are read only with format: text (replay); chat data must be "
                         ".jsonl, .json, .parquet or a dataset folder", file=path)
    return read_records(path, text_field=spec.text_field)


def world_examples(kind: str, world_seed: int, n: int | None = None) -> list[Example]:
    """Built-in world examples: training split only, so held-out entities and categories stay out."""
    from ..world import World

    world = World(world_seed)
    if kind == "corpus":
        docs = world.pretrain_corpus(seed=world_seed)
        return [Example(f"world:corpus(seed={world_seed})", i, text=d) for i, d in enumerate(docs, 1)]
    items = world.sft_examples("train", n=n) if kind == "sft" else world.safety_examples("train", n=n)
    check_no_heldout(items, world)
    return [Example(f"world:{kind}(seed={world_seed})", i, messages=it["messages"],
                    meta={"kind": it["kind"], "category": it["category"]}) for i, it in enumerate(items, 1)]


def check_no_heldout(items: list[dict[str, Any]], world) -> None:
    """Refuse training items from the held-out split or a held-out safety category."""
    held = {c for kinds in world.safety_categories.values() for c in kinds["heldout"]}
    for it in items:
        safety = it["kind"] in world.safety_categories
        if it.get("split") != "train" or (safety and it["category"] in held):
            raise ValueError(f"held-out item {it['id']} ({it['kind']}/{it['category']}) in training data")


def load_source(spec: SourceSpec, world_seed: int = 0) -> list[Example]:
    """All examples of one source (validated), before weighting."""
    if spec.world is not None:
        examples = world_examples(spec.world, world_seed, spec.max_examples)
    else:
        examples = []
        for rec in _file_records(spec):
            if spec.max_examples is not None and len(examples) >= spec.max_examples:
                break
            if spec.format == "text":
                examples.append(Example(rec.file, rec.line, text=rec.get(spec.text_field, str)))
            else:
                examples.append(Example(rec.file, rec.line, messages=record_to_messages(rec, spec.format)))
    if spec.max_examples is not None:
        examples = examples[:spec.max_examples]
    if not examples:
        raise InputError("source has no examples", file=spec.name)
    if spec.system_prompt:
        for ex in examples:
            if ex.messages is not None and ex.messages[0]["role"] != "system":
                ex.messages = [{"role": "system", "content": spec.system_prompt}, *ex.messages]
    for ex in examples:
        ex.meta.setdefault("source", spec.name)
    return examples


def weighted(examples: list[Example], weight: float, rng: random.Random) -> list[Example]:
    """``floor(weight)`` copies of every example plus a seeded random ``frac(weight)`` share of them."""
    whole, frac = int(weight), weight - int(weight)
    out = examples * whole
    k = round(frac * len(examples))
    if k:
        out += rng.sample(examples, k)
    return out


def load_mixture(specs: list[SourceSpec], world_seed: int = 0, seed: int = 0) -> tuple[list[Example], dict]:
    """Every source loaded, weighted and shuffled together; returns the examples and per-source counts."""
    rng = random.Random(f"mixture|{seed}")
    out: list[Example] = []
    counts: dict[str, dict[str, int]] = {}
    for spec in specs:
        examples = load_source(spec, world_seed)
        chosen = weighted(examples, spec.weight, rng)
        counts[spec.name] = {"read": len(examples), "used": len(chosen)}
        out += chosen
    rng.shuffle(out)
    return out, counts
