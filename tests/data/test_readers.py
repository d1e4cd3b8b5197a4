"""Readers: every supported format, with file and line on every record and on every error."""
from __future__ import annotations

import json

import pytest

from lmforge.data.readers import Record, read_records, write_jsonl_atomic
from lmforge.errors import InputError


def _texts(path, **kw):
    return [(r.data.get("text"), r.line) for r in read_records(path, **kw)]


def test_txt_split_modes_and_line_numbers(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("first para\nstill first\n\n\nsecond\r\n\nthird\n", encoding="utf-8")
    assert _texts(p) == [("first para\nstill first", 1), ("second", 5), ("third", 7)]
    assert _texts(p, txt_split="line") == [("first para", 1), ("still first", 2), ("second", 5), ("third", 7)]
    assert len(_texts(p, txt_split="file")) == 1


def test_txt_custom_text_field(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("hello\n", encoding="utf-8")
    assert [r.data for r in read_records(p, text_field="content")] == [{"content": "hello"}]


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    """Regression: str.splitlines() cut JSON strings holding U+2028/U+0085 (json.dumps writes them raw with
    ensure_ascii=False, as write_jsonl_atomic does), so our own output could not be read back."""
    p = tmp_path / "a.jsonl"
    rows = [{"text": "a\u2028b"}, {"text": "c\x85d\x0ce"}]
    assert write_jsonl_atomic(p, rows) == 2
    assert [(r.data, r.line) for r in read_records(p)] == [(rows[0], 1), (rows[1], 2)]


def test_jsonl_with_byte_order_mark_and_blank_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"text": "x"}\n\n{"text": "y"}\n')
    assert _texts(p) == [("x", 1), ("y", 3)]


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        list(read_records(p))
    assert e.value.line == 2 and str(p) in str(e.value) and f"{p}:2" in str(e.value)


def test_jsonl_non_object_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "ok"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON object, got list") as e:
        list(read_records(p))
    assert e.value.line == 2


@pytest.mark.parametrize("content, message, line", [
    (b"", "file is empty", None),
    (b"  \n\n", "file is empty", None),
    (b"abc\x00\x01\x02", "binary", 1),
    (b"line one\nline two \xff\xfe\n", "not valid UTF-8", 2),
])
def test_bad_text_files(tmp_path, content, message, line):
    p = tmp_path / "x.txt"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        list(read_records(p))
    assert e.value.file == str(p) and e.value.line == line


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(read_records(tmp_path / "nope.jsonl"))
    p = tmp_path / "a.csv"
    p.write_text("a,b\n")
    with pytest.raises(InputError, match="unsupported file type '.csv'"):
        read_records(p)


def test_json_list_and_wrapped(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    assert _texts(p) == [("a", 1), ("b", 2)]
    p.write_text(json.dumps({"data": [{"text": "c"}]}))
    assert _texts(p) == [("c", 1)]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "n": [1, 2]}), p)
    assert [(r.data, r.line) for r in read_records(p)] == [({"text": "x", "n": 1}, 1), ({"text": "y", "n": 2}, 2)]
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InputError, match="cannot read parquet"):
        list(read_records(bad))


def test_hf_dataset_source_names_the_split_read(tmp_path):
    from datasets import Dataset, DatasetDict

    plain = tmp_path / "plain"
    Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(plain))
    recs = list(read_records(plain))
    assert [(r.data["text"], r.file, r.line) for r in recs] == [("a", str(plain), 1), ("b", str(plain), 2)]
    dd = tmp_path / "dd"
    DatasetDict({"validation": Dataset.from_dict({"text": ["v"]})}).save_to_disk(str(dd))
    assert [r.file for r in read_records(dd)] == [f"{dd}[validation]"]  # was "[train]"


def test_record_get_names_field():
    rec = Record({"text": 3}, "f.jsonl", 7)
    with pytest.raises(InputError) as e:
        rec.get("body")
    assert str(e.value) == "f.jsonl:7: field 'body': missing field"
    with pytest.raises(InputError, match="expected str, got int"):
        rec.get("text", str)


# ---------------------------------------------------------------------------- fuzz

GOOD_ROWS = [{"text": "plain"}, {"prompt": "a", "chosen": "b", "rejected": "c", "n": 3},
             {"messages": [{"role": "user", "content": "hé ✓ \u2028 ok"}]}, {"x": [1, 2.5, None, True]}]
DIGITS = "1234567890"


