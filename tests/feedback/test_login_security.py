"""Login abuse and session lifetime: backoff after failed logins, a cap on concurrent password hashing, and
sessions that end when a user is deactivated or their password changes."""
import threading
import time

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from lmforge.feedback.store import Store
from lmforge.feedback.webapp import create_app
from lmforge.feedback.webapp.throttle import LoginThrottle, lockout_s

from .conftest import FAST_HASHER, PASSWORD, LiveServer
from .test_webapp import CSRF


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _post_login(c: TestClient, name: str, password: str):
    page = c.get("/login")
    return c.post("/login", data={"name": name, "password": password, "csrf_token": CSRF.search(page.text)[1],
                                  "next": "/a/1"})


@pytest.fixture
def app_and_clock(sqlite_store):
    sqlite_store.create_user("ana", password=PASSWORD)
    sqlite_store.create_user("bob", password=PASSWORD)
    clock = Clock()
    return create_app(sqlite_store, login_throttle=LoginThrottle(clock=clock)), clock


def test_lockout_doubles_and_is_capped():
    assert [lockout_s(n, 5, 1.0, 900.0) for n in range(1, 9)] == [0, 0, 0, 0, 0, 1, 2, 4]
    assert lockout_s(40, 5, 1.0, 900.0) == 900.0


