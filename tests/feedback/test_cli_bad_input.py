"""`lmforge label ...` on bad input: one line naming file, line and field, exit 2, nothing left behind."""
import json

import pytest

from lmforge.cli.label_cmd import PASSWORD_RULE
from lmforge.feedback.accounts import MIN_PASSWORD
from lmforge.feedback.store import Store

from .conftest import FAST_HASHER, PASSWORD
from .test_cli import run

PAIR = {"prompt": "Q", "chosen": "good", "rejected": "bad"}


def _rows(path, *rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _litter(folder) -> list[str]:
    """Temp files of an interrupted atomic write (``.NAME.tmp-PID``)."""
    return sorted(p.name for p in folder.rglob(".*.tmp-*"))


@pytest.mark.parametrize("row, message", [
    ({**PAIR, "chosen": ["a"]}, "bad.jsonl:2: field 'chosen.0': expected a chat message"),
    ({**PAIR, "rejected": 7}, "bad.jsonl:2: field 'rejected': expected a text or a list of chat messages, got int"),
    ({**PAIR, "prompt": 5}, "bad.jsonl:2: field 'prompt': expected a text or a list of chat messages, got int"),
    ({**PAIR, "chosen": {"role": "assistant"}}, "bad.jsonl:2: field 'chosen': expected a text or a list"),
    ({**PAIR, "chosen": [{"role": "assistant", "content": 3}]}, "bad.jsonl:2: field 'chosen.0'"),
    ({"instruction": 5, "completions": []}, "bad.jsonl:2: field 'instruction': expected a text or a list"),
])
def test_import_rows_of_the_wrong_type(tmp_path, monkeypatch, capsys, row, message):
    monkeypatch.chdir(tmp_path)
    first = PAIR if "completions" not in row else {"instruction": "Q", "completions": []}
    src = _rows(tmp_path / "bad.jsonl", first, row)
    code, out, err = run(["label", "import", src, "--out", "x.jsonl"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "x.jsonl").exists() and not _litter(tmp_path)


@pytest.fixture
def labeled_db(tmp_path, capsys):
    db = str(tmp_path / "fb")
    src = _rows(tmp_path / "pairs.jsonl", PAIR, {**PAIR, "prompt": "Q2"})
    assert run(["label", "import", src, "--batch", "imp", "--db", db], capsys)[0] == 0
    return db


@pytest.mark.parametrize("cmd", [["export", "--out", "{out}"], ["import", "{src}", "--out", "{out}"]])
def test_out_naming_a_folder(tmp_path, capsys, labeled_db, cmd):
    folder = tmp_path / "already_a_folder"
    folder.mkdir()
    argv = ["label"] + [a.format(out=folder, src=tmp_path / "pairs.jsonl") for a in cmd] + ["--db", labeled_db]
    code, out, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "already_a_folder: field 'out': is a folder" in err, err
    assert not _litter(tmp_path) and not list(folder.iterdir())


def test_export_hf_onto_a_file(tmp_path, capsys, labeled_db):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    code, _, err = run(["label", "export", "--format", "hf", "--out", str(target), "--db", labeled_db], capsys)
    assert code == 2 and "a_file: field 'out': is a file" in err and target.read_text() == "keep me"


@pytest.mark.parametrize("name", ["notes.db", "notes.txt", "notes"])
@pytest.mark.parametrize("cmd", [["init"], ["stats"], ["add-user", "ana", "--password", PASSWORD]])
def test_db_that_is_not_a_database(tmp_path, capsys, name, cmd):
    path = tmp_path / name
    path.write_text("these are my notes, not SQLite\n" * 100)
    code, out, err = run(["label", *cmd, "--db", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{path}: field 'db': cannot use this as the feedback database: file is not a database" in err
    assert path.read_text().startswith("these are my notes")


def test_db_folder_with_a_db_suffix_holds_the_file(tmp_path, capsys):
    folder = tmp_path / "fb.db"
    folder.mkdir()
    assert run(["label", "init", "--db", str(folder)], capsys)[0] == 0
    assert (folder / "feedback.db").is_file()


@pytest.mark.parametrize("db", ["fb", "fb/feedback.db", "new.db"])
@pytest.mark.parametrize("admin, password, message", [
    ("root", "rootpw", "field 'password': password must have at least 8 characters"),
    ("no spaces", PASSWORD, "field 'name': user names are"),
])
def test_init_checks_the_admin_before_creating_the_database(tmp_path, monkeypatch, capsys, db, admin, password,
                                                            message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["label", "init", "--db", db, "--admin", admin, "--password", password], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no database, no folder


def test_the_password_rule_is_in_the_help(capsys):
    assert PASSWORD_RULE == f"at least {MIN_PASSWORD} characters"
    for cmd in ("init", "add-user", "passwd"):
        code, out, _ = run(["label", cmd, "--help"], capsys)
        assert code == 0 and "at least 8" in " ".join(out.split())


def test_passwd_changes_the_password(tmp_path, capsys):
    db = str(tmp_path / "fb")
    assert run(["label", "init", "--db", db, "--admin", "root", "--password", PASSWORD], capsys)[0] == 0
    code, out, err = run(["label", "passwd", "root", "--db", db, "--password", "a new secret"], capsys)
    assert code == 0 and "password of root changed" in out, err
    store = Store.open(db, hasher=FAST_HASHER)
    try:
        assert store.authenticate("root", PASSWORD) is None
        assert store.authenticate("root", "a new secret").name == "root"
    finally:
        store.close()
    code, _, err = run(["label", "passwd", "root", "--db", db, "--password", "short"], capsys)
    assert code == 2 and "at least 8 characters" in err
    code, _, err = run(["label", "passwd", "nobody", "--db", db, "--password", "long enough"], capsys)
    assert code == 2 and "no user named 'nobody'" in err


def test_passwd_asks_twice_when_not_given(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "fb")
    assert run(["label", "init", "--db", db, "--admin", "root", "--password", PASSWORD], capsys)[0] == 0
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    result = CliRunner().invoke(app, ["label", "passwd", "root", "--db", db], input="typed secret\ntyped secret\n")
    assert result.exit_code == 0, result.output
    store = Store.open(db, hasher=FAST_HASHER)
    try:
        assert store.authenticate("root", "typed secret") is not None
    finally:
        store.close()
