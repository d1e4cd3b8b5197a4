"""Run the Alembic migrations programmatically (no alembic.ini): on ``label init`` and whenever a store opens."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError

from ..errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def _usable(engine: Engine) -> Iterator[None]:
    """The driver's error on the first connection (a file that is not SQLite, a server that is down) as one
    line naming the database, instead of a traceback."""
    try:
        yield
    except DatabaseError as e:
        reason = str(e.orig if e.orig is not None else e).strip().splitlines()[0]
        raise InputError(f"cannot use this as the feedback database: {reason}",
                         file=engine.url.render_as_string(hide_password=True).removeprefix("sqlite:///"),
                         field="db") from None


def current_revision(engine: Engine) -> str | None:
    with _usable(engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (a no-op when it is there already)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
