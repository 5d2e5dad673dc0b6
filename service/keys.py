"""API keys in the database: create (the key is shown once, only its hash is kept), list, revoke,
rotate, find the key behind a request, and the webhook secrets that sign for a key's owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import NewKey, Role, keys_match, new_key
from service.auth import new_webhook_secret as make_webhook_secret
from service.schemas import key_name
from service.storage.db import Database
from service.storage.tables import ApiKey, utcnow


class KeyNameTaken(ValueError):
    def __init__(self, name: str) -> None:
        # A revoked key keeps its name (only rotation hands a name on): revoking frees none.
        super().__init__(f"an API key named {name!r} exists already (revoked keys keep theirs); pick another name")


class KeyNotRotatable(ValueError):
    """The key is revoked or expired, or was rotated already and a successor works: there is
    nothing live to hand over, or the successor is the one to rotate."""


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    key: str  # shown to its owner once; never stored


@dataclass(frozen=True)
class RotatedKey:
    new: CreatedKey
    old: ApiKey  # revoked now, or expiring at the end of the overlap

    @property
    def new_webhook_secret(self) -> bool:
        """Whether the rotation replaced the webhook secret (the new key's is shown once, like the key)."""
        return self.new.row.webhook_secret != self.old.webhook_secret


def create_key(db: Database, *, name: str, role: Role, callback_url: str | None = None) -> CreatedKey:
    """A new key named `name`, trimmed (`key_name`: a blank one is a ValueError), that owns what it
    submits. KeyNameTaken when a key has the name."""
    name = key_name(name)
    made: NewKey = new_key()
    row = ApiKey(
        name=name,
        role=role.value,
        lookup=made.lookup,
        key_hash=made.hash,
        webhook_secret=make_webhook_secret(),
        callback_url=callback_url,
        owner="",  # a placeholder until the row has its id, in the same transaction
    )
    try:
        with db.session() as session:
            session.add(row)
            session.flush()
            # A new key owns what it submits under its own id, as jobs always said ("key:<id>").
            row.owner = f"key:{row.id}"
    except IntegrityError:
        raise KeyNameTaken(name) from None
    return CreatedKey(row, made.key)


def rotate_key(
    db: Database, key_id: int, *, overlap: timedelta = timedelta(0), new_webhook_secret: bool = False
) -> RotatedKey | None:
    """Replace key `key_id` (None: there is none) by a new one with the same name, role, callback
    URL, webhook secret and owner, so the CMS's articles stay its own: corrections join their
    revision chains, retries are recognised. The old key is revoked at once, or keeps working
    until `overlap` has passed (while the CMS deploys the new one).

    The webhook secret is kept unless `new_webhook_secret` (a secret that may have leaked): then
    the new key gets a fresh one, and the owner's webhooks are signed with both secrets while the
    old key works (its overlap), with the new one alone after it (`owner_webhook_secrets`).

    Raises KeyNotRotatable for a key that no longer works (revoked, or its overlap over), and for
    one rotated already whose successor works (rotate that). A key rotated with an overlap whose
    successors were all revoked since (the new key leaked, or went to the wrong place) can be
    rotated again while it works: otherwise its owner, left with a key that is about to expire,
    could only start over with a new key and lose its articles. The revoked successors give up the
    name to the new key, and the old key's remaining time is never lengthened: it expires at the
    end of the new overlap or of the first one, whichever comes first.
    """
    made = new_key()
    try:
        with db.session() as session:
            # FOR UPDATE (PostgreSQL): of two rotations at once, the second sees the first's.
            old = session.get(ApiKey, key_id, with_for_update=True)
            if old is None:
                return None
            now = utcnow()
            # Its successors: the keys of its owner made after it (only a rotation makes them).
            successors = list(
                session.scalars(
                    select(ApiKey).where(ApiKey.owner == old.owner, ApiKey.id > old.id).order_by(ApiKey.id.desc())
                )
            )
            working = [key for key in successors if key.usable(now)]
            if working:
                raise KeyNotRotatable(
                    f"API key {old.id} ({old.name}) was rotated already ({key_state(old, now)}); "
                    f"rotate its successor, key {working[0].id}"
                )
            if old.revoked_at is not None:
                raise KeyNotRotatable(
                    f"API key {old.id} ({old.name}) was revoked on {old.revoked_at:%Y-%m-%d}; "
                    "a revoked key cannot be rotated: create a new key (duiyi keys create)"
                )
            if not old.usable(now):
                raise KeyNotRotatable(
                    f"API key {old.id} ({old.name}) was rotated and has {key_state(old, now)}; an expired "
                    "key cannot be rotated: create a new key (duiyi keys create)"
                )
            # Expiry first: the name is unique among keys without one, and the new key takes it.
            # A revoked successor (it has no expiry) gives the name up: it expired when revoked.
            for revoked in successors:
                if revoked.expires_at is None:
                    revoked.expires_at = revoked.revoked_at
            ends = now + overlap
            old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
            if overlap <= timedelta(0):
                old.revoked_at = now
            session.flush()
            row = ApiKey(
                name=old.name,
                role=old.role,
                lookup=made.lookup,
                key_hash=made.hash,
                webhook_secret=make_webhook_secret() if new_webhook_secret else old.webhook_secret,
                callback_url=old.callback_url,
                owner=old.owner,
            )
            session.add(row)
    except IntegrityError:
        # SQLite has no row locks: another rotation of this key committed first.
        raise KeyNotRotatable(f"API key {key_id} was rotated meanwhile; rotate the key that replaced it") from None
    return RotatedKey(CreatedKey(row, made.key), old)


def owner_webhook_secrets(session: Session, key: ApiKey, now: datetime | None = None) -> list[str]:
    """The secrets that sign a webhook for `key`'s owner at `now`, the newest first: its newest key's
    (the one that replaced the others; revoked or not, as a lone key's secret always signed), then
    those of its older keys still working (a rotation's overlap) where they differ. So there is one
    secret, except during the overlap of a rotation that replaced it: then both sign, and the CMS's
    receiver verifies with whichever it holds while it deploys the new one. It depends on the owner,
    not on the key that queued a delivery, and is asked at each try: a retry after the overlap
    carries only the new secret's signature."""
    now = now or utcnow()
    keys = session.scalars(select(ApiKey).where(ApiKey.owner == key.owner).order_by(ApiKey.id.desc())).all()
    secrets: list[str] = []
    for index, row in enumerate(keys):
        if (index == 0 or row.usable(now)) and row.webhook_secret not in secrets:
            secrets.append(row.webhook_secret)
    return secrets or [key.webhook_secret]  # `key` is among `keys` once it is stored


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(db: Database, key_id: int) -> ApiKey | None:
    with db.session() as session:
        row = session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
        return row


KeyStatus = Literal["active", "expiring", "expired", "revoked"]


def key_status(row: ApiKey, now: datetime | None = None) -> KeyStatus:
    """Whether the key works: `active`; `expiring` (a rotated key in its overlap: it works until
    `expires_at`); `expired` (its overlap is over); `revoked` (revoked before it would expire)."""
    now = now or utcnow()
    if row.revoked_at is not None and (row.expires_at is None or row.revoked_at <= row.expires_at):
        return "revoked"
    if row.expires_at is not None:
        return "expiring" if row.expires_at > now else "expired"
    return "active"


def key_state(row: ApiKey, now: datetime | None = None) -> str:
    """The key's state in words, for listings: active, expires …, expired …, revoked …."""
    status = key_status(row, now)
    if status == "revoked":
        return f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
    if status != "active":
        return f"{'expires' if status == 'expiring' else 'expired'} {row.expires_at:%Y-%m-%d %H:%M}"
    return "active"


def authenticate(db: Database, lookup: str, key: str) -> ApiKey | None:
    """The live key row for `key`, or None (unknown, revoked, expired, or a wrong secret)."""
    with db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.lookup == lookup))
    if row is None or not row.usable() or not keys_match(key, row.key_hash):
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
