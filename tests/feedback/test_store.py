"""The store API on SQLite and PostgreSQL: users, batches, assignments, and transactional, idempotent labels."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from lmforge.errors import InputError
from lmforge.feedback.db import Base, Label, Rating, resolve_url
from lmforge.feedback.labels import LabelIn, LabelRejected, NotFound
from lmforge.feedback.migrate import current_revision, head_revision
from lmforge.feedback.store import Store

from .conftest import PASSWORD, full_label, make_items, scores


def _counts(store):
    with store.reading() as s:
        return s.scalar(select(func.count(Label.id))), s.scalar(select(func.count()).select_from(Rating))


def _setup(store, n=3, k=3, users=("ana", "bob")):
    for u in users:
        store.create_user(u, password=PASSWORD)
    store.add_batch("b1", make_items(n, k))
    store.assign("b1", len(users))
    return [store.get_user(u) for u in users]


def test_migrations_build_exactly_the_models(store):
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_sqlite_runs_in_wal_mode(tmp_path):
    s = Store.open(str(tmp_path / "run"))  # a folder means <folder>/feedback.db
    assert (tmp_path / "run" / "feedback.db").exists()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    s.close()
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_open_without_migrating_asks_for_init(tmp_path):
    with pytest.raises(InputError, match="lmforge label init"):
        Store.open(str(tmp_path / "new.db"), migrate=False)


def test_users_and_passwords(store):
    ana = store.create_user("ana", password=PASSWORD)
    assert store.authenticate("ana", PASSWORD) == ana
    assert store.authenticate("ana", "wrong password") is None
    assert store.authenticate("nobody", PASSWORD) is None
    with store.reading() as s:
        from lmforge.feedback.db import User
        stored = s.scalar(select(User.password_hash).where(User.name == "ana"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(InputError, match="already exists"):
        store.create_user("ana", password=PASSWORD)
    with pytest.raises(InputError, match="at least 8"):
        store.create_user("short", password="x")
    with pytest.raises(InputError, match="user names"):
        store.create_user("<b>", password=PASSWORD)
    judge = store.ensure_user("judge", kind="ai")
    assert store.ensure_user("judge", kind="ai") == judge and judge.kind == "ai"
    assert store.authenticate("judge", "") is None  # no password: cannot log in
    store.set_active("ana", False)
    assert store.authenticate("ana", PASSWORD) is None


def test_sessions(store):
    ana = store.create_user("ana", password=PASSWORD)
    token, csrf = store.open_session(ana.id)
    assert store.session_user(token) == (ana, csrf)
    assert store.session_user("forged") is None
    store.close_session(token)
    assert store.session_user(token) is None


def test_batches_and_assignment(store):
    ana, bob = _setup(store, n=4, users=("ana", "bob"))
    info = store.get_batch("b1")
    assert (info.items, info.responses, info.assignments) == (4, 12, 8)
    assert store.assign("b1", 2) == 0  # idempotent
    with pytest.raises(InputError, match="already exists"):
        store.add_batch("b1", make_items(1))
    with pytest.raises(InputError, match="no batch 'nope'"):
        store.assign("nope", 1)
    with pytest.raises(InputError, match="only 2 candidate"):
        store.assign("b1", 3)
    store.create_user("cy", password=PASSWORD)
    store.add_batch("b2", make_items(6, prefix="q"))
    assert store.assign("b2", 1) == 6
    loads = {p.labeler: p.assigned for p in store.progress(batch="b2")}
    assert loads == {"ana": 2, "bob": 2, "cy": 2}  # least loaded first


def test_submit_is_idempotent_and_revisable(store):
    ana, _ = _setup(store)
    aid = store.pending(ana.id)[0]
    label = full_label([2, 0, 1], comment="B is vague", unsafe=[False, False, True], rewrite="A better one")
    assert store.submit_label(ana.id, aid, label).status == "created"
    assert store.submit_label(ana.id, aid, label).status == "unchanged"
    assert _counts(store) == (1, 3)
    stored = store.assignment_view(ana.id, aid).label
    assert stored.ranking == [2, 0, 1] and stored.unsafe == [False, False, True] and stored.comment == "B is vague"
    assert store.submit_label(ana.id, aid, full_label([0, 1, 2])).status == "revised"
    assert _counts(store) == (1, 3)
    rec = store.labels()[0]
    assert (rec.ranking, rec.revision, rec.comment, rec.rewrite) == ([0, 1, 2], 2, None, None)
    assert [p.done for p in store.progress(user_id=ana.id)] == [1]
    assert aid not in store.pending(ana.id)


def test_ties_and_rank_only_labels(store):
    ana, _ = _setup(store)
    aid = store.pending(ana.id)[0]
    store.submit_label(ana.id, aid, LabelIn(ranking=[1, 0, 2], ties=[[0, 1]]))
    rec = store.labels()[0]
    assert rec.ranking == [0, 1, 2] and rec.ties == [[0, 1]] and rec.scores is None
    with pytest.raises(LabelRejected, match="next to each other"):
        store.submit_label(ana.id, aid, LabelIn(ranking=[1, 0, 2], ties=[[1, 2]]))


@pytest.mark.parametrize("label, message", [
    (full_label([0, 0, 1]), "exactly once"),
    (full_label([0, 1]), "exactly once"),
    (full_label([0, 1, 3]), "exactly once"),
    (LabelIn(ranking=[0, 1, 2], scores=scores(3, 8)), "from 1 to 7, got 8"),
    (LabelIn(ranking=[0, 1, 2], scores=scores(3, 0)), "from 1 to 7, got 0"),
    (LabelIn(ranking=[0, 1, 2], scores=scores(2)), "expected scores for 3"),
    (LabelIn(ranking=[0, 1, 2], scores=[{"accuracy": 5}] * 3), "relevance score is missing"),
    (full_label([0, 1, 2], comment="x" * 5001), "comment is too long"),
    (full_label([0, 1, 2], rewrite="x" * 20001), "rewrite is too long"),
    (full_label([0, 1, 2], unsafe=[True]), "expected 3 unsafe flags"),
])
def test_bad_labels_are_rejected_and_store_nothing(store, label, message):
    ana, _ = _setup(store)
    with pytest.raises(LabelRejected, match=message):
        store.submit_label(ana.id, store.pending(ana.id)[0], label)
    assert _counts(store) == (0, 0)


def test_foreign_or_missing_assignment_is_not_found(store):
    ana, bob = _setup(store)
    theirs = store.pending(bob.id)[0]
    for aid in (theirs, 10_000):
        with pytest.raises(NotFound, match="not assigned to you"):
            store.submit_label(ana.id, aid, full_label([0, 1, 2]))
        with pytest.raises(NotFound):
            store.assignment_view(ana.id, aid)
    assert _counts(store) == (0, 0)


def test_a_crash_mid_submission_stores_nothing_and_keeps_what_was_stored(store):
    ana, _ = _setup(store)
    first, second = store.pending(ana.id)[:2]
    store.submit_label(ana.id, first, full_label([0, 1, 2]))

    def crash(session, ctx):  # right after ratings were written (or deleted) inside the transaction
        if any(isinstance(o, Rating) for o in (*session.new, *session.deleted)):
            raise RuntimeError("simulated crash")
    event.listen(Session, "after_flush", crash)
    try:
        with pytest.raises(RuntimeError):
            store.submit_label(ana.id, second, full_label([2, 1, 0]))
        with pytest.raises(RuntimeError):  # a revision that crashes keeps the old label whole
            store.submit_label(ana.id, first, full_label([1, 2, 0], value=3))
    finally:
        event.remove(Session, "after_flush", crash)
    recs = store.labels()
    assert len(recs) == 1 and recs[0].ranking == [0, 1, 2] and recs[0].scores[0]["accuracy"] == 5
    assert _counts(store) == (1, 3)
    assert second in store.pending(ana.id)


def test_submit_many_is_all_or_nothing(store):
    ana, _ = _setup(store)
    a, b, c = store.pending(ana.id)
    with pytest.raises(LabelRejected):
        store.submit_labels(ana.id, [(a, full_label([0, 1, 2])), (b, full_label([0, 0, 0]))])
    assert _counts(store) == (0, 0)
    assert [r.status for r in store.submit_labels(ana.id, [(a, full_label([0, 1, 2])),
                                                           (b, full_label([1, 0, 2]))])] == ["created"] * 2
    assert store.pending(ana.id) == [c]


def test_labels_listing_filters(store):
    (ana,) = _setup(store, users=("ana",))
    judge = store.ensure_user("judge", kind="ai")
    store.assign("b1", 1, users=["judge"])
    store.submit_label(ana.id, store.pending(ana.id)[0], full_label([0, 1, 2]))
    store.submit_label(judge.id, store.pending(judge.id)[0], LabelIn(ranking=[1, 0, 2], comment="judge says"))
    assert {r.source for r in store.labels()} == {"human:ana", "ai:judge"}
    assert [r.labeler for r in store.labels(kinds=["ai"])] == ["judge"]
    assert store.labels(["b1"], kinds=["simulated"]) == []
