"""API keys, roles and rate limiting: the pure part, with no database and no web framework.

Keys are stored elsewhere as (lookup, hash, role); this module makes keys, checks them, says what each role may do,
and keeps an in-process token bucket per key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol


class Role(StrEnum):
    CMS = "cms"
    TRANSLATOR = "translator"
    ADMIN = "admin"


class Permission(StrEnum):
    TRANSLATE = "translate"  # POST /v1/translate (synchronous)
    ARTICLES_SUBMIT = "articles:submit"  # POST /v1/articles
    ARTICLES_READ = "articles:read"  # GET articles, exports, deliveries
    SEGMENTS_EDIT = "segments:edit"  # PATCH segments, start review
    ARTICLES_APPROVE = "articles:approve"  # approve segments / article
    GLOSSARIES_READ = "glossaries:read"
    GLOSSARIES_EDIT = "glossaries:edit"
    KEYS_MANAGE = "keys:manage"
    # Suggestions from and TMX export of the translation memory, which holds every owner's approved
    # sentences: a cms key, which sees only its owner's articles, has no use for it.
    MEMORY_READ = "memory:read"
    MEMORY_EDIT = "memory:edit"  # TMX import, correcting and deleting entries (API and Concordance box)
    # Queries on segments (service.jobs.comments): ask, answer, resolve. A cms key too, on its owner's
    # articles only, so that a desk editor working in the CMS can answer a translator's query; it
    # resolves or reopens only the queries it wrote itself.
    COMMENTS_WRITE = "comments:write"


# Read-only so that no caller can widen a role at runtime by mutating the shared table.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.CMS: frozenset(
            {
                Permission.TRANSLATE,
                Permission.ARTICLES_SUBMIT,
                Permission.ARTICLES_READ,
                Permission.GLOSSARIES_READ,
                Permission.COMMENTS_WRITE,
            }
        ),
        Role.TRANSLATOR: frozenset(
            {
                Permission.TRANSLATE,
                Permission.ARTICLES_READ,
                Permission.SEGMENTS_EDIT,
                Permission.ARTICLES_APPROVE,
                Permission.GLOSSARIES_READ,
                Permission.MEMORY_READ,
                Permission.COMMENTS_WRITE,
            }
        ),
        Role.ADMIN: frozenset(Permission),
    }
)


# Who sees every article; any other role (a CMS) sees only the articles its owner submitted, and is
# told that another's does not exist (404): an id must not reveal another newsroom's articles.
# Translators review every article, whoever sent it.
_SEES_EVERY_ARTICLE = frozenset({Role.TRANSLATOR, Role.ADMIN})


def sees_every_article(role: Role) -> bool:
    return role in _SEES_EVERY_ARTICLE


def roles_with(permission: Permission) -> list[Role]:
    """The roles granted `permission`, in Role declaration order (stable text for 403 messages and docs)."""
    return [role for role in Role if permission in ROLE_PERMISSIONS[role]]


def parse_role(text: str) -> Role:
    """The Role named by `text` (case and surrounding spaces ignored: it comes from CLI flags and JSON bodies)."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        valid = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown role {text!r}: expected one of {valid}") from None


# The longest overlap a rotated key may keep working for: long enough to deploy its successor
# everywhere, short enough that a forgotten old key dies soon.
MAX_OVERLAP = timedelta(days=30)
_DURATION_RE = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_SECONDS_RE = re.compile(r"[0-9]+")


def parse_duration(text: str) -> timedelta:
    """A duration as people write it for `--overlap`: `90s`, `30m`, `24h`, `7d`, `1h30m`, or a
    number of seconds (`0`: none). ValueError saying what is wrong otherwise."""
    spec = text.strip().lower()
    match = _DURATION_RE.fullmatch(spec)
    if not spec or (match is None and _SECONDS_RE.fullmatch(spec) is None):
        raise ValueError(f"{text!r} is not a duration; write e.g. 30m, 24h, 7d or 1h30m")
    try:
        if match is None:
            return timedelta(seconds=int(spec))
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is far too long a duration") from None


