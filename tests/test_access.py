"""API keys, roles and rate limits through the real HTTP service. The role table is written here
independently of the code, and checked against every operation in the OpenAPI document, so a new
route without a decision fails this test."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.engine import Engine
from service.auth import Role
from service.config import Settings
from service.keys import create_key, revoke_key
from service.storage.db import Database
from tests.conftest import REPO, LiveServer, keyed_settings, make_keys, serve

ALL = {"cms", "translator", "admin"}
EDITORS = {"translator", "admin"}
ADMIN = {"admin"}
# (method, path) → roles allowed. Everything else answers 403 to a valid key of another role.
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/translate"): ALL,
    ("POST", "/v1/articles"): {"cms", "admin"},
    ("GET", "/v1/articles"): ALL,
    ("GET", "/v1/articles/{job_id}"): ALL,
    ("DELETE", "/v1/articles/{job_id}"): {"cms", "admin"},
    ("GET", "/v1/articles/{job_id}/deliveries"): ALL,
    ("POST", "/v1/articles/{job_id}/deliveries/{delivery_id}/redeliver"): {"cms", "admin"},
    ("POST", "/v1/articles/{job_id}/review"): EDITORS,
    ("PATCH", "/v1/articles/{job_id}/segments/{segment_id}"): EDITORS,
    ("POST", "/v1/articles/{job_id}/segments/{segment_id}/approve"): EDITORS,
    ("POST", "/v1/articles/{job_id}/segments/{segment_id}/variants/{variant}/unlock"): EDITORS,
    ("POST", "/v1/articles/{job_id}/approve"): EDITORS,
    ("GET", "/v1/glossaries"): ALL,
    ("GET", "/v1/glossaries/{name}"): ALL,
    ("GET", "/v1/glossaries/{name}/export"): ALL,
    ("GET", "/v1/articles/{job_id}/export"): ALL,
    ("POST", "/v1/articles/{job_id}/import"): EDITORS,
    ("GET", "/v1/articles/{job_id}/segments/{segment_id}/suggestions"): EDITORS,
    ("GET", "/v1/articles/{job_id}/segments/{segment_id}/history"): ALL,
    # Queries: a cms key too (its owner's articles only), so a desk editor in the CMS can answer.
    ("GET", "/v1/articles/{job_id}/comments"): ALL,
    ("POST", "/v1/articles/{job_id}/segments/{segment_id}/comments"): ALL,
    ("POST", "/v1/articles/{job_id}/comments/{comment_id}/resolve"): ALL,
    ("POST", "/v1/articles/{job_id}/comments/{comment_id}/reopen"): ALL,
    ("POST", "/v1/memory/import"): ADMIN,
    ("PATCH", "/v1/memory/entries/{entry_id}"): ADMIN,
    ("DELETE", "/v1/memory/entries/{entry_id}"): ADMIN,
    ("DELETE", "/v1/memory/articles/{job_id}"): ADMIN,
    ("GET", "/v1/memory/export"): EDITORS,
    ("GET", "/v1/memory/search"): EDITORS,
    ("PUT", "/v1/glossaries/{name}"): ADMIN,
    ("PUT", "/v1/glossaries/{name}/terms/{term_id}"): ADMIN,
    ("DELETE", "/v1/glossaries/{name}/terms/{term_id}"): ADMIN,
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    ("POST", "/v1/keys/{key_id}/rotate"): ADMIN,
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def secured(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str], Database]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, suffix="-1").items()}
    db = Database(url)
    with serve(keyed_settings(tiny_dirs["marian"], url, job_poll_s=1.0), engines["marian"]) as live:
        yield live, keys, db
    db.close()


def operations(spec: dict) -> set[tuple[str, str]]:
    """The document's operations but HEAD, which each GET has beside it (answered as the GET,
    under the GET's role decision)."""
    found = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert {(m, p) for m, p in found if m == "HEAD"} == {("HEAD", p) for m, p in found if m == "GET"}
    return {(m, p) for m, p in found if m != "HEAD"}


def concrete(path: str) -> str:
    return re.sub(r"\{key_id\}", "999", re.sub(r"\{(?!key_id)[a-z_]+\}", "x", path))


