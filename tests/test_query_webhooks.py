"""The CMS learns of queries by webhook (`article.query`), through the real HTTP service and a real
receiver on loopback, on SQLite and on PostgreSQL: a translator asks, the desk answers from the CMS's
key, a query is resolved and reopened, each a signed event with the query, who did it and the
article's open queries, counted in threads (an answer adds none, resolving the question resolves its
answers); doing what is already done sends nothing; a query asked in the review app
is sent too; an article without a callback queues nothing; a withdrawal deletes the query webhooks
not yet sent. And `open_queries` in the article and in the list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from models.engine import Engine
from service.webhooks import verify
from tests.conftest import LiveServer, WebhookReceiver, keyed_settings, make_keys, serve
from tests.test_review_ui import signed_in_client

ARTICLE = "Officials said the base would move.\n\nThe governor objected on Tuesday."


@dataclass
class Site:
    live: LiveServer
    keys: dict[str, str]  # role → the API key
    secret: str  # the cms key's webhook secret, which signs its articles' webhooks
    url: str  # the database

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@contextmanager
def site_for(database_url: str, tiny_dirs: dict[str, Path], engine: Engine, **settings: Any) -> Iterator[Site]:
    """The service with keys on (one per role), callbacks allowed to loopback, fast retries."""
    made = make_keys(database_url)
    values: dict[str, Any] = {
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_allow_private": True,
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_cap_s": 0.2,
    } | settings
    with serve(keyed_settings(tiny_dirs["marian"], database_url, **values), engine) as live:
        yield Site(
            live, {role: key.key for role, key in made.items()}, made["cms"].row.webhook_secret or "", database_url
        )


@pytest.fixture
def site(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[Site]:
    with site_for(database_url, tiny_dirs, engines["marian"]) as made:
        yield made


def translated(site: Site, callback: str | None, external_id: str = "cms-4711") -> tuple[str, list[dict[str, Any]]]:
    """A new article from the CMS (with `callback` as its callback URL), once translated: its id and
    its segments."""
    body: dict[str, Any] = {"body": ARTICLE, "external_id": external_id, "revision": "3"}
    if callback is not None:
        body["callback_url"] = callback
    submitted = site.live.client.post("/v1/articles", json=body, headers=site.auth("cms"))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 60
    while (job := site.live.client.get(f"/v1/articles/{job_id}", headers=site.auth("cms")).json())[
        "status"
    ] != "translated":
        assert job["status"] != "failed", job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job_id, [s for b in job["document"]["blocks"] for s in b["segments"]]


def deliveries(site: Site, job_id: str) -> list[dict[str, Any]]:
    listed = site.live.client.get(f"/v1/articles/{job_id}/deliveries", headers=site.auth("cms"))
    assert listed.status_code == 200, listed.text
    return list(listed.json())


def test_the_cms_hears_of_each_query(site: Site, receiver: WebhookReceiver) -> None:
    client = site.live.client
    job_id, segs = translated(site, receiver.url)
    receiver.wait_event("article.translated")
    first, second = segs[0], segs[1]
    base = f"/v1/articles/{job_id}"
    steps = 0

    def next_event() -> dict[str, Any]:
        nonlocal steps
        steps += 1
        return receiver.wait_queries(steps)[-1]

    # A translator asks: the CMS gets a signed article.query, opened, with the question and the sentence.
    asked = client.post(
        f"{base}/segments/{first['id']}/comments",
        json={"body": "Is 'the base' Futenma or Henoko?"},
        headers=site.auth("translator"),
    )
    assert asked.status_code == 201, asked.text
    query = asked.json()
    event = next_event()
    headers, body, _ = receiver.queries()[0]
    assert verify(site.secret, headers, body)
    assert (headers["duiyi-event"], headers["duiyi-delivery"]) == ("article.query", event["id"])
    assert event["event"] == "article.query"
    assert event["article"] == {
        "id": job_id,
        "status": "translated",
        "external_id": "cms-4711",
        "revision": "3",
        "open_queries": 1,
        "links": {
            "article": base,
            "deliveries": f"{base}/deliveries",
            "comments": f"{base}/comments",
        },
    }
    assert event["query"] == {
        "id": query["id"],
        "action": "opened",
        "segment_id": first["id"],
        "source": first["source"],
        "body": "Is 'the base' Futenma or Henoko?",
        "author": "translator",
        "created_at": event["query"]["created_at"],
        "open": True,
        "by": "translator",
        "by_role": "translator",
    }
    # Its created_at is the comment's.
    assert event["query"]["created_at"].startswith(query["created_at"][:19])

    # The desk answers from the CMS's key: sent too, marked as the CMS's own (by_role cms).
    answer = client.post(f"{base}/segments/{first['id']}/comments", json={"body": "Henoko."}, headers=site.auth("cms"))
    assert answer.status_code == 201, answer.text
    event = next_event()
    assert {k: event["query"][k] for k in ("id", "action", "author", "by", "by_role", "body", "open")} == {
        "id": answer.json()["id"],
        "action": "answered",
        "author": "cms",
        "by": "cms",
        "by_role": "cms",
        "body": "Henoko.",
        "open": True,
    }
    assert event["article"]["open_queries"] == 1  # the question and its answer: one query

    # A query on another segment, which had none: opened.
    other = client.post(
        f"{base}/segments/{second['id']}/comments", json={"body": "Which Tuesday?"}, headers=site.auth("admin")
    )
    assert other.status_code == 201, other.text
    event = next_event()
    assert (event["query"]["action"], event["query"]["segment_id"], event["query"]["by_role"]) == (
        "opened",
        second["id"],
        "admin",
    )
    assert (event["query"]["source"], event["article"]["open_queries"]) == (second["source"], 2)

    # Resolved by a translator, the whole thread: the resolver is `by`, the writer `author`.
    assert client.post(f"{base}/comments/{query['id']}/resolve", headers=site.auth("translator")).status_code == 200
    event = next_event()
    assert {k: event["query"][k] for k in ("id", "action", "author", "by", "open")} == {
        "id": query["id"],
        "action": "resolved",
        "author": "translator",
        "by": "translator",
        "open": False,
    }
    assert event["article"]["open_queries"] == 1  # the answer went with the question
    # Resolving it again, or by its answer, changes nothing and sends nothing: the next event is the reopening.
    assert client.post(f"{base}/comments/{answer.json()['id']}/resolve", headers=site.auth("admin")).status_code == 200
    assert client.post(f"{base}/comments/{query['id']}/resolve", headers=site.auth("admin")).status_code == 200
    assert client.post(f"{base}/comments/{query['id']}/reopen", headers=site.auth("translator")).status_code == 200
    event = next_event()
    assert (event["query"]["action"], event["query"]["by"], event["query"]["open"]) == ("reopened", "translator", True)
    assert event["article"]["open_queries"] == 2
    assert client.post(f"{base}/comments/{query['id']}/reopen", headers=site.auth("translator")).status_code == 200

    # The CMS may not resolve the translator's thread, even by its own answer: refused, nothing sent.
    # A translator resolves it; then nothing on the first segment is open: a new comment there asks a
    # new query (opened, not answered).
    refused = client.post(f"{base}/comments/{answer.json()['id']}/resolve", headers=site.auth("cms"))
    assert refused.status_code == 403, refused.text
    assert client.post(f"{base}/comments/{query['id']}/resolve", headers=site.auth("translator")).status_code == 200
    event = next_event()
    assert (event["query"]["action"], event["query"]["by_role"], event["article"]["open_queries"]) == (
        "resolved",
        "translator",
        1,
    )
    again = client.post(
        f"{base}/segments/{first['id']}/comments", json={"body": "And Camp Schwab?"}, headers=site.auth("translator")
    )
    event = next_event()
    assert (event["query"]["id"], event["query"]["action"], event["article"]["open_queries"]) == (
        again.json()["id"],
        "opened",
        2,
    )

    # Each one signed with the CMS key's secret, its own delivery; nothing more was sent.
    time.sleep(0.3)
    sent = receiver.queries()
    assert len(sent) == steps == 7
    assert all(verify(site.secret, h, b) for h, b, _ in sent)
    assert len({p["id"] for _, _, p in sent}) == steps
    listed = deliveries(site, job_id)
    assert [d["event"] for d in listed].count("article.query") == steps
    assert all(d["state"] == "delivered" for d in listed)

    # The article says the same count as the last event.
    assert client.get(base, headers=site.auth("cms")).json()["open_queries"] == 2


def test_open_queries_in_the_article_and_the_list(site: Site) -> None:
    """Without a callback no webhook is queued; `open_queries` counts each article's open queries,
    in the article and in each item of the list: segments with an open thread (an answer adds none,
    a thread resolved counts none)."""
    client = site.live.client
    quiet, segs = translated(site, None, "cms-1")
    busy, segs2 = translated(site, None, "cms-2")
    none, _ = translated(site, None, "cms-3")
    tr = site.auth("translator")
    for job_id, sid, body in (
        (quiet, segs[0]["id"], "Which base?"),
        (busy, segs2[0]["id"], "Which base?"),
        (busy, segs2[0]["id"], "Henoko."),
        (busy, segs2[0]["id"], "Thanks."),
        (busy, segs2[1]["id"], "Which Tuesday?"),
    ):
        r = client.post(f"/v1/articles/{job_id}/segments/{sid}/comments", json={"body": body}, headers=tr)
        assert r.status_code == 201, r.text
    asked = client.post(f"/v1/articles/{quiet}/segments/{segs[1]['id']}/comments", json={"body": "?"}, headers=tr)
    answered = client.post(f"/v1/articles/{quiet}/segments/{segs[1]['id']}/comments", json={"body": "!"}, headers=tr)
    assert asked.status_code == answered.status_code == 201
    assert client.post(f"/v1/articles/{quiet}/comments/{asked.json()['id']}/resolve", headers=tr).status_code == 200

    expected = {quiet: 1, busy: 2, none: 0}
    for job_id, n in expected.items():
        assert client.get(f"/v1/articles/{job_id}", headers=site.auth("cms")).json()["open_queries"] == n
        assert deliveries(site, job_id) == []
    listed = client.get("/v1/articles", headers=site.auth("cms")).json()["items"]
    assert {j["id"]: j["open_queries"] for j in listed} == expected
    # Paged one at a time, each page counts its own article.
    after: str | None = None
    paged: dict[str, int] = {}
    while True:
        page = client.get("/v1/articles", params={"limit": 1, **({"after": after} if after else {})}, headers=tr).json()
        paged |= {j["id"]: j["open_queries"] for j in page["items"]}
        after = page["next_cursor"]
        if not page["more"]:
            break
    assert paged == expected
    # The answers of the article's review routes carry it too.
    started = client.post(f"/v1/articles/{busy}/review", headers=tr)
    assert started.status_code == 200 and started.json()["open_queries"] == 2
    # Nothing was queued for an article without a callback.
    engine = sqlalchemy.create_engine(site.url)
    try:
        with engine.connect() as conn:
            queued = conn.scalar(sqlalchemy.text("SELECT count(*) FROM webhook_deliveries"))
    finally:
        engine.dispose()
    assert queued == 0


def test_polling_the_list_sees_queries_change(site: Site) -> None:
    """A CMS without a callback polls the list with its cursor: a query asked, answered, resolved
    or reopened moves the article past the cursor, with its new `open_queries`; resolving what is
    already resolved does not."""
    client = site.live.client
    job_id, segs = translated(site, None, "cms-poll")
    cms, tr = site.auth("cms"), site.auth("translator")

    def drain(after: str | None) -> str | None:
        while True:
            page = client.get("/v1/articles", params={"after": after} if after else {}, headers=cms).json()
            after = page["next_cursor"] or after
            if not page["more"]:
                return after

    def changed(after: str | None) -> tuple[list[tuple[str, int]], str | None]:
        page = client.get("/v1/articles", params={"after": after} if after else {}, headers=cms).json()
        return [(j["id"], j["open_queries"]) for j in page["items"]], page["next_cursor"] or after

    after = drain(None)
    assert changed(after)[0] == []
    base = f"/v1/articles/{job_id}"
    asked = client.post(f"{base}/segments/{segs[0]['id']}/comments", json={"body": "Which base?"}, headers=tr)
    assert asked.status_code == 201, asked.text
    seen, after = changed(after)
    assert seen == [(job_id, 1)]
    answered = client.post(f"{base}/segments/{segs[0]['id']}/comments", json={"body": "Henoko."}, headers=cms)
    assert answered.status_code == 201, answered.text
    seen, after = changed(after)
    assert seen == [(job_id, 1)]
    comment = asked.json()["id"]
    assert client.post(f"{base}/comments/{comment}/resolve", headers=tr).status_code == 200
    seen, after = changed(after)
    assert seen == [(job_id, 0)]
    assert client.post(f"{base}/comments/{comment}/resolve", headers=tr).status_code == 200
    assert changed(after)[0] == []  # nothing was done
    assert client.post(f"{base}/comments/{comment}/reopen", headers=tr).status_code == 200
    seen, after = changed(after)
    assert seen == [(job_id, 1)]


@pytest.fixture
def slow_retries(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[Site]:
    """The service whose failed webhooks wait a minute before their next try."""
    with site_for(
        database_url, tiny_dirs, engines["marian"], webhook_backoff_base_s=60, webhook_backoff_cap_s=60
    ) as made:
        yield made


def test_a_withdrawal_deletes_query_webhooks_not_yet_sent(slow_retries: Site, receiver: WebhookReceiver) -> None:
    """A query webhook the CMS has not taken yet (its receiver answered 503, the retry is a minute
    away) goes with the article: deleted, never sent again; `article.withdrawn` is queued in its
    place."""
    site = slow_retries
    client = site.live.client
    job_id, segs = translated(site, receiver.url)
    receiver.wait_event("article.translated")
    receiver.status = 503
    tr = site.auth("translator")
    asked = client.post(f"/v1/articles/{job_id}/segments/{segs[0]['id']}/comments", json={"body": "?"}, headers=tr)
    assert asked.status_code == 201, asked.text
    receiver.wait_queries(1)  # tried once, refused: pending, its next try after the backoff
    deadline = time.monotonic() + 10
    while not (pending := [d for d in deliveries(site, job_id) if d["event"] == "article.query"])[0]["attempts"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert pending[0]["state"] == "pending", pending
    query_delivery = pending[0]["id"]

    withdrawn = client.delete(f"/v1/articles/{job_id}", headers=site.auth("cms"))
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["removed"]["deliveries"] == 2  # article.translated and article.query
    engine = sqlalchemy.create_engine(site.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT id, event, job_id FROM webhook_deliveries")).all()
    finally:
        engine.dispose()
    assert query_delivery not in [r[0] for r in rows]
    assert [(r[1], r[2]) for r in rows] == [("article.withdrawn", None)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_query_asked_in_the_review_app_is_sent(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine], receiver: WebhookReceiver
) -> None:
    """The review app, where translators ask, queues the same webhooks as /v1; with DUIYI_PUBLIC_URL
    the links are absolute."""
    public = "https://duiyi.example.com/"
    with site_for(database_url, tiny_dirs, engines["marian"], public_url=public) as made:
        job_id, segs = translated(made, receiver.url)
        client, csrf = signed_in_client(made.live, made.keys["translator"])
        try:
            asked = client.post(
                f"/review/api/articles/{job_id}/segments/{segs[1]['id']}/comments",
                json={"body": "Which Tuesday?"},
                headers={"X-CSRF-Token": csrf},
            )
            assert asked.status_code == 201, asked.text
            event = receiver.wait_queries(1)[0]
            assert (event["query"]["action"], event["query"]["by_role"], event["query"]["source"]) == (
                "opened",
                "translator",
                segs[1]["source"],
            )
            assert event["article"]["links"] == {
                "article": f"https://duiyi.example.com/v1/articles/{job_id}",
                "deliveries": f"https://duiyi.example.com/v1/articles/{job_id}/deliveries",
                "comments": f"https://duiyi.example.com/v1/articles/{job_id}/comments",
            }
            cid = asked.json()["id"]
            done = client.post(f"/review/api/articles/{job_id}/comments/{cid}/resolve", headers={"X-CSRF-Token": csrf})
            assert done.status_code == 200, done.text
            event = receiver.wait_queries(2)[1]
            assert (event["query"]["id"], event["query"]["action"], event["article"]["open_queries"]) == (
                cid,
                "resolved",
                0,
            )
            headers, body, _ = receiver.queries()[1]
            assert verify(made.secret, headers, body)
        finally:
            client.close()
