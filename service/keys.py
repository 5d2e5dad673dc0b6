"""API keys in the database: create (the key is shown once, only its hash is kept), list, revoke,
and find the key behind a request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
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


class SharedRateLimiter:
    """The rate limit per API key kept in PostgreSQL, so that every process (API replicas behind
    one address) counts the same requests: GCRA, one statement per request, on the database's
    clock (the machines' clocks may differ). The same contract as `service.auth.RateLimiter`:
    `check` is 0.0 with the request counted, or the seconds to wait, nothing counted. A burst of
    `burst` requests, then one every 60 / `rate_per_minute` seconds."""

    uses_database = True

    # Allowed: the row's theoretical arrival time moves one interval on; refused: no row comes back.
    _TAKE = text(
        "INSERT INTO rate_limits AS r (key, tat) "
        "VALUES (:key, extract(epoch FROM clock_timestamp()) + :interval) "
        "ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, EXCLUDED.tat - :interval) + :interval "
        "WHERE GREATEST(r.tat, EXCLUDED.tat - :interval) - (EXCLUDED.tat - :interval) <= :tolerance "
        "RETURNING tat"
    )
    _WAIT = text("SELECT tat - extract(epoch FROM clock_timestamp()) - :tolerance FROM rate_limits WHERE key = :key")

    def __init__(self, db: Database, rate_per_minute: float, burst: int) -> None:
        self.enabled = rate_per_minute > 0
        if self.enabled and burst < 1:
            raise ValueError(f"burst must be at least 1 when rate limiting is on, got {burst}")
        self.db = db
        self.interval = 60.0 / rate_per_minute if self.enabled else 0.0
        self.tolerance = (burst - 1) * self.interval

    def check(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        params = {"key": key, "interval": self.interval, "tolerance": self.tolerance}
        with self.db.session() as session:
            # A count lost in a crash is harmless: commit without waiting for the disk.
            session.execute(text("SET LOCAL synchronous_commit = off"))
            if session.execute(self._TAKE, params).first() is not None:
                return 0.0
            wait = session.scalar(self._WAIT, params)
        return max(float(wait or 0.0), 1e-3)
