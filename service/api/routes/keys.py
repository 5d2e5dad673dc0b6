"""API keys, managed by admins over HTTP (or with `duiyi keys` on the server)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, Requires
from service.auth import Permission, Role
from service.jobs.articles import Principal
from service.keys import KeyNameTaken, create_key, list_keys, revoke_key
from service.schemas import KeyCreated, KeyIn, KeyOut
from service.storage.tables import ApiKey
from service.webhooks import CallbackRefused, check_callback_url

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Admin = Annotated[Principal, Requires(Permission.KEYS_MANAGE)]


def _out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        role=row.role,
        lookup=row.lookup,
        callback_url=row.callback_url,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.get("", response_model=list[KeyOut], responses=responses(*AUTH_ERRORS), summary="List API keys")
def read_keys(runtime: RuntimeDep, _: Admin) -> list[KeyOut]:
    return [_out(r) for r in list_keys(runtime.db)]


@router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    responses=responses(*AUTH_ERRORS, 409, 422),
    summary="Create an API key (the key is shown in this answer only)",
)
def make_key(body: KeyIn, runtime: RuntimeDep, _: Admin) -> KeyCreated:
    if body.callback_url:
        try:
            s = runtime.settings
            check_callback_url(
                body.callback_url, allowed_hosts=s.webhook_allowed_hosts, allow_private=s.webhook_allow_private
            )
        except CallbackRefused as exc:
            raise ApiError(422, "callback_refused", str(exc)) from None
    try:
        made = create_key(runtime.db, name=body.name, role=Role(body.role), callback_url=body.callback_url)
    except KeyNameTaken as exc:
        raise ApiError(409, "name_taken", str(exc)) from None
    return KeyCreated(**_out(made.row).model_dump(), key=made.key, webhook_secret=made.row.webhook_secret)


@router.delete(
    "/{key_id}",
    response_model=KeyOut,
    responses=responses(*AUTH_ERRORS, 404),
    summary="Revoke an API key (at once, for every process)",
)
def delete_key(key_id: Annotated[int, Path(ge=1)], runtime: RuntimeDep, _: Admin) -> KeyOut:
    row = revoke_key(runtime.db, key_id)
    if row is None:
        raise ApiError(404, "not_found", f"no API key with id {key_id}")
    return _out(row)
