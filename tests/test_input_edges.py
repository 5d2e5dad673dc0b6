"""Input at the edges of what ids, queries and bodies may hold, through the real HTTP server on
SQLite and on PostgreSQL, which must answer alike: a NUL in an id or a query (text PostgreSQL cannot
even look for) is a 404 or a 422, never a 500; integer ids beyond the 4-byte id columns are refused
before the database; a `since` no database can hold is a 422; the review app's JSON API answers bad
bodies as /v1 does and takes no longer segment text; an XLIFF import no longer target; ids from a URL
are quoted in the log; and a few answers the API fuzz audit found wrong (a segment's history, the
review app's state with `If-None-Match: *`, `/v1/articles/`)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lxml import etree

from models.engine import Engine
from service.schemas import MAX_ROW_ID, MAX_SEGMENT_TEXT
from tests.conftest import DATABASES, LiveServer, fresh_postgres, keyed_settings, make_keys, serve

ARTICLE = "Boats left the harbour at dawn.\n\nThe talks will continue on Monday."
XLIFF = "urn:oasis:names:tc:xliff:document:2.0"


@dataclass
class Site:
    live: LiveServer
    auth: dict[str, dict[str, str]]  # role → its Authorization header
    keys: dict[str, str]  # role → its key
    job_id: str

    @property
    def client(self) -> httpx.Client:
        return self.live.client


@pytest.fixture(scope="module", params=DATABASES)
def site(
    request: pytest.FixtureRequest,
    tiny_dirs: dict[str, Path],
    engines: dict[str, Engine],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """The service with API keys on a fresh database of each kind, with one translated article."""
    if request.param == "sqlite":
        database: AbstractContextManager[str] = nullcontext(
            f"sqlite:///{tmp_path_factory.mktemp('input-edges') / 'duiyi.db'}"
        )
    else:
        database = fresh_postgres()
    with database as url:
        keys = {role: made.key for role, made in make_keys(url, suffix="-edges").items()}
        with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
            auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
            sent = live.client.post("/v1/articles", json={"body": ARTICLE, "targets": ["zh-Hans"]}, headers=auth["cms"])
            assert sent.status_code == 202, sent.text
            job_id = sent.json()["id"]
            deadline = time.monotonic() + 60
            while live.client.get(f"/v1/articles/{job_id}", headers=auth["cms"]).json()["status"] != "translated":
                assert time.monotonic() < deadline, "the article was not translated"
                time.sleep(0.05)
            yield Site(live, auth, keys, job_id)


@contextmanager
def review_client(site: Site, role: str = "admin") -> Iterator[tuple[httpx.Client, str]]:
    """A client of its own signed in to the review app with `role`'s key, and its CSRF token."""
    with httpx.Client(base_url=site.live.url, follow_redirects=False) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
        assert token
        signed = client.post("/review/login", data={"key": site.keys[role], "csrf_token": token.group(1)})
        assert signed.status_code == 303, signed.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/review").text)
        assert csrf
        yield client, csrf.group(1)


def not_found(r: httpx.Response, what: str) -> None:
    assert r.status_code == 404, (what, r.status_code, r.text)
    assert r.json()["error"]["code"] == "not_found", what


def segment_of(site: Site, segment_id: str = "b0.s0") -> dict:
    job = site.client.get(f"/v1/articles/{site.job_id}", headers=site.auth["admin"]).json()
    return next(s for b in job["document"]["blocks"] for s in b["segments"] if s["id"] == segment_id)


# --- NUL in ids and queries ----------------------------------------------------------------------


def test_an_id_holding_a_nul_is_not_found_on_every_v1_route(site: Site) -> None:
    job = site.job_id
    edit = {"text": "港口。", "version": 1}
    on_no_article = [
        ("GET", "/v1/articles/%00", None),
        ("DELETE", "/v1/articles/%00", None),
        ("GET", "/v1/articles/%00/deliveries", None),
        ("GET", "/v1/articles/%00/export", None),
        ("GET", "/v1/articles/%00/comments", None),
        ("GET", "/v1/articles/%00/segments/b0.s0/history", None),
        ("POST", "/v1/articles/%00/segments/b0.s0/comments", {"body": "Which harbour?"}),
        ("POST", "/v1/articles/a%00b/deliveries/x/redeliver", None),
    ]
    for role in ("cms", "admin"):  # a cms key's articles are looked up by owner first
        for method, path, body in on_no_article:
            r = site.client.request(method, path, json=body, headers=site.auth[role])
            not_found(r, (role, method, path))
        assert site.client.get("/v1/articles/%00", headers=site.auth[role]).json()["error"]["message"] == (
            "no article job '\\x00'"
        )
    on_the_article = [
        ("GET", "/v1/articles/%00", None),
        ("POST", "/v1/articles/%00/review", None),
        ("POST", "/v1/articles/%00/approve", None),
        ("POST", "/v1/articles/%00/import", None),
        ("PATCH", f"/v1/articles/{job}/segments/%00", edit),
        ("PATCH", "/v1/articles/%00/segments/b0.s0", edit),
        ("POST", f"/v1/articles/{job}/segments/%00/approve", {"version": 1}),
        ("GET", f"/v1/articles/{job}/segments/%00/history", None),
        ("GET", f"/v1/articles/{job}/segments/%00/suggestions", None),
        ("GET", "/v1/articles/%00/segments/b0.s0/suggestions", None),
        ("POST", f"/v1/articles/{job}/segments/%00/comments", {"body": "Which harbour?"}),
        ("POST", f"/v1/articles/{job}/deliveries/%00/redeliver", None),
        ("POST", "/v1/articles/%00/comments/1/resolve", None),
    ]
    for method, path, body in on_the_article:
        not_found(site.client.request(method, path, json=body, headers=site.auth["admin"]), (method, path))
    # Nothing was changed on the way: the article is as it was.
    assert segment_of(site)["version"] == 1


