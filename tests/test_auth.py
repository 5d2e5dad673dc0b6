from __future__ import annotations

import hashlib
import re
import sys
import threading

import pytest

from service.auth import (
    KEY_PREFIX,
    ROLE_PERMISSIONS,
    NewKey,
    Permission,
    RateLimiter,
    Role,
    hash_key,
    key_lookup,
    keys_match,
    new_key,
    new_webhook_secret,
    parse_role,
    roles_with,
    sees_every_article,
)

# Written out by hand from the spec, not derived from ROLE_PERMISSIONS, so a change to the table has to be deliberate.
EXPECTED: dict[str, set[str]] = {
    "cms": {"translate", "articles:submit", "articles:read", "glossaries:read", "comments:write"},
    "translator": {
        "translate",
        "articles:read",
        "segments:edit",
        "articles:approve",
        "glossaries:read",
        "memory:read",
        "comments:write",
    },
    "admin": {
        "translate",
        "articles:submit",
        "articles:read",
        "segments:edit",
        "articles:approve",
        "glossaries:read",
        "glossaries:edit",
        "keys:manage",
        "memory:read",
        "memory:edit",
        "comments:write",
    },
}
ALL_PERMISSIONS = [
    "translate",
    "articles:submit",
    "articles:read",
    "segments:edit",
    "articles:approve",
    "glossaries:read",
    "glossaries:edit",
    "keys:manage",
    "memory:read",
    "memory:edit",
    "comments:write",
]

