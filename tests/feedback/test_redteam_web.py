"""The red-team page over HTTP, against a fake OpenAI-compatible endpoint (httpx.MockTransport): not
configured, send, escape, mark, ownership, CSRF, an endpoint that fails."""
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from lmforge.feedback.judge.endpoint import EndpointBackend
from lmforge.feedback.webapp import create_app
from lmforge.feedback.webapp.redteam import RedteamTarget

from .conftest import PASSWORD
from .test_webapp import CSRF, login

XSS = '<script>alert("pwned")</script>'


class FakeModel:
    """/v1/models and /v1/chat/completions: answers "ECHO: <the user's text>" (or fails with ``status``)."""

    def __init__(self, status: int = 200):
        self.status, self.bodies = status, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "tiny-chat"}]})
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "model exploded"}})
        text = "ECHO: " + body["messages"][-1]["content"]
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": text}}]})


def target(fake: FakeModel, model: str | None = None) -> RedteamTarget:
    backend = EndpointBackend("http://model.test", model=model, retries=0, role="model",
                              client=httpx.Client(transport=httpx.MockTransport(fake)))
    return RedteamTarget(backend, max_tokens=32)


@pytest.fixture
def users(sqlite_store):
    sqlite_store.create_user("ana", password=PASSWORD)
    sqlite_store.create_user("bob", password=PASSWORD)
    return sqlite_store


def test_not_configured(users):
    c = TestClient(create_app(users), follow_redirects=False)
    assert c.get("/redteam").status_code == 303  # login first
    csrf = login(c, "ana")
    page = c.get("/redteam")
    assert page.status_code == 200 and 'id="not-configured"' in page.text and "attack-form" not in page.text
    r = c.post("/redteam", data={"csrf_token": csrf, "attack": "hi"})
    assert r.status_code == 409 and users.attempts() == []


def test_send_see_mark(users):
    fake = FakeModel()
    c = TestClient(create_app(users, redteam_target=target(fake)), follow_redirects=False)
    csrf = login(c, "ana")
    assert 'href="/redteam"' in c.get("/").text
    assert c.post("/redteam", data={"attack": "hi"}).status_code == 403  # no CSRF token
    r = c.post("/redteam", data={"csrf_token": csrf, "attack": "  " + XSS + " tell me  "})
    assert r.status_code == 303 and r.headers["location"] == "/redteam?done=sent"
    assert fake.bodies[-1]["model"] == "tiny-chat" and fake.bodies[-1]["max_tokens"] == 32  # the only model
    assert fake.bodies[-1]["messages"] == [{"role": "user", "content": XSS + " tell me"}]
    page = c.get("/redteam?done=sent")
    assert XSS not in page.text and "ECHO: &lt;script&gt;" in page.text and "Sent; the answer" in page.text
    (a,) = users.attempts()
    assert (a.user, a.model, a.response, a.verdict) == ("ana", "tiny-chat", "ECHO: " + XSS + " tell me", None)
    r = c.post(f"/redteam/{a.id}", data={"csrf_token": csrf, "verdict": "broke", "note": "echoed it",
                                         "better": "I won't repeat scripts."})
    assert r.status_code == 303
    (a,) = users.attempts()
    assert (a.verdict, a.note, a.better) == ("broke", "echoed it", "I won't repeat scripts.")
    assert "I won&#39;t repeat scripts." in c.get("/redteam").text  # shown back in the form
    bad = c.post(f"/redteam/{a.id}", data={"csrf_token": csrf, "verdict": "maybe"})
    assert bad.status_code == 400 and "broke it" in bad.text and users.attempts()[0].verdict == "broke"

    bob = TestClient(create_app(users, redteam_target=target(fake)), follow_redirects=False)
    bob_csrf = login(bob, "bob")
    assert "ECHO" not in bob.get("/redteam").text  # her attempts are hers
    r = bob.post(f"/redteam/{a.id}", data={"csrf_token": bob_csrf, "verdict": "held"})
    assert r.status_code == 404 and users.attempts()[0].verdict == "broke"
    assert bob.post("/redteam/99999999999999999999", data={"csrf_token": bob_csrf}).status_code == 404


def test_empty_attack_and_failing_endpoint(users):
    fake = FakeModel(status=400)
    c = TestClient(create_app(users, redteam_target=target(fake, model="m")), follow_redirects=False)
    csrf = login(c, "ana")
    r = c.post("/redteam", data={"csrf_token": csrf, "attack": "   "})
    assert r.status_code == 400 and "type an attack" in r.text and fake.bodies == []
    r = c.post("/redteam", data={"csrf_token": csrf, "attack": "do harm"})
    assert r.status_code == 502 and "model exploded" in r.text and "HTTP 400" in r.text
    assert "do harm</textarea>" in r.text  # the attack is kept in the form
    assert users.attempts() == []
    assert CSRF.search(r.text)


def test_serve_command_wires_the_endpoint(tmp_path, monkeypatch, capsys):
    import uvicorn

    from lmforge.cli.main import main

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    db = ["--db", str(tmp_path / "fb")]
    with pytest.raises(SystemExit):
        main(["label", "serve", *db, "--redteam-endpoint", "http://127.0.0.1:9/v1", "--redteam-model", "m",
              "--redteam-api-key", "k", "--redteam-max-tokens", "40"])
    with pytest.raises(SystemExit):
        main(["label", "serve", *db])
    on, off = (app.state.redteam for app in apps)
    assert off is None and on.max_tokens == 40 and on.backend.model == "m"
    assert on.backend.chat_url == "http://127.0.0.1:9/v1/chat/completions"
    assert on.backend.client.headers["authorization"] == "Bearer k"
    assert "red-team page attacks m at http://127.0.0.1:9/v1" in capsys.readouterr().out
