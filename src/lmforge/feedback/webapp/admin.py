"""Admin pages (admin role only): labelers, batches, assignments, progress, throughput and agreement, and the
feedback loops using the database (their rounds, what each waits for, their report)."""
from __future__ import annotations

import os
import tempfile
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import InputError
from ..batchfile import read_batch
from ..export import build_records
from ..labels import DEFAULT_MODE, MODE_HELP, MODES, NotFound
from ..stats import agreement, alpha_rows, throughput
from .render import render
from .security import Auth, RowId, check_csrf, require_admin

router = APIRouter(prefix="/admin")

# Fixed texts by code: nothing from the URL is shown (a link must not make the app say anything), except a count.
MESSAGES = {"user": "Created the user (in the list below).", "batch": "Created the batch (in the list below).",
            "assign": "Made {arg} new assignment(s)."}


def _admin_page(request: Request, status: int = 200, error: str | None = None,
                message: str | None = None) -> HTMLResponse:
    store = request.app.state.store
    users = store.users()
    load: dict[str, list[int]] = {}
    for p in store.progress():
        row = load.setdefault(p.labeler, [0, 0])
        row[0] += p.assigned
        row[1] += p.done
    loops = [{"out": str(view.out), "rounds": view.rounds(store), "report": view.report() is not None}
             for view in request.app.state.loops]
    return render(request, "admin.html", status=status, title="Admin", users=users, load=load,
                  batches=store.batches(), progress=store.progress(), error=error, message=message,
                  modes=MODES, default_mode=DEFAULT_MODE, mode_help=MODE_HELP, loops=loops)


@router.get("")
def admin_home(request: Request, ok: str | None = None, arg: str = "",
               auth: Auth = Depends(require_admin)) -> HTMLResponse:
    message = MESSAGES.get(ok or "")
    if message and "{arg}" in message:  # only a count is filled in, and only a count
        message = message.format(arg=int(arg)) if arg.isascii() and arg.isdigit() and len(arg) < 10 else None
    return _admin_page(request, message=message)


async def _form_action(request: Request, auth: Auth, action, ok: str) -> Response:
    """Check CSRF, run ``action(form)`` in the thread pool, redirect with a message or show the error."""
    form = await request.form()
    check_csrf(form.get("csrf_token"), auth.csrf)
    try:
        arg = await action(form)
    except InputError as e:
        return await run_in_threadpool(_admin_page, request, 400, e.message)
    return RedirectResponse("/admin?" + urlencode({"ok": ok, "arg": arg}), status_code=303)


@router.post("/users")
async def create_user(request: Request, auth: Auth = Depends(require_admin)) -> Response:
    store = request.app.state.store

    async def action(form) -> str:  # noqa: ANN001
        user = await run_in_threadpool(store.create_user, str(form.get("name") or "").strip(),
                                       password=str(form.get("password") or ""),
                                       role=str(form.get("role") or "labeler"))
        return user.name
    return await _form_action(request, auth, action, "user")


@router.post("/batches")
async def upload_batch(request: Request, auth: Auth = Depends(require_admin)) -> Response:
    store = request.app.state.store

    async def action(form) -> str:  # noqa: ANN001
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise InputError("choose a batch.jsonl file (written by 'lmforge generate')", field="file")
        data = await upload.read()
        name = str(form.get("name") or "").strip() or os.path.splitext(os.path.basename(upload.filename))[0]

        def load() -> str:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "batch.jsonl")
                with open(path, "wb") as f:
                    f.write(data)
                try:
                    items = list(read_batch(path))
                except InputError as e:  # name the uploaded file, not the temp copy
                    raise InputError(e.format().replace(path, upload.filename)) from None
            mode = str(form.get("mode") or DEFAULT_MODE)
            return store.add_batch(name, items, source=upload.filename, mode=mode).name
        return await run_in_threadpool(load)
    return await _form_action(request, auth, action, "batch")


@router.post("/assign")
async def assign(request: Request, auth: Auth = Depends(require_admin)) -> Response:
    store = request.app.state.store

    async def action(form) -> str:  # noqa: ANN001
        try:
            per_item = int(str(form.get("per_item") or "1"))
        except ValueError:
            raise InputError("labelers per prompt must be a whole number", field="per_item") from None
        users = [str(u) for u in form.getlist("labelers")] or None
        return str(await run_in_threadpool(store.assign, str(form.get("batch") or ""), per_item, users))
    return await _form_action(request, auth, action, "assign")


@router.get("/batches/{batch}")
def batch_page(request: Request, batch: str, auth: Auth = Depends(require_admin)) -> HTMLResponse:
    store = request.app.state.store
    info = store.get_batch(batch)
    labels = store.labels([info.id])
    return render(request, "admin_batch.html", title=f"Batch {info.name}", batch=info,
                  progress=store.progress(batch=info.id), throughput=throughput(labels),
                  agreement=agreement(labels), rows=alpha_rows(info.mode, labels))


@router.get("/batches/{batch}/export.jsonl")
def export_batch(request: Request, batch: str, auth: Auth = Depends(require_admin)) -> Response:
    store = request.app.state.store
    info = store.get_batch(batch)
    records, _ = build_records(store.labels([info.id]))
    body = "".join(r.model_dump_json() + "\n" for r in records)
    return Response(body, media_type="application/x-ndjson",
                    headers={"content-disposition": f'attachment; filename="{info.name}.preferences.jsonl"'})


@router.get("/loops/{index}/report")
def loop_report(request: Request, index: RowId, auth: Auth = Depends(require_admin)) -> HTMLResponse:
    """The loop's OUT/report/report.html (lmforge eval's report: every round's policy side by side), as it is
    on disk; its text is escaped by the report writer and the app's CSP allows no script."""
    loops = request.app.state.loops
    path = loops[index].report() if index < len(loops) else None
    if path is None:
        raise NotFound("no such loop report (the loop writes it after a round's eval)")
    return HTMLResponse(path.read_text(encoding="utf-8"))
