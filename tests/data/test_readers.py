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
    (b"abc\x00\x01\x02", "binary", None),
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