def test_a_nul_in_a_query_is_refused_or_finds_nothing(site: Site) -> None:
    r = site.client.get("/v1/articles", params={"external_id": "cms\x00-1"}, headers=site.auth["admin"])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {
        "code": "invalid_request",
        "message": "external_id: holds a NUL (U+0000), which no external id has",
    }
    with review_client(site) as (client, _):
        listed = client.get("/review", params={"q": "\x00"})
        assert listed.status_code == 200, listed.text
        assert site.job_id not in listed.text
        assert site.job_id in client.get("/review", params={"q": site.job_id[:8]}).text


def test_an_id_holding_a_nul_is_not_found_in_the_review_app(site: Site) -> None:
    job = site.job_id
    with review_client(site) as (client, csrf):
        page = client.get("/review/articles/%00")
        assert page.status_code == 404 and "There is no article" in page.text
        headers = {"X-CSRF-Token": csrf}
        edit = {"variant": "zh-Hans", "text": "港口。", "version": 1}
        for method, path, body in [
            ("GET", "/review/api/articles/%00/state", None),
            ("GET", "/review/api/articles/%00/progress", None),
            ("GET", "/review/api/articles/%00/comments", None),
            ("GET", "/review/api/articles/%00/segments", None),
            ("GET", "/review/api/articles/%00/segments/b0.s0/suggestions", None),
            ("GET", f"/review/api/articles/{job}/segments/%00/suggestions", None),
            ("PATCH", "/review/api/articles/%00/segments/b0.s0", edit),
            ("PATCH", f"/review/api/articles/{job}/segments/%00", edit),
            ("POST", f"/review/api/articles/{job}/segments/%00/approve", {"version": 1}),
            ("POST", f"/review/api/articles/{job}/segments/%00/comments", {"body": "Which harbour?"}),
            ("POST", "/review/api/articles/%00/comments/1/resolve", None),
        ]:
            not_found(client.request(method, path, json=body, headers=headers), (method, path))
        # A form's approval of no article: the 404 page itself, as for any id that names none.
        approved = client.post("/review/articles/%00/approve", data={"csrf_token": csrf})
        assert approved.status_code == 404 and "There is no article" in approved.text, approved.text
        # Segment ids asked for that hold a NUL are none the article has: left out.
        r = client.get(f"/review/api/articles/{job}/segments", params=[("id", "\x00"), ("id", "b0.s0")])
        assert r.status_code == 200, r.text
        assert [s["id"] for s in r.json()["segments"]] == ["b0.s0"]
    assert segment_of(site)["version"] == 1


def test_the_review_app_takes_only_text_for_a_new_article(site: Site) -> None:
    before = site.client.get("/v1/articles", params={"limit": 500}, headers=site.auth["admin"]).json()["items"]
    with review_client(site) as (client, csrf):
        for fields, files, said in [
            ({"body": "Boats left\x00 the harbour."}, None, "The text holds a NUL (U+0000 at character 10)"),
            ({"body": "Boats left.", "title": "Harbour\x00"}, None, "The title holds a NUL (U+0000 at character 7)"),
            ({"body": "Boats left.", "byline": "\x00By"}, None, "The byline holds a NUL (U+0000 at character 0)"),
            ({}, {"file": ("story.txt", b"Boats\x00 left.", "text/plain")}, "The file holds a NUL"),
        ]:
            r = client.post("/review/new", data={"csrf_token": csrf, "format": "text", **fields}, files=files)
            assert r.status_code == 422, (fields, r.status_code, r.text[:300])
            assert said in r.text, (said, r.text)
        # Without the NUL, the same form is taken.
        r = client.post("/review/new", data={"csrf_token": csrf, "format": "text", "body": "Boats left the harbour."})
        assert r.status_code == 303, r.text
    after = site.client.get("/v1/articles", params={"limit": 500}, headers=site.auth["admin"]).json()["items"]
    assert len(after) == len(before) + 1


