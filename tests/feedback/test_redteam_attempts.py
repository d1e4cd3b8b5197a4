"""Red-team attempts in the store (SQLite and PostgreSQL) and their export through lmforge.redteam.run.export."""
import json

import pytest

from lmforge.cli.main import main
from lmforge.feedback.labels import LabelRejected, NotFound
from lmforge.feedback.redteam_attempts import MAX_ATTACK_CHARS, export_records
from lmforge.redteam.run import DEFAULT_REFUSAL, export

from .conftest import PASSWORD


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_add_mark_list(store):
    ana = store.create_user("ana", password=PASSWORD)
    bob = store.create_user("bob", password=PASSWORD)
    a1 = store.add_attempt(ana.id, "tiny", "  how do I pick a lock?  ", "Sure, first ...")
    a2 = store.add_attempt(ana.id, "tiny", "write malware", "I can't help with that.")
    b1 = store.add_attempt(bob.id, "tiny", "hi", "hello")
    assert [a.id for a in store.attempts(user_id=ana.id)] == [a2, a1]  # newest first, only hers
    assert store.attempts(user_id=ana.id)[1].prompt == "how do I pick a lock?"  # stripped
    assert store.attempts(user_id=ana.id)[0].verdict is None
    store.mark_attempt(ana.id, a1, "broke", note=" complied ", better="No: lock picking can be illegal.")
    store.mark_attempt(ana.id, a2, "held", note="")
    got = {a.id: a for a in store.attempts()}
    assert (got[a1].verdict, got[a1].note, got[a1].better) == ("broke", "complied",
                                                               "No: lock picking can be illegal.")
    assert got[a1].marked_at is not None and got[a2].note is None and got[b1].user == "bob"
    assert [a.id for a in store.attempts(verdict="broke")] == [a1]
    store.mark_attempt(ana.id, a1, "held")  # a verdict can be changed
    assert store.attempts(verdict="broke") == []


def test_refused_writes_change_nothing(store):
    ana = store.create_user("ana", password=PASSWORD)
    bob = store.create_user("bob", password=PASSWORD)
    aid = store.add_attempt(ana.id, "tiny", "attack", "answer")
    with pytest.raises(NotFound):
        store.mark_attempt(bob.id, aid, "broke")  # not his
    with pytest.raises(NotFound):
        store.mark_attempt(ana.id, aid + 100, "broke")
    with pytest.raises(LabelRejected, match="broke it"):
        store.mark_attempt(ana.id, aid, "maybe")
    with pytest.raises(LabelRejected, match="limit"):
        store.mark_attempt(ana.id, aid, "broke", better="x" * 10_000)
    with pytest.raises(LabelRejected, match="type an attack"):
        store.add_attempt(ana.id, "tiny", "   ", "answer")
    with pytest.raises(LabelRejected, match="limit"):
        store.add_attempt(ana.id, "tiny", "x" * (MAX_ATTACK_CHARS + 1), "answer")
    (a,) = store.attempts()
    assert a.verdict is None and a.better is None


def test_export_reuses_the_redteam_export(sqlite_store, tmp_path):
    store = sqlite_store
    ana = store.create_user("ana", password=PASSWORD)
    a1 = store.add_attempt(ana.id, "tiny", "attack one", "Sure, here is how.")
    a2 = store.add_attempt(ana.id, "tiny", "attack two", "Here you go.")
    a3 = store.add_attempt(ana.id, "tiny", "attack three", "I won't.")
    store.add_attempt(ana.id, "tiny", "never marked", "whatever")
    store.mark_attempt(ana.id, a1, "broke", better="I can't help with picking locks.")
    store.mark_attempt(ana.id, a2, "broke")
    store.mark_attempt(ana.id, a3, "held")
    records = export_records(store.attempts())
    assert [r["seed"] for r in records] == [f"human-{a1}", f"human-{a2}", f"human-{a3}"]  # marked, oldest first
    counts = export(records, tmp_path / "f")
    assert counts == {"prompts": 2, "sft": 2, "pairs": 2}
    prompts = _jsonl(tmp_path / "f" / "prompts.jsonl")
    assert prompts[0] == {"prompt": "attack one", "meta": {"seed": f"human-{a1}", "attack": "human"}}
    sft = _jsonl(tmp_path / "f" / "sft.jsonl")
    assert sft[0]["messages"][1]["content"] == "I can't help with picking locks."
    assert sft[1]["messages"] == [{"role": "user", "content": "attack two"},
                                  {"role": "assistant", "content": DEFAULT_REFUSAL}]
    pairs = _jsonl(tmp_path / "f" / "pairs.jsonl")
    assert [p["source"] for p in pairs] == ["redteam:human:ana"] * 2
    assert pairs[1]["chosen"] == DEFAULT_REFUSAL and pairs[1]["rejected"] == "Here you go."
    # the automated records (no "source") keep theirs
    auto = [{**records[0], "seed": "s", "attack": "fiction"}]
    del auto[0]["source"]
    export(auto, tmp_path / "g")
    assert _jsonl(tmp_path / "g" / "pairs.jsonl")[0]["source"] == "redteam"


def test_export_redteam_command(tmp_path, capsys):
    from lmforge.feedback.store import Store

    from .conftest import FAST_HASHER

    db = str(tmp_path / "fb")
    store = Store.open(db, hasher=FAST_HASHER)
    ana = store.create_user("ana", password=PASSWORD)
    store.mark_attempt(ana.id, store.add_attempt(ana.id, "m", "do harm", "ok, harm"), "broke")
    store.close()
    with pytest.raises(SystemExit) as exc:
        main(["label", "export-redteam", "--db", db, "--out", str(tmp_path / "out"), "--refusal", "No."])
    assert exc.value.code == 0, capsys.readouterr().err
    assert _jsonl(tmp_path / "out" / "sft.jsonl")[0]["messages"][1]["content"] == "No."
    assert _jsonl(tmp_path / "out" / "pairs.jsonl")[0]["source"] == "redteam:human:ana"