def test_every_operation_has_a_role_decision(secured: tuple[LiveServer, dict[str, str], Database]) -> None:
    live, _, _ = secured
    spec = live.client.get("/openapi.json").json()
    assert operations(spec) == set(EXPECTED) | PUBLIC
    for method, path in EXPECTED:
        documented = set(spec["paths"][path][method.lower()]["responses"])
        assert {"401", "403", "429"} <= documented, (method, path)
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_roles_enforced(secured: tuple[LiveServer, dict[str, str], Database], method: str, path: str) -> None:
    live, keys, _ = secured
    url = concrete(path)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    anonymous = live.client.request(method, url, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "unauthorized"
    for role, key in keys.items():
        r = live.client.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"})
        if role in EXPECTED[(method, path)]:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC))
def test_probes_are_public(secured: tuple[LiveServer, dict[str, str], Database], method: str, path: str) -> None:
    live, _, _ = secured
    assert live.client.request(method, path).status_code == 200


def test_bad_and_revoked_keys(secured: tuple[LiveServer, dict[str, str], Database]) -> None:
    live, keys, db = secured
    for header in ("Bearer nonsense", f"Bearer {keys['admin']}x", "Basic abc", f"Bearer {keys['admin'][:-3]}"):
        r = live.client.get("/v1/glossaries", headers={"Authorization": header})
        assert r.status_code == 401, header
    spare = create_key(db, name="spare", role=Role.CMS)
    auth = {"Authorization": f"Bearer {spare.key}"}
    assert live.client.get("/v1/glossaries", headers=auth).status_code == 200
    revoke_key(db, spare.row.id)
    assert live.client.get("/v1/glossaries", headers=auth).status_code == 401


def test_admin_manages_keys_over_http(secured: tuple[LiveServer, dict[str, str], Database]) -> None:
    live, keys, _ = secured
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    made = live.client.post("/v1/keys", json={"name": "desk-2", "role": "translator"}, headers=admin)
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["key"].startswith(f"duiyi_{new['lookup']}_")
    listed = live.client.get("/v1/keys", headers=admin).json()
    assert "desk-2" in [k["name"] for k in listed]
    assert all("key" not in k for k in listed)
    # The new key works with its role, and not beyond it.
    own = {"Authorization": f"Bearer {new['key']}"}
    assert live.client.get("/v1/articles", headers=own).status_code == 200
    assert live.client.get("/v1/keys", headers=own).status_code == 403
    dup = live.client.post("/v1/keys", json={"name": "desk-2", "role": "cms"}, headers=admin)
    assert dup.status_code == 409
    assert live.client.delete(f"/v1/keys/{new['id']}", headers=admin).json()["revoked_at"]
    assert live.client.get("/v1/articles", headers=own).status_code == 401


def _translated(live: LiveServer, job_id: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 120
    while True:
        job = live.client.get(f"/v1/articles/{job_id}", headers=headers).json()
        if job["status"] == "translated" or time.monotonic() > deadline:
            assert job["status"] == "translated", job
            return job
        time.sleep(0.2)


def test_cms_keys_see_only_their_owners_articles(secured: tuple[LiveServer, dict[str, str], Database]) -> None:
    """Every operation on one article, asked by a cms key of another owner, is a 404 exactly like
    for an article that does not exist (or a 403 where the role may not do it at all); lists leave
    it out. Its own cms key, translators and admins see it."""
    live, keys, db = secured
    auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    theirs = {"Authorization": f"Bearer {create_key(db, name='cms-elsewhere', role=Role.CMS).key}"}
    sent = {"body": "The council met on Tuesday.", "external_id": "scoped-1", "revision": "1"}
    job_id = live.client.post("/v1/articles", json=sent, headers=auth["cms"]).json()["id"]
    _translated(live, job_id, auth["cms"])
    absent = str(uuid.uuid4())

    spec = live.client.get("/openapi.json").json()
    on_one_article = sorted((m, p) for m, p in operations(spec) if "{job_id}" in p)
    assert len(on_one_article) >= 12
    for method, path in on_one_article:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        url = path.replace("{segment_id}", "x").replace("{delivery_id}", "x")
        r = live.client.request(method, url.replace("{job_id}", job_id), json=body, headers=theirs)
        if "cms" not in EXPECTED[(method, path)]:
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            continue
        nothing = live.client.request(method, url.replace("{job_id}", absent), json=body, headers=theirs)
        assert r.status_code == nothing.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json() == {"error": {"code": "not_found", "message": f"no article job {job_id!r}"}}, (method, path)
        assert r.text.replace(job_id, absent) == nothing.text, (method, path)

    listed = live.client.get("/v1/articles", params={"limit": 500}, headers=theirs).json()["items"]
    assert job_id not in [a["id"] for a in listed]
    assert live.client.get("/v1/articles", params={"external_id": "scoped-1"}, headers=theirs).json()["items"] == []
    # The other CMS's DELETE did nothing; whoever may see the article still does.
    for role in ("cms", "translator", "admin"):
        assert live.client.get(f"/v1/articles/{job_id}", headers=auth[role]).status_code == 200, role
        assert live.client.get(f"/v1/articles/{job_id}/export", headers=auth[role]).status_code == 200, role
        listed = live.client.get("/v1/articles", params={"limit": 500}, headers=auth[role]).json()["items"]
        assert job_id in [a["id"] for a in listed], role
    # Another owner's resubmission of the same external_id and revision is its own article.
    other = live.client.post("/v1/articles", json=sent, headers=theirs)
    assert other.status_code == 202 and other.json()["id"] != job_id and other.json()["previous_id"] is None


def _rate_limited(tiny_dirs: dict[str, Path], url: str) -> Settings:
    """Keys required, bursts of 3 requests, then one every 10 s."""
    return Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=url,
        auth_disabled=False,
        rate_limit_per_minute=6,
        rate_limit_burst=3,
    )


