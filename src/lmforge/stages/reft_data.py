"""The data of ``lmforge reft``: problems with a worked solution and a checkable answer, from the built-in world
or from a file (GSM8K's jsonl, or any jsonl whose fields are named), written as the three files the recipe's
stages read: ``data/sft.jsonl`` (chat examples: question, worked solution), ``data/rl_prompts.jsonl`` and
``data/eval.jsonl`` (``{"prompt", "meta": {"answer", "reference", "kind"}}``: the rows RL's reward and the
evaluation check against).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import Section
from ..errors import InputError
from ..runs import atomic_write_text

CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"


class WorldProblemsSection(Section):
    seed: int | None = Field(None, description="the world's seed; null: the base model's (its pre-training "
                             "run's config), else 0")
    train: int = Field(2000, ge=1, description="training problems (seen kinds): SFT warm-up and RL prompts")
    eval: int = Field(200, ge=1, description="evaluation problems (held-out kinds by default)")
    train_kinds: list[str] | None = Field(None, description="null: the seen kinds (gather, shop, legs)")
    eval_kinds: list[str] | None = Field(None, description="null: the held-out kinds (gather_long, shop_two, "
                                         "legs_three, gather_large)")
    sample_seed: int = Field(0, description="seed of the problems drawn (not of the world)")


class ReftDataSection(Section):
    source: str = Field("world", description="'world' (the built-in word problems) or a .jsonl file of "
                        "problems (e.g. ../shared/data/gsm8k/train.jsonl)")
    eval_source: str | None = Field(None, description="a file: its evaluation problems (e.g. GSM8K's "
                                    "test.jsonl); null: the last eval_size rows of source are held out")
    eval_size: int = Field(200, ge=1, description="a file: evaluation problems (first N of eval_source, or the "
                           "held-out tail of source)")
    train_limit: int | None = Field(None, ge=1, description="a file: use only the first N training problems")
    world: WorldProblemsSection = WorldProblemsSection()
    question_field: str = "question"
    answer_field: str = Field("answer", description="the answer: a number, or a worked solution ending in "
                              "'#### N' (GSM8K)")
    solution_field: str | None = Field(None, description="the worked solution for SFT; null: the answer "
                                       "field when it holds one ('####' in it)")
    kind_field: str | None = Field(None, description="a field grouping problems in the report (accuracy by "
                                   "kind); null: one kind, 'file'")
    strip_calculator: bool = Field(True, description="remove GSM8K's <<a*b=c>> annotations from solutions")
    system_prompt: str | None = Field(None, description="a system turn before every question")


def _messages(question: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def world_problems(data: ReftDataSection, world_seed: int) -> tuple[list[dict], list[dict]]:
    """(training, evaluation) problems from the built-in world (no evaluation question is a training one)."""
    from ..world import World
    from ..world.word_problems import train_eval_split

    w = data.world
    try:
        train, ev = train_eval_split(World(world_seed), w.train, w.eval, seed=w.sample_seed,
                                     eval_kinds=w.eval_kinds, train_kinds=w.train_kinds)
    except ValueError as e:
        raise InputError(str(e), field="data.world") from None

    def norm(it: dict) -> dict:
        return {"id": it["id"], "messages": _messages(it["messages"][-1]["content"], data.system_prompt),
                "solution": it["reference"], "answer": str(it["meta"]["answer"]), "kind": it["category"]}
    return [norm(it) for it in train], [norm(it) for it in ev]


def file_problems(data: ReftDataSection, path: str, need_solution: bool) -> list[dict]:
    """Problems of a jsonl/json/parquet file, each field checked (file, line and field named on error)."""
    from ..data.readers import read_records

    if not Path(path).exists():
        raise InputError("problem file not found", file=path, field="data.source")
    out = []
    for rec in read_records(path):
        question = rec.get(data.question_field, str)
        answer = rec.get(data.answer_field, (str, int, float))
        answer = str(answer)
        if data.solution_field:
            solution = rec.get(data.solution_field, str)
        else:
            solution = answer if "####" in answer else None
        if solution is None and need_solution:
            raise rec.error(f"no worked solution for the SFT warm-up: '{data.answer_field}' has no '####' line; "
                            "name the solution's field in data.solution_field (or set skip_sft)",
                            data.answer_field)
        if solution is not None and data.strip_calculator:
            solution = CALCULATOR.sub("", solution)
        kind = str(rec.data.get(data.kind_field) or "file") if data.kind_field else "file"
        out.append({"id": str(rec.data.get("id") or f"{Path(path).stem}-{rec.line}"),
                    "messages": _messages(question, data.system_prompt), "solution": solution,
                    "answer": answer, "kind": kind})
    if not out:
        raise InputError("no problems in the file", file=path, field="data.source")
    return out


def load_problems(data: ReftDataSection, world_seed: int, need_solution: bool) -> tuple[list[dict], list[dict]]:
    """(training, evaluation) problems as ``{"id", "messages", "solution", "answer", "kind"}``."""
    if data.source == "world":
        return world_problems(data, world_seed)
    rows = file_problems(data, data.source, need_solution)
    if data.eval_source:
        train, ev = rows, file_problems(data, data.eval_source, False)[:data.eval_size]
    else:
        if len(rows) <= data.eval_size:
            raise InputError(f"{len(rows)} problems cannot hold out data.eval_size={data.eval_size} for "
                             "evaluation; lower it or give data.eval_source", file=data.source)
        train, ev = rows[:-data.eval_size], rows[-data.eval_size:]
    return (train[:data.train_limit] if data.train_limit else train), ev


def prompt_row(p: dict) -> dict[str, Any]:
    """An RL / evaluation row: the reward reads ``meta.answer`` (exact_answer) and ``meta.reference``
    (partial credit)."""
    return {"id": p["id"], "prompt": p["messages"],
            "meta": {"answer": p["answer"], "reference": p["solution"], "kind": p["kind"]}}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_data(folder: Path, train: list[dict], ev: list[dict]) -> dict[str, Path]:
    """The three files of the module docstring, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sft = [{"id": p["id"], "messages": p["messages"] + [{"role": "assistant", "content": p["solution"]}]}
           for p in train if p["solution"] is not None]
    return {"sft": write_jsonl(folder / "sft.jsonl", sft),
            "rl": write_jsonl(folder / "rl_prompts.jsonl", [prompt_row(p) for p in train]),
            "eval": write_jsonl(folder / "eval.jsonl", [prompt_row(p) for p in ev])}
