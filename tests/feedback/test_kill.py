"""``kill -9`` of ``lmforge label serve`` in the middle of a load, on SQLite and PostgreSQL: every label the
server acknowledged is stored exactly as sent, and no label is stored in part."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
from sqlalchemy import func, select

from lmforge.feedback.db import Rating
from lmforge.feedback.store import Store

from .conftest import FAST_HASHER, PASSWORD, free_port, make_items
from .test_concurrency import _form

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
N_LABELERS, PER_LABELER, K = 6, 15, 4
KILL_AFTER = 30  # acknowledged labels before the kill: about a third of the load


def _serve(db_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "label", "serve", "--db", db_url, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"label serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("label serve did not start in 60 s")


def test_kill_9_mid_load_loses_no_acknowledged_label(db_url):
    store = Store.open(db_url, hasher=FAST_HASHER)
    names = [f"k{i}" for i in range(N_LABELERS)]
    for n in names:
        store.create_user(n, password=PASSWORD)
    store.add_batch("load", make_items(N_LABELERS * PER_LABELER, K))
    store.assign("load", 1)
    port = free_port()
    proc = _serve(db_url, port)
    acked: dict[int, list[int]] = {}
    sent: dict[int, list[int]] = {}
    lock = threading.Lock()
    enough = threading.Event()
    try:
        sessions = []
        for n in names:
            c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            r = c.post("/login", data={"name": n, "password": PASSWORD,
                                       "csrf_token": CSRF.search(c.get("/login").text)[1]})
            assert r.status_code == 303, r.text
            sessions.append((c, CSRF.search(c.get("/").text)[1], store.pending(store.get_user(n).id)))

        def labeler(c, csrf, aids):
            for j, aid in enumerate(aids):
                order = [(aid + j + s) % K for s in range(K)]
                with lock:
                    sent[aid] = order
                try:
                    r = c.post(f"/a/{aid}", data=_form(csrf, order))
                except httpx.HTTPError:
                    return  # the server is gone: this one was never acknowledged
                if r.status_code != 303:
                    return
                with lock:
                    acked[aid] = order
                    if len(acked) >= KILL_AFTER:
                        enough.set()
        threads = [threading.Thread(target=labeler, args=s) for s in sessions]
        for t in threads:
            t.start()
        assert enough.wait(120), f"only {len(acked)} labels acknowledged"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for t in threads:
            t.join(60)
        for c, _, _ in sessions:
            c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store.close()
    after = Store.open(db_url, hasher=FAST_HASHER)  # a fresh open, as after a crash
    try:
        stored = {r.assignment_id: r for r in after.labels()}
        with after.reading() as s:
            n_ratings = s.scalar(select(func.count()).select_from(Rating))
    finally:
        after.close()
    assert len(acked) >= KILL_AFTER and len(acked) < N_LABELERS * PER_LABELER  # the kill was mid-load
    missing = [aid for aid in acked if aid not in stored]
    assert not missing, f"acknowledged but lost: {missing}"
    assert all(stored[aid].ranking == sent[aid] for aid in stored)  # whole and as sent, acked or not
    assert n_ratings == K * len(stored)  # no label without all of its ratings
    assert all(r.revision == 1 for r in stored.values())