def test_rate_limit_per_key(tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    db = Database(url)
    db.migrate()
    a, b = (create_key(db, name=n, role=Role.CMS).key for n in ("a", "b"))
    settings = _rate_limited(tiny_dirs, url)
    with serve(settings, engines["marian"]) as live:
        codes = [live.client.get("/v1/glossaries", headers={"Authorization": f"Bearer {a}"}) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert codes[-1].json()["error"]["code"] == "rate_limited"
        assert 1 <= int(codes[-1].headers["retry-after"]) <= 10
        assert live.client.get("/v1/glossaries", headers={"Authorization": f"Bearer {b}"}).status_code == 200
    db.close()


def test_a_rotated_key_and_its_successor_share_one_rate_limit(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path
) -> None:
    """During the overlap both keys work: they count against one limit, so rotation never doubles it."""
    from datetime import timedelta

    from service.keys import rotate_key

    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    db = Database(url)
    db.migrate()
    made = create_key(db, name="cms", role=Role.CMS)
    rotated = rotate_key(db, made.row.id, overlap=timedelta(hours=1))
    assert rotated is not None
    settings = _rate_limited(tiny_dirs, url)
    with serve(settings, engines["marian"]) as live:
        codes = [
            live.client.get("/v1/glossaries", headers={"Authorization": f"Bearer {key}"}).status_code
            for key in (made.key, rotated.new.key, made.key, rotated.new.key)
        ]
    assert codes == [200, 200, 200, 429]
    db.close()


def test_auth_cannot_be_off_by_accident(tmp_path: Path) -> None:
    assert Settings().auth_disabled is False


def test_keys_cli(tmp_path: Path) -> None:
    env = {"DUIYI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def duiyi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    made = duiyi("keys", "create", "--role", "cms", "--name", "the-cms")
    assert made.returncode == 0, made.stderr
    key = re.search(r"^duiyi_[0-9a-f]{8}_\S+$", made.stdout, re.M)
    assert key, made.stdout
    assert "whsec_" in made.stdout
    listed = duiyi("keys", "list")
    assert "the-cms" in listed.stdout and key.group(0) not in listed.stdout
    db = Database(f"sqlite:///{tmp_path / 'duiyi.db'}")
    from service.keys import authenticate

    row = authenticate(db, key.group(0).split("_")[1], key.group(0))
    assert row is not None and row.role == "cms"
    again = duiyi("keys", "create", "--role", "cms", "--name", "the-cms")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert duiyi("keys", "revoke", str(row.id)).returncode == 0
    assert authenticate(db, key.group(0).split("_")[1], key.group(0)) is None
    assert duiyi("keys", "create", "--role", "boss", "--name", "x").returncode == 2
    db.close()
