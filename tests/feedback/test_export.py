"""Export rules, and that what is exported is valid lmforge.data.preference data (read back by the reader)."""
from collections import Counter

import pytest

from lmforge.data.preference import Binary, Likert, Pair, Ranking, read_feedback
from lmforge.errors import InputError
from lmforge.feedback.export import ExportRules, build_records, mean_positions, write_records
from lmforge.feedback.labels import LabelIn

from .conftest import PASSWORD, make_items, scores


def _labeled(store, labels_by_user: dict[str, LabelIn], k: int = 3):
    for name in labels_by_user:
        store.create_user(name, password=PASSWORD)
    store.add_batch("b", make_items(1, k))
    store.assign("b", len(labels_by_user))
    for name, label in labels_by_user.items():
        user = store.get_user(name)
        store.submit_label(user.id, store.pending(user.id)[0], label)
    return store.labels()


def _of(records, cls):
    return [r for r in records if isinstance(r, cls)]


def test_rankings_pairs_likert_binary_and_rewrites(sqlite_store):
    s3 = scores(3)
    s3[2] = {c: 2 for c in s3[2]}  # response C scored low by ana
    labels = _labeled(sqlite_store, {
        "ana": LabelIn(ranking=[0, 1, 2], scores=s3, rewrite="An even better answer"),
        "bob": LabelIn(ranking=[1, 0, 2], scores=scores(3, 6), unsafe=[False, False, True]),
        "cy": LabelIn(ranking=[0, 2, 1], scores=scores(3, 3)),
    })
    records, report = build_records(labels, ExportRules(good_threshold=5))
    texts = labels[0].responses
    rankings = _of(records, Ranking)
    assert [(r.source, r.ranking) for r in rankings] == [("human:ana", [0, 1, 2]), ("human:bob", [1, 0, 2]),
                                                         ("human:cy", [0, 2, 1])]
    # mean positions: A=(0+1+0)/3=1/3, B=(1+0+2)/3=1, C=(2+2+1)/3=5/3 -> A>B, A>C, B>C
    pairs = {(p.chosen, p.rejected): p for p in _of(records, Pair) if not p.meta.get("rewrite")}
    assert set(pairs) == {(texts[0], texts[1]), (texts[0], texts[2]), (texts[1], texts[2])}
    assert pairs[(texts[0], texts[1])].margin == pytest.approx(2 / 3)
    assert pairs[(texts[0], texts[1])].meta["agreement"] == pytest.approx(2 / 3)
    assert pairs[(texts[1], texts[2])].meta["agreement"] == pytest.approx(2 / 3)
    assert pairs[(texts[0], texts[2])].source == "human"
    likert = {r.response: r.scores for r in _of(records, Likert)}
    assert likert[texts[0]]["accuracy"] == 5 and likert[texts[2]]["honesty"] == 3  # medians of (5,6,3), (2,6,3)
    binary = {r.response: r for r in _of(records, Binary)}
    assert binary[texts[0]].label is True  # median 5 >= 5
    assert binary[texts[2]].label is False and binary[texts[2]].meta["unsafe_votes"] == 1  # unsafe -> bad
    rewrite = [p for p in _of(records, Pair) if p.meta.get("rewrite")]
    assert [(p.chosen, p.rejected, p.labeler) for p in rewrite] == [("An even better answer", texts[0], "ana")]
    assert report.counts == Counter(ranking=3, pair=4, likert=3, binary=3)
    assert (report.prompts, report.labels, report.tied_pairs_skipped) == (1, 3, 0)


def test_tied_consensus_pairs_are_skipped_and_counted(sqlite_store):
    labels = _labeled(sqlite_store, {"ana": LabelIn(ranking=[0, 1, 2]), "bob": LabelIn(ranking=[1, 0, 2])})
    records, report = build_records(labels)
    pairs = _of(records, Pair)
    texts = labels[0].responses
    assert report.tied_pairs_skipped == 1  # A and B both have mean position 0.5
    assert {(p.chosen, p.rejected) for p in pairs} == {(texts[0], texts[2]), (texts[1], texts[2])}
    assert _of(records, Likert) == [] and _of(records, Binary) == []  # nobody scored
    records, report = build_records(labels, ExportRules(min_agreement=1.0))
    assert report.low_agreement_pairs_skipped == 0 and len(_of(records, Pair)) == 2


def test_min_agreement_drops_contested_pairs(sqlite_store):
    labels = _labeled(sqlite_store, {"a1": LabelIn(ranking=[0, 1]), "a2": LabelIn(ranking=[0, 1]),
                                     "a3": LabelIn(ranking=[1, 0])}, k=2)
    assert len(_of(build_records(labels)[0], Pair)) == 1
    records, report = build_records(labels, ExportRules(min_agreement=0.75))
    assert _of(records, Pair) == [] and report.low_agreement_pairs_skipped == 1


def test_label_ties_share_mean_positions(sqlite_store):
    labels = _labeled(sqlite_store, {"ana": LabelIn(ranking=[2, 0, 1], ties=[[0, 1]])})
    assert mean_positions(labels[0]) == [1.5, 1.5, 0.0]
    records, report = build_records(labels, ExportRules(kinds=("ranking", "pair")))
    assert _of(records, Ranking)[0].ties == [[0, 1]]
    assert report.tied_pairs_skipped == 1 and len(_of(records, Pair)) == 2


def test_export_reads_back_as_preference_data(sqlite_store, tmp_path):
    labels = _labeled(sqlite_store, {"ana": LabelIn(ranking=[0, 1, 2], scores=scores(3), rewrite="better"),
                                     "bob": LabelIn(ranking=[0, 2, 1], scores=scores(3, 6))})
    records, _ = build_records(labels)
    out = tmp_path / "prefs.jsonl"
    write_records(records, out)
    back = list(read_feedback(out))
    assert [r.model_dump() for r in back] == [r.model_dump() for r in records]
    written = write_records(records, tmp_path / "hf", "hf")
    assert sorted(p.name for p in written) == ["binary", "likert", "pair", "ranking"]
    for path in written:
        again = list(read_feedback(path))
        assert again and all(r.type == path.name for r in again)
    pairs = list(read_feedback(tmp_path / "hf" / "pair"))
    assert {(p.chosen, p.rejected) for p in pairs} == {(r.chosen, r.rejected) for r in _of(records, Pair)}


def test_rules_are_checked():
    with pytest.raises(InputError, match="unknown export kind"):
        ExportRules(kinds=("pairs",))
    with pytest.raises(InputError, match="good threshold"):
        ExportRules(good_threshold=9)
    with pytest.raises(InputError, match="nothing to export"):
        write_records([], "x.jsonl")
    with pytest.raises(InputError, match="unknown format"):
        write_records([Pair(prompt="q", chosen="a", rejected="b")], "x.jsonl", "csv")
