"""Read records from .txt, .jsonl, .json, .parquet files and local Hugging Face datasets.

Every record carries where it came from (file and 1-based line or row), so any later stage can report bad
input precisely. Empty, binary and non-UTF-8 files, and JSONL lines that do not parse, raise
:class:`~lmforge.errors.InputError` naming the file and line.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

TEXT_SUFFIXES = {".txt", ".md", ".text"}
# a \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the latter not preceded by the former
LONE_SURROGATE = (r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                  r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class Record:
    data: dict[str, Any]
    file: str
    line: int  # 1-based line (jsonl/txt) or row (json/parquet/HF)

    def error(self, message: str, field: str | None = None) -> InputError:
        return InputError(message, file=self.file, line=self.line, field=field)

    def get(self, field: str, kind: type | tuple[type, ...] | None = None) -> Any:
        """A required field, type-checked, or a clear error naming file, line and field."""
        if field not in self.data or self.data[field] is None:
            raise self.error("missing field", field)
        value = self.data[field]
        if kind is not None and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(f"expected {names}, got {type(value).__name__}", field)
        return value


def _check_text_file(path: Path) -> bytes:
    if not path.exists():
        raise InputError("file not found", file=path)
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("file is empty", file=path)
    nul = raw.find(b"\x00", 0, 8192)
    if nul >= 0:
        raise InputError("file looks binary (contains NUL bytes), expected UTF-8 text", file=path,
                         line=raw[:nul].count(b"\n") + 1)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=path, line=line) from None
    return raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark would break the first JSON line


def _lines(text: str) -> list[str]:
    """Split on ``\n`` only (dropping a trailing ``\r``).

    ``str.splitlines`` also splits on U+2028, U+0085, form feeds etc., which JSON allows raw inside strings
    (``json.dumps(..., ensure_ascii=False)`` writes them), so it would cut valid JSONL lines in two and make
    reported line numbers disagree with editors.
    """
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_json(text: str, path: Path, line: int | None) -> Any:
    """``json.loads`` whose every failure is an :class:`InputError` at ``path:line``.

    Besides syntax errors, ``json`` raises ``ValueError`` for integers over 4300 digits (CPython's limit on
    int/str conversion) and ``RecursionError`` for deep nesting; a ``\\ud800`` escape parses into a lone
    surrogate that no tokenizer or UTF-8 writer accepts later, so it is refused here.
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if line is None:
            raise InputError(f"does not parse as JSON ({e.msg})", file=path, line=e.lineno) from None
        raise InputError(f"line does not parse as JSON ({e.msg} at column {e.colno})", file=path,
                         line=line) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", file=path, line=line or 1) from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(f"does not parse as JSON ({str(e).split(';')[0]})", file=path,
                         line=line or _line_of(text, r"\d{4300}")) from None
    if "\\u" in text and _has_lone_surrogate(obj):
        raise InputError("string holds an unpaired UTF-16 surrogate escape (e.g. \\ud800), not valid Unicode",
                         file=path, line=line or _line_of(text, LONE_SURROGATE))
    return obj


def _line_of(text: str, pattern: str) -> int:
    """1-based line of the first match of ``pattern`` (1 if none): where in a whole-file JSON to look."""
    hit = re.search(pattern, text)
    return text.count("\n", 0, hit.start()) + 1 if hit else 1


def _has_lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:  # iterative: the object may be nested as deep as json allows
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def read_jsonl(path: Path) -> Iterator[Record]:
    text = _check_text_file(path).decode("utf-8")
    for i, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        obj = parse_json(line, path, i)
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=path, line=i)
        yield Record(obj, str(path), i)


def read_json(path: Path) -> Iterator[Record]:
    text = _check_text_file(path).decode("utf-8")
    obj = parse_json(text, path, None)
    if isinstance(obj, dict):  # {"data": [...]} or one record
        rows = next((v for v in obj.values() if isinstance(v, list)), [obj])
    elif isinstance(obj, list):
        rows = obj
    else:
        raise InputError("expected a JSON list of objects", file=path, line=1)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise InputError(f"row {i} is {type(row).__name__}, expected an object", file=path, line=i)
        yield Record(row, str(path), i)


def read_txt(path: Path, text_field: str = "text", split: str = "blank") -> Iterator[Record]:
    """Documents from plain text: separated by blank lines (``split='blank'``), one per line, or whole file."""
    text = _check_text_file(path).decode("utf-8")
    if split == "file":
        yield Record({text_field: text}, str(path), 1)
        return
    start, buf = 1, []
    for i, line in enumerate(_lines(text), 1):
        if split == "line":
            if line.strip():
                yield Record({text_field: line}, str(path), i)
            continue
        if line.strip():
            if not buf:
                start = i
            buf.append(line)
        elif buf:
            yield Record({text_field: "\n".join(buf)}, str(path), start)
            buf = []
    if buf:
        yield Record({text_field: "\n".join(buf)}, str(path), start)


def read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise InputError(f"cannot read parquet ({e})", file=path) from None
    if table.num_rows == 0:
        raise InputError("file is empty", file=path)
    for i, row in enumerate(table.to_pylist(), 1):
        yield Record(row, str(path), i)


def read_hf_dataset(path: Path, split: str | None = None) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:
        raise InputError(f"not a saved Hugging Face dataset ({e})", file=path) from None
    source = str(path)
    if isinstance(ds, DatasetDict):
        name = split or ("train" if "train" in ds else next(iter(ds)))
        if name not in ds:
            raise InputError(f"dataset has no split '{name}' (has {', '.join(ds)})", file=path)
        ds = ds[name]
        source = f"{path}[{name}]"  # the split actually read, not always "train"
    if len(ds) == 0:
        raise InputError("dataset is empty", file=source)
    for i, row in enumerate(ds, 1):
        yield Record(dict(row), source, i)


def read_records(path: str | Path, text_field: str = "text", txt_split: str = "blank") -> Iterator[Record]:
    """Records from any supported source, chosen by suffix (a folder is a saved HF dataset)."""
    path = Path(path)
    if path.is_dir():
        return read_hf_dataset(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in TEXT_SUFFIXES or suffix == "":
        return read_txt(path, text_field, txt_split)
    if not path.exists():
        raise InputError("file not found", file=path)
    raise InputError(f"unsupported file type '{suffix}' (use .txt, .jsonl, .json, .parquet or a "
                     "saved Hugging Face dataset folder)", file=path)


def write_jsonl_atomic(path: str | Path, rows: list[dict[str, Any]] | Iterator[dict[str, Any]]) -> int:
    """Write rows to ``path`` through a temp file so a crash never leaves half a file."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
