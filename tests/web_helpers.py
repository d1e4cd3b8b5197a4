"""Helpers for tests of the labeling web app, shared by tests/feedback and tests/loop: a fast password hasher,
a live uvicorn server in a thread, logging in over HTTP (TestClient) and in headless Chromium (Debian's
``chromium``, driven by Playwright; tests that need it skip with :data:`needs_chromium`)."""
from __future__ import annotations

import re
import shutil
import socket
import threading
import time

import pytest
from argon2 import PasswordHasher

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def login(c, name: str, password: str = PASSWORD) -> str:
    """Log in through the login form with a ``fastapi.testclient.TestClient``; returns the session's CSRF token."""
    page = c.get("/login")
    r = c.post("/login", data={"name": name, "password": password, "csrf_token": CSRF.search(page.text)[1],
                               "next": "/"})
    assert r.status_code == 303, r.text
    return CSRF.search(c.get("/").text)[1]


def browser_login(page, url: str, name: str = "ana", password: str = PASSWORD) -> None:
    """Log in on the app at ``url`` in a Playwright page."""
    page.goto(url + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
