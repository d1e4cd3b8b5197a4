"""``lmforge data prepare``: read documents, clean them, apply quality filters, de-duplicate, and write the
kept documents with a report of what was dropped and why.

Every document goes through the same stages in order, and the first stage that rejects it is its one drop
reason, so the report's counts add up (read = kept + dropped)::

    clean        unicode/whitespace/control-char normalisation; empty afterwards -> "empty"
    filters      Gopher quality and repetition rules (see :mod:`.filters`); reason = the rule's config key
    exact dedup  same cleaned text as a kept document -> "exact_duplicate"
    near dedup   MinHash-LSH Jaccard >= threshold with a kept document -> "near_duplicate"

Two ways in: :func:`prepare_documents` for texts already in memory (the pre-training stage cleans the
built-in world's corpus with it), and :func:`prepare_files` for the CLI, which streams the inputs and
writes ``data.jsonl``, ``report.json`` and ``report.md`` into a temp folder that is renamed into place only
when everything succeeded.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ..config import Section
from ..errors import InputError
from .clean import CleanConfig, clean_text
from .dedup import DedupConfig, ExactIndex, NearIndex
from .filters import Doc, FilterConfig, build_rules, first_failure
from .readers import Record, read_records

SNIPPET_CHARS = 200
MEMORY_SOURCE = "<memory>"


class PrepareConfig(Section):
    """Config of ``lmforge data prepare``; every key can be set as ``key=value`` on the command line."""

    inputs: list[str] = Field(default_factory=list)
    """Files (.txt/.md, .jsonl, .json, .parquet) or saved Hugging Face dataset folders, read in order."""
    out: str | None = None
    """Output folder; it must not exist yet unless ``overwrite=true``."""
    overwrite: bool = False
    text_field: str = "text"
    """The field holding the document text in jsonl/json/parquet/HF inputs."""
    txt_split: Literal["blank", "line", "file"] = "blank"
    """How .txt files split into documents: at blank lines, one per line, or one per file."""
    examples: int = Field(3, ge=0)
    """Example snippets kept per drop reason in the report."""
    clean: CleanConfig = Field(default_factory=CleanConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_input(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


# --------------------------------------------------------------------------- the pipeline

def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class Preparer:
    """Judges documents one at a time, in order, and keeps the counts for the report."""

    def __init__(self, cfg: PrepareConfig | None = None):
        self.cfg = cfg = cfg or PrepareConfig()
        self.rules = build_rules(cfg.filters)
        self.exact = ExactIndex(cfg.dedup.exact.ignore_case) if cfg.dedup.exact.enabled else None
        self.near = NearIndex.from_config(cfg.dedup.near) if cfg.dedup.near.enabled else None
        self.stage_of: dict[str, str] = {"empty": "clean", **{r.name: "filters" for r in self.rules}}
        if self.exact:
            self.stage_of["exact_duplicate"] = "exact_dedup"
        if self.near:
            self.stage_of["near_duplicate"] = "near_dedup"
        self.dropped = dict.fromkeys(self.stage_of, 0)
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.chars = {"read": 0, "cleaned": 0, "kept": 0}
        self.inputs: dict[str, dict[str, int]] = {}

    def judge(self, text: str, source: tuple[str, int]) -> tuple[str, float | None, Any] | None:
        """(reason, metric value, duplicate's source) for a dropped cleaned text; None if it is kept."""
        if not text:
            return "empty", None, None
        failed = first_failure(self.rules, Doc(text))
        if failed:
            return failed[0].name, failed[1], None
        if self.exact and (first := self.exact.check_and_add(text, source)) is not None:
            return "exact_duplicate", None, first
        if self.near and (hit := self.near.check_and_add(text, source)) is not None:
            return "near_duplicate", hit[1], hit[0]
        return None

    def add(self, text: str, file: str = MEMORY_SOURCE, line: int = 0) -> str | None:
        """The cleaned text if the document is kept, else None (and the drop is counted)."""
        counts = self.inputs.setdefault(file, {"read": 0, "kept": 0})
        counts["read"] += 1
        cleaned = clean_text(text, self.cfg.clean)
        self.chars["read"] += len(text)
        self.chars["cleaned"] += len(cleaned)
        verdict = self.judge(cleaned, (file, line))
        if verdict is None:
            counts["kept"] += 1
            self.chars["kept"] += len(cleaned)
            return cleaned
        reason, value, dup_of = verdict
        self.dropped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.cfg.examples:
            example = {"file": file, "line": line, "text": _snippet(cleaned or text)}
            if value is not None:
                example["value"] = value if isinstance(value, int) else round(float(value), 4)
            if dup_of is not None:
                example["duplicate_of"] = f"{dup_of[0]}:{dup_of[1]}"
            shown.append(example)
        return None

    def report(self) -> dict[str, Any]:
        """Counts by document and character, per stage, per drop reason and per input, with examples."""
        read = sum(c["read"] for c in self.inputs.values())
        kept = sum(c["kept"] for c in self.inputs.values())
        stages, remaining = [], read
        for stage in ("clean", "filters", "exact_dedup", "near_dedup"):
            if stage not in self.stage_of.values():
                continue
            dropped = sum(n for reason, n in self.dropped.items() if self.stage_of[reason] == stage)
            stages.append({"stage": stage, "in": remaining, "dropped": dropped, "out": remaining - dropped})
            remaining -= dropped
        return {
            "documents": {"read": read, "kept": kept, "dropped": read - kept},
            "chars": dict(self.chars),
            "stages": stages,
            "dropped": dict(self.dropped),
            "inputs": [{"file": f, **c} for f, c in self.inputs.items()],
            "examples": self.examples,
        }


def _record_text(record: Record, field: str) -> str:
    return record.get(field, str)


def prepare_documents(docs: Iterable[str | Record], cfg: PrepareConfig | None = None
                      ) -> tuple[list[str], dict[str, Any]]:
    """Clean, filter and de-duplicate documents in memory; returns (kept cleaned texts in input order,
    report). Strings are sourced as ``<memory>`` with their 1-based position; Records keep their own
    file and line and read ``cfg.text_field``."""
    cfg = cfg or PrepareConfig()
    prep = Preparer(cfg)
    kept = []
    for i, doc in enumerate(docs, 1):
        if isinstance(doc, Record):
            text = prep.add(_record_text(doc, cfg.text_field), doc.file, doc.line)
        elif isinstance(doc, str):
            text = prep.add(doc, MEMORY_SOURCE, i)
        else:
            raise InputError(f"expected a string or Record, got {type(doc).__name__}", file=MEMORY_SOURCE,
                             line=i)
        if text is not None:
            kept.append(text)
    return kept, prep.report()


# --------------------------------------------------------------------------- files in, folder out

def check_paths(cfg: PrepareConfig) -> tuple[list[Path], Path]:
    """The input paths and the output folder, checked before anything is read or written."""
    if not cfg.inputs:
        raise InputError("no inputs; pass inputs='[a.txt,b.jsonl]' or list them in the config",
                         field="inputs")
    if not cfg.out:
        raise InputError("no output folder; pass out=FOLDER", field="out")
    inputs = [Path(p) for p in cfg.inputs]
    for path in inputs:
        if not path.exists():
            raise InputError("file not found", file=path)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a folder", file=out)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise InputError("output folder already exists; pass overwrite=true to replace it", file=out)
    if any(out.resolve() == p.resolve() or out.resolve() in p.resolve().parents for p in inputs):
        raise InputError("output folder would replace an input", file=out)
    return inputs, out


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out`` that replaces ``out`` only if the block succeeds. On failure the temp
    folder, and any parent folders made for it, are removed, so nothing half-written is ever left."""
    made = [p for p in reversed(out.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in reversed(made):
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _progress(show: bool):
    """A rich progress bar on stderr (only on a terminal, so logs and tests stay clean)."""
    if not show:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return nullcontext(None)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[docs]:,} docs, {task.fields[kept]:,} kept"),
                    TimeElapsedColumn(), console=console, transient=True)


def _stream(cfg: PrepareConfig, inputs: list[Path], prep: Preparer, out_file: Any, bar: Any) -> None:
    """Judge every record of every input and write the kept ones as JSONL rows to ``out_file``.
    The bar advances by characters read (an estimate of bytes) and snaps to each file's end."""
    task = bar.add_task("reading", total=sum(map(_size, inputs)) or 1, docs=0, kept=0) if bar else None
    done = docs = kept = 0
    for path in inputs:
        size, chars = _size(path), 0
        if bar:
            bar.update(task, description=path.name)
        for record in read_records(path, cfg.text_field, cfg.txt_split):
            raw = _record_text(record, cfg.text_field)
            text = prep.add(raw, record.file, record.line)
            docs += 1
            chars += len(raw)
            if text is not None:
                kept += 1
                out_file.write(json.dumps({"text": text, "source": record.file, "line": record.line},
                                          ensure_ascii=False) + "\n")
            if bar and docs % 200 == 0:
                bar.update(task, completed=done + min(size, chars), docs=docs, kept=kept)
        done += size
        if bar:
            bar.update(task, completed=done, docs=docs, kept=kept)


def prepare_files(cfg: PrepareConfig, *, show_progress: bool = False) -> dict[str, Any]:
    """Run the pipeline over ``cfg.inputs`` and write ``data.jsonl``, ``report.json`` and ``report.md``
    into ``cfg.out``, all or nothing. Returns the report."""
    from .report import render_markdown  # only the file writer needs it

    inputs, out = check_paths(cfg)
    prep = Preparer(cfg)
    with staged_dir(out) as tmp, _progress(show_progress) as bar:
        with open(tmp / "data.jsonl", "w", encoding="utf-8") as f:
            _stream(cfg, inputs, prep, f, bar)
        report = {"output": str(out), **prep.report(), "config": cfg.model_dump(mode="json")}
        (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report
