"""Settings and inputs the README promises to refuse, or to read one way: a limit or duration of 0
stops every command unless the README says what 0 means; an empty text setting is its default;
a blank API key name is refused, as the CLI refuses it; a key whose successor was revoked can
be rotated again; and what the README says of the routes an audit found it silent on."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_origin

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from models.engine import Engine
from service.auth import Role
from service.config import Settings
from service.keys import KeyNotRotatable, create_key, key_state, revoke_key, rotate_key
from service.schemas import TermIn
from service.storage.db import Database
from service.storage.tables import ApiKey, utcnow
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_settings_errors import _section, one_line_error, run

# The numbers whose 0 means something, which the README's configuration table says.
ZERO_MEANS = {
    "cpu_threads",  # every core
    "port",  # any free port
    "max_length_extra",  # no tokens added to the output cap
    "max_wait_ms",  # no wait for a fuller batch
    "cache_size",  # no cache
    "runners",  # jobs left to `duiyi worker`
    "metrics_port",  # no metrics listener
    "rate_limit_per_minute",  # no rate limit
}
PUBLIC_URL = "https://news.example.com/duiyi"


def _flat(text: str) -> str:
    """`text` with its line breaks and runs of white space as single spaces (README prose is wrapped)."""
    return " ".join(text.split())


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable", ["DUIYI_MAX_PENDING_JOBS", "DUIYI_WEBHOOK_BACKOFF_BASE_S", "DUIYI_WEBHOOK_BACKOFF_CAP_S"]
)
def test_a_limit_of_0_stops_every_command(tmp_path: Path, variable: str) -> None:
    """0 pending jobs answered every article 503; backoffs of 0 spent a dead receiver's 40 tries
    in seconds instead of a day. Both were taken silently."""
    name = variable.removeprefix("DUIYI_").lower()
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path), variable: "0"})
    one_line_error(done, f"duiyi: setting {name} ({variable}): ", "greater than 0")
    assert not (tmp_path / "duiyi.db").exists()


def test_only_the_numbers_whose_0_the_readme_explains_take_0() -> None:
    rows: dict[str, str] = {}
    for line in _section("Configuration").splitlines():
        if line.startswith("| `DUIYI_"):
            names, _default, meaning = (c.strip() for c in line.strip().strip("|").split("|")[:3])
            for variable in re.findall(r"`DUIYI_([A-Z_]+)`", names):
                rows[variable.lower()] = meaning
    takes_0 = set()
    for name, field in Settings.model_fields.items():
        if field.annotation not in (int, float):
            continue
        try:
            Settings.model_validate({name: 0})
        except ValidationError:
            continue  # the README's rule: a limit or duration that is not positive is refused
        takes_0.add(name)
    assert takes_0 == ZERO_MEANS
    unexplained = [name for name in sorted(takes_0) if not re.search(r"\b0(:| disables|, none)", rows[name])]
    assert not unexplained, f"settings that take 0 without the README saying what it means: {unexplained}"


def _text_settings() -> list[str]:
    """The settings that are neither numbers, switches nor lists."""
    return [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation not in (int, float, bool) and get_origin(field.annotation) is not list
    ]


def test_an_empty_text_setting_is_its_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in [v for v in os.environ if v.upper().startswith("DUIYI_")]:
        monkeypatch.delenv(variable)
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    default = Settings()
    names = _text_settings()
    assert {"data_dir", "glossary_dir", "host", "model", "database_url"} <= set(names)
    for name in names:
        for value in ("", "  "):
            monkeypatch.setenv(f"DUIYI_{name.upper()}", value)
            assert getattr(Settings(), name) == getattr(default, name), (name, value)
        monkeypatch.delenv(f"DUIYI_{name.upper()}")
    # Before: Path("") is ".", so `DUIYI_DATA_DIR=` put the database in the current directory.
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": "", "XDG_DATA_HOME": str(xdg)})
    assert done.returncode == 0, done.stderr
    assert (xdg / "duiyi" / "duiyi.db").exists()
    assert list(here.iterdir()) == []


# --- over HTTP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Database, dict[str, str]]]:
    """The service with keys required and DUIYI_PUBLIC_URL set; no runners, so jobs stay queued."""
    url = f"sqlite:///{tmp_path_factory.mktemp('inputs') / 'duiyi.db'}"
    admin = make_keys(url, (Role.ADMIN,))["admin"].key
    db = Database(url)
    settings = keyed_settings(tiny_dirs["marian"], url, public_url=PUBLIC_URL, runners=0)
    with serve(settings, engines["marian"]) as server:
        yield server, db, _bearer(admin)
    db.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_name_is_trimmed_and_may_not_be_blank(live: tuple[LiveServer, Database, dict[str, str]]) -> None:
    server, db, admin = live
    for name in ("", "   ", "\t\n"):
        r = server.client.post("/v1/keys", json={"name": name, "role": "cms"}, headers=admin)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"] == {
            "code": "invalid_request",
            "message": "name: must not be blank; name who uses the key",
        }
    made = server.client.post("/v1/keys", json={"name": "  night desk  ", "role": "translator"}, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "night desk"
    # The same name spelt with spaces around it is the same name.
    taken = server.client.post("/v1/keys", json={"name": "night desk ", "role": "cms"}, headers=admin)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken", taken.text
    # One rule: `create_key`, which `duiyi keys create` calls, trims and refuses the same way.
    assert create_key(db, name=" wire desk\n", role=Role.CMS).row.name == "wire desk"
    with pytest.raises(ValueError, match="must not be blank"):
        create_key(db, name="  ", role=Role.CMS)


def test_a_key_whose_successor_was_revoked_can_be_rotated_again(
    live: tuple[LiveServer, Database, dict[str, str]],
) -> None:
    """Key 4 rotated with an overlap to key 6, and 6 revoked (it leaked): 4 said "rotate its
    successor, key 6" and 6 "a revoked key cannot be rotated", so the owner could only start over
    with a new key, losing its revision chains and idempotency keys."""
    server, db, admin = live
    cms = create_key(db, name="herald", role=Role.CMS)
    old = _bearer(cms.key)
    v1 = {"body": "The bridge reopened.", "external_id": "herald-1", "revision": "1"}
    first = server.client.post("/v1/articles", json=v1, headers=old)
    assert first.status_code == 202, first.text

    rotated = server.client.post(f"/v1/keys/{cms.row.id}/rotate", json={"overlap": "1h"}, headers=admin)
    assert rotated.status_code == 201, rotated.text
    leaked = rotated.json()
    assert server.client.delete(f"/v1/keys/{leaked['id']}", headers=admin).status_code == 200

    # A longer overlap than the old key has left: it keeps the end it had.
    again = server.client.post(f"/v1/keys/{cms.row.id}/rotate", json={"overlap": "2h"}, headers=admin)
    assert again.status_code == 201, again.text
    body = again.json()
    assert body["id"] not in (cms.row.id, leaked["id"])
    assert (body["name"], body["role"], body["owner"]) == ("herald", "cms", f"key:{cms.row.id}")
    assert body["replaced"]["id"] == cms.row.id and body["replaced"]["revoked_at"] is None
    assert datetime.fromisoformat(body["replaced"]["expires_at"]) == datetime.fromisoformat(
        leaked["replaced"]["expires_at"]
    )
    new = _bearer(body["key"])

    # The new key is the owner's: it reads the article, and its correction joins the chain.
    assert server.client.get(f"/v1/articles/{first.json()['id']}", headers=new).status_code == 200
    v2 = server.client.post(
        "/v1/articles", json={**v1, "body": "The bridge reopened at noon.", "revision": "2"}, headers=new
    )
    assert v2.status_code == 202, v2.text
    assert v2.json()["previous_id"] == first.json()["id"]
    assert server.client.get("/v1/articles", headers=old).status_code == 200  # still in its overlap
    assert server.client.get("/v1/articles", headers=_bearer(leaked["key"])).status_code == 401
    states = {k["id"]: k["state"] for k in server.client.get("/v1/keys", headers=admin).json()}
    assert (states[cms.row.id], states[leaked["id"]], states[body["id"]]) == ("expiring", "revoked", "active")

    # With a working successor again, that one is the key to rotate.
    refused = server.client.post(f"/v1/keys/{cms.row.id}/rotate", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_rotatable"
    assert refused.json()["error"]["message"].endswith(f"rotate its successor, key {body['id']}")


def test_past_a_revoked_successor_only_a_working_key_is_rotated(database_url: str) -> None:
    """On SQLite and PostgreSQL, whose partial unique index on the name the new key must pass: the
    revoked successor gives the name up. A key that no longer works is still not rotated."""
    db = Database(database_url)
    db.migrate()
    try:
        live = create_key(db, name="live", role=Role.CMS)
        leaked = rotate_key(db, live.row.id, overlap=timedelta(hours=1))
        assert leaked is not None
        revoke_key(db, leaked.new.row.id)
        again = rotate_key(db, live.row.id, overlap=timedelta(0))
        assert again is not None and again.new.row.name == "live"
        assert again.old.revoked_at is not None  # no overlap this time: the old key at once
        with db.session() as session:
            gave_up = session.get(ApiKey, leaked.new.row.id)
            assert gave_up is not None and gave_up.expires_at == gave_up.revoked_at
            assert key_state(gave_up).startswith("revoked ")

        expired = create_key(db, name="expired", role=Role.CMS)
        successor = rotate_key(db, expired.row.id, overlap=timedelta(hours=1))
        assert successor is not None
        revoke_key(db, successor.new.row.id)
        with db.session() as session:
            session.execute(
                update(ApiKey).where(ApiKey.id == expired.row.id).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        with pytest.raises(
            KeyNotRotatable, match=r"has expired .*; an expired key cannot be rotated: create a new key"
        ):
            rotate_key(db, expired.row.id)
        at_once = create_key(db, name="at-once", role=Role.CMS)
        successor = rotate_key(db, at_once.row.id)  # the old key revoked at once
        assert successor is not None
        revoke_key(db, successor.new.row.id)
        with pytest.raises(KeyNotRotatable, match="a revoked key cannot be rotated"):
            rotate_key(db, at_once.row.id)
    finally:
        db.close()


# --- what the README says of the routes ---------------------------------------------------------


def _api_row(start: str) -> str:
    return _flat(next(line for line in _section("HTTP API").splitlines() if line.startswith(start)))


def test_the_readme_gives_a_glossary_terms_body() -> None:
    row = _api_row("| `PUT`, `DELETE /v1/glossaries/{name}/terms/{id}`")
    glossaries = _flat(_section("Glossaries"))
    for field in TermIn.model_fields:
        assert f'"{field}"' in row, field
        assert f"`{field}`" in glossaries, field


def test_the_readme_says_how_articles_are_listed(live: tuple[LiveServer, Database, dict[str, str]]) -> None:
    server, _db, admin = live
    row = _api_row("| `GET /v1/articles?")
    parameters = server.client.get("/openapi.json").json()["paths"]["/v1/articles"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")["schema"]
    assert f"`limit`: {limit['default']} unless given, at most {limit['maximum']}" in row
    assert "`status=queued&status=failed`, not separated by commas" in row and "`next_since`" in row
    several = server.client.get("/v1/articles?status=queued&status=failed", headers=admin)
    assert several.status_code == 200 and "next_since" in several.json()
    commas = server.client.get("/v1/articles?status=queued,failed", headers=admin)
    assert commas.status_code == 422, commas.text


def test_links_stay_relative_with_a_public_url(live: tuple[LiveServer, Database, dict[str, str]]) -> None:
    server, _db, admin = live
    r = server.client.post("/v1/articles", json={"body": "The port reopened."}, headers=admin)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/articles/{r.json()['id']}"
    assert r.json()["links"]["self"] == r.headers["location"]
    jobs = _flat(_section("Article jobs"))
    assert "are paths relative to the service (`/v1/articles/<id>`), with `DUIYI_PUBLIC_URL` set too" in jobs
    webhooks = _flat(_section("Webhooks"))
    assert "it makes webhooks' links absolute, not the API's answers'" in webhooks
    assert "at least what a `Retry-After` asks up to that cap: a longer `Retry-After` waits the cap" in webhooks


def test_the_readme_says_what_memory_upkeep_does_with_odd_input(
    live: tuple[LiveServer, Database, dict[str, str]],
) -> None:
    server, _db, admin = live
    # An article id that gave the memory nothing (here: none ever had it) removes nothing: 200.
    forgotten = server.client.delete("/v1/memory/articles/no-such-article", headers=admin)
    assert forgotten.status_code == 200 and forgotten.json() == {"removed": 0, "kept": 0}
    assert "answers 200 with both 0, an unknown one too" in _api_row("| `DELETE /v1/memory/articles/{id}`")
    # Markup in a correction is text.
    tmx = b"""<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="t" creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en"
 srclang="en" datatype="plaintext"/><body>
<tu><tuv xml:lang="en"><seg>The ferry sailed at dawn.</seg></tuv><tuv xml:lang="zh-CN"><seg>X</seg></tuv></tu>
</body></tmx>"""
    imported = server.client.post(
        "/v1/memory/import", content=tmx, headers={**admin, "Content-Type": "application/xml"}
    )
    assert imported.status_code == 200, imported.text
    found = server.client.get("/v1/memory/search", params={"q": "ferry sailed"}, headers=admin).json()
    entry = found["memory"][0]["id"]
    corrected = server.client.patch(
        f"/v1/memory/entries/{entry}", json={"target": "<b>渡轮</b>黎明启航。"}, headers=admin
    )
    assert corrected.status_code == 200 and corrected.json()["target"] == "<b>渡轮</b>黎明启航。", corrected.text
    memory = _flat(_section("Translation memory"))
    assert "markup in it, `<b>` or `**`, is stored as the characters typed" in memory
