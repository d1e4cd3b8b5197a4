"""The labeling web app: ``create_app(store)`` -> a FastAPI app (served by ``lmforge label serve``).

Labelers log in, see their progress, label their assignments one prompt at a time and red-team a model
(:mod:`.redteam`); admins create labelers and batches, assign prompts, and watch throughput and agreement. Store calls are synchronous and run
in the server's thread pool; every submission is one transaction in the store.
"""
from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ...errors import InputError
from ..labels import NotFound
from ..store import Store
from . import admin, labeler, redteam
from .render import HERE, render
from .security import Forbidden, GuardMiddleware, LoginRequired, current_auth
from .throttle import LoginThrottle, Throttled


def create_app(store: Store, *, secure_cookies: bool = False, session_hours: float = 12,
               login_throttle: LoginThrottle | None = None,
               redteam_target: redteam.RedteamTarget | None = None, loops: list | None = None) -> FastAPI:
    """``redteam_target``: the model the red-team page attacks (None: the page says it is not configured).
    ``loops``: the feedback loops using this database, shown on the admin page (``lmforge.loop.status.LoopView``
    objects, built by ``lmforge label serve --loop OUT``; the app only calls their ``rounds(store)`` and
    ``report()``)."""
    app = FastAPI(title="lmforge labeling", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.login_throttle = login_throttle or LoginThrottle()
    app.state.secure_cookies = secure_cookies
    app.state.session_ttl = timedelta(hours=session_hours)
    app.state.redteam = redteam_target
    app.state.loops = list(loops or [])
    app.add_middleware(GuardMiddleware)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(labeler.router)
    app.include_router(admin.router)
    app.include_router(redteam.router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        target = request.url.path if request.method == "GET" else "/"
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return _error(request, 403, exc.message)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return _error(request, 404, exc.message)

    @app.exception_handler(InputError)
    async def _bad_input(request: Request, exc: InputError) -> HTMLResponse:
        return _error(request, 400, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError) -> HTMLResponse:
        # path ids are bounded (security.RowId): one out of range names no page, as any unknown id
        if any(err.get("loc", ("",))[0] == "path" for err in exc.errors()):
            return _error(request, 404, "no such page")
        fields = sorted({str(err["loc"][-1]) for err in exc.errors() if err.get("loc")})
        return _error(request, 400, f"bad value for {', '.join(fields) or 'a parameter'}")

    @app.exception_handler(Throttled)
    async def _throttled(request: Request, exc: Throttled) -> HTMLResponse:
        form = await request.form()  # parsed already by the login handler (cached)
        resp = labeler._login_page(request, str(form.get("next") or "/"), 429, exc.message)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    return app


def _error(request: Request, status: int, message: str) -> HTMLResponse:
    request.state.auth = current_auth(request)
    return render(request, "error.html", status=status, title=f"Error {status}", error=message)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
