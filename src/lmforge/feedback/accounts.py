"""Labeler accounts and login sessions (part of :class:`~lmforge.feedback.store.Store`).

Passwords are hashed with argon2id (argon2-cffi) and re-hashed on login when the parameters change. A login
session is a random token kept only as its SHA-256 in ``web_sessions`` together with the session's CSRF
token, so logging out ends the session at once. A session also keeps the user's ``epoch`` from the moment the
password was checked; changing the password or deactivating the user bumps the epoch (and deletes the
sessions), so every session of theirs ends on its next request. At most ``hash_slots`` argon2 hashes or checks
run at once per store (each takes 64 MiB).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import InputError
from .db import ROLES, USER_KINDS, User, WebSession, utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
MIN_PASSWORD = 8
_SLOTS_LOCK = threading.Lock()


class HasherBusy(Exception):
    """Every password-hashing slot stayed taken for the whole wait (the web app answers 429)."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    kind: str
    role: str
    active: bool
    epoch: int = 0  # see User.epoch: a session opened at another epoch is not valid

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.name, u.kind, u.role, u.active, u.epoch or 0)


def check_password(password: str) -> None:
    """The password rule (also stated in the CLI's --help): at least MIN_PASSWORD characters."""
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password must have at least {MIN_PASSWORD} characters", field="password")


