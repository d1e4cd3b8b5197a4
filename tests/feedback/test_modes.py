"""Batch modes: what the labeling page asks for and requires (rank, rank+overall, rank+criteria, good-bad), what
the store accepts, and which preference records each mode exports."""
import pytest
from sqlalchemy import text

from lmforge.data.preference import CRITERIA, Binary, Likert, Pair, Ranking
from lmforge.errors import InputError
from lmforge.feedback.export import build_records
from lmforge.feedback.labels import LabelIn, LabelRejected
from lmforge.feedback.migrate import upgrade
from lmforge.feedback.store import Store
from lmforge.feedback.webapp.forms import parse_label_form

from .conftest import FAST_HASHER, make_items
from .test_webapp import client, login

RANKS = {"rank_0": "2", "rank_1": "1", "rank_2": "3"}
CRITERION_SCORES = {f"{c}_{i}": "4" for c in CRITERIA for i in range(3)}


def mode_site(store, mode: str, per_item: int = 1):
    store.create_user("ana", password="correct horse")
    store.create_user("bob", password="correct horse")
    store.add_batch("m", make_items(1, 3), mode=mode)
    store.assign("m", per_item, users=["ana", "bob"][:per_item])
    return store


def _page_and_post(store, form: dict):
    c = client(store)
    csrf = login(c, "ana")
    (aid,) = store.pending(store.get_user("ana").id)
    page = c.get(f"/a/{aid}")
    assert page.status_code == 200
    return page.text, c.post(f"/a/{aid}", data={"csrf_token": csrf, **form})


# --------------------------------------------------------------------------- the form, server side

def test_rank_only_page_shows_and_requires_only_the_ranking(sqlite_store):
    store = mode_site(sqlite_store, "rank")
    page, r = _page_and_post(store, dict(RANKS))
    assert 'name="rank_0"' in page and 'name="accuracy_0"' not in page and 'name="overall_0"' not in page
    assert "Score every response" not in page
    assert r.status_code == 303, r.text
    (rec,) = store.labels(["m"])
    assert rec.ranking == [1, 0, 2] and rec.scores is None and rec.overall is None and rec.mode == "rank"


def test_rank_overall_page_requires_one_overall_score_per_response(sqlite_store):
    store = mode_site(sqlite_store, "rank+overall")
    page, r = _page_and_post(store, {**RANKS, "overall_0": "6", "overall_1": "7"})
    assert 'name="overall_2"' in page and 'name="accuracy_0"' not in page
    assert r.status_code == 400 and "response C: the overall score is missing" in r.text
    _, r = _page_and_post(store, {**RANKS, "overall_0": "6", "overall_1": "7", "overall_2": "1"})
    assert r.status_code == 303, r.text
    (rec,) = store.labels(["m"])
    assert rec.overall == [6, 7, 1] and rec.scores is None


def test_rank_criteria_page_still_requires_every_criterion(sqlite_store):
    store = mode_site(sqlite_store, "rank+criteria")
    page, r = _page_and_post(store, dict(RANKS))
    assert all(f'name="{c}_2"' in page for c in CRITERIA)
    assert r.status_code == 400 and "response A: the accuracy score is missing" in r.text
    _, r = _page_and_post(store, {**RANKS, **CRITERION_SCORES})
    assert r.status_code == 303
    assert store.labels(["m"])[0].scores[2]["honesty"] == 4


def test_good_bad_page_has_no_ranking_and_requires_a_verdict_each(sqlite_store):
    store = mode_site(sqlite_store, "good-bad")
    page, r = _page_and_post(store, {"good_0": "good", "good_1": "bad"})
    assert 'name="rank_0"' not in page and 'type="radio" name="good_2"' in page
    assert r.status_code == 400 and "response C: choose good or bad" in r.text
    _, r = _page_and_post(store, {"good_0": "good", "good_1": "bad", "good_2": "good"})
    assert r.status_code == 303, r.text
    (rec,) = store.labels(["m"])
    assert rec.good == [True, False, True]
    assert rec.ranking == [0, 2, 1] and rec.ties == [[0, 2]]  # goods tied above the bad one
    # the stored label reads back into the form, and the same submission again changes nothing
    aid = rec.assignment_id
    view = store.assignment_view(store.get_user("ana").id, aid)
    assert store.submit_label(store.get_user("ana").id, aid, view.label).status == "unchanged"


