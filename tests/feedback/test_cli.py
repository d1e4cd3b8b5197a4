"""The `lmforge generate` and `lmforge label ...` commands, end to end, in process."""
import json

import pytest

from lmforge.cli.main import main
from lmforge.data.preference import read_feedback

from .conftest import PASSWORD

LABEL_COMMANDS = ["init", "passwd", "add-user", "add-batch", "assign", "serve", "simulate", "export", "export-redteam",
                  "import", "stats"]


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("cmd", [["generate"], ["label"]] + [["label", c] for c in LABEL_COMMANDS])
def test_help(cmd, capsys):
    code, out, _ = run(cmd + ["--help"], capsys)
    assert code == 0 and "Usage" in out


def test_the_loop_from_the_command_line(tmp_path, capsys):
    db = ["--db", str(tmp_path / "fb")]
    code, out, err = run(["generate", "model=world", "prompts=world", "k=3", "world.n=4",
                          f"run.root={tmp_path}", "run.name=g"], capsys)
    assert code == 0, err
    code, out, err = run(["label", "init", *db, "--admin", "root", "--password", PASSWORD], capsys)
    assert code == 0 and "feedback database ready" in out and (tmp_path / "fb" / "feedback.db").exists()
    assert run(["label", "add-user", "ana", "--password", PASSWORD, *db], capsys)[0] == 0
    code, out, _ = run(["label", "add-batch", str(tmp_path / "g"), *db], capsys)
    assert code == 0 and "batch g: 4 prompts, 12 responses" in out
    code, out, _ = run(["label", "assign", "g", "--per-item", "1", *db], capsys)
    assert code == 0 and "4 new assignment(s)" in out
    code, out, err = run(["label", "simulate", "g", "--labelers", "2", "--noise", "0.3", *db], capsys)
    assert code == 0, err
    code, out, _ = run(["label", "stats", "g", "--json", *db], capsys)
    stats = json.loads(out)
    assert {p["labeler"]: p["done"] for p in stats["progress"]} == {"ana": 0, "sim-1": 4, "sim-2": 4}
    assert stats["agreement"]["prompts"] == 4 and stats["agreement"]["kendall_tau"] is not None
    code, out, _ = run(["label", "stats", *db], capsys)
    assert code == 0 and "alpha accuracy" in out
    prefs = tmp_path / "prefs.jsonl"
    code, out, err = run(["label", "export", "g", "--out", str(prefs), *db], capsys)
    assert code == 0, err
    records = list(read_feedback(prefs))  # what the reward-model trainer reads
    kinds = {r.type for r in records}
    assert {"ranking", "pair", "likert", "binary"} <= kinds
    assert {r.source for r in records if r.type == "ranking"} == {"simulated:sim-1", "simulated:sim-2"}
    code, out, err = run(["label", "export", "--out", str(tmp_path / "hf"), "--format", "hf", "--kinds", "pair",
                          "--sources", "simulated", *db], capsys)
    assert code == 0, err
    assert list(read_feedback(tmp_path / "hf" / "pair"))


def test_import_from_the_command_line(tmp_path, capsys):
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"Q{i}", "chosen": "good", "rejected": "bad"}) + "\n"
                           for i in range(5)))
    out_file = tmp_path / "imported.jsonl"
    code, out, err = run(["label", "import", str(src), "--out", str(out_file), "--batch", "imp",
                          "--db", str(tmp_path / "fb")], capsys)
    assert code == 0, err
    assert len(list(read_feedback(out_file))) == 5
    code, out, _ = run(["label", "stats", "imp", "--json", "--db", str(tmp_path / "fb")], capsys)
    assert json.loads(out)["progress"] == [{"batch": "imp", "labeler": "import-pairs", "kind": "imported",
                                            "assigned": 5, "done": 5}]


@pytest.mark.parametrize("argv, message", [
    (["label", "export", "nope", "--out", "x.jsonl"], "no batch 'nope'"),
    (["label", "import", "missing.jsonl", "--out", "x.jsonl"], "missing.jsonl: file not found"),
    (["label", "import", "missing.jsonl"], "nothing to do"),
    (["label", "add-batch", "missing.jsonl"], "missing.jsonl: file not found"),
    (["label", "assign", "nope"], "no batch 'nope'"),
    (["label", "add-user", "x", "--password", "short"], "at least 8 characters"),
    (["label", "export", "--out", "x.jsonl", "--kinds", "pairs"], "unknown export kind"),
    (["label", "export", "--out", "x.jsonl"], "nothing to export"),
    (["generate", "model=world", "prompts=p.jsonl"], "prompts must be 'world'"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMFORGE_DB", str(tmp_path / "fb"))
    code, out, err = run(argv, capsys)
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1