def test_forty_wrong_passwords_then_the_right_one_is_refused(app_and_clock):
    app, clock = app_and_clock
    c = TestClient(app, follow_redirects=False)
    statuses = [_post_login(c, "ana", "wrong password").status_code for _ in range(40)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 401  # the 6th failure starts the lockout ...
    assert set(statuses[6:]) == {429}  # ... and every try after it is refused unchecked
    r = _post_login(c, "ana", PASSWORD)
    assert r.status_code == 429 and "too many failed logins for this account" in r.text
    assert int(r.headers["retry-after"]) >= 1 and 'name="next" value="/a/1"' in r.text
    assert "lmforge_session" not in r.headers.get("set-cookie", "")
    clock.now += 1.5  # the lockout after 6 failures is 1 s; the refused tries did not extend it
    r = _post_login(c, "ana", PASSWORD)
    assert r.status_code == 303 and "lmforge_session=" in r.headers["set-cookie"]


def test_backoff_grows_with_each_failure_after_the_free_ones(app_and_clock):
    app, clock = app_and_clock
    c = TestClient(app, follow_redirects=False)
    for _ in range(6):
        assert _post_login(c, "ana", "wrong password").status_code == 401
    clock.now += 1.1
    assert _post_login(c, "ana", "wrong password").status_code == 401  # 7th failure: locked 2 s
    clock.now += 1.5
    assert _post_login(c, "ana", PASSWORD).status_code == 429
    clock.now += 1.0
    assert _post_login(c, "ana", PASSWORD).status_code == 303  # success clears the account's count
    assert _post_login(c, "ana", "wrong password").status_code == 401


def test_one_client_guessing_many_accounts_is_slowed(sqlite_store):
    clock = Clock()
    names = [f"user{i}" for i in range(25)]
    for n in names:
        sqlite_store.create_user(n, password=PASSWORD)
    c = TestClient(create_app(sqlite_store, login_throttle=LoginThrottle(clock=clock)), follow_redirects=False)
    statuses = [_post_login(c, n, "wrong password").status_code for n in names]
    assert statuses[:21] == [401] * 21 and set(statuses[21:]) == {429}  # 20 free per client
    r = _post_login(c, "user24", PASSWORD)
    assert r.status_code == 429 and "for your address" in r.text


def test_the_lockout_of_one_account_leaves_others_alone(app_and_clock):
    app, clock = app_and_clock
    attacker = TestClient(app, follow_redirects=False, client=("10.0.0.1", 5000))
    for _ in range(10):
        _post_login(attacker, "ana", "wrong password")
    other = TestClient(app, follow_redirects=False, client=("10.0.0.2", 5000))
    assert _post_login(other, "bob", PASSWORD).status_code == 303
    assert _post_login(other, "ana", PASSWORD).status_code == 429  # the account itself stays locked


class CountingHasher(PasswordHasher):
    """A password hasher that records how many checks run at once (each takes a while)."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.running = self.peak = self.calls = 0
        self.lock = threading.Lock()

    def verify(self, hash, password):  # noqa: A002
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.3)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


def test_concurrent_logins_never_hash_more_than_the_cap(tmp_path):
    hasher = CountingHasher()
    store = Store.open(str(tmp_path / "fb.db"), hasher=hasher)
    store.hash_slots, store.login_wait_s = 3, 0.5
    names = [f"u{i}" for i in range(24)]
    for n in names:
        store.create_user(n, password=PASSWORD)
    # a throttle that lets every client in (all come from 127.0.0.1): only the hashing cap is tested here
    throttle = LoginThrottle(free_per_client=10**6, max_in_flight=10**6)
    statuses: list[int] = []
    with LiveServer(create_app(store, login_throttle=throttle)) as server:
        clients = [httpx.Client(base_url=server.url, timeout=60) for _ in names]
        tokens = [CSRF.search(c.get("/login").text)[1] for c in clients]
        barrier = threading.Barrier(len(names))

        def attempt(c, name, token):
            barrier.wait()
            r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
            statuses.append(r.status_code)
        threads = [threading.Thread(target=attempt, args=a) for a in zip(clients, names, tokens)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for c in clients:
            c.close()
    store.close()
    assert hasher.peak == 3, hasher.peak  # reached, never passed
    assert len(statuses) == 24 and set(statuses) <= {303, 429} and 429 in statuses and 303 in statuses
    assert hasher.calls == statuses.count(303)  # a refused login costs no hash


def test_a_client_has_few_logins_in_flight():
    throttle = LoginThrottle(max_in_flight=2)
    with throttle.in_flight("1.2.3.4"), throttle.in_flight("1.2.3.4"):
        with pytest.raises(Exception, match="another login from your address"):
            with throttle.in_flight("1.2.3.4"):
                pass
        with throttle.in_flight("5.6.7.8"):
            pass
    with throttle.in_flight("1.2.3.4"):
        pass
    assert throttle._in_flight == {}


# --------------------------------------------------------------------------- sessions end


def _logged_in(app, name: str) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    assert _post_login(c, name, PASSWORD).status_code == 303
    assert c.get("/").status_code == 200
    return c


@pytest.mark.parametrize("change", ["deactivate", "password"])
def test_sessions_end_when_the_user_changes(app_and_clock, change):
    app, _ = app_and_clock
    store = app.state.store
    ana, bob = _logged_in(app, "ana"), _logged_in(app, "bob")
    ana2 = _logged_in(app, "ana")  # a second browser
    if change == "deactivate":
        store.set_active("ana", False)
    else:
        store.set_password("ana", "a brand new one")
    for c in (ana, ana2):
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert bob.get("/").status_code == 200
    if change == "password":
        assert _post_login(ana, "ana", PASSWORD).status_code == 401
        assert _post_login(ana, "ana", "a brand new one").status_code == 303
        assert ana.get("/").status_code == 200


def test_a_login_checked_before_a_password_change_gets_no_live_session(store):
    """The race the epoch closes: the password was checked, then changed, then the session opened."""
    store.create_user("ana", password=PASSWORD)
    checked = store.authenticate("ana", PASSWORD)
    store.set_password("ana", "changed meanwhile")
    token, _ = store.open_session(checked)
    assert store.session_user(token) is None
    fresh = store.authenticate("ana", "changed meanwhile")
    token, _ = store.open_session(fresh)
    assert store.session_user(token)[0].name == "ana"


def test_a_database_from_before_epochs_upgrades_and_keeps_its_users(db_url):
    """0001 -> head (0003, epochs) on a database with a user in it: the user gets epoch 0 and can log in."""
    from sqlalchemy import text

    from lmforge.feedback.db import make_engine, resolve_url
    from lmforge.feedback.migrate import upgrade

    engine = make_engine(resolve_url(db_url))
    upgrade(engine, "0001")
    old_hash = FAST_HASHER.hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name, kind, role, password_hash, active, created_at) "
                          "VALUES ('old', 'human', 'labeler', :h, :t, CURRENT_TIMESTAMP)"),
                     {"h": old_hash, "t": True})
    engine.dispose()
    store = Store.open(db_url, hasher=FAST_HASHER)
    try:
        user = store.authenticate("old", PASSWORD)
        assert user is not None and user.epoch == 0
        token, _ = store.open_session(user)
        assert store.session_user(token)[0].name == "old"
    finally:
        store.close()
