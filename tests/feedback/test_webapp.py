"""The labeling web app over HTTP: login, CSRF, ownership, roles, escaping, bad input, headers."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.db import Label
from lmforge.feedback.webapp import create_app
from web_helpers import CSRF, PASSWORD, login  # noqa: F401 (other tests import login and CSRF from here)

from .conftest import make_items

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def site(sqlite_store):
    s = sqlite_store
    s.create_user("ana", password=PASSWORD)
    s.create_user("bob", password=PASSWORD)
    s.create_user("root", password=PASSWORD, role="admin")
    items = make_items(2, 3)
    items[0] = BatchItem(id="xss", prompt=[{"role": "user", "content": "Say <b>hi</b>"}],
                         responses=["fine answer", XSS, "plain"])
    s.add_batch("b1", items)
    s.assign("b1", 2, users=["ana", "bob"])
    return s


def client(store) -> TestClient:
    return TestClient(create_app(store), follow_redirects=False)


def good_form(csrf: str, k: int = 3, order=(0, 1, 2), **extra) -> dict:
    form = {"csrf_token": csrf, "comment": "ok"}
    for pos, i in enumerate(order):
        form[f"rank_{i}"] = str(pos + 1)
    for i in range(k):
        form.update({f"{c}_{i}": "5" for c in ("accuracy", "relevance", "coherence", "harmlessness", "honesty")})
    form.update(extra)
    return form


def n_labels(store) -> int:
    with store.reading() as s:
        return s.scalar(select(func.count(Label.id)))


def test_login_required_and_bad_password(site):
    c = client(site)
    r = c.get("/a/1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/a/1"
    page = c.get("/login")
    token = CSRF.search(page.text)[1]
    r = c.post("/login", data={"name": "ana", "password": "wrong password", "csrf_token": token})
    assert r.status_code == 401 and "wrong user name or password" in r.text
    r = c.post("/login", data={"name": "ana", "password": PASSWORD})  # no CSRF token
    assert r.status_code == 403 and "CSRF" in r.text


def test_cookies_are_httponly_and_samesite(site):
    c = client(site)
    page = c.get("/login")
    r = c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": CSRF.search(page.text)[1]})
    cookie = r.headers["set-cookie"].lower()
    assert "lmforge_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert r.headers["location"] == "/"


def test_labeler_flow_and_idempotent_resubmit(site):
    c = client(site)
    csrf = login(c, "ana")
    home = c.get("/")
    assert "b1" in home.text and ">0</td><td>2</td>" in home.text  # progress: 0 of 2
    r = c.get("/next?batch=b1")
    aid = int(r.headers["location"].rsplit("/", 1)[1])
    page = c.get(f"/a/{aid}")
    assert page.status_code == 200 and "0</b> of 2 done" in page.text
    form = good_form(csrf, order=(2, 0, 1), unsafe_1="on", rewrite="A better answer")
    r = c.post(f"/a/{aid}", data=form)
    assert r.status_code == 303 and r.headers["location"].startswith("/next?batch=b1")
    assert c.post(f"/a/{aid}", data=form).status_code == 303  # double submit: same label, stored once
    assert n_labels(site) == 1
    rec = site.labels()[0]
    assert rec.ranking == [2, 0, 1] and rec.unsafe == [False, True, False] and rec.revision == 1
    assert rec.rewrite == "A better answer" and rec.comment == "ok"
    page = c.get(f"/a/{aid}")  # the stored label is shown again, ready to revise
    assert 'name="rank_2" min="1" max="3" required' in page.text and "revision 1" in page.text
    assert c.get("/").text.count("<progress") == 1


def test_model_text_is_escaped(site):
    c = client(site)
    login(c, "ana")
    aid = site.pending(site.get_user("ana").id)[0]
    page = c.get(f"/a/{aid}")
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page.text
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_foreign_assignment_is_404_and_stores_nothing(site):
    c = client(site)
    csrf = login(c, "ana")
    theirs = site.pending(site.get_user("bob").id)[0]
    assert c.get(f"/a/{theirs}").status_code == 404
    r = c.post(f"/a/{theirs}", data=good_form(csrf))
    assert r.status_code == 404 and "not assigned to you" in r.text
    assert c.post("/a/99999", data=good_form(csrf)).status_code == 404
    assert n_labels(site) == 0


@pytest.mark.parametrize("change, message", [
    ({"rank_0": "1", "rank_1": "1", "rank_2": "3"}, "the ranks must use each of 1..3 exactly once"),
    ({"rank_2": "4"}, "the ranks must use each of 1..3 exactly once"),
    ({"rank_1": ""}, "the rank of response B is missing"),
    ({"accuracy_0": "9"}, "response A: accuracy score must be a whole number from 1 to 7, got 9"),
    ({"honesty_2": "0"}, "response C: honesty score must be a whole number from 1 to 7, got 0"),
    ({"coherence_1": "five"}, "response B: the coherence score must be a whole number"),
    ({"comment": "x" * 5001}, "comment is too long (5,001 characters; the limit is 5,000)"),
])
def test_bad_input_is_rejected_with_a_clear_message(site, change, message):
    c = client(site)
    csrf = login(c, "ana")
    aid = site.pending(site.get_user("ana").id)[0]
    r = c.post(f"/a/{aid}", data={**good_form(csrf), **change})
    assert r.status_code == 400
    assert "Not saved: " + message in r.text.replace("&#39;", "'")
    assert n_labels(site) == 0


def test_missing_or_wrong_csrf_token_is_refused(site):
    c = client(site)
    csrf = login(c, "ana")
    aid = site.pending(site.get_user("ana").id)[0]
    form = good_form(csrf)
    del form["csrf_token"]
    r = c.post(f"/a/{aid}", data=form)
    assert r.status_code == 403 and "CSRF token" in r.text
    assert c.post(f"/a/{aid}", data={**form, "csrf_token": "forged"}).status_code == 403
    other = client(site)
    other_csrf = login(other, "bob")
    assert c.post(f"/a/{aid}", data={**form, "csrf_token": other_csrf}).status_code == 403  # not this session's
    assert n_labels(site) == 0


def test_oversized_body_is_refused_before_reading(site):
    c = client(site)
    csrf = login(c, "ana")
    aid = site.pending(site.get_user("ana").id)[0]
    r = c.post(f"/a/{aid}", data=good_form(csrf, comment="x" * (2 << 20)))
    assert r.status_code == 413 and "request too large" in r.text
    assert n_labels(site) == 0


def test_admin_pages_need_the_admin_role(site):
    c = client(site)
    csrf = login(c, "ana")
    assert c.get("/admin").status_code == 403
    r = c.post("/admin/users", data={"csrf_token": csrf, "name": "mallory", "password": PASSWORD})
    assert r.status_code == 403 and site.get_user("mallory") is None
    assert c.get("/admin/batches/b1").status_code == 403
    assert c.get("/admin/batches/b1/export.jsonl").status_code == 403


def test_admin_creates_users_batches_and_assignments(site, tmp_path):
    c = client(site)
    csrf = login(c, "root")
    assert c.get("/admin").status_code == 200
    r = c.post("/admin/users", data={"csrf_token": csrf, "name": "cy", "password": PASSWORD, "role": "labeler"})
    assert r.status_code == 303 and site.get_user("cy").role == "labeler"
    r = c.post("/admin/users", data={"csrf_token": csrf, "name": "cy", "password": PASSWORD})
    assert r.status_code == 400 and "already exists" in r.text
    assert c.post("/admin/users", data={"name": "dee", "password": PASSWORD}).status_code == 403  # no CSRF
    batch = "".join(item.model_dump_json() + "\n" for item in make_items(3, 2, prefix="u"))
    r = c.post("/admin/batches", data={"csrf_token": csrf, "name": "up"},
               files={"file": ("batch.jsonl", batch.encode(), "application/json")})
    assert r.status_code == 303, r.text
    assert site.get_batch("up").items == 3
    r = c.post("/admin/batches", data={"csrf_token": csrf, "name": "bad"},
               files={"file": ("mine.jsonl", b'{"id": "a", "prompt": "q", "responses": ["only one"]}\n', "x")})
    assert r.status_code == 400 and "mine.jsonl:1" in r.text and "at least two responses" in r.text
    r = c.post("/admin/assign", data={"csrf_token": csrf, "batch": "up", "per_item": "2",
                                      "labelers": ["ana", "cy"]})
    assert r.status_code == 303 and "arg=6" in r.headers["location"]
    page = c.get("/admin/batches/b1")
    assert page.status_code == 200 and "Krippendorff" in page.text and "Kendall" in page.text
