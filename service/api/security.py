"""Access checks, in one place: who is calling (an API key, as `Authorization: Bearer KEY`), may
their role do this, are they within their rate limit, and may they see this article. Routes
declare what they need with `Requires(Permission.X)` and receive the caller's Principal; routes
on one article call `check_article`, routes listing articles filter by `article_scope`. Ids in
paths are `JobId`, `SegmentId` and `DeliveryId` (and `service.schemas.RowId` for numbers)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, Path, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.api.deps import RuntimeDep
from service.api.errors import ApiError
from service.auth import ROLE_PERMISSIONS, Permission, Role, key_lookup, roles_with
from service.jobs.articles import JobNotFound, Principal
from service.keys import authenticate
from service.storage.db import Database
from service.storage.tables import Job

_bearer = HTTPBearer(auto_error=False, description="An API key made with `duiyi keys create`")
LOCAL = Principal(key_id=None, name="local", role=Role.ADMIN)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def Requires(permission: Permission) -> Any:
    async def check(
        runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Principal:
        if runtime.settings.auth_disabled:
            return LOCAL
        if credentials is None:
            raise _unauthorized("send an API key as `Authorization: Bearer KEY` (make one with `duiyi keys create`)")
        key = credentials.credentials
        lookup = key_lookup(key)
        row = await run_in_threadpool(authenticate, runtime.db, lookup, key) if lookup else None
        if row is None:
            raise _unauthorized("the API key is not valid (mistyped, or revoked)")
        role = Role(row.role)
        if permission not in ROLE_PERMISSIONS[role]:
            allowed = ", ".join(r.value for r in roles_with(permission))
            raise ApiError(403, "forbidden", f"role {role.value} may not {permission.value}; this needs: {allowed}")
        # Per owner, not per key: a rotated key and its successor, both working during the overlap,
        # share one limit rather than doubling it.
        limiter, bucket = runtime.limiter, row.owner
        wait = await run_in_threadpool(limiter.check, bucket) if limiter.uses_database else limiter.check(bucket)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this API key (and any key it was rotated from or to); retry after {retry} s",
                headers={"Retry-After": str(retry)},
            )
        return Principal(key_id=row.id, name=row.name, role=role, callback_url=row.callback_url, key_owner=row.owner)

    return Depends(check)


def article_scope(principal: Principal) -> str | None:
    """The owner whose articles `principal` may see, or None for every article (translators,
    admins, and everyone when authentication is disabled)."""
    return principal.scope


def check_article(db: Database, job_id: str, principal: Principal) -> None:
    """404 unless `principal` may see article `job_id`. Another owner's article is answered like
    one that does not exist (the same status and message), so that ids reveal nothing."""
    owner = article_scope(principal)
    if owner is None:
        return
    with db.session() as session:
        found = None if "\0" in job_id else session.scalar(select(Job.owner).where(Job.id == job_id))
    if found != owner:
        raise ApiError(404, "not_found", str(JobNotFound(job_id)))


AUTH_ERRORS = (401, 403, 429)


# Ids in paths. An id holding a NUL (U+0000) names nothing this service made, and PostgreSQL cannot
# even look for one (its text holds no NUL): such an id is a 404 at once, as any id that names
# nothing is, on every database.


def _job_id(job_id: Annotated[str, Path(description="the article's id: `id` in the answer to its submission")]) -> str:
    if "\0" in job_id:
        raise ApiError(404, "not_found", str(JobNotFound(job_id)))
    return job_id


def _segment_id(segment_id: Annotated[str, Path(description="the segment's id in its article, as `b3.s2`")]) -> str:
    if "\0" in segment_id:
        raise ApiError(404, "not_found", f"no segment {segment_id!r}")
    return segment_id


def _delivery_id(
    delivery_id: Annotated[str, Path(description="a webhook delivery's id, as `…/deliveries` lists it")],
) -> str:
    if "\0" in delivery_id:
        raise ApiError(404, "not_found", f"no webhook delivery {delivery_id!r}")
    return delivery_id


JobId = Annotated[str, Depends(_job_id)]
SegmentId = Annotated[str, Depends(_segment_id)]
DeliveryId = Annotated[str, Depends(_delivery_id)]