def _mutate(rng, lines: list[bytes]) -> list[bytes]:
    """One random corruption of a valid JSONL file's lines (each a bytes line without its newline)."""
    i = rng.randrange(len(lines))
    kind = rng.choice(["bytes", "truncate", "utf8", "huge_int", "nested", "surrogate", "nul", "non_object",
                       "junk", "cut_file", "bom_mid", "flip"])
    line = lines[i] or b"{}"
    if kind == "bytes":
        lines[i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    elif kind == "truncate":
        lines[i] = line[:rng.randrange(len(line))]
    elif kind == "utf8":
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
        at = rng.randrange(len(line) + 1)
        lines[i] = line[:at] + bad + line[at:]
    elif kind == "huge_int":
        lines[i] = b'{"n": ' + "".join(rng.choice(DIGITS) for _ in range(rng.randint(4301, 9000))).encode() + b"}"
    elif kind == "nested":
        depth = rng.choice([50, 5000, 200_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        lines[i] = b'{"k": ' + opener * depth + b"1" + closer * depth + b"}"
    elif kind == "surrogate":
        lines[i] = b'{"text": "x\\' + rng.choice([b"ud800", b"udfff", b"ud83d y"]) + b'"}'
    elif kind == "nul":
        at = rng.randrange(len(line) + 1)
        lines[i] = line[:at] + b"\x00" + line[at:]
    elif kind == "non_object":
        lines[i] = rng.choice([b"[1, 2]", b'"text"', b"7", b"null", b"true", b"1e999"])
    elif kind == "junk":
        lines[i] = rng.choice([b"{", b"}", b'{"a": }', b"{'a': 1}", b'{"a": NaN', b'{"a": 1,}', b"\\", b"\r"])
    elif kind == "cut_file":
        del lines[i + 1:]
        lines[i] = line[:max(1, rng.randrange(len(line)))]
    elif kind == "bom_mid":
        lines[i] = b"\xef\xbb\xbf" + line
    else:  # flip one byte
        at = rng.randrange(len(line))
        lines[i] = line[:at] + bytes([line[at] ^ (1 << rng.randrange(8))]) + line[at + 1:]
    return lines


def _check(path, expect_line: bool = True) -> None:
    try:
        records = list(read_records(path))
    except InputError as e:  # the only failure allowed: one line naming the file (and the line)
        text = str(e)
        assert e.file == str(path) and text.startswith(str(path)), text
        assert "\n" not in text and "Traceback" not in text
        if expect_line and "empty" not in text:
            assert e.line is not None and text.startswith(f"{path}:{e.line}: "), text
        return
    for r in records:  # what parses is a real record: an object, valid Unicode, placed at a line
        assert isinstance(r.data, dict) and r.file == str(path) and r.line >= 1
        json.dumps(r.data, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_jsonl_never_raises_anything_but_input_error(tmp_path, seed):
    import random

    rng = random.Random(seed)
    path = tmp_path / "fuzz.jsonl"
    for _ in range(60):
        lines = [json.dumps(rng.choice(GOOD_ROWS), ensure_ascii=rng.random() < 0.5).encode()
                 for _ in range(rng.randint(1, 8))]
        for _ in range(rng.randint(1, 3)):
            lines = _mutate(rng, lines)
        path.write_bytes(b"\n".join(lines) + rng.choice([b"\n", b"", b"\r\n"]))
        _check(path)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_whole_file_json(tmp_path, seed):
    import random

    rng = random.Random(100 + seed)
    path = tmp_path / "fuzz.json"
    for _ in range(50):
        rows = [json.dumps(rng.choice(GOOD_ROWS)).encode() for _ in range(rng.randint(1, 6))]
        rows = _mutate(rng, rows)
        path.write_bytes(b"[\n" + b",\n".join(rows) + b"\n]\n")
        _check(path)


@pytest.mark.parametrize("body, message, line", [
    (b'{"a": 1}\n{"n": ' + b"9" * 5000 + b"}\n", "4300 digits", 2),
    (b'{"a": 1}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply", 2),
    (b'{"a": 1}\n{"a": 2}\n{"text": "\\ud800"}\n', "unpaired UTF-16 surrogate", 3),
    (b'{"a": 1}\n{"a": "\x00"}\n', "binary", 2),
])
def test_jsonl_parser_limits_are_input_errors(tmp_path, body, message, line):
    # json raises ValueError / RecursionError for these, which used to escape as tracebacks with exit 1
    p = tmp_path / "x.jsonl"
    p.write_bytes(body)
    with pytest.raises(InputError, match=message) as e:
        list(read_records(p))
    assert e.value.line == line


def test_fuzzed_file_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    from lmforge.cli.main import main

    p = tmp_path / "docs.jsonl"
    p.write_bytes(b'{"text": "fine"}\n{"text": "x' + b"\\ud800" + b'"}\n')
    with pytest.raises(SystemExit) as e:
        main(["data", "prepare", f"inputs=[{p}]", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith(f"error: {p}:2: ") and "\n" not in err
