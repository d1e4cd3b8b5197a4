"""Labeler pages: log in and out, progress, and labeling one prompt at a time."""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..labels import MAX_COMMENT_CHARS, MAX_REWRITE_CHARS, LabelRejected, NotFound
from .forms import form_values, parse_label_form
from .render import HERE, render
from .security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Auth,
    RowId,
    RowIdQuery,
    check_csrf,
    new_token,
    require_user,
    safe_next,
)
from .throttle import checked_login

router = APIRouter()

# Success messages are fixed texts picked by a code in the query, never text taken from the URL (a link could
# otherwise make the app say anything); the names in them come from the user's own work in the database.


def _saved_message(store, auth: Auth, saved: int | None) -> str | None:  # noqa: ANN001
    try:
        return f"Saved prompt {store.assignment_view(auth.user.id, saved).item_key}." if saved is not None else None
    except NotFound:
        return None


def _own_batch(request: Request, auth: Auth, batch: str) -> None:
    """404 unless the user has prompts in ``batch`` (which also keeps other batches' names private)."""
    if batch not in {p.batch for p in request.app.state.store.progress(user_id=auth.user.id)}:
        raise NotFound("you have no prompts in a batch of that name")


def _login_page(request: Request, next_path: str, status: int = 200, error: str | None = None) -> HTMLResponse:
    token = new_token()
    resp = render(request, "login.html", status=status, title="Log in", csrf=token, next=safe_next(next_path),
                  error=error, auth=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                    secure=request.app.state.secure_cookies)
    return resp


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the pages link to; answer with the same icon the pages link."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(request, next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE) or "")
    store = request.app.state.store
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    user = await checked_login(request, name, password)  # throttled: see throttle.py
    if user is None:
        return _login_page(request, str(form.get("next") or "/"), 401, "wrong user name or password")
    ttl = request.app.state.session_ttl
    token, _ = await run_in_threadpool(store.open_session, user, ttl)
    resp = RedirectResponse(safe_next(str(form.get("next") or "/")), status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=request.app.state.secure_cookies,
                    max_age=int(ttl.total_seconds()), path="/")
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
async def logout(request: Request, auth: Auth = Depends(require_user)) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf_token"), auth.csrf)
    await run_in_threadpool(request.app.state.store.close_session, auth.token)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home(request: Request, done: str | None = None, auth: Auth = Depends(require_user)) -> HTMLResponse:
    progress = request.app.state.store.progress(user_id=auth.user.id)
    known = {p.batch for p in progress}
    message = f"Batch {done}: all your prompts are labeled. Thank you!" if done in known else None
    return render(request, "home.html", title="Your work", progress=progress, message=message)


@router.get("/batches/{batch}")
def my_batch(request: Request, batch: str, auth: Auth = Depends(require_user)) -> HTMLResponse:
    _own_batch(request, auth, batch)
    rows = request.app.state.store.assignments(auth.user.id, batch)
    return render(request, "mine.html", title=f"Batch {batch}", batch=batch, rows=rows,
                  done=sum(done for _, _, done in rows))


@router.get("/next")
def next_prompt(request: Request, batch: str | None = None, after: RowIdQuery = None, saved: str | None = None,
                auth: Auth = Depends(require_user)) -> RedirectResponse:
    """The next unlabeled prompt (after ``after``, wrapping around), or home when none is left."""
    if batch is not None:
        _own_batch(request, auth, batch)
    todo = request.app.state.store.pending(auth.user.id, batch)
    if after in todo and len(todo) > 1:
        todo = todo[todo.index(after) + 1:] + todo[:todo.index(after)]
    if not todo:
        return RedirectResponse("/?" + urlencode({"done": batch}) if batch else "/", status_code=303)
    query = f"?saved={after}" if saved and after is not None else ""  # the id of what was saved
    return RedirectResponse(f"/a/{todo[0]}{query}", status_code=303)


def _label_page(request: Request, auth: Auth, view, values: dict, status: int = 200,
                error: str | None = None, message: str | None = None) -> HTMLResponse:
    rows = request.app.state.store.progress(user_id=auth.user.id, batch=view.batch)
    assigned, done = (rows[0].assigned, rows[0].done) if rows else (0, 0)
    return render(request, "label.html", status=status, title=f"Prompt {view.item_key}", view=view,
                  values=values, k=len(view.responses), assigned=assigned, done=done, error=error,
                  message=message, max_comment=MAX_COMMENT_CHARS, max_rewrite=MAX_REWRITE_CHARS)


@router.get("/a/{aid}")
def label_form(request: Request, aid: RowId, saved: RowIdQuery = None,
               auth: Auth = Depends(require_user)) -> HTMLResponse:
    view = request.app.state.store.assignment_view(auth.user.id, aid, mark_opened=True)
    message = _saved_message(request.app.state.store, auth, saved)
    return _label_page(request, auth, view, form_values(view.label, len(view.responses)), message=message)


@router.post("/a/{aid}")
async def submit_label(request: Request, aid: RowId, auth: Auth = Depends(require_user)) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf_token"), auth.csrf)
    store = request.app.state.store
    view = await run_in_threadpool(store.assignment_view, auth.user.id, aid)  # 404 unless it is yours
    try:
        label = parse_label_form(form, len(view.responses), view.mode)
        await run_in_threadpool(store.submit_label, auth.user.id, aid, label)
    except LabelRejected as e:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        return _label_page(request, auth, view, values, status=400, error=f"Not saved: {e.message}")
    query = urlencode({"batch": view.batch, "after": aid, "saved": 1})
    return RedirectResponse(f"/next?{query}", status_code=303)
