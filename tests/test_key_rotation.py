"""Rotating an API key: the new key has the old one's owner, so a CMS's corrections and retries
carry on from its earlier articles; the old key works until the overlap ends and is then refused
like a revoked one. A rotation may replace the webhook secret too: webhooks carry a signature with
each secret during the overlap, and the new one's alone after it. On SQLite and PostgreSQL, through
the functions, the HTTP API (with a real webhook receiver) and the CLI; and revision 0007, which
gives existing keys their owner."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import inspect, text, update

from models.engine import Engine
from service.auth import WEBHOOK_SECRET_PREFIX, Role, parse_duration, parse_overlap
from service.config import Settings
from service.jobs.deliveries import signing_secret, signing_secrets
from service.keys import (
    KeyNameTaken,
    KeyNotRotatable,
    RotatedKey,
    authenticate,
    create_key,
    key_state,
    owner_webhook_secrets,
    revoke_key,
    rotate_key,
)
from service.storage.db import Database, alembic_config
from service.storage.tables import ApiKey, Delivery, utcnow
from service.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import REPO, LiveServer, WebhookReceiver, keyed_settings, make_keys, serve
from tests.test_webhook_delivery import readme_verify


def _auth(db: Database, key: str) -> ApiKey | None:
    return authenticate(db, key.split("_")[1], key)


def _expire(db: Database, key_id: int) -> None:
    """The end of a key's overlap, reached now rather than by waiting for it."""
    with db.session() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(expires_at=utcnow() - timedelta(seconds=1)))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


