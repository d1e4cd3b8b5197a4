"""Login sessions, CSRF and the HTTP-level guards of the labeling app.

- Session: a random token in an HttpOnly, SameSite=Lax cookie (``Secure`` with ``secure_cookies``); the store
  keeps only its hash, with the session's CSRF token.
- CSRF: every form carries ``csrf_token``; a POST is refused (403) unless it equals the session's token. The
  login form, before any session exists, uses a double-submit token (a random cookie repeated in the form).
- Guards: request bodies over a limit are refused (413) before they are read, and every response carries a
  strict Content-Security-Policy (no inline scripts), ``nosniff``, no framing and no caching. Ids in paths and
  queries are typed :data:`RowId` (64-bit), so a larger one is a 404/400, not an overflow in the driver.
- Login throttling and the cap on password hashing: :mod:`.throttle` and :class:`~..accounts.Accounts`.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..accounts import UserInfo

SESSION_COOKIE = "lmforge_session"
LOGIN_CSRF_COOKIE = "lmforge_login_csrf"
MAX_BODY = 1 << 20          # 1 MiB for label and admin forms
MAX_UPLOAD = 64 << 20       # 64 MiB for a batch.jsonl upload
UPLOAD_PATHS = ("/admin/batches",)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


# Database ids are 64-bit: a larger one in a URL would overflow the driver (a 500), so the route refuses it
# (the app answers 404 for a path, 400 for a query parameter).
MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=0, le=MAX_ID)]
RowIdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Auth:
    user: UserInfo
    csrf: str
    token: str


def current_auth(request: Request) -> Auth | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = request.app.state.store.session_user(token)
    return Auth(found[0], found[1], token) if found else None


def require_user(request: Request) -> Auth:
    """FastAPI dependency: the logged-in user, or a redirect to the login page."""
    auth = current_auth(request)
    if auth is None:
        raise LoginRequired()
    request.state.auth = auth
    return auth


def require_admin(request: Request) -> Auth:
    auth = require_user(request)
    if not auth.user.is_admin:
        raise Forbidden("this page needs the admin role")
    return auth


def check_csrf(sent: object, expected: str) -> None:
    if not isinstance(sent, str) or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("missing or invalid CSRF token: reload the page and submit the form again")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


class GuardMiddleware:
    """Body-size limit and security headers, as plain ASGI (cheap, and before any body is read)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            limit = MAX_UPLOAD if scope["path"] in UPLOAD_PATHS else MAX_BODY
            length = headers.get(b"content-length")
            if length is None or not length.isdigit():
                await PlainTextResponse("a request body needs a Content-Length", 411)(scope, receive, send)
                return
            if int(length) > limit:
                await PlainTextResponse(f"request too large ({int(length):,} bytes; the limit is {limit:,})",
                                        413)(scope, receive, send)
                return

        async def send_with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]
                if not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
