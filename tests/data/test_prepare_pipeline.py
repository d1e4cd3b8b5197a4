"""The in-memory API: prepare_documents keeps the right documents and its report adds up."""
from __future__ import annotations

import random

import pytest

from lmforge.data.prepare import PrepareConfig, Preparer, prepare_documents
from lmforge.data.readers import Record
from lmforge.errors import InputError

PROSE = [
    "The committee met on Tuesday to review the budget and agreed that the library should stay open "
    "later during the examination period.",
    "Farmers in the valley planted barley early this year because the spring rains arrived weeks "
    "before they usually do.",
    "A small bakery near the station sells bread made with rye flour and seeds, and it closes as soon "
    "as the last loaf is gone.",
    "Engineers tested the bridge with heavy trucks for three days before the city allowed buses to "
    "cross it again.",
]
WORDS = ("river stone garden window market lantern harbor meadow candle violin bridge orchard thunder "
         "pencil mirror cottage blanket compass feather glacier island jacket kettle ladder").split()


def long_doc(seed: int, n: int = 200) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def near_copy(text: str) -> str:
    words = text.split()
    words[30] = words[150] = "changed"
    return " ".join(words)


def corpus() -> list[str]:
    return [
        PROSE[0],                       # 1 kept
        "  " + PROSE[0] + "\r\n",       # 2 exact duplicate after cleaning
        "\u200b \t\n",                  # 3 empty after cleaning
        "too short",                    # 4 min_words (2 < 5)
        PROSE[1],                       # 5 kept
        long_doc(1),                    # 6 kept
        near_copy(long_doc(1)),         # 7 near duplicate of 6
        "#tag " * 20 + "words here",    # 8 max_symbol_word_ratio: 20 "#" over 22 words
        PROSE[2],                       # 9 kept
        long_doc(2),                    # 10 kept (different document)
    ]


def test_kept_documents_and_reasons():
    kept, report = prepare_documents(corpus())
    assert kept == [PROSE[0], PROSE[1], long_doc(1), PROSE[2], long_doc(2)]
    dropped = {k: v for k, v in report["dropped"].items() if v}
    assert dropped == {"empty": 1, "min_words": 1, "max_symbol_word_ratio": 1, "exact_duplicate": 1,
                       "near_duplicate": 1}
    ex = report["examples"]
    assert ex["exact_duplicate"][0]["duplicate_of"] == "<memory>:1"
    assert ex["near_duplicate"][0]["duplicate_of"] == "<memory>:6"
    assert ex["near_duplicate"][0]["line"] == 7
    assert ex["min_words"][0] == {"file": "<memory>", "line": 4, "text": "too short", "value": 2}
    assert ex["max_symbol_word_ratio"][0]["value"] == pytest.approx(round(20 / 22, 4))  # 20 '#' / 22 words


def test_report_counts_add_up():
    kept, report = prepare_documents(corpus())
    docs = report["documents"]
    assert docs == {"read": 10, "kept": 5, "dropped": 5}
    assert docs["read"] == docs["kept"] + sum(report["dropped"].values())
    stages = report["stages"]
    assert [s["stage"] for s in stages] == ["clean", "filters", "exact_dedup", "near_dedup"]
    assert [s["dropped"] for s in stages] == [1, 2, 1, 1]
    assert stages[0]["in"] == 10 and stages[-1]["out"] == 5
    for before, after in zip(stages, stages[1:]):
        assert before["out"] == after["in"]
    chars = report["chars"]
    assert chars["read"] == sum(map(len, corpus()))
    assert chars["kept"] == sum(map(len, kept))
    assert chars["kept"] <= chars["cleaned"] <= chars["read"]
    assert report["inputs"] == [{"file": "<memory>", "read": 10, "kept": 5}]


def test_deterministic():
    assert prepare_documents(corpus()) == prepare_documents(corpus())


def test_switching_stages_off():
    cfg = PrepareConfig.model_validate({"dedup": {"exact": {"enabled": False}, "near": {"enabled": False}},
                                        "filters": {"min_words": None}})
    kept, report = prepare_documents(corpus(), cfg)
    assert len(kept) == 10 - 2  # only the empty one and the "#tag" spam go
    assert [s["stage"] for s in report["stages"]] == ["clean", "filters"]
    assert "exact_duplicate" not in report["dropped"] and "min_words" not in report["dropped"]


def test_examples_are_capped_and_truncated():
    cfg = PrepareConfig(examples=2)
    texts = ["short one"] * 5 + ["x " * 300]
    _, report = prepare_documents(texts, cfg)
    assert len(report["examples"]["min_words"]) == 2
    assert report["dropped"]["min_words"] == 5
    spam = report["examples"]["min_mean_word_length"][0]["text"]
    assert len(spam) <= 201 and spam.endswith("…")


def test_records_use_text_field_and_keep_their_source():
    cfg = PrepareConfig(text_field="body")
    recs = [Record({"body": PROSE[3]}, "in.jsonl", 3), Record({"body": PROSE[3]}, "in.jsonl", 9)]
    kept, report = prepare_documents(recs, cfg)
    assert kept == [PROSE[3]]
    assert report["examples"]["exact_duplicate"][0]["duplicate_of"] == "in.jsonl:3"
    assert report["inputs"] == [{"file": "in.jsonl", "read": 2, "kept": 1}]


def test_record_missing_field_is_an_input_error():
    with pytest.raises(InputError) as e:
        prepare_documents([Record({"content": "x"}, "in.jsonl", 4)])
    assert str(e.value) == "in.jsonl:4: field 'text': missing field"


def test_non_text_item_is_an_input_error():
    with pytest.raises(InputError, match="<memory>:2: expected a string or Record, got int"):
        prepare_documents(["fine text here", 7])


def test_preparer_add_returns_cleaned_text():
    prep = Preparer()
    assert prep.add("Caf\u0065\u0301  au lait is served every morning here", "f", 1) == \
        "Caf\u00e9 au lait is served every morning here"
    assert prep.add("nope", "f", 2) is None
