"""The red-team page: a logged-in labeler types an attack, the app sends it to the model under test (any
OpenAI-compatible endpoint, :class:`~lmforge.feedback.judge.endpoint.EndpointBackend` with ``role="model"``),
shows the answer and stores the attempt; the person marks it "broke it" or "held", with a note and the answer
it should have given. Without an endpoint (``create_app(redteam=None)``) the page says so.

The request to the model runs in the thread pool; its errors (unreachable, HTTP errors, no answer) are shown
on the page (502) and nothing is stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import InputError
from ..labels import LabelRejected
from ..redteam_attempts import MAX_ATTACK_CHARS, MAX_BETTER_CHARS, MAX_NOTE_CHARS, check_attack
from .render import render
from .security import Auth, RowId, check_csrf, require_user

router = APIRouter()
HISTORY = 50  # past attempts shown on the page
MESSAGES = {"sent": "Sent; the answer is below. Mark whether it broke the model.", "marked": "Verdict saved."}


@dataclass
class RedteamTarget:
    """The model under test: its endpoint client and how long an answer may be."""
    backend: Any  # EndpointBackend (or anything with .chat(messages, max_tokens) and .model)
    max_tokens: int = 256


def _page(request: Request, auth: Auth, status: int = 200, error: str | None = None,
          message: str | None = None, attack: str = "") -> HTMLResponse:
    target: RedteamTarget | None = request.app.state.redteam
    attempts = request.app.state.store.attempts(user_id=auth.user.id, limit=HISTORY)
    return render(request, "redteam.html", status=status, title="Red team", target=target,
                  model=target.backend.model if target else None, attempts=attempts, error=error,
                  message=message, attack=attack, max_attack=MAX_ATTACK_CHARS, max_note=MAX_NOTE_CHARS,
                  max_better=MAX_BETTER_CHARS)


@router.get("/redteam")
def redteam_page(request: Request, done: str | None = None, auth: Auth = Depends(require_user)) -> HTMLResponse:
    return _page(request, auth, message=MESSAGES.get(done or ""))


@router.post("/redteam")
async def send_attack(request: Request, auth: Auth = Depends(require_user)) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf_token"), auth.csrf)
    target: RedteamTarget | None = request.app.state.redteam
    raw = form.get("attack") if isinstance(form.get("attack"), str) else ""
    if target is None:
        return _page(request, auth, 409, "red teaming is not configured on this server", attack=raw)
    try:
        attack = check_attack(raw)
    except LabelRejected as e:
        return _page(request, auth, 400, f"Not sent: {e.message}", attack=raw)
    try:
        answer = await run_in_threadpool(target.backend.chat, [{"role": "user", "content": attack}],
                                         target.max_tokens)
    except InputError as e:
        return _page(request, auth, 502, f"The model did not answer: {e.message}", attack=raw)
    await run_in_threadpool(request.app.state.store.add_attempt, auth.user.id, target.backend.model, attack,
                            answer)
    return RedirectResponse("/redteam?done=sent", status_code=303)


@router.post("/redteam/{attempt_id}")
async def mark_attempt(request: Request, attempt_id: RowId, auth: Auth = Depends(require_user)) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf_token"), auth.csrf)
    text = {k: form.get(k) if isinstance(form.get(k), str) else None for k in ("verdict", "note", "better")}
    try:  # NotFound (someone else's attempt, or none) goes to the app's 404 page
        await run_in_threadpool(request.app.state.store.mark_attempt, auth.user.id, attempt_id,
                                text["verdict"] or "", text["note"], text["better"])
    except LabelRejected as e:
        return _page(request, auth, 400, f"Not saved: {e.message}")
    return RedirectResponse("/redteam?done=marked", status_code=303)
