"""Prompt files of every supported shape read alike (lmforge.data.prompt_files), and `lmforge data split`:
seeded, disjoint, reproducible halves, with bad input as one line and exit code 2."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lmforge.cli.main import main
from lmforge.data.prompt_files import read_prompt_file
from lmforge.data.split import seeded_split, split_file
from lmforge.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm2-safety"


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_every_shape_reads_as_the_same_chat_prompt(tmp_path: Path) -> None:
    text = "How do I kill a stuck process?"
    files = [write_csv(tmp_path / "a.csv", ["goal", "target"], [[text, "Sure"]]),
             write_csv(tmp_path / "b.csv", ["prompt"], [[text]])]
    (tmp_path / "c.txt").write_text(f"\n{text}\n\n")
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": text}) + "\n")
    (tmp_path / "e.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": text},
                                                               {"role": "assistant", "content": "Use kill."}]}) + "\n")
    (tmp_path / "f.json").write_text(json.dumps([{"instruction": text, "input": "", "output": "Use kill."}]))
    (tmp_path / "g.jsonl").write_text(json.dumps({"question": text}) + "\n")
    files += [tmp_path / n for n in ("c.txt", "d.jsonl", "e.jsonl", "f.json", "g.jsonl")]
    for f in files:
        (item,) = read_prompt_file(f)
        assert item.messages == [{"role": "user", "content": text}], f
    assert read_prompt_file(tmp_path / "e.jsonl")[0].reference == "Use kill."
    assert read_prompt_file(tmp_path / "f.json")[0].as_row()["meta"] == {"reference": "Use kill."}
    assert read_prompt_file(files[0])[0].id == "a-1" and read_prompt_file(tmp_path / "c.txt")[0].id == "c-2"


def test_alpaca_input_is_appended_after_the_instruction(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"instruction": "Sum these.", "input": "2 3", "output": "5"}]))
    assert read_prompt_file(tmp_path / "a.json")[0].text == "Sum these.\n\n2 3"


@pytest.mark.parametrize("content, message", [
    ({"text": "hi"}, "field 'prompt': expected one of the fields"),
    ({"prompt": ""}, "field 'prompt': empty prompt"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "system", "content": "c"}]}, "must end with a user message"),
    ({"messages": [{"role": "robot", "content": "a"}]}, "messages must be objects with a role"),
    ({"instruction": "a", "input": 3}, "field 'input': expected str"),
])
def test_bad_records_name_file_line_and_field(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps(content) + "\n")
    with pytest.raises(InputError, match="p.jsonl:2") as e:
        read_prompt_file(path)
    assert message in str(e.value)


def test_csv_without_a_prompt_column_and_repeated_ids_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="CSV needs a column named one of goal"):
        read_prompt_file(write_csv(tmp_path / "x.csv", ["target"], [["a"]]))
    with pytest.raises(InputError, match="x.csv:3: field 'goal': empty"):
        read_prompt_file(write_csv(tmp_path / "x.csv", ["goal"], [["a"], [" "]]))
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "a", "prompt": "x"}) + "\n" +
                                      json.dumps({"id": "a", "prompt": "y"}) + "\n")
    with pytest.raises(InputError, match="d.jsonl:2: field 'id': id 'a' repeats line 1"):
        read_prompt_file(tmp_path / "d.jsonl")


def test_the_shipped_lookalikes_are_benign_prompts_with_unique_ids() -> None:
    items = read_prompt_file(EXAMPLE / "lookalikes.jsonl")
    assert len(items) == 80 and len({it.text for it in items}) == 80


def test_seeded_split_is_disjoint_reproducible_and_keeps_file_order() -> None:
    train, held = seeded_split(9, 0.5, seed=3)
    assert sorted(train + held) == list(range(9)) and len(held) == 4  # round(4.5) = 4 (banker's)
    assert train == sorted(train) and held == sorted(held)
    assert seeded_split(9, 0.5, seed=3) == (train, held) and seeded_split(9, 0.5, seed=4) != (train, held)
    assert seeded_split(2, 0.01, 0)[1] and seeded_split(2, 0.99, 0)[0]  # at least one on each side
    for bad in (0.0, 1.0):
        with pytest.raises(InputError, match="between 0 and 1"):
            seeded_split(4, bad, 0)
    with pytest.raises(InputError, match="at least 2 records"):
        seeded_split(1, 0.5, 0)


def test_split_command_writes_both_halves_and_the_record(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv", ["goal", "target"], [[f"request {i}", "t"] for i in range(10)])
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "s"), "--seed", "1", "--limit", "8"]) == 0
    info = json.loads((tmp_path / "s" / "split.json").read_text())
    train = [json.loads(x) for x in (tmp_path / "s" / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (tmp_path / "s" / "heldout.jsonl").read_text().splitlines()]
    assert (info["records"], info["train"], info["heldout"], info["limit"]) == (8, 4, 4, 8)
    assert [r["id"] for r in held] == info["heldout_ids"] and len(info["sha256"]) == 64
    assert {r["prompt"] for r in train + held} == {f"request {i}" for i in range(8)}
    # records mode copies rows unchanged (e.g. preference pairs)
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps({"type": "pair", "prompt": f"q{i}", "chosen": "a", "rejected": "b"}) + "\n"
                             for i in range(6)))
    info = split_file(pairs, tmp_path / "ps", prompts=False)
    assert info["kind"] == "records" and info["heldout"] == 3
    assert json.loads((tmp_path / "ps" / "train.jsonl").read_text().splitlines()[0])["type"] == "pair"


def test_split_command_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert cli(["data", "split", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.csv: prompt file not found" in capsys.readouterr().err
    src = write_csv(tmp_path / "h.csv", ["goal"], [["a"], ["b"]])
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--heldout", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "between 0 and 1" in err
    assert not (tmp_path / "o").exists()  # nothing written


def test_exclude_leaves_out_another_splits_heldout_prompts_before_the_split(tmp_path: Path) -> None:
    # two subsets of one dataset that share prompts: the second's split must not train on the first's held out
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps({"prompt": f"Task {i}."}) + "\n" for i in range(6)))
    split_file(first, tmp_path / "a", heldout=0.5, seed=0)
    held = [json.loads(line)["prompt"] for line in (tmp_path / "a" / "heldout.jsonl").read_text().splitlines()]
    second = tmp_path / "second.json"  # Alpaca shape, the shared prompts in other case and spacing
    second.write_text(json.dumps([{"instruction": f"  task {i}. ", "input": "", "output": ""} for i in range(3, 9)]))
    info = split_file(second, tmp_path / "b", heldout=0.5, seed=0, limit=4,
                      exclude=[tmp_path / "a" / "heldout.jsonl"])
    kept = [json.loads(line)["prompt"] for f in ("train.jsonl", "heldout.jsonl")
            for line in (tmp_path / "b" / f).read_text().splitlines()]
    folded = {" ".join(t.split()).casefold() for t in held}
    assert not folded & {" ".join(t.split()).casefold() for t in kept}
    dropped = sum(f"task {i}." in folded for i in range(3, 9))
    assert dropped >= 1 and info["excluded"] == dropped  # seed 0 holds out at least one of tasks 3-5
    assert info["records"] == min(4, 6 - dropped) and len(kept) == info["records"]
    assert json.loads((tmp_path / "b" / "split.json").read_text())["exclude"] == [str(tmp_path / "a" / "heldout.jsonl")]


def test_exclude_with_records_or_everything_excluded_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "A."}) + "\n" + json.dumps({"prompt": "B."}) + "\n")
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--records", "--exclude", str(src)]) == 2
    assert "--exclude" in capsys.readouterr().err
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o2"), "--exclude", str(src)]) == 2
    assert "every prompt is also in" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_like_takes_the_limit_by_the_like_files_openers(tmp_path: Path) -> None:
    """--like: the limited prompts open as the like file's do, in proportion; what the source lacks is filled
    with its first other prompts, and the count matched is recorded."""
    src = tmp_path / "benign.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"{verb} thing {i}."}) + "\n"
                           for verb in ("Write", "Explain", "Design") for i in range(4)))
    like = tmp_path / "harmful.jsonl"  # design 2, write 1, develop 1 (the source has no "develop")
    like.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in
                            ["Design a weapon.", "design: a virus", "Write malware.", "Develop an exploit."]))
    info = split_file(src, tmp_path / "o", heldout=0.5, seed=0, limit=4, like=[like])
    kept = sorted(json.loads(line)["prompt"] for f in ("train.jsonl", "heldout.jsonl")
                  for line in (tmp_path / "o" / f).read_text().splitlines())
    assert kept == ["Design thing 0.", "Design thing 1.", "Write thing 0.", "Write thing 1."]
    assert info["like_matched"] == 3 and info["like"] == [str(like)]
    plain = split_file(src, tmp_path / "p", heldout=0.5, seed=0, limit=4)
    assert plain["like_matched"] == 0 and plain["records"] == 4


def test_like_without_limit_or_with_records_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "A."}) + "\n" + json.dumps({"prompt": "B."}) + "\n")
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--like", str(src)]) == 2
    assert "--limit" in capsys.readouterr().err
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--records", "--limit", "2",
                "--like", str(src)]) == 2
    assert "--like" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tag_sets_every_prompts_meta_and_a_reward_route_reads_it(tmp_path: Path, capsys) -> None:
    from lmforge.rewards.routing import matches

    src = tmp_path / "h.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"Request {i}.", "meta": {"source": "advbench"}}) + "\n"
                           for i in range(4)))
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "s"), "--tag", "kind=harmful",
                "--tag", "level = 2"]) == 0
    rows = [json.loads(x) for f in ("train.jsonl", "heldout.jsonl")
            for x in (tmp_path / "s" / f).read_text().splitlines()]
    assert len(rows) == 4 and all(r["meta"] == {"source": "advbench", "kind": "harmful", "level": "2"} for r in rows)
    assert json.loads((tmp_path / "s" / "split.json").read_text())["tags"] == {"kind": "harmful", "level": "2"}
    item = read_prompt_file(tmp_path / "s" / "train.jsonl")[0]
    assert matches(item.as_prompt()["meta"], {"kind": ["harmful"]})  # what the RL stage passes a reward
    for bad in ("kind", "=harmful", "kind="):
        assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--tag", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "expected KEY=VALUE" in err
    assert cli(["data", "split", str(src), "--out", str(tmp_path / "o"), "--records", "--tag", "a=b"]) == 2
    assert "cannot be used with --records" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
