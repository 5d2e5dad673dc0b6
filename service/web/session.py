"""Who is signed in to the review app: a session cookie (signed, HttpOnly, SameSite=Lax) holding
the API key's id, and a CSRF token that every form and every script request must echo back."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.auth import ROLE_PERMISSIONS, Permission, Role
from service.jobs.articles import Principal
from service.storage.db import Database
from service.storage.tables import ApiKey

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """The page needs a signed-in user: redirect to the login page."""


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class BadCsrf(Exception):
    """A state-changing request without this session's CSRF token."""


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    csrf: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.principal.role]


def sign_in(request: Request, key: ApiKey) -> None:
    request.session.clear()
    request.session.update({"key_id": key.id, "csrf": secrets.token_urlsafe(32)})


def sign_out(request: Request) -> None:
    request.session.clear()


def _load_key(db: Database, key_id: int) -> ApiKey | None:
    with db.session() as session:
        return session.get(ApiKey, key_id)


async def current_user(request: Request, db: Database, *, auth_disabled: bool) -> WebUser:
    """The signed-in user; NotSignedIn when there is none (or the key was revoked since)."""
    if auth_disabled:
        csrf = request.session.setdefault("csrf", secrets.token_urlsafe(32))
        return WebUser(Principal(key_id=None, name="local", role=Role.ADMIN), str(csrf))
    key_id = request.session.get("key_id")
    if not isinstance(key_id, int):
        raise NotSignedIn
    key = await run_in_threadpool(_load_key, db, key_id)
    if key is None or key.revoked_at is not None:
        request.session.clear()
        raise NotSignedIn
    principal = Principal(key_id=key.id, name=key.name, role=Role(key.role), callback_url=key.callback_url)
    return WebUser(principal, str(request.session.get("csrf", "")))


def check_csrf(user: WebUser, sent: str | None) -> None:
    if not sent or not user.csrf or not hmac.compare_digest(sent, user.csrf):
        raise BadCsrf