# --- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0", timedelta(0)),
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        (" 24H ", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_durations(spec: str, expected: timedelta) -> None:
    assert parse_duration(spec) == expected


@pytest.mark.parametrize("spec", ["", " ", "soon", "-1h", "1.5h", "h", "30m1h", "1 h", "٣h", "²", "1w"])
def test_bad_durations_say_what_to_write(spec: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration; write e\.g\. 30m, 24h"):
        parse_duration(spec)


def test_overlap_is_at_most_30_days() -> None:
    assert parse_overlap("30d") == timedelta(days=30)
    with pytest.raises(ValueError, match="longer than the 30 days allowed"):
        parse_overlap("30d1s")
    with pytest.raises(ValueError, match="far too long"):
        parse_overlap("9" * 30 + "d")


# --- the database ----------------------------------------------------------------------------------


def test_a_new_key_owns_what_it_submits(db: Database) -> None:
    made = create_key(db, name="herald", role=Role.CMS)
    assert made.row.owner == f"key:{made.row.id}"
    assert made.row.expires_at is None
    assert key_state(made.row) == "active"


def test_rotation_at_once(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS, callback_url="https://cms.example.com/hook")
    rotated = rotate_key(db, old.row.id)
    assert isinstance(rotated, RotatedKey)
    new = rotated.new
    assert new.key != old.key and new.row.lookup != old.row.lookup and new.row.id != old.row.id
    same = ("name", "role", "callback_url", "webhook_secret", "owner")
    assert {f: getattr(new.row, f) for f in same} == {f: getattr(old.row, f) for f in same}
    assert new.row.owner == f"key:{old.row.id}"
    assert _auth(db, old.key) is None
    assert _auth(db, new.key) is not None
    assert rotated.old.revoked_at is not None
    assert key_state(rotated.old).startswith("revoked ")
    # A second rotation goes on from the new key, and keeps the first key's owner.
    again = rotate_key(db, new.row.id)
    assert again is not None and again.new.row.owner == f"key:{old.row.id}"


def test_rotation_with_an_overlap(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS)
    before = utcnow()
    rotated = rotate_key(db, old.row.id, overlap=timedelta(hours=24))
    assert rotated is not None
    assert rotated.old.revoked_at is None
    assert rotated.old.expires_at is not None
    assert before + timedelta(hours=24) <= rotated.old.expires_at <= utcnow() + timedelta(hours=24)
    assert key_state(rotated.old).startswith("expires ")
    # Both work during the overlap ...
    assert _auth(db, old.key) is not None
    assert _auth(db, rotated.new.key) is not None
    # ... and after it only the new one.
    _expire(db, old.row.id)
    assert _auth(db, old.key) is None
    assert _auth(db, rotated.new.key) is not None
    with db.session() as session:
        row = session.get(ApiKey, old.row.id)
        assert row is not None and key_state(row).startswith("expired ")


def test_what_cannot_be_rotated(db: Database) -> None:
    assert rotate_key(db, 999) is None
    gone = create_key(db, name="gone", role=Role.CMS)
    revoke_key(db, gone.row.id)
    with pytest.raises(KeyNotRotatable, match=r"was revoked on .*cannot be rotated: create a new key"):
        rotate_key(db, gone.row.id)
    live = create_key(db, name="live", role=Role.CMS)
    rotated = rotate_key(db, live.row.id, overlap=timedelta(hours=1))
    assert rotated is not None
    # The old key still works, but it has a successor already: that is the one to rotate.
    with pytest.raises(
        KeyNotRotatable, match=rf"rotated already \(expires .*\); rotate its successor, key {rotated.new.row.id}$"
    ):
        rotate_key(db, live.row.id)
    assert _auth(db, rotated.new.key) is not None  # nothing changed


def test_a_name_still_belongs_to_one_owner(db: Database) -> None:
    first = create_key(db, name="herald", role=Role.CMS)
    rotate_key(db, first.row.id, overlap=timedelta(hours=1))
    with pytest.raises(KeyNameTaken):
        create_key(db, name="herald", role=Role.CMS)
    other = create_key(db, name="gazette", role=Role.CMS)
    assert other.row.owner == f"key:{other.row.id}"


def test_two_rotations_at_once_make_one_successor(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS)
    results: list[object] = []
    start = threading.Barrier(2)

    def rotate() -> None:
        start.wait()
        try:
            results.append(rotate_key(db, old.row.id, overlap=timedelta(hours=1)))
        except KeyNotRotatable as exc:
            results.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(type(r).__name__ for r in results) == ["KeyNotRotatable", "RotatedKey"]
    with db.session() as session:
        owners = list(session.scalars(text("SELECT owner FROM api_keys")))
    assert owners == [f"key:{old.row.id}"] * 2


def _queued(db: Database, key: ApiKey) -> Delivery:
    """A webhook delivery queued now for an article submitted with `key` (not sent: no dispatcher runs)."""
    delivery = Delivery(
        id=str(uuid.uuid4()),
        job_id=None,
        api_key_id=key.id,
        event="article.withdrawn",
        url="https://cms.example.com/hook",
        payload="{}",
    )
    with db.session() as session:
        session.add(delivery)
    return delivery


def _signing(db: Database, delivery: Delivery) -> list[str]:
    with db.session() as session:
        row = session.get(Delivery, delivery.id)
        assert row is not None
        secrets = signing_secrets(session, row, Settings())
        assert signing_secret(session, row, Settings()) == (secrets[0] if secrets else None)
        return secrets


def test_rotation_can_replace_the_webhook_secret(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS, callback_url="https://cms.example.com/hook")
    before = _queued(db, old.row)  # queued before the rotation, sent after it
    assert _signing(db, before) == [old.row.webhook_secret]

    rotated = rotate_key(db, old.row.id, overlap=timedelta(hours=1), new_webhook_secret=True)
    assert rotated is not None and rotated.new_webhook_secret
    new_secret = rotated.new.row.webhook_secret
    assert new_secret.startswith(WEBHOOK_SECRET_PREFIX) and len(new_secret) > 40
    assert new_secret != old.row.webhook_secret
    assert rotated.old.webhook_secret == old.row.webhook_secret  # the old key's is kept, for the overlap
    same = ("name", "role", "callback_url", "owner")
    assert {f: getattr(rotated.new.row, f) for f in same} == {f: getattr(old.row, f) for f in same}
    during = _queued(db, old.row)  # the old key still works, and submits

    # During the overlap every delivery of the owner is signed with both, the new secret first,
    # whichever key queued it and whenever.
    both = [new_secret, old.row.webhook_secret]
    assert _signing(db, before) == _signing(db, during) == both
    with db.session() as session:
        for key_id in (old.row.id, rotated.new.row.id):
            row = session.get(ApiKey, key_id)
            assert row is not None and owner_webhook_secrets(session, row) == both

    # After it, the new one alone: a retry of a delivery queued before the rotation too.
    _expire(db, old.row.id)
    after = _queued(db, rotated.new.row)
    assert _signing(db, before) == _signing(db, during) == _signing(db, after) == [new_secret]


def test_revoking_the_old_key_ends_its_secrets_overlap(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS)
    queued = _queued(db, old.row)
    rotated = rotate_key(db, old.row.id, overlap=timedelta(days=7), new_webhook_secret=True)
    assert rotated is not None
    assert _signing(db, queued) == [rotated.new.row.webhook_secret, old.row.webhook_secret]
    revoke_key(db, old.row.id)  # the CMS deployed the new key and secret sooner
    assert _signing(db, queued) == [rotated.new.row.webhook_secret]


def test_a_new_webhook_secret_at_once_replaces_the_old_one_at_once(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS)
    queued = _queued(db, old.row)
    rotated = rotate_key(db, old.row.id, new_webhook_secret=True)  # no overlap: a leak, cut off now
    assert rotated is not None and rotated.old.revoked_at is not None
    assert _signing(db, queued) == [rotated.new.row.webhook_secret] != [old.row.webhook_secret]


def test_rotation_without_a_new_secret_keeps_it(db: Database) -> None:
    old = create_key(db, name="herald", role=Role.CMS)
    queued = _queued(db, old.row)
    rotated = rotate_key(db, old.row.id, overlap=timedelta(hours=1))
    assert rotated is not None and not rotated.new_webhook_secret
    assert rotated.new.row.webhook_secret == old.row.webhook_secret
    assert _signing(db, queued) == [old.row.webhook_secret]  # one signature, as before
    _expire(db, old.row.id)
    assert _signing(db, queued) == [old.row.webhook_secret]


def test_secrets_of_several_rotations_in_their_overlaps(db: Database) -> None:
    """A secret replaced twice within one overlap: each still-working key's secret signs, newest
    first; a rotation keeping the secret adds none."""
    first = create_key(db, name="herald", role=Role.CMS)
    queued = _queued(db, first.row)
    second = rotate_key(db, first.row.id, overlap=timedelta(hours=2), new_webhook_secret=True)
    assert second is not None
    third = rotate_key(db, second.new.row.id, overlap=timedelta(hours=1))
    assert third is not None
    fourth = rotate_key(db, third.new.row.id, overlap=timedelta(hours=1), new_webhook_secret=True)
    assert fourth is not None
    a, b, c = first.row.webhook_secret, second.new.row.webhook_secret, fourth.new.row.webhook_secret
    assert len({a, b, c}) == 3 and third.new.row.webhook_secret == b
    assert _signing(db, queued) == [c, b, a]
    _expire(db, first.row.id)
    assert _signing(db, queued) == [c, b]
    _expire(db, second.new.row.id)  # the key that kept the secret still works: b goes on
    assert _signing(db, queued) == [c, b]
    _expire(db, third.new.row.id)
    assert _signing(db, queued) == [c]


def test_migration_gives_existing_keys_their_owner(database_url: str) -> None:
    """Revision 0007 on keys made before it: each owns what it submitted ("key:<id>", as its jobs
    say), none expires, names stay unique; and it goes back down."""
    db = Database(database_url)
    cfg = alembic_config(db.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0006")
    insert = text(
        "INSERT INTO api_keys (id, name, role, lookup, key_hash, webhook_secret, created_at) "
        "VALUES (:id, :name, 'cms', :lookup, 'h', 'whsec_x', :now)"
    )
    with db.session() as session:
        for i in (3, 7):
            session.execute(insert, {"id": i, "name": f"cms-{i}", "lookup": f"0000000{i}", "now": utcnow()})
    command.upgrade(cfg, "0007")
    with db.session() as session:
        rows = session.execute(text("SELECT id, owner, expires_at FROM api_keys ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(3, "key:3", None), (7, "key:7", None)]
    with pytest.raises(KeyNameTaken):
        create_key(db, name="cms-3", role=Role.CMS)
    command.downgrade(cfg, "0006")
    with db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("api_keys")}
        uniques = [u["column_names"] for u in inspect(conn).get_unique_constraints("api_keys")]
    assert "owner" not in columns and "expires_at" not in columns
    assert ["name"] in uniques
    db.close()


# --- over HTTP --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_keys(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Database]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('rotation') / 'duiyi.db'}"
    make_keys(url, (Role.ADMIN,))
    db = Database(url)
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, db
    db.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _admin(db: Database) -> dict[str, str]:
    return _bearer(create_key(db, name=f"admin-{time.monotonic_ns()}", role=Role.ADMIN).key)


def test_rotated_key_keeps_the_cms_articles(live_keys: tuple[LiveServer, Database]) -> None:
    live, db = live_keys
    admin = _admin(db)
    cms = create_key(db, name="tribune", role=Role.CMS, callback_url=None)
    old = _bearer(cms.key)
    v1 = {"body": "The bridge reopened.", "external_id": "trib-9", "revision": "1"}
    first = live.client.post("/v1/articles", json=v1, headers={**old, "Idempotency-Key": "trib-9-1"})
    assert first.status_code == 202, first.text

    r = live.client.post(f"/v1/keys/{cms.row.id}/rotate", json={"overlap": "1h"}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "tribune" and body["role"] == "cms" and body["owner"] == f"key:{cms.row.id}"
    assert body["webhook_secret"] == cms.row.webhook_secret and body["new_webhook_secret"] is False
    assert body["replaced"]["id"] == cms.row.id and body["replaced"]["expires_at"]
    assert body["replaced"]["revoked_at"] is None
    new = _bearer(body["key"])

    # During the overlap both keys work, as the same owner.
    assert live.client.get(f"/v1/articles/{first.json()['id']}", headers=old).status_code == 200
    assert live.client.get(f"/v1/articles/{first.json()['id']}", headers=new).status_code == 200
    # A retry in flight, sent again with the new key, is the same article.
    retry = live.client.post("/v1/articles", json=v1, headers={**new, "Idempotency-Key": "trib-9-1"})
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == first.json()["id"]
    # A correction joins the revision chain.
    v2 = live.client.post(
        "/v1/articles", json={**v1, "body": "The bridge reopened at noon.", "revision": "2"}, headers=new
    )
    assert v2.status_code == 202, v2.text
    assert v2.json()["previous_id"] == first.json()["id"]
    listed = live.client.get("/v1/articles", params={"external_id": "trib-9"}, headers=new).json()["items"]
    assert {a["id"] for a in listed} == {first.json()["id"], v2.json()["id"]}

    keys = {k["id"]: k for k in live.client.get("/v1/keys", headers=admin).json()}
    assert keys[cms.row.id]["owner"] == keys[body["id"]]["owner"] == f"key:{cms.row.id}"
    assert keys[cms.row.id]["expires_at"] and keys[body["id"]]["expires_at"] is None
    assert (keys[cms.row.id]["state"], keys[body["id"]]["state"]) == ("expiring", "active")

    # After the overlap the old key is refused exactly like a revoked one.
    _expire(db, cms.row.id)
    expired = live.client.get("/v1/articles", headers=old)
    revoked_key = create_key(db, name="to-revoke", role=Role.CMS)
    revoke_key(db, revoked_key.row.id)
    revoked = live.client.get("/v1/articles", headers=_bearer(revoked_key.key))
    assert expired.status_code == revoked.status_code == 401
    assert expired.json() == revoked.json()
    assert expired.headers["www-authenticate"] == "Bearer"
    assert live.client.get("/v1/articles", headers=new).status_code == 200
    states = {k["id"]: k["state"] for k in live.client.get("/v1/keys", headers=admin).json()}
    assert (states[cms.row.id], states[revoked_key.row.id], states[body["id"]]) == ("expired", "revoked", "active")


def test_rotation_without_overlap_over_http(live_keys: tuple[LiveServer, Database]) -> None:
    live, db = live_keys
    admin = _admin(db)
    cms = create_key(db, name="courier", role=Role.CMS)
    r = live.client.post(f"/v1/keys/{cms.row.id}/rotate", headers=admin)  # no body: at once
    assert r.status_code == 201, r.text
    assert r.json()["replaced"]["revoked_at"]
    assert live.client.get("/v1/articles", headers=_bearer(cms.key)).status_code == 401
    assert live.client.get("/v1/articles", headers=_bearer(r.json()["key"])).status_code == 200
    # The old key is revoked: rotating it again is refused, saying why.
    again = live.client.post(f"/v1/keys/{cms.row.id}/rotate", json={}, headers=admin)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "not_rotatable"
    assert "revoked" in again.json()["error"]["message"]
    missing = live.client.post("/v1/keys/99999/rotate", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("overlap", ["soon", "-1h", "31d", ""])
def test_bad_overlap_is_a_422(live_keys: tuple[LiveServer, Database], overlap: str) -> None:
    live, db = live_keys
    admin = _admin(db)
    cms = create_key(db, name=f"bad-overlap-{time.monotonic_ns()}", role=Role.CMS)
    r = live.client.post(f"/v1/keys/{cms.row.id}/rotate", json={"overlap": overlap}, headers=admin)
    assert r.status_code == 422, r.text
    assert "overlap" in r.text
    assert _auth(db, cms.key) is not None  # nothing was rotated


def test_rotation_is_documented(live_keys: tuple[LiveServer, Database]) -> None:
    live, db = live_keys
    spec = live.client.get("/openapi.json").json()
    op = spec["paths"]["/v1/keys/{key_id}/rotate"]["post"]
    # Every status it answers: 400 (malformed JSON) and 413 (too large) from the request guard,
    # 422 for a bad overlap or flag, 405, 500 and 503 as everywhere.
    assert set(op["responses"]) == {"201", "400", "401", "403", "404", "405", "409", "413", "422", "429", "500", "503"}
    assert "overlap" in op["description"] and "401" in op["description"]
    assert "new_webhook_secret" in op["description"]
    schemas = spec["components"]["schemas"]
    assert schemas["KeyRotateIn"]["properties"]["new_webhook_secret"]["type"] == "boolean"
    assert "new_webhook_secret" in schemas["KeyRotated"]["required"]
    # And it does answer them.
    admin = _admin(db)
    cms = create_key(db, name=f"documented-{time.monotonic_ns()}", role=Role.CMS)
    path = f"/v1/keys/{cms.row.id}/rotate"
    json_type = {"Content-Type": "application/json"}
    assert live.client.post(path, content=b"{", headers={**admin, **json_type}).status_code == 400
    assert live.client.post(path, content=b"0" * 2_000_000, headers={**admin, **json_type}).status_code == 413
    bad_flag = live.client.post(path, json={"new_webhook_secret": "perhaps"}, headers=admin)
    assert bad_flag.status_code == 422 and "new_webhook_secret" in bad_flag.text
    assert _auth(db, cms.key) is not None  # nothing was rotated


def test_review_app_session_of_a_rotated_key_ends_with_its_overlap(live_keys: tuple[LiveServer, Database]) -> None:
    """Signed in to the review app with the old key during the overlap: the session ends with it."""
    live, db = live_keys
    translator = create_key(db, name="desk-rotating", role=Role.TRANSLATOR)
    rotated = rotate_key(db, translator.row.id, overlap=timedelta(hours=1))
    assert rotated is not None
    with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
        page = browser.get("/review/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        signed_in = browser.post("/review/login", data={"key": translator.key, "csrf_token": csrf.group(1)})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/review"
        assert browser.get("/review").status_code == 200
        _expire(db, translator.row.id)
        gone = browser.get("/review")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/review/login")


# --- webhooks signed with the old and the new secret, over HTTP --------------------------------------


def _delivery(live: LiveServer, job_id: str, headers: dict[str, str], state: str, attempts: int) -> dict[str, Any]:
    """The job's only delivery, once it is in `state` with at least `attempts` attempts recorded."""
    deadline = time.monotonic() + 30
    while True:
        r = live.client.get(f"/v1/articles/{job_id}/deliveries", headers=headers)
        assert r.status_code == 200, r.text
        found = r.json()
        if found and found[0]["state"] == state and len(found[0]["attempts"]) >= attempts:
            return dict(found[0])
        assert time.monotonic() < deadline, f"the delivery is not {state} with {attempts} attempt(s): {found}"
        time.sleep(0.05)


def _signatures(headers: dict[str, str]) -> list[str]:
    return [part.strip() for part in headers[SIGNATURE_HEADER].split(",")]


def test_webhooks_verify_with_either_secret_during_the_overlap_then_with_the_new_one(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], database_url: str, receiver: WebhookReceiver
) -> None:
    """A newsroom whose webhook secret may have leaked rotates its key with a new secret and a day's
    overlap. Its receiver, on the old secret until it deploys the new one, verifies every webhook of
    the overlap, those queued before the rotation included; after it, only the new secret verifies."""
    admin = _bearer(make_keys(database_url, (Role.ADMIN,))["admin"].key)
    db = Database(database_url)
    cms = create_key(db, name="leaky-herald", role=Role.CMS)
    old_secret = cms.row.webhook_secret
    other_secret = create_key(db, name="another-cms", role=Role.CMS).row.webhook_secret
    settings = keyed_settings(
        tiny_dirs["marian"],
        database_url,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=True,
        # A failed try is retried 5 to 10 minutes later: the tests bring retries forward with redeliver.
        webhook_backoff_base_s=600,
        webhook_backoff_cap_s=600,
    )

    def submit(key: str, title: str) -> str:
        article = {"body": f"{title} reopened.", "callback_url": receiver.url}
        r = live.client.post("/v1/articles", json=article, headers=_bearer(key))
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    with serve(settings, engines["marian"]) as live:
        # Two articles whose first tries fail before the rotation: retried after it, one during the
        # overlap and one after.
        receiver.script = [503, 503]
        early = submit(cms.key, "The bridge")
        late = submit(cms.key, "The tunnel")
        early_first = _delivery(live, early, _bearer(cms.key), "pending", 1)
        late_first = _delivery(live, late, _bearer(cms.key), "pending", 1)
        for delivery in (early_first, late_first):
            headers, body = receiver.last_for(delivery["id"])
            assert verify(old_secret, headers, body) and len(_signatures(headers)) == 1

        r = live.client.post(
            f"/v1/keys/{cms.row.id}/rotate", json={"overlap": "24h", "new_webhook_secret": True}, headers=admin
        )
        assert r.status_code == 201, r.text
        rotated = r.json()
        new_key, new_secret = rotated["key"], rotated["webhook_secret"]
        assert rotated["new_webhook_secret"] is True
        assert new_secret.startswith(WEBHOOK_SECRET_PREFIX) and new_secret != old_secret
        assert rotated["owner"] == f"key:{cms.row.id}" and rotated["replaced"]["expires_at"]
        # Shown in that answer only: the key list has neither secret.
        listed = live.client.get("/v1/keys", headers=admin)
        assert listed.status_code == 200 and rotated["id"] in {k["id"] for k in listed.json()}
        assert new_secret not in listed.text and old_secret not in listed.text
        assert all("webhook_secret" not in k for k in listed.json())

        # During the overlap: the delivery queued before the rotation, retried now ...
        again = live.client.post(
            f"/v1/articles/{early}/deliveries/{early_first['id']}/redeliver", headers=_bearer(new_key)
        )
        assert again.status_code == 202, again.text
        _delivery(live, early, _bearer(new_key), "delivered", 2)
        # ... and new articles, from the old key (still working) and the new one.
        during = [submit(cms.key, "The ferry"), submit(new_key, "The station")]
        sent = [receiver.last_for(early_first["id"])]
        sent += [receiver.last_for(_delivery(live, job, _bearer(new_key), "delivered", 1)["id"]) for job in during]
        readme = readme_verify()  # the snippet receivers copy from the README
        for headers, body in sent:
            assert verify(old_secret, headers, body), "the receiver on the old secret must verify it"
            assert verify(new_secret, headers, body), "the receiver on the new secret must verify it"
            assert readme(old_secret, headers, body) and readme(new_secret, headers, body)
            assert len(_signatures(headers)) == 2
            assert not verify(other_secret, headers, body)

        # After the overlap: only the new secret, on a retry of the delivery queued before the rotation too.
        _expire(db, cms.row.id)
        assert live.client.get("/v1/articles", headers=_bearer(cms.key)).status_code == 401
        again = live.client.post(
            f"/v1/articles/{late}/deliveries/{late_first['id']}/redeliver", headers=_bearer(new_key)
        )
        assert again.status_code == 202, again.text
        _delivery(live, late, _bearer(new_key), "delivered", 2)
        after = submit(new_key, "The harbour")
        sent = [receiver.last_for(late_first["id"])]
        sent.append(receiver.last_for(_delivery(live, after, _bearer(new_key), "delivered", 1)["id"]))
        for headers, body in sent:
            assert verify(new_secret, headers, body)
            assert not verify(old_secret, headers, body)
            assert len(_signatures(headers)) == 1

        # A later rotation without the flag keeps the (new) secret: one signature, as before.
        r = live.client.post(f"/v1/keys/{rotated['id']}/rotate", json={"overlap": "1h"}, headers=admin)
        assert r.status_code == 201, r.text
        assert r.json()["webhook_secret"] == new_secret and r.json()["new_webhook_secret"] is False
        kept = submit(r.json()["key"], "The airport")
        headers, body = receiver.last_for(_delivery(live, kept, _bearer(new_key), "delivered", 1)["id"])
        assert verify(new_secret, headers, body) and not verify(old_secret, headers, body)
        assert len(_signatures(headers)) == 1
    db.close()


# --- the CLI ----------------------------------------------------------------------------------------


def test_rotate_with_the_cli(tmp_path: Path) -> None:
    env = {"DUIYI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def duiyi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    made = duiyi("keys", "create", "--role", "cms", "--name", "the-cms")
    assert made.returncode == 0, made.stderr
    old_key = re.search(r"^duiyi_[0-9a-f]{8}_\S+$", made.stdout, re.M)
    assert old_key
    db = Database(f"sqlite:///{tmp_path / 'duiyi.db'}")
    old = _auth(db, old_key.group(0))
    assert old is not None

    assert duiyi("keys", "rotate", str(old.id), "--overlap", "soon").returncode == 2
    bad = duiyi("keys", "rotate", str(old.id), "--overlap", "soon")
    assert "--overlap" in bad.stderr and "not a duration" in bad.stderr
    assert _auth(db, old_key.group(0)) is not None  # nothing was rotated

    rotated = duiyi("keys", "rotate", str(old.id), "--overlap", "2h")
    assert rotated.returncode == 0, rotated.stderr
    new_key = re.search(r"^duiyi_[0-9a-f]{8}_\S+$", rotated.stdout, re.M)
    assert new_key and new_key.group(0) != old_key.group(0)
    assert f"key {old.id} keeps working until" in rotated.stdout
    new = _auth(db, new_key.group(0))
    assert new is not None and new.owner == f"key:{old.id}" and new.name == "the-cms"
    assert _auth(db, old_key.group(0)) is not None  # the overlap

    listed = duiyi("keys", "list").stdout.splitlines()
    assert len(listed) == 2
    assert all(line.endswith(f"owner key:{old.id}") for line in listed), listed
    assert "\texpires " in listed[0] and "\tactive\t" in listed[1]
    assert old_key.group(0) not in "\n".join(listed) and new_key.group(0) not in "\n".join(listed)

    again = duiyi("keys", "rotate", str(old.id))
    assert again.returncode == 2 and "rotated already" in again.stderr and f"successor, key {new.id}" in again.stderr
    now = duiyi("keys", "rotate", str(new.id))
    assert now.returncode == 0 and f"key {new.id} is revoked" in now.stdout
    assert _auth(db, new_key.group(0)) is None
    revoked = duiyi("keys", "rotate", str(new.id))
    assert revoked.returncode == 2 and "rotated already (revoked " in revoked.stderr
    gone = duiyi("keys", "create", "--role", "cms", "--name", "gone")
    gone_id = re.search(r"^(\d+)\tcms\tgone\t", duiyi("keys", "list").stdout, re.M)
    assert gone.returncode == 0 and gone_id
    assert duiyi("keys", "revoke", gone_id.group(1)).returncode == 0
    refused = duiyi("keys", "rotate", gone_id.group(1))
    assert refused.returncode == 2 and "a revoked key cannot be rotated: create a new key" in refused.stderr
    assert duiyi("keys", "rotate", "999").returncode == 2
    db.close()


def test_rotate_with_a_new_webhook_secret_with_the_cli(tmp_path: Path) -> None:
    env = {"DUIYI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def duiyi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    def secrets_in(out: str) -> list[str]:
        return re.findall(rf"^{WEBHOOK_SECRET_PREFIX}\S+$", out, re.M)

    made = duiyi("keys", "create", "--role", "cms", "--name", "the-cms")
    assert made.returncode == 0, made.stderr
    [old_secret] = secrets_in(made.stdout)
    old_key = re.search(r"^duiyi_[0-9a-f]{8}_\S+$", made.stdout, re.M)
    db = Database(f"sqlite:///{tmp_path / 'duiyi.db'}")
    old = _auth(db, old_key.group(0)) if old_key else None
    assert old is not None
    old_id = old.id

    kept = duiyi("keys", "rotate", str(old_id), "--overlap", "2h")
    assert kept.returncode == 0, kept.stderr
    assert "the webhook secret is unchanged" in kept.stdout and secrets_in(kept.stdout) == []
    new_id = re.search(r"^new key (\d+) ", kept.stdout, re.M)
    assert new_id

    rotated = duiyi("keys", "rotate", new_id.group(1), "--overlap", "2h", "--new-webhook-secret")
    assert rotated.returncode == 0, rotated.stderr
    [new_secret] = secrets_in(rotated.stdout)
    assert new_secret != old_secret
    assert "shown only now" in rotated.stdout
    assert "signed with the old and the new secret, then with the new one alone" in rotated.stdout
    newest = re.search(r"^duiyi_[0-9a-f]{8}_\S+$", rotated.stdout, re.M)
    row = _auth(db, newest.group(0)) if newest else None
    assert row is not None and row.webhook_secret == new_secret and row.owner == f"key:{old_id}"

    listed = duiyi("keys", "list").stdout
    assert len(listed.splitlines()) == 3 and WEBHOOK_SECRET_PREFIX not in listed
    help_text = duiyi("keys", "rotate", "--help").stdout
    assert "--new-webhook-secret" in help_text
    db.close()
