"""Chat data formats, file types, mixtures by weight, and the errors that name a bad example's file and line."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lmforge.data.chat import (
    SourceSpec,
    check_no_heldout,
    load_mixture,
    load_source,
    world_examples,
)
from lmforge.errors import InputError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_three_formats_become_the_same_messages(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
            {"instruction": "Hi", "input": "", "output": "Hello."},
            {"prompt": "Hi", "completion": "Hello."},
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]
    examples = load_source(SourceSpec(path=str(write_jsonl(tmp_path / "mixed.jsonl", rows))))
    assert [e.messages for e in examples] == [rows[0]["messages"]] * 4
    assert [e.line for e in examples] == [1, 2, 3, 4]


def test_alpaca_input_follows_the_instruction(tmp_path: Path) -> None:
    rows = [{"instruction": "Translate.", "input": "chat", "output": "cat"}]
    ex = load_source(SourceSpec(path=str(write_jsonl(tmp_path / "a.jsonl", rows)), system_prompt="Be kind."))[0]
    assert ex.messages == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Translate.\n\nchat"},
                           {"role": "assistant", "content": "cat"}]


def test_json_parquet_and_saved_dataset_read_alike(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(5)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    got = [[e.messages for e in load_source(SourceSpec(path=str(tmp_path / p)))] for p in ("d.json", "d.parquet", "ds")]
    assert got[0] == got[1] == got[2] and len(got[0]) == 5


@pytest.mark.parametrize("row, message", [
    ({"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]}, "unknown role 'bot'"),
    ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
    ({"prompt": "x", "completion": 3}, "expected a string or a list"),
    ({"question": "x", "answer": "y"}, "cannot tell the format"),
    ({"conversations": [{"from": "robot", "value": "y"}]}, "unknown role 'robot'"),
])
def test_bad_example_error_names_file_and_line(tmp_path: Path, row: dict, message: str) -> None:
    good = {"prompt": "a", "completion": "b"}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good, row])
    with pytest.raises(InputError) as e:
        load_source(SourceSpec(path=str(path)))
    assert f"{path}:3" in str(e.value) and message in str(e.value)


def test_plain_text_needs_format_text(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("one doc\n\nanother doc\n")
    with pytest.raises(InputError, match="format: text"):
        load_source(SourceSpec(path=str(tmp_path / "t.txt")))
    docs = load_source(SourceSpec(path=str(tmp_path / "t.txt"), format="text"))
    assert [d.text for d in docs] == ["one doc", "another doc"]


def test_hub_id_offline_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot load hub dataset"):
        load_source(SourceSpec(path="no-such-owner/no-such-dataset"))


def test_mixture_weights_are_copies_per_epoch(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"a{i}", "completion": "x"} for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"prompt": f"b{i}", "completion": "x"} for i in range(10)])
    examples, counts = load_mixture([SourceSpec(path=str(a), weight=2.0), SourceSpec(path=str(b), weight=0.5)])
    by_source = Counter(e.meta["source"] for e in examples)
    assert by_source == {str(a): 20, str(b): 5}
    assert counts[str(b)] == {"read": 10, "used": 5}
    again, _ = load_mixture([SourceSpec(path=str(a), weight=2.0), SourceSpec(path=str(b), weight=0.5)])
    assert [e.messages for e in again] == [e.messages for e in examples]  # seeded


def test_world_safety_mixes_in_and_heldout_categories_stay_out(world) -> None:
    held = {(kind, c) for kind, splits in world.safety_categories.items() for c in splits["heldout"]}
    safety = world_examples("safety", 0)
    pairs = {(e.meta["kind"], e.meta["category"]) for e in safety}
    assert {("harmful", "weapons"), ("false_premise", "capital")} <= pairs and not pairs & held
    examples, counts = load_mixture([SourceSpec(world="sft"), SourceSpec(world="safety", weight=2.0)])
    assert counts["world:safety"]["used"] == 2 * len(safety)
    assert not {(e.meta["kind"], e.meta["category"]) for e in examples} & held
    leaked = world.eval_prompts("heldout", ["harmful"], n=1)
    with pytest.raises(ValueError, match="held-out"):
        check_no_heldout(leaked, world)


def test_source_needs_exactly_one_origin() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SourceSpec()
    with pytest.raises(ValueError, match="exactly one"):
        SourceSpec(path="a.jsonl", world="sft")
