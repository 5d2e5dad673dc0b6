"""API keys in the database: create (the key is shown once, only its hash is kept), list, revoke,
and find the key behind a request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.auth import NewKey, Role, keys_match, new_key, new_webhook_secret
from service.storage.db import Database
from service.storage.tables import ApiKey, utcnow


class KeyNameTaken(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an API key named {name!r} exists already; pick another name or revoke it first")


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    key: str  # shown to its owner once; never stored


def create_key(db: Database, *, name: str, role: Role, callback_url: str | None = None) -> CreatedKey:
    made: NewKey = new_key()
    row = ApiKey(
        name=name,
        role=role.value,
        lookup=made.lookup,
        key_hash=made.hash,
        webhook_secret=new_webhook_secret(),
        callback_url=callback_url,
    )
    try:
        with db.session() as session:
            session.add(row)
    except IntegrityError:
        raise KeyNameTaken(name) from None
    return CreatedKey(row, made.key)


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(db: Database, key_id: int) -> ApiKey | None:
    with db.session() as session:
        row = session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
        return row


def authenticate(db: Database, lookup: str, key: str) -> ApiKey | None:
    """The live key row for `key`, or None (unknown, revoked, or a wrong secret)."""
    with db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.lookup == lookup))
    if row is None or row.revoked_at is not None or not keys_match(key, row.key_hash):
        return None
    return row
