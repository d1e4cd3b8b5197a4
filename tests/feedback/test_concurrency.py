"""20 labelers submit at the same moment to a live server: no label lost, none duplicated."""
import re
import threading

import httpx
from sqlalchemy import func, select

from lmforge.feedback.db import Assignment, Label, Rating
from lmforge.feedback.webapp import create_app

from .conftest import PASSWORD, LiveServer, make_items

N_LABELERS = 20
K = 4
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _form(csrf: str, order: list[int]) -> dict:
    form = {"csrf_token": csrf, "comment": "concurrent"}
    for pos, i in enumerate(order):
        form[f"rank_{i}"] = str(pos + 1)
        form.update({f"{c}_{i}": str(7 - pos) for c in ("accuracy", "relevance", "coherence", "harmlessness",
                                                       "honesty")})
    return form


def test_twenty_labelers_submit_at_once(store):
    names = [f"lab{i:02d}" for i in range(N_LABELERS)]
    for name in names:
        store.create_user(name, password=PASSWORD)
    store.add_batch("rush", make_items(N_LABELERS, K))
    store.assign("rush", 2)  # every prompt to 2 labelers: each labeler gets 2 prompts
    expected: dict[int, list[int]] = {}
    clients, jobs = [], []
    with LiveServer(create_app(store)) as server:
        for n, name in enumerate(names):
            c = httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)
            page = c.get("/login")
            r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": CSRF.search(page.text)[1]})
            assert r.status_code == 303
            csrf = CSRF.search(c.get("/").text)[1]
            user = store.get_user(name)
            for j, aid in enumerate(store.pending(user.id)):
                order = [(n + j + s) % K for s in range(K)]
                expected[aid] = order
                # each label is sent twice (a double click): the second must change nothing
                jobs += [(c, aid, _form(csrf, order))] * 2
            clients.append(c)
        barrier = threading.Barrier(len(jobs))
        statuses: list[int] = []
        lock = threading.Lock()

        def submit(c, aid, form):
            barrier.wait()
            r = c.post(f"/a/{aid}", data=form)
            with lock:
                statuses.append(r.status_code)
        threads = [threading.Thread(target=submit, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for c in clients:
            c.close()
    assert len(statuses) == 4 * N_LABELERS and set(statuses) == {303}, statuses
    with store.reading() as s:
        assert s.scalar(select(func.count(Label.id))) == 2 * N_LABELERS
        assert s.scalar(select(func.count()).select_from(Rating)) == 2 * N_LABELERS * K
        assert s.scalar(select(func.count(func.distinct(Label.assignment_id)))) == 2 * N_LABELERS
        assert s.scalar(select(func.count(Assignment.id))) == 2 * N_LABELERS
    recs = {r.assignment_id: r for r in store.labels()}
    assert {aid: r.ranking for aid, r in recs.items()} == expected
    assert all(r.revision == 1 for r in recs.values())
    assert all(p.done == p.assigned == 2 for p in store.progress())
