"""``lmforge data prepare`` end to end: every input format, config + overrides, bad input -> exit 2 with
file and line and nothing written, all-or-nothing output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.cli.main import main

PROSE = [
    "The committee met on Tuesday to review the budget and agreed that the library should stay open "
    "later during the examination period.",
    "Farmers in the valley planted barley early this year because the spring rains arrived weeks "
    "before they usually do.",
    "A small bakery near the station sells bread made with rye flour and seeds, and it closes as soon "
    "as the last loaf is gone.",
    "Engineers tested the bridge with heavy trucks for three days before the city allowed buses to "
    "cross it again.",
    "Volunteers cleaned the beach on Sunday morning and collected forty bags of plastic and glass.",
]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["data", "prepare", *args])
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    """a.txt (3 paragraphs, one a duplicate of PROSE[0]), b.jsonl, c.parquet and a saved HF dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    monkeypatch.chdir(tmp_path)
    Path("a.txt").write_text(f"{PROSE[0]}\n\n{PROSE[1]}\n\ntoo short\n", encoding="utf-8")
    Path("b.jsonl").write_text(json.dumps({"text": PROSE[0], "id": 1}) + "\n\n"
                               + json.dumps({"text": PROSE[2]}) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": [PROSE[3]]}), "c.parquet")
    Dataset.from_dict({"text": [PROSE[4], PROSE[1]]}).save_to_disk("hf")
    return tmp_path


def test_all_formats_end_to_end(inputs, capsys):
    rc, out, err = cli(capsys, "inputs=[a.txt,b.jsonl,c.parquet,hf]", "out=prepared/")
    assert rc == 0, err
    rows = read_jsonl(Path("prepared/data.jsonl"))
    assert rows == [
        {"text": PROSE[0], "source": "a.txt", "line": 1},
        {"text": PROSE[1], "source": "a.txt", "line": 3},
        {"text": PROSE[2], "source": "b.jsonl", "line": 3},
        {"text": PROSE[3], "source": "c.parquet", "line": 1},
        {"text": PROSE[4], "source": "hf", "line": 1},
    ]
    report = json.loads(Path("prepared/report.json").read_text())
    assert report["documents"] == {"read": 8, "kept": 5, "dropped": 3}
    assert {k: v for k, v in report["dropped"].items() if v} == {"min_words": 1, "exact_duplicate": 2}
    assert [e["duplicate_of"] for e in report["examples"]["exact_duplicate"]] == ["a.txt:1", "a.txt:3"]
    assert [(i["file"], i["read"], i["kept"]) for i in report["inputs"]] == [
        ("a.txt", 3, 2), ("b.jsonl", 2, 1), ("c.parquet", 1, 1), ("hf", 2, 1)]
    assert report["config"]["inputs"] == ["a.txt", "b.jsonl", "c.parquet", "hf"]
    md = Path("prepared/report.md").read_text()
    assert "| read | 8 |" in md and "| exact_duplicate | 2 | 25.0% |" in md
    assert "`b.jsonl:1` (duplicate of `a.txt:1`)" in md and "> too short" in md
    assert "kept" in out and "exact_duplicate" in out
    assert sorted(os.listdir(inputs)) == ["a.txt", "b.jsonl", "c.parquet", "hf", "prepared"]  # no temp left


def test_config_file_with_overrides(inputs, capsys):
    Path("prep.yaml").write_text("inputs: [a.txt, b.jsonl]\nout: out1\nfilters:\n  min_words: 1\n"
                                 "dedup:\n  exact:\n    enabled: true\n", encoding="utf-8")
    rc, _, err = cli(capsys, "prep.yaml", "dedup.exact.enabled=false", "txt_split=line")
    assert rc == 0, err
    report = json.loads(Path("out1/report.json").read_text())
    assert report["config"]["filters"]["min_words"] == 1
    # 'too short' stays (min_words=1); with exact dedup off the near stage catches the copy (Jaccard 1)
    assert report["documents"] == {"read": 5, "kept": 4, "dropped": 1}
    assert "exact_duplicate" not in report["dropped"]
    assert {k: v for k, v in report["dropped"].items() if v} == {"near_duplicate": 1}
    assert report["examples"]["near_duplicate"][0] == {"file": "b.jsonl", "line": 1, "text": PROSE[0],
                                                       "value": 1.0, "duplicate_of": "a.txt:1"}


def test_single_input_string_and_txt_split(inputs, capsys):
    rc, _, err = cli(capsys, "inputs=a.txt", "out=o", "txt_split=file", "filters.min_words=null")
    assert rc == 0, err
    rows = read_jsonl(Path("o/data.jsonl"))
    assert len(rows) == 1 and rows[0]["text"].endswith("too short")


def test_existing_output_needs_overwrite(inputs, capsys):
    Path("o").mkdir()
    Path("o/keep.txt").write_text("old")
    rc, _, err = cli(capsys, "inputs=a.txt", "out=o")
    assert rc == 2 and "o: output folder already exists; pass overwrite=true" in err
    assert Path("o/keep.txt").exists()
    rc, _, err = cli(capsys, "inputs=a.txt", "out=o", "overwrite=true")
    assert rc == 0, err
    assert sorted(os.listdir("o")) == ["data.jsonl", "report.json", "report.md"]
    assert not [p for p in os.listdir(inputs) if p.startswith(".")]


def test_failure_while_writing_leaves_nothing(inputs, capsys, monkeypatch):
    import lmforge.data.report as report_mod

    def boom(report):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_mod, "render_markdown", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["data", "prepare", "inputs=[a.txt]", "out=new/deep/out"])
    assert not Path("new").exists()
    assert sorted(os.listdir(inputs)) == ["a.txt", "b.jsonl", "c.parquet", "hf"]