# --- integer ids ----------------------------------------------------------------------------------


def test_integer_ids_beyond_the_id_columns_are_refused_before_the_database(site: Site) -> None:
    admin = site.auth["admin"]
    beyond, huge = MAX_ROW_ID + 1, 10**20
    assert MAX_ROW_ID == 2**31 - 1  # Integer columns: int4 on PostgreSQL
    for method, path, body in [
        ("DELETE", "/v1/keys/{}", None),
        ("POST", "/v1/keys/{}/rotate", None),
        ("DELETE", "/v1/memory/entries/{}", None),
        ("PATCH", "/v1/memory/entries/{}", {"target": "港口。"}),
    ]:
        for number in (beyond, huge):
            r = site.client.request(method, path.format(number), json=body, headers=admin)
            # As for an id that is no number at all.
            assert r.status_code == 422, (method, path, number, r.text)
            assert r.json()["error"]["code"] == "invalid_request"
            assert "less than or equal to 2147483647" in r.json()["error"]["message"], r.text
        assert site.client.request(method, path.format("x"), json=body, headers=admin).status_code == 422
        # The largest id the columns hold is one that names nothing here.
        not_found(site.client.request(method, path.format(MAX_ROW_ID), json=body, headers=admin), (method, path))
    # A comment's id names no comment beyond the range, as one that is no number.
    for number in (beyond, huge, MAX_ROW_ID, "x"):
        for action in ("resolve", "reopen"):
            r = site.client.post(f"/v1/articles/{site.job_id}/comments/{number}/{action}", headers=admin)
            not_found(r, (number, action))
    with review_client(site) as (client, csrf):
        for method in ("PATCH", "DELETE"):
            body = {"target": "港口。"} if method == "PATCH" else None
            r = client.request(
                method, f"/review/api/memory/entries/{beyond}", json=body, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 422, (method, r.text)
            assert r.json()["error"]["code"] == "invalid_request"
            r = client.request(
                method, f"/review/api/memory/entries/{MAX_ROW_ID}", json=body, headers={"X-CSRF-Token": csrf}
            )
            not_found(r, method)


def test_a_since_no_database_can_hold_is_a_422(site: Site) -> None:
    for since in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        r = site.client.get("/v1/articles", params={"since": since}, headers=site.auth["admin"])
        assert r.status_code == 422, (since, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_since"
        assert error["message"].startswith(f"since: {since} is out of range"), error
    # The edges themselves are times.
    for since, found in (("9999-12-31T23:59:59+00:00", 0), ("0001-01-01T00:00:00", 1)):
        r = site.client.get("/v1/articles", params={"since": since}, headers=site.auth["cms"])
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == found


# --- bodies ---------------------------------------------------------------------------------------


def test_the_review_apps_json_api_answers_bad_bodies_as_v1_does(site: Site) -> None:
    job = site.job_id
    v1 = f"/v1/articles/{job}/segments/b0.s0"
    review = f"/review/api/articles/{job}/segments/b0.s0"
    with review_client(site) as (client, csrf):
        sent = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
        cases = [
            ("{bad", 400, "malformed_json"),
            ('{"variant": "zh-Hans", "text": "abc', 400, "malformed_json"),
            # JSON, with a lone surrogate: /v1's own message for it, not "invalid JSON".
            ('{"variant": "zh-Hans", "text": "\\ud800", "version": 1}', 422, "invalid_request"),
            ('{"variant": "zh-Hans", "text": "x"}', 422, "invalid_request"),
            ('{"variant": "zh-Hans", "text": "x", "version": 1, "extra": 1}', 422, "invalid_request"),
            (json.dumps({"variant": "zh-Hans", "text": "长" * (MAX_SEGMENT_TEXT + 1), "version": 1}), 422, None),
        ]
        for content, status, code in cases:
            ours = client.patch(review, content=content.encode(), headers=sent)
            theirs = site.client.patch(
                v1, content=content.encode(), headers={**site.auth["admin"], "Content-Type": "application/json"}
            )
            assert ours.status_code == theirs.status_code == status, (content[:60], ours.text, theirs.text)
            assert ours.json()["error"] == theirs.json()["error"], content[:60]
            if code:
                assert ours.json()["error"]["code"] == code
        message = client.patch(review, content=cases[2][0].encode(), headers=sent).json()["error"]["message"]
        assert message.startswith("text: Value error, holds a lone UTF-16 surrogate (U+D800 at character 0)"), message
        message = client.patch(review, content=cases[-1][0].encode(), headers=sent).json()["error"]["message"]
        assert message == f"text: String should have at most {MAX_SEGMENT_TEXT} characters", message
        assert (
            client.patch(review, content=b"{bad", headers=sent)
            .json()["error"]["message"]
            .startswith("the request body is not valid JSON")
        )
        # The other routes that read a body too.
        for path in (
            f"/review/api/articles/{job}/segments/b0.s0/approve",
            f"/review/api/articles/{job}/segments/b0.s0/comments",
            f"/review/api/memory/entries/{MAX_ROW_ID}",
        ):
            method = "PATCH" if "memory" in path else "POST"
            r = client.request(method, path, content=b"{bad", headers=sent)
            assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json", (path, r.text)
            r = client.request(method, path, content=b'{"nothing": 1}', headers=sent)
            assert r.status_code == 422, (path, r.text)
            assert "Value error" not in r.text and "pydantic" not in r.text, r.text
    assert segment_of(site)["version"] == 1


def test_a_lone_surrogate_in_a_constrained_field_is_named_as_such(site: Site) -> None:
    r = site.client.patch(
        f"/v1/articles/{site.job_id}/segments/b0.s0",
        content=b'{"text": "a\\ud800", "version": 1}',
        headers={**site.auth["admin"], "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(
        "text: Value error, holds a lone UTF-16 surrogate (U+D800 at character 1)"
    ), r.text


def test_an_xliff_target_longer_than_an_edit_may_be_is_refused(site: Site) -> None:
    admin = site.auth["admin"]
    exported = site.client.get(f"/v1/articles/{site.job_id}/export", params={"format": "xliff"}, headers=admin)
    assert exported.status_code == 200, exported.text
    root = etree.fromstring(exported.content)
    target = root.find(f".//{{{XLIFF}}}segment[@id='b0.s0']/{{{XLIFF}}}target")
    assert target is not None
    for child in list(target):
        target.remove(child)
    target.text = "长" * (MAX_SEGMENT_TEXT + 1)
    r = site.client.post(
        f"/v1/articles/{site.job_id}/import",
        content=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        headers={**admin, "Content-Type": "application/xml"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_xliff"
    assert "20,001 characters, more than the 20,000" in r.json()["error"]["message"]
    assert segment_of(site)["version"] == 1  # nothing of the file was applied


# --- unknown segments, conditional state, the list's path ----------------------------------------


def test_an_unknown_segments_history_and_an_unknown_articles_segments_are_404(site: Site) -> None:
    for role in ("cms", "admin"):
        r = site.client.get(f"/v1/articles/{site.job_id}/segments/b9.s9/history", headers=site.auth[role])
        not_found(r, role)
        assert r.json()["error"]["message"] == f"article {site.job_id} has no segment 'b9.s9'"
        r = site.client.get(f"/v1/articles/{site.job_id}/segments/b0.s0/history", headers=site.auth[role])
        assert r.status_code == 200 and r.json() == [], r.text
    with review_client(site) as (client, _):
        not_found(client.get(f"/review/api/articles/{uuid.uuid4()}/segments"), "no ids")
        r = client.get(f"/review/api/articles/{site.job_id}/segments")
        assert r.status_code == 200 and r.json() == {"segments": []}, r.text


def test_the_review_state_answers_if_none_match_star_with_304(site: Site) -> None:
    with review_client(site) as (client, _):
        url = f"/review/api/articles/{site.job_id}/state"
        first = client.get(url)
        assert first.status_code == 200 and first.headers["etag"]
        for condition in ("*", first.headers["etag"], f'"other", {first.headers["etag"]}', 'W/"x", *'):
            r = client.get(url, headers={"If-None-Match": condition})
            assert r.status_code == 304 and r.content == b"", condition
            assert r.headers["etag"] == first.headers["etag"]
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        # An article that is not there has no state to match.
        not_found(client.get(f"/review/api/articles/{uuid.uuid4()}/state", headers={"If-None-Match": "*"}), "*")


def test_the_article_list_answers_with_a_trailing_slash_too(site: Site) -> None:
    plain = site.client.get("/v1/articles", headers=site.auth["cms"])
    slashed = site.client.get("/v1/articles/", headers=site.auth["cms"])
    assert slashed.status_code == 200, (slashed.status_code, slashed.headers)
    assert slashed.json() == plain.json()
    assert site.client.get("/v1/articles/").status_code == 401  # the same access checks
    assert "/v1/articles/" not in site.client.get("/openapi.json").json()["paths"]


def test_ids_from_a_url_are_quoted_in_the_log(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="service")
    r = site.client.delete("/v1/memory/articles/x%0AFORGED%20LINE", headers=site.auth["admin"])
    assert r.status_code == 200 and r.json() == {"removed": 0, "kept": 0}, r.text
    lines = [record.getMessage() for record in caplog.records]
    assert any("memory of article 'x\\nFORGED LINE' removed" in line for line in lines), lines
    assert not any("\nFORGED" in line for line in lines), lines
