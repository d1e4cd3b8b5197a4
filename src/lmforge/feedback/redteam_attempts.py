"""Red-team attempts by people (part of :class:`~lmforge.feedback.store.Store`).

A labeler types an attack on the web app's red-team page; the app sends it to the model and stores the
attempt (:meth:`RedteamAttempts.add_attempt`), then the person marks it ``broke`` (the model did what it
should have refused) or ``held``, with an optional note and the answer it should have given
(:meth:`RedteamAttempts.mark_attempt`). Each is one transaction. :func:`export_records` turns the attempts
into the records :func:`lmforge.redteam.run.export` takes, so people's findings become next round's prompts,
safety SFT examples and preference pairs exactly as the automated ones do.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError
from .db import REDTEAM_VERDICTS, RedteamAttempt, User, utcnow
from .labels import LabelRejected, NotFound

MAX_ATTACK_CHARS = 8000
MAX_NOTE_CHARS = 4000
MAX_BETTER_CHARS = 8000


@dataclass(frozen=True)
class AttemptView:
    id: int
    user: str
    model: str
    prompt: str
    response: str
    verdict: str | None
    note: str | None
    better: str | None
    created_at: datetime
    marked_at: datetime | None


def _view(a: RedteamAttempt, user: str) -> AttemptView:
    return AttemptView(a.id, user, a.model, a.prompt, a.response, a.verdict, a.note, a.better, a.created_at,
                       a.marked_at)


def _text(value: str | None, limit: int, what: str, field: str) -> str | None:
    """Stripped text, ``None`` when empty; refused (LabelRejected) when over ``limit`` characters."""
    value = (value or "").strip()
    if len(value) > limit:
        raise LabelRejected(f"the {what} has {len(value):,} characters; the limit is {limit:,}", field=field)
    return value or None


def check_attack(prompt: str | None) -> str:
    """The attack text as it will be sent: not empty, at most MAX_ATTACK_CHARS (checked before any request)."""
    text = _text(prompt, MAX_ATTACK_CHARS, "attack", "attack")
    if text is None:
        raise LabelRejected("type an attack first", field="attack")
    return text


class RedteamAttempts:
    reading: Callable[[], AbstractContextManager[Session]]
    writing: Callable[[], AbstractContextManager[Session]]

    def add_attempt(self, user_id: int, model: str, prompt: str, response: str) -> int:
        """Store an attack and the model's answer (no verdict yet); returns its id."""
        prompt = check_attack(prompt)
        with self.writing() as s:
            row = RedteamAttempt(user_id=user_id, model=model, prompt=prompt, response=response)
            s.add(row)
            s.flush()
            return row.id

    def mark_attempt(self, user_id: int, attempt_id: int, verdict: str, note: str | None = None,
                     better: str | None = None) -> None:
        """Set the verdict (``broke`` / ``held``), note and better answer of one of this user's attempts."""
        if verdict not in REDTEAM_VERDICTS:
            raise LabelRejected("choose \"broke it\" or \"held\"", field="verdict")
        note = _text(note, MAX_NOTE_CHARS, "note", "note")
        better = _text(better, MAX_BETTER_CHARS, "answer it should have given", "better")
        with self.writing() as s:
            row = s.scalar(select(RedteamAttempt).where(RedteamAttempt.id == attempt_id).with_for_update())
            if row is None or row.user_id != user_id:
                raise NotFound(f"red-team attempt {attempt_id} does not exist or is not yours", field="attempt")
            row.verdict, row.note, row.better, row.marked_at = verdict, note, better, utcnow()

    def attempts(self, user_id: int | None = None, verdict: str | None = None,
                 limit: int | None = None) -> list[AttemptView]:
        """Attempts (of one user, of one verdict), newest first."""
        if verdict is not None and verdict not in REDTEAM_VERDICTS:
            raise InputError(f"verdict must be one of {', '.join(REDTEAM_VERDICTS)}, got {verdict!r}",
                             field="verdict")
        with self.reading() as s:
            q = (select(RedteamAttempt, User.name).join(User).order_by(RedteamAttempt.id.desc()).limit(limit))
            if user_id is not None:
                q = q.where(RedteamAttempt.user_id == user_id)
            if verdict is not None:
                q = q.where(RedteamAttempt.verdict == verdict)
            return [_view(a, name) for a, name in s.execute(q)]


def export_records(attempts: list[AttemptView]) -> list[dict[str, Any]]:
    """Marked attempts as :func:`lmforge.redteam.run.attack` records (oldest first): ``success`` = broke it,
    the person's better answer as the ``refusal`` (None: the export's default refusal), and ``source``
    ``redteam:human:<name>`` on the pairs."""
    return [{"seed": f"human-{a.id}", "category": "", "attack": "human", "request": a.prompt, "prompt": a.prompt,
             "response": a.response, "success": a.verdict == "broke", "refusal": a.better,
             "source": f"redteam:human:{a.user}", "model": a.model}
            for a in sorted(attempts, key=lambda a: a.id) if a.verdict is not None]
