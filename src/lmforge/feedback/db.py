"""Database tables of the feedback store, and the engine factory.

SQLite by default (one file, WAL mode, foreign keys on, a busy timeout, and write transactions that start with
``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing); PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). The schema is created and upgraded by the Alembic migrations in
``migrations/`` (see :mod:`lmforge.feedback.migrate`), never by ``create_all``.

Tables::

    users         id, name (unique), kind human|ai|simulated|imported, role labeler|admin, password_hash, active,
                  epoch (+1 on a password change or deactivation)
    web_sessions  token_hash (pk), user_id, csrf_token, created_at, expires_at, epoch (the user's, at login)
    batches       id, name (unique), model, sampling (JSON), source, meta (JSON), mode (what labelers give:
                  see lmforge.feedback.labels.MODES), created_at
    items         id, batch_id, key (unique per batch), position, prompt (JSON chat messages), meta (JSON)
    responses     id, item_id, position (0..K-1, unique per item), text, meta (JSON)
    assignments   id, item_id, user_id (unique together), created_at, opened_at
    labels        id, assignment_id (unique: one label per assignment), comment, rewrite, revision, timestamps
    ratings       (label_id, response_id) pk, rank (0 = best; equal ranks are ties), unsafe, and the five 1-7
                  criterion scores (NULL when a labeler ranked without scoring, e.g. imported pairs), overall
                  (1-7) and good (good-bad batches), NULL where the batch's mode does not ask for them
    redteam_attempts  id, user_id, model, prompt, response, verdict (NULL until marked; broke|held), note,
                  better (the answer it should have given), created_at, marked_at
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..data.preference import CRITERIA
from ..errors import InputError

SCORE_MIN, SCORE_MAX = 1, 7
USER_KINDS = ("human", "ai", "simulated", "imported")
ROLES = ("labeler", "admin")
DB_FILENAME = "feedback.db"
DEFAULT_DB = "runs/feedback"


def utcnow() -> datetime:
    """Naive UTC (stored the same way by SQLite and PostgreSQL)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"kind IN {USER_KINDS}", name="ck_users_kind"),
                      CheckConstraint(f"role IN {ROLES}", name="ck_users_role"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="human")
    role: Mapped[str] = mapped_column(String(16), default="labeler")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # goes up when the password changes or the user is deactivated: sessions of an older epoch are dead
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WebSession(Base):
    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # the user's epoch at login


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    model: Mapped[str | None] = mapped_column(String(512), nullable=True)
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mode: Mapped[str] = mapped_column(String(16), default="rank+criteria", server_default="rank+criteria")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    items: Mapped[list[Item]] = relationship(back_populates="batch", order_by="Item.position")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("batch_id", "key", name="uq_items_batch_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(256))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    batch: Mapped[Batch] = relationship(back_populates="items")
    responses: Mapped[list[Response]] = relationship(order_by="Response.position")


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("item_id", "position", name="uq_responses_item_position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "user_id", name="uq_assignments_item_user"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    item: Mapped[Item] = relationship()
    user: Mapped[User] = relationship()
    label: Mapped[Label | None] = relationship(back_populates="assignment", uselist=False)


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    rewrite: Mapped[str | None] = mapped_column(Text, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    assignment: Mapped[Assignment] = relationship(back_populates="label")
    ratings: Mapped[list[Rating]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                   order_by="Rating.response_id")


def _score_column() -> Mapped[int | None]:
    return mapped_column(Integer, nullable=True)


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (CheckConstraint("rank >= 0", name="ck_ratings_rank"),
                      *(CheckConstraint(f"{c} BETWEEN {SCORE_MIN} AND {SCORE_MAX}", name=f"ck_ratings_{c}")
                        for c in CRITERIA))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    unsafe: Mapped[bool] = mapped_column(Boolean, default=False)
    accuracy: Mapped[int | None] = _score_column()
    relevance: Mapped[int | None] = _score_column()
    coherence: Mapped[int | None] = _score_column()
    harmlessness: Mapped[int | None] = _score_column()
    honesty: Mapped[int | None] = _score_column()
    overall: Mapped[int | None] = _score_column()
    good: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    response: Mapped[Response] = relationship()


REDTEAM_VERDICTS = ("broke", "held")


class RedteamAttempt(Base):
    """One attack a person typed on the red-team page, the model's answer and their verdict."""
    __tablename__ = "redteam_attempts"
    __table_args__ = (CheckConstraint(f"verdict IN {REDTEAM_VERDICTS}", name="ck_redteam_attempts_verdict"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(512))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    better: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    marked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    user: Mapped[User] = relationship()


assert all(hasattr(Rating, c) for c in CRITERIA)  # the columns above are the shared criteria


# --------------------------------------------------------------------------- engine

def resolve_url(db: str | Path | None = None) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as is; a folder means ``<folder>/feedback.db``; else a file path.

    ``None`` reads ``$LMFORGE_DB`` and falls back to ``runs/feedback``.
    """
    db = str(db if db is not None else os.environ.get("LMFORGE_DB") or DEFAULT_DB)
    if "://" in db:
        if db.startswith("postgresql://") or db.startswith("postgres://"):
            db = "postgresql+psycopg://" + db.split("://", 1)[1]
        return db
    path = Path(db).expanduser()
    if path.is_dir() or (path.suffix not in (".db", ".sqlite", ".sqlite3") and not path.is_file()):
        path = path / DB_FILENAME  # an existing file is used as it is (and refused later if not SQLite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the database's folder ({e.strerror})", file=path.parent,
                         field="db") from None
    return f"sqlite:///{path.resolve()}"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # Writers take the write lock up front: a deferred transaction that reads first and writes later can
        # fail with SQLITE_BUSY when another writer got in between; an immediate one waits (busy_timeout).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (from :func:`resolve_url`), with SQLite set up for concurrent use."""
    if url.startswith("sqlite"):
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 30)
        engine = create_engine(url, **kwargs)
        _sqlite_setup(engine)
        return engine
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InputError("PostgreSQL needs the psycopg driver: pip install 'psycopg[binary]'",
                             field="db") from None
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 30)
        kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)