BAD_INPUTS = {
    # name: (file name, bytes, expected fragments of the one-line error)
    "empty": ("empty.txt", b"", ["empty.txt", "file is empty"]),
    "binary": ("blob.jsonl", b'{"text": "a"}\n\x00\x01\x02\xff', ["blob.jsonl", "binary"]),
    "not utf-8": ("latin.txt", "first line\ncaf\xe9 au lait\n".encode("latin-1"),
                  ["latin.txt:2", "not valid UTF-8"]),
    "bad jsonl line": ("bad.jsonl", b'{"text": "fine text"}\n{"text": "broken\n',
                       ["bad.jsonl:2", "does not parse as JSON"]),
    "missing text field": ("nofield.jsonl", b'{"text": "fine"}\n{"body": "x"}\n',
                           ["nofield.jsonl:2", "field 'text'", "missing field"]),
    "text not a string": ("num.jsonl", b'{"text": 12}\n', ["num.jsonl:1", "field 'text'", "expected str"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, case):
    name, content, fragments = BAD_INPUTS[case]
    monkeypatch.chdir(tmp_path)
    Path("good.txt").write_text(PROSE[0] + "\n", encoding="utf-8")
    Path(name).write_bytes(content)
    rc, _, err = cli(capsys, f"inputs=[good.txt,{name}]", "out=new/out")
    assert rc == 2
    line = err.strip()
    assert "\n" not in line and line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line
    assert not Path("new").exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["good.txt", name])


@pytest.mark.parametrize("args, fragments", [
    (["inputs=good.txt", "out=o", "filters.min_chars=lots"],
     ["command line 'filters.min_chars=lots'", "field 'filters.min_chars'", "valid integer"]),
    (["inputs=good.txt", "out=o", "filters.min_word=3"],
     ["unknown key 'filters.min_word'", "did you mean 'filters.min_words'"]),
    (["inputs=good.txt", "out=o", "dedup.near.treshold=0.5"], ["did you mean 'dedup.near.threshold'"]),
    (["inputs=good.txt", "out=o", "clean.unicode=NFD"], ["field 'clean.unicode'"]),
    (["out=o"], ["field 'inputs'", "no inputs"]),
    ([], ["field 'inputs'", "no inputs"]),
    (["inputs=[good.txt,missing.txt]", "out=o"], ["missing.txt: file not found"]),
    (["inputs=[good.txt]"], ["field 'out'", "no output folder"]),
])
def test_bad_config_exits_2(tmp_path, monkeypatch, capsys, args, fragments):
    monkeypatch.chdir(tmp_path)
    Path("good.txt").write_text(PROSE[0] + "\n", encoding="utf-8")
    rc, _, err = cli(capsys, *args)
    assert rc == 2, err
    for fragment in fragments:
        assert fragment in err
    assert os.listdir(tmp_path) == ["good.txt"]


def test_config_file_of_wrong_type_names_file_and_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("good.txt").write_text(PROSE[0] + "\n", encoding="utf-8")
    Path("p.yaml").write_text("inputs: [good.txt]\nout: o\nfilters:\n  min_words: many\n", encoding="utf-8")
    rc, _, err = cli(capsys, "p.yaml")
    assert rc == 2
    assert "p.yaml:4: field 'filters.min_words'" in err
    Path("list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    rc, _, err = cli(capsys, "list.yaml")
    assert rc == 2 and "list.yaml:1: a config must be a mapping" in err
    assert not Path("o").exists()


def test_real_entry_point_help_and_exit_code(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "lmforge", "data", "prepare", "--help"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0
    assert "filters.min_words = 5" in done.stdout and "dedup.near.threshold = 0.8" in done.stdout
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\nnot json\n')
    done = subprocess.run([sys.executable, "-m", "lmforge", "data", "prepare", "inputs=bad.jsonl", "out=o"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2 and "bad.jsonl:2" in done.stderr
    assert not (tmp_path / "o").exists()