def parse_overlap(text: str) -> timedelta:
    """How long a rotated key keeps working (parse_duration), at most MAX_OVERLAP."""
    overlap = parse_duration(text)
    if overlap > MAX_OVERLAP:
        raise ValueError(f"an overlap of {text.strip()} is longer than the {MAX_OVERLAP.days} days allowed")
    return overlap


KEY_PREFIX = "duiyi_"
WEBHOOK_SECRET_PREFIX = "whsec_"
_LOOKUP_BYTES = 4  # 8 hex characters: enough to find the row, too short to say anything about the secret
_SECRET_BYTES = 32  # 256 bits of randomness
_LOOKUP_RE = re.compile(r"[0-9a-f]{8}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]+")  # the URL-safe base64 alphabet of secrets.token_urlsafe


@dataclass(frozen=True)
class NewKey:
    key: str  # shown to the user once: f"duiyi_{lookup}_{secret}"
    lookup: str  # public, stored in clear to find the row and to show in listings (like GitHub's token prefix)
    hash: str  # hash_key(key): the only form of the secret that is stored


def new_key() -> NewKey:
    lookup = secrets.token_hex(_LOOKUP_BYTES)
    key = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return NewKey(key=key, lookup=lookup, hash=hash_key(key))


def hash_key(key: str) -> str:
    """Hex SHA-256 of the whole key.

    A fast hash is right here, unlike for passwords: bcrypt/scrypt/argon2 stretching exists to slow down guessing of
    low-entropy human secrets, but a key carries 256 random bits, which no amount of offline guessing can search. A slow
    hash would only add latency to every authenticated request.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_lookup(key: str) -> str | None:
    """The lookup part of a well-formed key, else None; never raises, since its input is whatever a client sent."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
        return None
    # At most two splits: the secret comes from token_urlsafe, whose alphabet includes '_' (and '-').
    parts = key.split("_", 2)
    if len(parts) != 3:
        return None
    _, lookup, secret = parts
    if _LOOKUP_RE.fullmatch(lookup) is None or _SECRET_RE.fullmatch(secret) is None:
        return None
    return lookup


def keys_match(key: str, stored_hash: str) -> bool:
    """Whether `key` hashes to `stored_hash`, compared in constant time so response timing leaks nothing."""
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str, and a corrupt stored value must not crash.
    return hmac.compare_digest(hash_key(key).encode("ascii"), stored_hash.encode("utf-8"))


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


# A retry at exactly the advertised time can come up a hair short of one token through float rounding; without this
# tolerance that client would be told to wait again for a few nanoseconds.
_EPSILON = 1e-9


class Limiter(Protocol):
    """A rate limit per API key: `check` is 0.0 with the request counted, or the seconds to wait.
    `uses_database`: `check` waits for the database (run it off the event loop)."""

    uses_database: bool

    def check(self, key: str) -> float: ...


class RateLimiter:
    """Token bucket per key, in process memory, thread-safe. rate_per_minute tokens are added per minute up to burst.
    A rate_per_minute <= 0 disables limiting (check always returns 0.0)."""

    uses_database = False

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.enabled = rate_per_minute > 0
        if self.enabled and burst < 1:
            raise ValueError(f"burst must be at least 1 when rate limiting is on, got {burst}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate_per_second = rate_per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, time of last update), least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        """Buckets currently held."""
        with self._lock:
            return len(self._buckets)

    def check(self, key: str) -> float:
        """0.0 and one token taken when the call is allowed; otherwise the seconds until a token is available (> 0),
        nothing taken."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                tokens = float(self.burst)
            else:
                tokens, last = bucket
                # max(): a clock that steps backwards must not drain the bucket.
                tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate_per_second)
            if tokens >= 1.0 - _EPSILON:
                tokens = max(0.0, tokens - 1.0)
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate_per_second
            self._buckets[key] = (tokens, now)
            # Evicting the least recently used bucket lets that key start again with a full bucket. That is
            # acceptable: the evicted bucket is the one idle longest, which at any sensible rate has refilled anyway,
            # and when it has not, the error is in the client's favour (fails open, never locks anyone out), while
            # memory stays bounded however many distinct keys are seen.
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait
