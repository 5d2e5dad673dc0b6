"""Who is signed in to the review app: a session cookie (signed, HttpOnly, SameSite=Lax) holding a
random session token, and a CSRF token that every form and every script request must echo back.

The token names a row of `review_sessions` (by its SHA-256, so the table alone signs no one in):
signing out deletes the row, so a copy of the cookie taken before stops working at once rather
than when the cookie would have expired."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from service.auth import ROLE_PERMISSIONS, Permission, Role
from service.jobs.articles import Principal
from service.storage.db import Database
from service.storage.tables import ApiKey, ReviewSession, utcnow

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """The page needs a signed-in user: redirect to the login page."""


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class BadCsrf(Exception):
    """A state-changing request without this session's CSRF token: `missing` when it carried none at
    all (a form cut short or not sent from the app's pages), else another session's (a page loaded
    before the user last signed in or out)."""

    def __init__(self, *, missing: bool = False) -> None:
        super().__init__("missing" if missing else "stale")
        self.missing = missing


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    csrf: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.principal.role]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _open_session(db: Database, key_id: int, token: str, max_age_s: int) -> None:
    now = utcnow()
    with db.session() as session:
        session.execute(delete(ReviewSession).where(ReviewSession.expires_at <= now))
        session.add(
            ReviewSession(
                id=_digest(token), key_id=key_id, created_at=now, expires_at=now + timedelta(seconds=max_age_s)
            )
        )


def _close_session(db: Database, token: str) -> None:
    with db.session() as session:
        session.execute(delete(ReviewSession).where(ReviewSession.id == _digest(token)))


async def sign_in(request: Request, db: Database, key: ApiKey, *, max_age_s: int) -> None:
    token = secrets.token_urlsafe(32)
    await run_in_threadpool(_open_session, db, key.id, token, max_age_s)
    request.session.clear()
    request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32)})


async def sign_out(request: Request, db: Database) -> None:
    """End the session here and in the database: the cookie, or any copy of it, signs no one in."""
    token = request.session.get("sid")
    if isinstance(token, str):
        await run_in_threadpool(_close_session, db, token)
    request.session.clear()


def _load_key(db: Database, token: str) -> ApiKey | None:
    with db.session() as session:
        return session.scalars(
            select(ApiKey)
            .join(ReviewSession, ReviewSession.key_id == ApiKey.id)
            .where(ReviewSession.id == _digest(token), ReviewSession.expires_at > utcnow())
        ).first()


async def current_user(request: Request, db: Database, *, auth_disabled: bool) -> WebUser:
    """The signed-in user; NotSignedIn when there is none (signed out, expired, or the key was
    revoked since)."""
    if auth_disabled:
        csrf = request.session.setdefault("csrf", secrets.token_urlsafe(32))
        return WebUser(Principal(key_id=None, name="local", role=Role.ADMIN), str(csrf))
    token = request.session.get("sid")
    if not isinstance(token, str):
        raise NotSignedIn
    key = await run_in_threadpool(_load_key, db, token)
    if key is None or not key.usable():  # revoked, or rotated and past its overlap
        request.session.clear()
        raise NotSignedIn
    principal = Principal(
        key_id=key.id, name=key.name, role=Role(key.role), callback_url=key.callback_url, key_owner=key.owner
    )
    return WebUser(principal, str(request.session.get("csrf", "")))


def check_csrf(user: WebUser, sent: str | None) -> None:
    if not sent:
        raise BadCsrf(missing=True)
    if not user.csrf or not hmac.compare_digest(sent, user.csrf):
        raise BadCsrf
