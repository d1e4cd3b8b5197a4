"""Fixtures for the feedback tests: a store on SQLite and (when its binaries exist) a throwaway PostgreSQL
server, a fast password hasher, small batches, a fake built-in world; the live server and logins are in tests/web_helpers.py."""
from __future__ import annotations

import glob
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from lmforge.data.preference import CRITERIA
from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.labels import LabelIn
from lmforge.feedback.store import Store
from web_helpers import FAST_HASHER, PASSWORD, LiveServer, free_port  # noqa: F401 (the feedback tests import them here)

PG_INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


# --------------------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of our own: initdb into a temp dir, listening on 127.0.0.1 at a free port."""
    if not PG_INITDB:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    try:
        import psycopg
    except ImportError:
        pytest.skip("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    bindir = Path(PG_INITDB[-1]).parent
    tmp = tempfile.mkdtemp(prefix="lmforge-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
        shutil.chown(tmp, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(tmp, "data"), free_port()
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                             "--no-sync"], check=True, capture_output=True)
    log = os.path.join(tmp, "server.log")
    options = (f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=300")
    pg_ctl = prefix + [str(bindir / "pg_ctl"), "-D", data]
    started = subprocess.run(pg_ctl + ["-o", options, "-l", log, "-w", "-t", "30", "start"], capture_output=True,
                             text=True)
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}")
    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE lmforge_test")
    yield {"port": port, "url": f"postgresql://postgres@127.0.0.1:{port}/lmforge_test"}
    subprocess.run(pg_ctl + ["-m", "immediate", "-w", "stop"], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _pg_schema(server) -> tuple[str, callable]:
    """A fresh schema in the test database (much faster than CREATE DATABASE); the URL makes it the default."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server["url"], autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")

    def drop() -> None:
        with psycopg.connect(server["url"], autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    return (f"postgresql+psycopg://postgres@127.0.0.1:{server['port']}/lmforge_test"
            f"?options=-csearch_path%3D{name}"), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh empty database: a SQLite file, or a new schema on the throwaway PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "feedback.db")
        return
    url, drop = _pg_schema(request.getfixturevalue("pg_server"))
    yield url
    drop()


@pytest.fixture
def store(db_url):
    s = Store.open(db_url, hasher=FAST_HASHER)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store.open(str(tmp_path / "feedback.db"), hasher=FAST_HASHER)
    yield s
    s.close()


# --------------------------------------------------------------------------- data helpers

def make_items(n: int = 3, k: int = 3, prefix: str = "p") -> list[BatchItem]:
    return [BatchItem(id=f"{prefix}{i}", prompt=[{"role": "user", "content": f"Question {i}?"}],
                      responses=[f"answer {i}.{j}" for j in range(k)], model="tiny", sampling={"temperature": 1.0},
                      meta={"kind": "qa", "reference": f"answer {i}.0"}) for i in range(n)]


def scores(k: int, value: int = 5) -> list[dict[str, int]]:
    return [{c: value for c in CRITERIA} for _ in range(k)]


def full_label(ranking: list[int], value: int = 5, **kw) -> LabelIn:
    return LabelIn(ranking=ranking, scores=scores(len(ranking), value), **kw)


# --------------------------------------------------------------------------- a fake built-in world

class FakeWorld:
    """The world's contract in miniature: prompts with references, graded candidate responses."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def eval_prompts(self, split="heldout", kinds=None, n=None, seed=0):
        items = [{"id": f"w{i}", "messages": [{"role": "user", "content": f"What is the capital of C{i}?"}],
                  "kind": "qa", "category": "capital", "split": split, "reference": f"City{i}", "meta": {"i": i}}
                 for i in range(10)]
        items = [it for it in items if kinds is None or it["kind"] in kinds]
        return items[:n] if n else items

    def candidate_responses(self, item, k, rng: random.Random):
        pool = [f"The capital is {item['reference']}.", f"I believe it is {item['reference']}, probably.",
                "It is Nowhere.", "<script>alert(1)</script> I refuse."]
        return [pool[j % len(pool)] for j in range(k)]


class FakeLabeler:
    """Scores a response by whether it states the reference; flags the script one as unsafe."""

    def __init__(self, world, noise=0.0, seed=0):
        self.seed = seed

    def label(self, item, responses):
        quality = [(2 if item["reference"] in r else 0) + (1 if "probably" not in r else 0) for r in responses]
        ranking = sorted(range(len(responses)), key=lambda i: (-quality[i], i))
        return {"scores": [{c: 2 + quality[i] for c in CRITERIA} for i in range(len(responses))],
                "ranking": ranking, "unsafe": ["<script>" in r for r in responses], "comment": "fake"}
