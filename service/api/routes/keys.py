"""API keys, managed by admins over HTTP (or with `duiyi keys` on the server)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import ConfigDict, Field, field_validator

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, Requires
from service.auth import MAX_OVERLAP, Permission, Role, parse_overlap
from service.jobs.articles import Principal
from service.keys import KeyNameTaken, KeyNotRotatable, create_key, key_status, list_keys, revoke_key, rotate_key
from service.schemas import Incoming, KeyCreated, KeyIn, KeyOut, RowId
from service.storage.tables import ApiKey
from service.webhooks import CallbackRefused, check_callback_url

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Admin = Annotated[Principal, Requires(Permission.KEYS_MANAGE)]
KeyId = Annotated[RowId, Path(description="the key's id, as `GET /v1/keys` lists it")]


def _out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        role=row.role,
        lookup=row.lookup,
        callback_url=row.callback_url,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        owner=row.owner,
        expires_at=row.expires_at,
        state=key_status(row),
    )


class KeyRotateIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    overlap: str = Field(
        default="0",
        max_length=50,
        description="how long the old key keeps working, e.g. `30m`, `24h`, `7d`, `1h30m` or seconds "
        f"(at most {MAX_OVERLAP.days} days); `0` (the default): it is revoked at once",
        examples=["24h"],
    )

    new_webhook_secret: bool = Field(
        default=False,
        description="replace the webhook secret too (one that may have leaked): the new key gets a new one, shown in "
        "this answer only; the owner's webhooks carry a signature with each secret while the old key works (the "
        "overlap), then with the new one alone. `false` (the default): the secret is kept",
    )

    @field_validator("overlap")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        parse_overlap(value)  # its ValueError says what is wrong: a 422
        return value


class KeyRotated(KeyCreated):
    new_webhook_secret: bool = Field(
        description="whether `webhook_secret` is a new one (asked for with `new_webhook_secret`); false: the old "
        "key's, unchanged"
    )
    replaced: KeyOut = Field(
        description="the old key: revoked (`revoked_at`), or working until `expires_at` (the overlap); with a new "
        "webhook secret, webhooks are signed with its secret too until then"
    )


@router.get("", response_model=list[KeyOut], responses=responses(*AUTH_ERRORS), summary="List API keys")
def read_keys(runtime: RuntimeDep, _: Admin) -> list[KeyOut]:
    """For admins. Every key made, revoked and expired ones too, oldest first, with its role, owner,
    callback URL and `state`. Never the key itself (only its hash is stored) nor its webhook secret."""
    return [_out(r) for r in list_keys(runtime.db)]


@router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    responses=responses(*AUTH_ERRORS, 409, 422),
    summary="Create an API key (the key is shown in this answer only)",
)
def make_key(body: KeyIn, runtime: RuntimeDep, _: Admin) -> KeyCreated:
    """For admins. A key for `role` (cms, translator or admin); a cms key's articles are its own
    (its `owner`), and their webhooks go to its `callback_url` unless an article names another.
    The answer holds `key`, to send as `Authorization: Bearer KEY`, and `webhook_secret`, which
    signs its webhooks: both shown this once. `name` is trimmed; a blank one is a 422
    (`invalid_request`), as in `duiyi keys create`. 409 `name_taken` for a name a key has already
    (a revoked key keeps its name); 422 `callback_refused` for a callback URL the service will not
    call."""
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
def delete_key(key_id: KeyId, runtime: RuntimeDep, _: Admin) -> KeyOut:
    """For admins. The key is refused (401) from the next request on, in every process; its
    articles stay, and so do its owner's other keys. Answers the key as revoked; revoking it again
    changes nothing. 404: no key with this id."""
    row = revoke_key(runtime.db, key_id)
    if row is None:
        raise ApiError(404, "not_found", f"no API key with id {key_id}")
    return _out(row)


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    response_model=KeyRotated,
    responses=responses(*AUTH_ERRORS, 404, 409, 422),
    summary="Rotate an API key: a new key for the same owner (shown in this answer only), with a new webhook "
    "secret if asked; the old one is revoked at once or after an overlap",
)
def rotate(key_id: KeyId, runtime: RuntimeDep, _: Admin, body: KeyRotateIn | None = None) -> KeyRotated:
    """The new key has the old one's name, role, callback URL, webhook secret and owner: the CMS's
    articles stay its own (it reads them, its corrections join their revision chains, its retries
    with an `Idempotency-Key` are recognised). With `overlap`, the old key works on until
    `replaced.expires_at`, so the CMS can deploy the new one; then it is refused (401) like a
    revoked key. With `new_webhook_secret: true` the webhook secret is replaced as well: the new
    one is in this answer only, and until `replaced.expires_at` the owner's webhooks (those queued
    before the rotation too) carry two signatures, `Duiyi-Signature: v1=<new>,v1=<old>`, so the
    receiver verifies with either; after it, only the new one's (without an overlap, at once).
    409 (`not_rotatable`) for a revoked or expired key, or one rotated already whose successor
    works (rotate that). A key whose successors were all revoked while it works (its overlap) can
    be rotated again: the revoked successors give up the name, and its `expires_at` is never put
    later than it was."""
    overlap = parse_overlap(body.overlap if body else "0")
    replace_secret = body.new_webhook_secret if body else False
    try:
        rotated = rotate_key(runtime.db, key_id, overlap=overlap, new_webhook_secret=replace_secret)
    except KeyNotRotatable as exc:
        raise ApiError(409, "not_rotatable", str(exc)) from None
    if rotated is None:
        raise ApiError(404, "not_found", f"no API key with id {key_id}")
    new = rotated.new
    return KeyRotated(
        **_out(new.row).model_dump(),
        key=new.key,
        webhook_secret=new.row.webhook_secret,
        new_webhook_secret=rotated.new_webhook_secret,
        replaced=_out(rotated.old),
    )
