"""``lmforge serve`` hands its limits and --docs to the app it runs (uvicorn itself replaced by a recorder)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def served(engine, monkeypatch):
    """Runs ``lmforge serve`` with the test engine; returns (exit code, output, the app uvicorn was given)."""
    import uvicorn

    from lmforge.cli.main import app
    from lmforge.serve.engine import ChatEngine

    apps, options = [], []
    loads = []
    monkeypatch.setattr(ChatEngine, "load", classmethod(lambda cls, *a, **kw: loads.append(kw) or engine))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: (apps.append(app), options.append(kw)))

    def run(*args: str):
        result = CliRunner().invoke(app, ["serve", "some-model", *args])
        run.options = options[-1] if options else None
        run.load = loads[-1] if loads else None
        return result.exit_code, result.output, apps[-1] if apps else None
    return run


def test_defaults_hide_the_docs_and_limit_the_body(served):
    from fastapi.testclient import TestClient

    from lmforge.serve.limits import DEFAULT_MAX_BODY_BYTES

    code, _, app = served()
    assert code == 0 and served.options["limit_concurrency"] == 256  # uvicorn answers 503 beyond it
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404
        r = client.post("/v1/chat/completions", content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1))
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_flags_reach_the_app(served):
    from fastapi.testclient import TestClient

    code, _, app = served("--docs", "--max-body-bytes", "100", "--body-timeout", "2.5", "--max-connections", "8")
    assert code == 0 and served.options["limit_concurrency"] == 8
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
        assert client.post("/v1/chat/completions", content=b"x" * 101).status_code == 413
        assert client.post("/v1/chat/completions", content=b"x" * 100).status_code == 400  # in, but not JSON
    timeouts = [m.kwargs["timeout_s"] for m in app.user_middleware if "timeout_s" in m.kwargs]
    assert timeouts == [2.5]


@pytest.mark.parametrize("flag, value", [("--max-body-bytes", "0"), ("--body-timeout", "0"),
                                         ("--max-connections", "0")])
def test_limits_must_be_positive(served, flag, value):
    code, output, app = served(flag, value)
    assert code == 2 and flag in output and app is None


def test_queue_batch_timeout_and_key_flags(served):
    from fastapi.testclient import TestClient

    code, _, app = served("--max-queue", "3", "--batch-size", "5", "--request-timeout", "7", "--api-key", "k3y",
                          "--shutdown-timeout", "2.5")
    assert code == 0 and served.options["timeout_graceful_shutdown"] == 2.5
    assert {k: served.load[k] for k in ("max_queue", "batch_size", "request_timeout_s")} == \
        {"max_queue": 3, "batch_size": 5, "request_timeout_s": 7.0}
    with TestClient(app) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer k3y"}).status_code == 200
        assert client.get("/metrics").status_code == 200  # no key needed outside /v1