def check_new_user(name: str, *, password: str | None = None, role: str = "labeler", kind: str = "human") -> None:
    """Everything :meth:`Accounts.create_user` checks before touching the database, so a command can check
    first and create its database after (nothing is left behind by a refused user)."""
    if not NAME_RE.match(name or ""):
        raise InputError("user names are 1-64 letters, digits or _ . @ : - (starting with a letter or "
                         f"digit), got {name!r}", field="name")
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    if kind not in USER_KINDS:
        raise InputError(f"kind must be one of {', '.join(USER_KINDS)}, got {kind!r}", field="kind")
    if password is not None:
        check_password(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Users, passwords and web sessions; mixed into the Store, which provides the transactions."""

    hasher: PasswordHasher
    _dummy_hash: str | None = None
    # argon2id (argon2-cffi's defaults) takes 64 MiB per hash or check: at most this many run at once in a
    # process, so a burst of logins costs a bounded amount of memory. A login waits login_wait_s for a slot.
    hash_slots: int = 4
    login_wait_s: float = 5.0
    reading: Callable[[], AbstractContextManager[Session]]
    writing: Callable[[], AbstractContextManager[Session]]

    def create_user(self, name: str, *, password: str | None = None, role: str = "labeler",
                    kind: str = "human") -> UserInfo:
        check_new_user(name, password=password, role=role, kind=kind)
        hashed = self._hash(password) if password is not None else None
        try:
            with self.writing() as s:
                if s.scalar(select(User.id).where(User.name == name)) is not None:
                    raise InputError(f"user {name!r} already exists", field="name")
                user = User(name=name, kind=kind, role=role, password_hash=hashed, active=True)
                s.add(user)
                s.flush()
                return _user_info(user)
        except IntegrityError:
            raise InputError(f"user {name!r} already exists", field="name") from None

    def ensure_user(self, name: str, *, kind: str, role: str = "labeler") -> UserInfo:
        """The user ``name`` of this kind, created if missing (for judges and simulated labelers)."""
        existing = self.get_user(name)
        if existing is None:
            try:
                return self.create_user(name, kind=kind, role=role)
            except InputError:
                existing = self.get_user(name)  # created meanwhile by someone else
                if existing is None:
                    raise
        if existing.kind != kind:
            raise InputError(f"user {name!r} exists and is of kind {existing.kind!r}, not {kind!r}", field="name")
        return existing

    def _hash(self, password: str) -> str:
        check_password(password)
        with self._hashing():
            return self.hasher.hash(password)

    @contextmanager
    def _hashing(self, wait_s: float | None = None) -> Iterator[None]:
        """Hold one of ``hash_slots`` (waiting up to ``wait_s``, None = as long as it takes)."""
        slots = self.__dict__.get("_hash_slot_sem")
        if slots is None:
            with _SLOTS_LOCK:
                slots = self.__dict__.setdefault("_hash_slot_sem", threading.BoundedSemaphore(self.hash_slots))
        if not slots.acquire(timeout=wait_s):
            raise HasherBusy("the server is busy checking other logins: try again in a few seconds")
        try:
            yield
        finally:
            slots.release()

    def set_password(self, name: str, password: str) -> None:
        """A new password; every session of the user ends (also one whose login is still being checked)."""
        hashed = self._hash(password)
        with self.writing() as s:
            user = self._end_sessions(s, name)
            user.password_hash = hashed

    def set_active(self, name: str, active: bool) -> None:
        with self.writing() as s:
            user = self._end_sessions(s, name) if not active else s.scalar(select(User).where(User.name == name))
            if user is None:
                raise InputError(f"no user named {name!r}", field="name")
            user.active = active

    @staticmethod
    def _end_sessions(s: Session, name: str) -> User:
        """Bump the user's epoch and delete their sessions. The epoch also ends a session opened after this by
        a login that checked the old password before this transaction committed (the delete cannot)."""
        user = s.scalar(select(User).where(User.name == name))
        if user is None:
            raise InputError(f"no user named {name!r}", field="name")
        user.epoch = (user.epoch or 0) + 1
        s.query(WebSession).filter(WebSession.user_id == user.id).delete()
        return user

    def get_user(self, ref: str | int) -> UserInfo | None:
        with self.reading() as s:
            cond = User.id == ref if isinstance(ref, int) else User.name == ref
            user = s.scalar(select(User).where(cond))
            return _user_info(user) if user else None

    def users(self) -> list[UserInfo]:
        with self.reading() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name))]

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """The active user with this name and password, else None (same work either way)."""
        with self.reading() as s:
            user = s.scalar(select(User).where(User.name == name))
        with self._hashing(self.login_wait_s):
            return self._verify(user, password)

    def _verify(self, user: User | None, password: str) -> UserInfo | None:
        if user is None or not user.active or not user.password_hash:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_hex(8))
            try:
                self.hasher.verify(self._dummy_hash, password)
            except (VerificationError, InvalidHashError):
                pass
            return None
        try:
            self.hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(user.password_hash):
            new_hash = self.hasher.hash(password)
            with self.writing() as s:  # only if unchanged meanwhile: never bring back a replaced password
                s.query(User).filter(User.id == user.id, User.password_hash == user.password_hash) \
                    .update({User.password_hash: new_hash})
        return _user_info(user)

    # ------------------------------------------------------------------ web sessions

    def open_session(self, user: UserInfo | int, ttl: timedelta = timedelta(hours=12)) -> tuple[str, str]:
        """A new login session: (secret token for the cookie, CSRF token for forms).

        Pass the :class:`UserInfo` that :meth:`authenticate` returned: the session keeps the epoch the password
        was checked at. (A bare id takes the current epoch, for callers that did not check a password.)
        """
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        with self.writing() as s:
            if isinstance(user, UserInfo):
                user_id, epoch = user.id, user.epoch
            else:
                user_id, epoch = user, s.scalar(select(User.epoch).where(User.id == user)) or 0
            s.query(WebSession).filter(WebSession.expires_at < now).delete()
            s.add(WebSession(token_hash=_token_hash(token), user_id=user_id, csrf_token=csrf, created_at=now,
                             expires_at=now + ttl, epoch=epoch))
        return token, csrf

    def session_user(self, token: str) -> tuple[UserInfo, str] | None:
        """(user, CSRF token) for a live session token, else None."""
        with self.reading() as s:
            row = s.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                            .where(WebSession.token_hash == _token_hash(token))).first()
        if row is None or row[0].expires_at < utcnow() or not row[1].active or row[0].epoch != row[1].epoch:
            return None
        return _user_info(row[1]), row[0].csrf_token

    def close_session(self, token: str) -> None:
        with self.writing() as s:
            s.query(WebSession).filter(WebSession.token_hash == _token_hash(token)).delete()
