"""Login throttling: exponential backoff after failed logins, per account and per client address.

After ``free`` failures in a row (an account's, or a client's over all accounts), each further failure locks
the key for ``base_s * 2**(n - free - 1)`` seconds (n = failures so far), at most ``max_s``. While a key is
locked every login for it is refused with 429 *before* the password is checked, so the right password does
not get in either and the guesser learns nothing; a success clears the account's count, and a key is forgotten
``forget_s`` after its last failure. A client may also have only ``max_in_flight`` logins being checked at
once: argon2 costs 64 MiB a check, and the store caps concurrent checks for the whole process (see
:attr:`~lmforge.feedback.accounts.Accounts.hash_slots`).

State is in memory, per server process (``lmforge label serve`` runs one): enough against guessing through
this app; a restart clears it.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..accounts import HasherBusy, UserInfo


class Throttled(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


def lockout_s(failures: int, free: int, base_s: float, max_s: float) -> float:
    """Seconds a key stays locked after its ``failures``-th failure: 0 for the first ``free``, then doubling."""
    if failures <= free:
        return 0.0
    return min(max_s, base_s * 2.0 ** (failures - free - 1))


class LoginThrottle:
    def __init__(self, *, free_per_account: int = 5, free_per_client: int = 20, base_s: float = 1.0,
                 max_s: float = 900.0, forget_s: float = 3600.0, max_in_flight: int = 2, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.free = {"account": free_per_account, "client": free_per_client}
        self.base_s, self.max_s, self.forget_s = base_s, max_s, forget_s
        self.max_in_flight, self.max_keys, self.clock = max_in_flight, max_keys, clock
        self._keys: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, str], now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self.forget_s:
            del self._keys[key]
            return None
        return entry

    def check(self, account: str, client: str) -> None:
        """Raise :class:`Throttled` while the account or the client is locked."""
        now = self.clock()
        with self._lock:
            for kind, key in (("account", account), ("client", client)):
                entry = self._get((kind, key), now)
                if entry is not None and entry.locked_until > now:
                    wait = entry.locked_until - now
                    who = "this account" if kind == "account" else "your address"
                    raise Throttled(f"too many failed logins for {who}: try again in {math.ceil(wait)} s", wait)

    def failed(self, account: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for kind, key in (("account", account), ("client", client)):
                entry = self._get((kind, key), now) or _Failures()
                entry.count += 1
                entry.last = now
                entry.locked_until = now + lockout_s(entry.count, self.free[kind], self.base_s, self.max_s)
                self._keys[(kind, key)] = entry
                self._keys.move_to_end((kind, key))
            while len(self._keys) > self.max_keys:  # bounded memory under a spray of made-up names
                self._keys.popitem(last=False)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._keys.pop(("account", account), None)

    @contextmanager
    def in_flight(self, client: str) -> Iterator[None]:
        with self._lock:
            if self._in_flight.get(client, 0) >= self.max_in_flight:
                raise Throttled("another login from your address is being checked: try again in a moment", 1)
            self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._in_flight[client] - 1
                if left:
                    self._in_flight[client] = left
                else:
                    del self._in_flight[client]


async def checked_login(request: Request, name: str, password: str) -> UserInfo | None:
    """The user for this name and password, else None; :class:`Throttled` while locked out or too busy."""
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else "unknown"
    throttle.check(name, client)
    with throttle.in_flight(client):
        try:
            user = await run_in_threadpool(request.app.state.store.authenticate, name, password)
        except HasherBusy as e:
            raise Throttled(str(e), 2) from None
    if user is None:
        throttle.failed(name, client)
    else:
        throttle.succeeded(name)
    return user