KEY_RE = re.compile(r"duiyi_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


class FakeClock:
    """A settable clock: lets the tests move time without sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- roles and permissions ---------------------------------------------------------------------------------------


def test_enums_have_exactly_the_expected_members() -> None:
    assert [role.value for role in Role] == ["cms", "translator", "admin"]
    assert [permission.value for permission in Permission] == ALL_PERMISSIONS
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("permission", ALL_PERMISSIONS)
def test_role_permission_table(role: str, permission: str) -> None:
    assert (Permission(permission) in ROLE_PERMISSIONS[Role(role)]) == (permission in EXPECTED[role])


def test_role_permissions_is_read_only() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.CMS] = frozenset(Permission)  # type: ignore[index]


@pytest.mark.parametrize("permission", ALL_PERMISSIONS)
def test_roles_with_in_declaration_order(permission: str) -> None:
    expected = [Role(role) for role in ("cms", "translator", "admin") if permission in EXPECTED[role]]
    assert roles_with(Permission(permission)) == expected


# Written out by hand too: a CMS sees only its own articles; translators review all of them.
SEES_EVERY_ARTICLE = {"cms": False, "translator": True, "admin": True}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_who_sees_every_article(role: str) -> None:
    assert sees_every_article(Role(role)) is SEES_EVERY_ARTICLE[role]


def test_roles_with_examples() -> None:
    assert roles_with(Permission.KEYS_MANAGE) == [Role.ADMIN]
    assert roles_with(Permission.TRANSLATE) == [Role.CMS, Role.TRANSLATOR, Role.ADMIN]
    assert roles_with(Permission.SEGMENTS_EDIT) == [Role.TRANSLATOR, Role.ADMIN]


@pytest.mark.parametrize(
    ("text", "role"),
    [("cms", Role.CMS), ("translator", Role.TRANSLATOR), ("admin", Role.ADMIN), (" Admin ", Role.ADMIN)],
)
def test_parse_role_good(text: str, role: Role) -> None:
    assert parse_role(text) is role


@pytest.mark.parametrize("text", ["", "root", "editor", "cms,admin", "adm"])
def test_parse_role_bad_lists_valid_roles(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_role(text)
    message = str(info.value)
    for role in ("cms", "translator", "admin"):
        assert role in message
    assert repr(text) in message


# -- keys --------------------------------------------------------------------------------------------------------


def test_new_key_format() -> None:
    made = new_key()
    assert isinstance(made, NewKey)
    assert KEY_RE.fullmatch(made.key), made.key
    assert made.key.startswith(f"{KEY_PREFIX}{made.lookup}_")
    assert re.fullmatch(r"[0-9a-f]{8}", made.lookup)
    assert made.hash == hash_key(made.key)
    assert re.fullmatch(r"[0-9a-f]{64}", made.hash)
    assert key_lookup(made.key) == made.lookup
    assert keys_match(made.key, made.hash)


def test_new_key_is_frozen() -> None:
    made = new_key()
    with pytest.raises(AttributeError):
        made.key = "x"  # type: ignore[misc]


def test_new_keys_are_unique() -> None:
    keys = [new_key() for _ in range(1000)]
    assert len({k.key for k in keys}) == 1000
    assert len({k.hash for k in keys}) == 1000
    # 32 bits of lookup over 1000 keys: a collision has odds of about 1 in 10,000.
    assert len({k.lookup for k in keys}) >= 999


def test_hash_key_is_deterministic_sha256() -> None:
    key = "duiyi_0123abcd_secret-part_with_underscores"
    assert hash_key(key) == hash_key(key)
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key) != hash_key(key + "x")


def test_keys_match() -> None:
    made = new_key()
    other = new_key()
    assert keys_match(made.key, made.hash)
    assert not keys_match(other.key, made.hash)
    assert not keys_match(made.key, other.hash)
    assert not keys_match(made.key + "x", made.hash)
    assert not keys_match(made.key, "")
    assert not keys_match(made.key, made.hash.upper())
    assert not keys_match(made.key, "不是哈希")  # a corrupt stored value is a mismatch, not a crash


@pytest.mark.parametrize(
    ("key", "lookup"),
    [
        ("duiyi_0123abcd_abcDEF123", "0123abcd"),
        ("duiyi_0123abcd_a_b_c", "0123abcd"),  # token_urlsafe can put '_' in the secret
        ("duiyi_0123abcd__leading", "0123abcd"),
        ("duiyi_0123abcd_-_-", "0123abcd"),
        ("duiyi_deadbeef_x", "deadbeef"),
    ],
)
def test_key_lookup_good(key: str, lookup: str) -> None:
    assert key_lookup(key) == lookup


@pytest.mark.parametrize(
    "key",
    [
        "",
        "duiyi_",
        "duiyi",
        "duiyi_0123abcd",  # no secret
        "duiyi_0123abcd_",  # empty secret
        "duiyi__secret",  # empty lookup
        "duiyi_0123abc_secret",  # lookup too short
        "duiyi_0123abcde_secret",  # lookup too long
        "duiyi_0123ABCD_secret",  # lookup not lowercase
        "duiyi_0123abcz_secret",  # lookup not hex
        "ghp_0123abcd_secret",  # wrong prefix
        "DUIYI_0123abcd_secret",
        " duiyi_0123abcd_secret",
        "duiyi_0123abcd_secret\n",
        "duiyi_0123abcd_sec ret",
        "duiyi_0123abcd_sec.ret",
        "duiyi_0123abcd_密钥",
        "Bearer duiyi_0123abcd_secret",
        "whsec_0123abcd_secret",
    ],
)
def test_key_lookup_malformed(key: str) -> None:
    assert key_lookup(key) is None


def test_key_lookup_never_raises_on_non_strings() -> None:
    assert key_lookup(None) is None  # type: ignore[arg-type]
    assert key_lookup(b"duiyi_0123abcd_secret") is None  # type: ignore[arg-type]


def test_key_lookup_on_many_real_keys() -> None:
    # Real secrets exercise '_' and '-' at every position, including first and last.
    for _ in range(1000):
        made = new_key()
        assert key_lookup(made.key) == made.lookup


def test_new_webhook_secret() -> None:
    secrets = {new_webhook_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret), secret


# -- rate limiting -----------------------------------------------------------------------------------------------


def test_burst_then_refused_with_the_right_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=30, burst=3, clock=clock)  # one token per 2 s
    assert [limiter.check("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("k") == pytest.approx(2.0)
    # Refusals take nothing: asking again at the same instant gives the same answer.
    assert limiter.check("k") == pytest.approx(2.0)
    clock.now += 0.5
    assert limiter.check("k") == pytest.approx(1.5)


def test_retry_at_the_advertised_time_is_allowed() -> None:
    clock = FakeClock(0.1)
    limiter = RateLimiter(rate_per_minute=7, burst=1, clock=clock)
    assert limiter.check("k") == 0.0
    for _ in range(20):
        wait = limiter.check("k")
        assert wait > 0
        clock.now += wait
        assert limiter.check("k") == 0.0


def test_refill_after_time_passes() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=5, clock=clock)  # one token per second
    for _ in range(5):
        assert limiter.check("k") == 0.0
    assert limiter.check("k") > 0
    clock.now += 2.0
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == pytest.approx(1.0)


def test_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    assert limiter.check("k") == 0.0
    clock.now += 3600.0
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == pytest.approx(1.0)


def test_clock_going_backwards_does_not_drain_or_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    assert limiter.check("k") == 0.0
    clock.now -= 100.0
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == pytest.approx(1.0)


def test_keys_are_independent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    assert limiter.check("a") == 0.0
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0
    assert limiter.check("b") == 0.0
    assert limiter.check("b") == 0.0
    assert limiter.check("b") > 0
    assert limiter.check("c") == 0.0


@pytest.mark.parametrize("rate", [0, 0.0, -1, -60.5])
def test_disabled_when_rate_not_positive(rate: float) -> None:
    limiter = RateLimiter(rate_per_minute=rate, burst=0, clock=FakeClock())
    assert all(limiter.check("k") == 0.0 for _ in range(1000))
    assert len(limiter) == 0


def test_fractional_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=0.5, burst=1, clock=clock)  # one token per 2 minutes
    assert limiter.check("k") == 0.0
    assert limiter.check("k") == pytest.approx(120.0)


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(60, 0, 10), (60, -1, 10), (60, 1, 0)])
def test_bad_settings_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate_per_minute=rate, burst=burst, max_keys=max_keys)


def test_eviction_bounds_memory_and_drops_least_recently_used() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=1, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.check(key) == 0.0
    assert limiter.check("a") > 0  # "a" is now the most recently used; "b" the least
    assert limiter.check("d") == 0.0
    assert len(limiter) == 3
    assert limiter.check("a") > 0  # kept, still empty
    assert limiter.check("c") > 0  # kept, still empty
    assert limiter.check("b") == 0.0  # evicted, so it starts again with a full bucket
    for i in range(1000):
        limiter.check(f"many-{i}")
    assert len(limiter) == 3


def test_frozen_clock_threads_get_exactly_burst() -> None:
    burst = 50
    limiter = RateLimiter(rate_per_minute=60, burst=burst, clock=FakeClock())
    threads = 8
    calls_per_thread = 200
    start = threading.Barrier(threads)
    allowed = [0] * threads
    refused = [0] * threads

    def hammer(index: int) -> None:
        start.wait()
        for _ in range(calls_per_thread):
            if limiter.check("shared") == 0.0:
                allowed[index] += 1
            else:
                refused[index] += 1

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    # Switch threads far more often than the default 5 ms, so that an unlocked read-modify-write would interleave.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert not any(worker.is_alive() for worker in workers)
    assert sum(allowed) == burst
    assert sum(refused) == threads * calls_per_thread - burst


# -- the rate limit shared by every process on PostgreSQL ----------------------------------------------------


def test_shared_limit_counts_every_process_and_threads_get_exactly_burst() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from service.keys import SharedRateLimiter
    from service.storage.db import Database
    from tests.conftest import fresh_postgres

    with fresh_postgres() as url:
        first, second = Database(url), Database(url)  # two processes' handles on one database
        first.migrate()
        a = SharedRateLimiter(first, rate_per_minute=6, burst=3)  # then one request per 10 s
        b = SharedRateLimiter(second, rate_per_minute=6, burst=3)
        assert [a.check("k1"), b.check("k1"), a.check("k1")] == [0.0, 0.0, 0.0]
        waits = [b.check("k1"), a.check("k1")]
        assert all(8.0 < w <= 10.0 for w in waits), waits  # the next token, 10 s after the burst began
        assert a.check("k2") == 0.0  # another key has its own
        # Refused requests are not counted: the wait does not grow.
        assert b.check("k1") <= waits[0]
        with ThreadPoolExecutor(16) as pool:
            allowed = sum(w == 0.0 for w in pool.map(lambda i: (a if i % 2 else b).check("k3"), range(64)))
        assert allowed == 3
        assert SharedRateLimiter(first, rate_per_minute=0, burst=0).check("k1") == 0.0  # off: no query either
        first.close()
        second.close()


def test_two_replicas_on_one_database_share_the_limit(tiny_dirs: dict, engines: dict) -> None:
    from service.auth import Role
    from tests.conftest import fresh_postgres, keyed_settings, make_keys, serve

    with fresh_postgres() as url:
        key = make_keys(url, (Role.TRANSLATOR,))["translator"].key
        settings = keyed_settings(tiny_dirs["marian"], url, rate_limit_per_minute=6, rate_limit_burst=3, runners=0)
        auth = {"Authorization": f"Bearer {key}"}
        with serve(settings, engines["marian"]) as one, serve(settings, engines["marian"]) as two:
            answers = [live.client.get("/v1/glossaries", headers=auth) for live in (one, two, one, two)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[-1].json()["error"]["code"] == "rate_limited"
        assert int(answers[-1].headers["retry-after"]) >= 9