@pytest.mark.parametrize("mode,form,want", [
    ("rank", dict(RANKS), dict(ranking=[1, 0, 2], scores=None, overall=None, good=None)),
    ("rank+overall", {**RANKS, **{f"overall_{i}": "3" for i in range(3)}, **CRITERION_SCORES},
     dict(ranking=[1, 0, 2], scores=None, overall=[3, 3, 3], good=None)),
    ("good-bad", {**RANKS, "good_0": "bad", "good_1": "Good", "good_2": "bad"},
     dict(ranking=None, scores=None, overall=None, good=[False, True, False])),
])
def test_parse_label_form_takes_only_the_modes_fields(mode, form, want):
    label = parse_label_form(form, 3, mode)
    assert {k: getattr(label, k) for k in want} == want


def test_parse_label_form_rejects_bad_values_per_mode():
    with pytest.raises(LabelRejected, match="choose good or bad"):
        parse_label_form({"good_0": "good", "good_1": "maybe", "good_2": "bad"}, 3, "good-bad")
    with pytest.raises(LabelRejected, match="overall score must be a whole number"):
        parse_label_form({**RANKS, "overall_0": "x", "overall_1": "1", "overall_2": "1"}, 3, "rank+overall")
    label = parse_label_form({**RANKS, "overall_0": "9", "overall_1": "1", "overall_2": "1"}, 3, "rank+overall")
    with pytest.raises(LabelRejected, match="overall score must be a whole number from 1 to 7, got 9"):
        label.normalized().check(3, "rank+overall")


# --------------------------------------------------------------------------- the store

def test_store_checks_the_mode(store):
    store.add_batch("gb", make_items(1, 2), mode="good-bad")
    judge = store.ensure_user("judge", kind="ai")
    store.assign("gb", 1, users=["judge"])
    (aid,) = store.pending(judge.id)
    with pytest.raises(LabelRejected, match="mode good-bad.*good or bad verdict"):
        store.submit_label(judge.id, aid, LabelIn(ranking=[0, 1]))
    assert store.submit_label(judge.id, aid, LabelIn(good=[False, False])).status == "created"
    (rec,) = store.labels(["gb"])
    assert rec.good == [False, False] and rec.ties == [[0, 1]]
    with pytest.raises(InputError, match="unknown batch mode 'rank-only'"):
        store.add_batch("x", make_items(1, 2), mode="rank-only")
    assert store.get_batch("gb").mode == "good-bad"


def test_migration_keeps_old_batches_asking_for_criteria(tmp_path):
    """A database made before modes (schema 0001) upgrades with its batches in rank+criteria, as they were."""
    from lmforge.feedback.db import make_engine, resolve_url

    engine = make_engine(resolve_url(str(tmp_path / "old.db")))
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO batches (id, name, sampling, meta, created_at) "
                          "VALUES (1, 'old', '{}', '{}', '2025-01-01 00:00:00')"))
    engine.dispose()
    store = Store.open(str(tmp_path / "old.db"), hasher=FAST_HASHER)
    assert store.get_batch("old").mode == "rank+criteria"
    store.close()


# --------------------------------------------------------------------------- the export

def _export_types(store, batch: str) -> dict[str, list]:
    records, _ = build_records(store.labels([batch]))
    out: dict[str, list] = {}
    for r in records:
        out.setdefault(type(r).__name__, []).append(r)
    return out


def _two_labels(store, mode: str, a: LabelIn, b: LabelIn) -> str:
    """Batch ``mode`` (named after it) with one prompt, labeled by two judges; returns the batch name."""
    name = mode.replace("+", "_")
    store.add_batch(name, make_items(1, 3), mode=mode)
    users = [store.ensure_user(n, kind="ai") for n in ("j1", "j2")]
    store.assign(name, 2, users=["j1", "j2"])
    for u, label in zip(users, (a, b)):
        (aid,) = store.pending(u.id, name)
        store.submit_label(u.id, aid, label)
    return name


def test_export_record_kinds_follow_the_mode(sqlite_store):
    store = sqlite_store
    got = _export_types(store, _two_labels(store, "rank", LabelIn(ranking=[0, 1, 2]), LabelIn(ranking=[0, 2, 1])))
    assert set(got) == {"Ranking", "Pair"}

    got = _export_types(store, _two_labels(store, "rank+overall", LabelIn(ranking=[0, 1, 2], overall=[7, 4, 2]),
                                           LabelIn(ranking=[0, 1, 2], overall=[6, 5, 2])))
    assert set(got) == {"Ranking", "Pair", "Likert", "Binary"}
    likert = {r.response: r.scores for r in got["Likert"] if isinstance(r, Likert)}
    assert likert == {"answer 0.0": {"overall": 6.5}, "answer 0.1": {"overall": 4.5}, "answer 0.2": {"overall": 2.0}}
    assert [r.label for r in got["Binary"]] == [True, False, False]  # medians 6.5, 4.5, 2 against 5

    got = _export_types(store, _two_labels(store, "good-bad", LabelIn(good=[True, False, True]),
                                           LabelIn(good=[True, False, False])))
    assert set(got) == {"Binary"}  # no ranking, pairs or rewrites from verdicts
    binary = {r.response: r for r in got["Binary"] if isinstance(r, Binary)}
    assert binary["answer 0.0"].label is True and binary["answer 0.1"].label is False
    assert "answer 0.2" not in binary  # one good, one bad: no majority, no record
    assert binary["answer 0.0"].meta["good_votes"] == 2


def test_rank_criteria_export_is_unchanged(sqlite_store):
    store = sqlite_store
    full = [{c: 6 for c in CRITERIA}, {c: 3 for c in CRITERIA}, {c: 1 for c in CRITERIA}]
    got = _export_types(store, _two_labels(store, "rank+criteria", LabelIn(ranking=[0, 1, 2], scores=full),
                                           LabelIn(ranking=[0, 1, 2], scores=full)))
    assert set(got) == {"Ranking", "Pair", "Likert", "Binary"}
    assert all(set(r.scores) == set(CRITERIA) for r in got["Likert"])
    assert len([r for r in got["Pair"] if isinstance(r, Pair)]) == 3
    assert all(isinstance(r, Ranking) for r in got["Ranking"])


def test_add_batch_mode_from_the_command_line(tmp_path, capsys):
    from .test_cli import run

    db = ["--db", str(tmp_path / "fb")]
    assert run(["generate", "model=world", "prompts=world", "k=2", "world.n=2", f"run.root={tmp_path}",
                "run.name=g"], capsys)[0] == 0
    code, out, err = run(["label", "add-batch", str(tmp_path / "g"), "--mode", "rank", *db], capsys)
    assert code == 0 and "(mode rank)" in out, err
    code, out, err = run(["label", "add-batch", str(tmp_path / "g"), "--name", "g2", "--mode", "ranked", *db],
                         capsys)
    assert code == 2 and "unknown batch mode 'ranked' (use one of rank, rank+overall" in err
    store = Store.open(str(tmp_path / "fb"))
    assert [(b.name, b.mode) for b in store.batches()] == [("g", "rank")]
    store.close()


def test_imported_preferences_make_a_rank_only_batch(sqlite_store):
    """Imported pairs carry only an order, so people relabeling them are asked to rank, not to score."""
    from lmforge.data.preference import Pair as P
    from lmforge.feedback.importers import load_into_store

    load_into_store(sqlite_store, [P(prompt="Hi?", chosen="Hello!", rejected="Go away.")], "imp", labeler="hh")
    assert sqlite_store.get_batch("imp").mode == "rank"
