"""Importing HH-RLHF, UltraFeedback-style and plain chosen/rejected data, to JSONL and into the database."""
import gzip
import json
from pathlib import Path

import pytest

from lmforge.data.preference import Likert, Pair, Ranking
from lmforge.errors import InputError
from lmforge.feedback.importers import hh_dialogue, import_records, load_into_store, split_hh

SHARED_HH = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh_rlhf" / "helpful-base-test.jsonl.gz"

HH_ROWS = [
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
     "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: It is 5."},
    {"chosen": "\n\nHuman: Name a fruit.\n\nAssistant: An apple.",
     "rejected": "\n\nHuman: Name a fruit.\n\nAssistant: An apple."},  # identical: skipped
]


def _write_gz(path: Path, rows) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def test_hh_split_uses_the_common_prefix():
    prompt, chosen, rejected = split_hh(HH_ROWS[0]["chosen"], HH_ROWS[0]["rejected"])
    assert prompt == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "What is 2+2?"}]
    assert (chosen, rejected) == ("It is 4.", "It is 5.")
    # replies that start alike: the prompt still ends at the last shared "Assistant:" turn
    prompt, chosen, rejected = split_hh("\n\nHuman: q\n\nAssistant: Sure, yes", "\n\nHuman: q\n\nAssistant: Sure, no")
    assert prompt == [{"role": "user", "content": "q"}] and (chosen, rejected) == ("Sure, yes", "Sure, no")
    assert hh_dialogue("Human: a\n\nAssistant: b") == [{"role": "user", "content": "a"},
                                                       {"role": "assistant", "content": "b"}]


def test_hh_rlhf_file(tmp_path):
    records, counts = import_records(_write_gz(tmp_path / "hh.jsonl.gz", HH_ROWS))
    assert len(records) == 1 and isinstance(records[0], Pair) and records[0].source == "hh-rlhf"
    assert counts["rows"] == 2 and counts["skipped: chosen and rejected are identical"] == 1
    assert counts["format: hh-rlhf"] == 1


@pytest.mark.shared
def test_real_hh_rlhf_sample():
    if not SHARED_HH.exists():
        pytest.skip(f"shared HH-RLHF data not found at {SHARED_HH}")
    records, counts = import_records(SHARED_HH, limit=200)
    assert counts["rows"] == 200 and len(records) >= 195
    assert all(r.prompt[-1].role == "user" and r.chosen != r.rejected for r in records)


def test_ultrafeedback_ratings(tmp_path):
    row = {"instruction": "Write a haiku.", "completions": [
        {"response": "five seven five", "model": "m1",
         "annotations": {"helpfulness": {"Rating": "4"}, "honesty": {"Rating": "5"},
                         "instruction_following": {"Rating": "3"}, "truthfulness": {"Rating": "N/A"}}},
        {"response": "no", "annotations": {"helpfulness": {"Rating": "1"}, "honesty": {"Rating": "2"}}},
        {"response": "a poem", "annotations": {"helpfulness": {"Rating": "4"}, "honesty": {"Rating": "4"},
                                               "instruction_following": {"Rating": "4"}}},
    ]}
    path = tmp_path / "uf.jsonl"
    path.write_text(json.dumps(row) + "\n")
    records, counts = import_records(path)
    ranking = records[0]
    assert isinstance(ranking, Ranking) and counts["format: ultrafeedback"] == 1
    assert ranking.ranking == [0, 2, 1] and ranking.ties == [[0, 2]]  # means 4, 1.5, 4
    likert = [r for r in records if isinstance(r, Likert)]
    assert likert[0].scores == {"helpfulness": 4, "honesty": 5, "instruction_following": 3}
    assert likert[0].scale == (1, 5)


def test_plain_pairs_and_binarized_messages(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "Q1", "chosen": "good", "rejected": "bad"},
            {"prompt": "Q2", "chosen": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "yes"}],
             "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "no"}],
             "score_chosen": 8.0, "score_rejected": 3.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, _ = import_records(path)
    assert [(r.prompt[-1].content, r.chosen, r.rejected, r.margin) for r in records] == [
        ("Q1", "good", "bad", None), ("Q2", "yes", "no", 5.0)]


def test_bad_files_name_the_line(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"question": "?"}\n')
    with pytest.raises(InputError, match=r"odd.jsonl:1: cannot tell the format"):
        import_records(path)
    path.write_text('{"prompt": "Q", "chosen": "a", "rejected": "b"}\n{"prompt": "Q"}\n')
    with pytest.raises(InputError, match=r"odd.jsonl:2: field 'chosen'"):
        import_records(path, "pairs")
    with pytest.raises(InputError, match="unknown format"):
        import_records(path, "csv")


def test_load_into_store_hides_the_original_order(store, tmp_path):
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, _ = import_records(path)
    assert load_into_store(store, records, "imp", labeler="import-pairs") == {"items": 12, "labels": 12}
    labels = store.labels(["imp"])
    assert {r.labeler_kind for r in labels} == {"imported"}
    assert all(r.responses[r.ranking[0]].startswith("good") for r in labels)
    assert {r.ranking[0] for r in labels} == {0, 1}  # shown in both orders
