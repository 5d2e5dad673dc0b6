"""Queries on segments (service.jobs.comments) through the real HTTP service, on SQLite and on
PostgreSQL: a translator asks, the desk answers from its CMS key, the query is resolved and reopened;
a query is a thread (an answer adds no open query, resolving the question resolves the answers, a
cms key resolves only a thread it started); a cms key sees only its owner's articles' comments; a
blank or too long body is a 422; an open query blocks the article's approval unless overridden; a
withdrawn article takes its comments with it. And the review workspace in a real browser: a query
added, answered and resolved with the thread's one button."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from models.engine import Engine
from service.auth import Role
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_review_ui import sign_in, signed_in_client

ARTICLE = "Officials said the base would move.\n\nThe governor objected on Tuesday."


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def translated_article(client: httpx.Client, cms: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """A new article by `cms`, once translated: its id and its segments."""
    job_id = client.post("/v1/articles", json={"body": ARTICLE}, headers=cms).json()["id"]
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/articles/{job_id}", headers=cms).json())["status"] != "translated":
        assert job["status"] != "failed", job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job_id, [s for b in job["document"]["blocks"] for s in b["segments"]]


@pytest.fixture
def site(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> Iterator[tuple[LiveServer, dict[str, dict[str, str]], str]]:
    keys = {role: auth(made.key) for role, made in make_keys(database_url).items()}
    keys["other"] = auth(make_keys(database_url, (Role.CMS,), suffix="-other")["cms"].key)
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        yield live, keys, database_url


def stored_comments(url: str, job_id: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.scalar(sqlalchemy.text("SELECT count(*) FROM segment_comments WHERE job_id = :j"), {"j": job_id})
    finally:
        engine.dispose()
    return int(n or 0)


def test_queries_asked_answered_resolved(site: tuple[LiveServer, dict[str, dict[str, str]], str]) -> None:
    live, keys, _ = site
    client, tr, cms = live.client, keys["translator"], keys["cms"]
    job_id, segs = translated_article(client, cms)
    sid = segs[0]["id"]
    base = f"/v1/articles/{job_id}"

    asked = client.post(
        f"{base}/segments/{sid}/comments", json={"body": "  Is 'the base' Futenma or Henoko?\n"}, headers=tr
    )
    assert asked.status_code == 201, asked.text
    query = asked.json()
    assert query["body"] == "Is 'the base' Futenma or Henoko?"
    assert (query["author"], query["segment_id"], query["open"], query["resolved_by"]) == (
        "translator",
        sid,
        True,
        None,
    )

    # Validation: blank, too long, unknown segment, unknown article, not an object.
    for body, status, code in (
        ({"body": " \n\t"}, 422, "invalid_comment"),
        ({"body": "x" * 2001}, 422, "invalid_comment"),
        ({}, 422, "invalid_comment"),
        ({"body": "ok", "extra": 1}, 422, "invalid_request"),
    ):
        r = client.post(f"{base}/segments/{sid}/comments", json=body, headers=tr)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert (
        "2001 characters"
        in client.post(f"{base}/segments/{sid}/comments", json={"body": "x" * 2001}, headers=tr).json()["error"][
            "message"
        ]
    )
    assert client.post(f"{base}/segments/{sid}/comments", json={"body": "x" * 2000}, headers=tr).status_code == 201
    assert client.post(f"{base}/segments/nope/comments", json={"body": "?"}, headers=tr).status_code == 404
    assert client.post("/v1/articles/nope/segments/b1.s1/comments", json={"body": "?"}, headers=tr).status_code == 404

    # The desk answers from its CMS key; another owner's CMS key learns nothing of the article.
    answer = client.post(f"{base}/segments/{sid}/comments", json={"body": "Henoko."}, headers=cms)
    assert answer.status_code == 201, answer.text
    other = keys["other"]
    assert client.get(f"{base}/comments", headers=other).status_code == 404
    assert client.post(f"{base}/segments/{sid}/comments", json={"body": "hi"}, headers=other).status_code == 404
    assert client.post(f"{base}/comments/{query['id']}/resolve", headers=other).status_code == 404
    # An id that names no comment (none such, not a number, beyond any database's integers): 404.
    for cid in ("999999", "abc", "99999999999999999999", "-1"):
        assert client.post(f"{base}/comments/{cid}/resolve", headers=tr).status_code == 404, cid

    # A cms key resolves only a thread it started, by any of its comments (its own answer too); a
    # translator any thread, all of it at once; both idempotent.
    for cid in (query["id"], answer.json()["id"]):
        refused = client.post(f"{base}/comments/{cid}/resolve", headers=cms)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden"), refused.text
        assert "only the threads it started; this one is translator's" in refused.json()["error"]["message"]
    done = client.post(f"{base}/comments/{query['id']}/resolve", headers=tr).json()
    assert (done["open"], done["resolved_by"]) == (False, "translator")
    again = client.post(f"{base}/comments/{query['id']}/resolve", headers=keys["admin"]).json()
    assert (again["resolved_by"], again["resolved_at"]) == ("translator", done["resolved_at"])
    reopened = client.post(f"{base}/comments/{query['id']}/reopen", headers=tr).json()
    assert (reopened["open"], reopened["resolved_at"], reopened["resolved_by"]) == (True, None, None)

    listed = client.get(f"{base}/comments", headers=cms).json()
    assert [c["body"][:8] for c in listed] == ["Is 'the ", "x" * 8, "Henoko."]
    assert [(c["open"], c["resolved_by"]) for c in listed[1:]] == [(False, "translator")] * 2
    open_ = client.get(f"{base}/comments", params={"open": "true"}, headers=tr).json()
    assert [c["id"] for c in open_] == [query["id"]]


def test_a_query_is_a_thread(site: tuple[LiveServer, dict[str, dict[str, str]], str]) -> None:
    """A question and its answer are one open query (in the article, the list and the approval
    block); resolving the question resolves the answer with it, and approval is no longer blocked.
    A cms key cannot resolve a translator's thread, but resolves one it started, answers included."""
    live, keys, _ = site
    client, tr, cms = live.client, keys["translator"], keys["cms"]
    job_id, segs = translated_article(client, cms)
    base = f"/v1/articles/{job_id}"
    for s in segs:  # no segment needs review: only the queries stand in the way
        approved = client.post(f"{base}/segments/{s['id']}/approve", json={"version": s["version"]}, headers=tr)
        assert approved.status_code == 200, approved.text
    first, second = segs[0]["id"], segs[1]["id"]

    def comment(sid: str, body: str, who: dict[str, str]) -> dict[str, Any]:
        r = client.post(f"{base}/segments/{sid}/comments", json={"body": body}, headers=who)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def open_queries() -> int:
        n = client.get(base, headers=cms).json()["open_queries"]
        listed = {j["id"]: j["open_queries"] for j in client.get("/v1/articles", headers=cms).json()["items"]}
        assert listed[job_id] == n
        return int(n)

    q = comment(first, "Which base?", tr)
    answer = comment(first, "Henoko.", cms)
    assert open_queries() == 1  # asked and answered: one query, not two
    blocked = client.post(f"{base}/approve", headers=tr)
    assert blocked.status_code == 409, blocked.text
    assert "1 query(ies) on segments still open" in blocked.json()["error"]["message"]

    # The cms key did not start this thread: it resolves it by neither comment.
    for cid in (q["id"], answer["id"]):
        assert client.post(f"{base}/comments/{cid}/resolve", headers=cms).status_code == 403
    assert open_queries() == 1

    # Resolving the question resolves the answer too, by the same person at the same time.
    done = client.post(f"{base}/comments/{q['id']}/resolve", headers=tr)
    assert done.status_code == 200, done.text
    thread = client.get(f"{base}/comments", headers=tr).json()
    assert [(c["body"], c["open"], c["resolved_by"]) for c in thread] == [
        ("Which base?", False, "translator"),
        ("Henoko.", False, "translator"),
    ]
    assert thread[0]["resolved_at"] == thread[1]["resolved_at"]
    assert open_queries() == 0

    # A thread the cms key started: a translator answers, and the key resolves it, by the answer's id.
    asked = comment(second, "Is Tuesday right?", cms)
    reply = comment(second, "Yes, the 3rd.", tr)
    assert open_queries() == 1
    resolved = client.post(f"{base}/comments/{reply['id']}/resolve", headers=cms)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["id"], resolved.json()["open"], resolved.json()["resolved_by"]) == (
        reply["id"],
        False,
        "cms",
    )
    assert [c["open"] for c in client.get(f"{base}/comments", headers=cms).json()] == [False] * 4
    assert open_queries() == 0
    approved = client.post(f"{base}/approve", headers=tr)
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval_override"] is None

    # Reopening one comment reopens its thread: one open query again. The key reopens only its own.
    assert client.post(f"{base}/comments/{reply['id']}/reopen", headers=cms).status_code == 403
    assert client.post(f"{base}/comments/{asked['id']}/reopen", headers=cms).json()["open"] is True
    assert open_queries() == 1


def test_open_queries_block_approval(site: tuple[LiveServer, dict[str, dict[str, str]], str]) -> None:
    live, keys, _ = site
    client, tr = live.client, keys["translator"]
    job_id, segs = translated_article(client, keys["cms"])
    base = f"/v1/articles/{job_id}"
    for s in segs:  # no segment needs review: only the query stands in the way
        assert (
            client.post(f"{base}/segments/{s['id']}/approve", json={"version": s["version"]}, headers=tr).status_code
            == 200
        )
    q = client.post(f"{base}/segments/{segs[0]['id']}/comments", json={"body": "Which base?"}, headers=tr).json()

    blocked = client.post(f"{base}/approve", headers=tr)
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["error"]["code"] == "needs_review"
    assert "1 query(ies) on segments still open; resolve them" in blocked.json()["error"]["message"]

    # Resolved: approved without a reason. Reopened on another article: approved with one, recorded.
    client.post(f"{base}/comments/{q['id']}/resolve", headers=tr)
    client.post(f"{base}/comments/{q['id']}/reopen", headers=tr)
    approved = client.post(f"{base}/approve", json={"override": "the desk answered by phone"}, headers=tr)
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval_override"] == "the desk answered by phone"

    job2, segs2 = translated_article(client, keys["cms"])
    for s in segs2:
        client.post(f"/v1/articles/{job2}/segments/{s['id']}/approve", json={"version": s["version"]}, headers=tr)
    q2 = client.post(f"/v1/articles/{job2}/segments/{segs2[0]['id']}/comments", json={"body": "?"}, headers=tr).json()
    assert client.post(f"/v1/articles/{job2}/approve", headers=tr).status_code == 409
    client.post(f"/v1/articles/{job2}/comments/{q2['id']}/resolve", headers=tr)
    unblocked = client.post(f"/v1/articles/{job2}/approve", headers=tr)
    assert unblocked.status_code == 200, unblocked.text
    assert unblocked.json()["approval_override"] is None


def test_withdrawal_removes_comments(site: tuple[LiveServer, dict[str, dict[str, str]], str]) -> None:
    live, keys, url = site
    client, cms = live.client, keys["cms"]
    job_id, segs = translated_article(client, cms)
    kept, _ = translated_article(client, cms)
    for j, s in ((job_id, segs[0]["id"]), (job_id, segs[-1]["id"]), (kept, segs[0]["id"])):
        assert (
            client.post(f"/v1/articles/{j}/segments/{s}/comments", json={"body": "?"}, headers=cms).status_code == 201
        )
    assert stored_comments(url, job_id) == 2
    assert client.delete(f"/v1/articles/{job_id}", headers=cms).status_code == 200
    assert stored_comments(url, job_id) == 0
    assert client.get(f"/v1/articles/{job_id}/comments", headers=cms).status_code == 404
    assert stored_comments(url, kept) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_query_added_and_resolved_in_the_workspace(
    site: tuple[LiveServer, dict[str, dict[str, str]], str],
    browser: object,
) -> None:
    live, keys, _ = site
    job_id, segs = translated_article(live.client, keys["cms"])
    key = keys["translator"]["Authorization"].removeprefix("Bearer ")
    page: Any = sign_in(browser, live, key)
    page.goto(f"/review/articles/{job_id}")
    row = page.locator(".seg").filter(has=page.locator(f"[aria-controls='thread-{segs[0]['id']}']"))
    assert page.locator("#open-queries-toolbar").inner_text() == "0"
    assert row.locator(".query-marker").is_hidden()

    row.locator(".queries-toggle").click()
    assert row.locator(".queries-toggle").get_attribute("aria-expanded") == "true"
    # Plain text: markup in a query is shown as typed, never parsed.
    row.get_by_label("Ask a query about this sentence, or answer one").fill("Is <b>the base</b> Futenma?")
    row.locator(".add-query").click()
    comment = row.locator(".thread-list .comment.open")
    comment.wait_for()
    assert comment.locator(".comment-body").inner_text() == "Is <b>the base</b> Futenma?"
    assert row.locator(".comment-body b").count() == 0
    assert page.locator("#open-queries-toolbar").inner_text() == "1"
    assert row.locator(".query-marker").inner_text() == "1 open"
    assert "Query added" in page.locator("#page-status").inner_text()
    # The approval form now asks for a reason.
    assert page.locator("#approve-override").is_visible()

    # An answer in the same thread: still one open query, with one Resolve button for the thread.
    row.get_by_label("Ask a query about this sentence, or answer one").fill("Henoko.")
    row.locator(".add-query").click()
    row.locator(".thread-list .comment.open").nth(1).wait_for()
    assert page.locator("#open-queries-toolbar").inner_text() == "1"
    assert row.locator(".query-marker").inner_text() == "1 open"
    assert row.locator(".thread-list button").count() == 0
    assert row.locator(".thread-state button:visible").all_inner_texts() == ["Resolve"]

    row.get_by_role("button", name=re.compile(r"^Resolve the query by translator: Is <b>the base")).click()
    row.locator(".thread-list .comment.resolved").nth(1).wait_for()
    assert row.locator(".thread-list .comment.open").count() == 0
    assert page.locator("#open-queries-toolbar").inner_text() == "0"
    assert row.locator(".query-marker").is_hidden()
    assert row.locator(".thread-state button:visible").all_inner_texts() == ["Reopen"]
    assert "Query resolved" in page.locator("#page-status").inner_text()
    stored = live.client.get(f"/v1/articles/{job_id}/comments", headers=keys["translator"]).json()
    assert [(c["body"], c["open"], c["resolved_by"]) for c in stored] == [
        ("Is <b>the base</b> Futenma?", False, "translator"),
        ("Henoko.", False, "translator"),
    ]
    # After a reload the thread is drawn from the page's data, resolved.
    page.reload()
    assert page.locator("#open-queries").inner_text() == "0"
    assert row.locator(".thread-list .comment.resolved").count() == 2
    page.context.close()


def test_the_polled_state_carries_the_queries(site: tuple[LiveServer, dict[str, dict[str, str]], str]) -> None:
    """The state an open page polls has each segment's thread in brief ([open, all, last id]), so
    its ETag changes when a query is asked, answered or resolved elsewhere."""
    live, keys, _ = site
    job_id, segs = translated_article(live.client, keys["cms"])
    key = keys["translator"]["Authorization"].removeprefix("Bearer ")
    client, _ = signed_in_client(live, key)
    url = f"/review/api/articles/{job_id}/state"
    first = client.get(url)
    assert first.status_code == 200 and first.json()["queries"] == {}
    tag = first.headers["etag"]
    assert client.get(url, headers={"If-None-Match": tag}).status_code == 304

    sid, base = segs[0]["id"], f"/v1/articles/{job_id}"
    q = live.client.post(f"{base}/segments/{sid}/comments", json={"body": "Which base?"}, headers=keys["cms"]).json()
    asked = client.get(url, headers={"If-None-Match": tag})
    assert asked.status_code == 200 and asked.headers["etag"] != tag
    assert asked.json()["queries"] == {sid: [1, 1, q["id"], 1]}
    a = live.client.post(f"{base}/segments/{sid}/comments", json={"body": "Henoko."}, headers=keys["translator"])
    answered = client.get(url, headers={"If-None-Match": asked.headers["etag"]})
    assert answered.status_code == 200 and answered.json()["queries"] == {sid: [1, 2, a.json()["id"], 2]}
    live.client.post(f"{base}/comments/{q['id']}/resolve", headers=keys["translator"])
    resolved = client.get(url, headers={"If-None-Match": answered.headers["etag"]})
    assert resolved.status_code == 200 and resolved.json()["queries"] == {sid: [0, 2, a.json()["id"], 0]}
    # An old comment reopened, then one more: the thread is open throughout, the brief still changes.
    live.client.post(f"{base}/comments/{q['id']}/reopen", headers=keys["translator"])
    reopened = client.get(url, headers={"If-None-Match": resolved.headers["etag"]})
    assert reopened.status_code == 200 and reopened.json()["queries"] == {sid: [1, 2, a.json()["id"], 1]}
    live.client.post(f"{base}/comments/{a.json()['id']}/reopen", headers=keys["translator"])
    both = client.get(url, headers={"If-None-Match": reopened.headers["etag"]})
    assert both.status_code == 200 and both.json()["queries"] == {sid: [1, 2, a.json()["id"], 2]}
    live.client.post(f"{base}/comments/{a.json()['id']}/resolve", headers=keys["translator"])

    # The page reloads a changed thread from the article's comments, as /v1 lists them.
    listed = client.get(f"/review/api/articles/{job_id}/comments")
    assert listed.status_code == 200
    assert [(c["body"], c["open"]) for c in listed.json()["comments"]] == [("Which base?", False), ("Henoko.", False)]
    assert client.get("/review/api/articles/nope/comments").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_queries_by_others_arrive_with_the_poll(
    site: tuple[LiveServer, dict[str, dict[str, str]], str],
    browser: object,
) -> None:
    """A query another key asks while the page is open shows on the segment's button, in the
    totals and in its open thread after the next poll; what the translator is typing stays."""
    live, keys, _ = site
    job_id, segs = translated_article(live.client, keys["cms"])
    sid, base = segs[0]["id"], f"/v1/articles/{job_id}"
    key = keys["translator"]["Authorization"].removeprefix("Bearer ")
    page: Any = sign_in(browser, live, key)
    page.clock.install()
    page.goto(f"/review/articles/{job_id}")
    row = page.locator(".seg").filter(has=page.locator(f"[aria-controls='thread-{sid}']"))
    row.locator(".queries-toggle").click()
    box = row.get_by_label("Ask a query about this sentence, or answer one")
    box.fill("half-typed answer")
    assert page.locator("#open-queries-toolbar").inner_text() == "0"

    q = live.client.post(f"{base}/segments/{sid}/comments", json={"body": "Which <i>base</i>?"}, headers=keys["cms"])
    assert q.status_code == 201, q.text
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:
        page.clock.run_for(15_500)
    assert polled.value.status == 200
    row.locator(".thread-list .comment.open").wait_for()
    assert row.locator(".comment-body").inner_text() == "Which <i>base</i>?"
    assert row.locator(".comment-body i").count() == 0
    assert row.locator(".query-marker").inner_text() == "1 open"
    assert page.locator("#open-queries-toolbar").inner_text() == "1"
    assert page.locator("#open-queries").inner_text() == "1"
    assert box.input_value() == "half-typed answer"

    # Resolved elsewhere: the marker and the totals go back to nothing open.
    live.client.post(f"{base}/comments/{q.json()['id']}/resolve", headers=keys["translator"])
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:
        page.clock.run_for(15_500)
    assert polled.value.status == 200
    row.locator(".thread-list .comment.resolved").wait_for()
    assert row.locator(".query-marker").is_hidden()
    assert page.locator("#open-queries-toolbar").inner_text() == "0"
    assert box.input_value() == "half-typed answer"
    page.context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_focus_stays_on_a_query_button_across_the_poll(
    site: tuple[LiveServer, dict[str, dict[str, str]], str],
    browser: object,
) -> None:
    """The thread's one Resolve button, with the keyboard's focus, keeps it when the poll redraws
    the thread (an answer added and the thread resolved elsewhere): the same button, now Reopen,
    where it was on the screen. From the keyboard it reopens and resolves the thread, the focus
    staying on it."""
    live, keys, _ = site
    job_id, segs = translated_article(live.client, keys["cms"])
    sid, base = segs[0]["id"], f"/v1/articles/{job_id}"
    asked = [
        live.client.post(f"{base}/segments/{sid}/comments", json={"body": body}, headers=keys["cms"]).json()
        for body in ("Which base?", "Which governor?")
    ]
    key = keys["translator"]["Authorization"].removeprefix("Bearer ")
    page: Any = sign_in(browser, live, key)
    page.set_viewport_size({"width": 1280, "height": 500})
    page.clock.install()
    page.goto(f"/review/articles/{job_id}")
    row = page.locator(".seg").filter(has=page.locator(f"[aria-controls='thread-{sid}']"))
    row.locator(".queries-toggle").click()
    assert page.locator("#open-queries-toolbar").inner_text() == "1"  # two comments, one thread
    assert row.locator(".thread-list button").count() == 0
    button = row.get_by_role("button", name=re.compile(r"^Resolve the query by cms: Which base"))
    button.focus()
    button.evaluate("b => b.scrollIntoView({block: 'center'})")
    where = "() => [document.activeElement.getBoundingClientRect().top, window.scrollY]"
    before = page.evaluate(where)
    focused = "() => [document.activeElement.classList.contains('thread-button'), document.activeElement.textContent]"
    assert page.evaluate(focused) == [True, "Resolve"]

    # Another client answers, and resolves the thread.
    answer = live.client.post(f"{base}/segments/{sid}/comments", json={"body": "Henoko."}, headers=keys["cms"])
    assert answer.status_code == 201, answer.text
    done = live.client.post(f"{base}/comments/{asked[0]['id']}/resolve", headers=keys["translator"])
    assert done.status_code == 200, done.text
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:
        page.clock.run_for(15_500)
    assert polled.value.status == 200
    row.locator(".thread-list .comment").nth(2).wait_for()
    row.locator(".thread-list .comment.resolved").nth(2).wait_for()
    assert page.evaluate(focused) == [True, "Reopen"]
    assert page.locator("#open-queries-toolbar").inner_text() == "0"
    # The answer came in above the button: the page scrolled by as much, so the button stays put.
    after = page.evaluate(where)
    assert abs(after[0] - before[0]) < 1 and after[1] > before[1], (before, after)

    # From the keyboard: Enter reopens the thread (its question), and the focus stays on the button.
    with page.expect_response(lambda r: r.url.endswith(f"/comments/{asked[0]['id']}/reopen")):
        page.keyboard.press("Enter")
    row.locator(".thread-list .comment.open").wait_for()
    assert page.evaluate(focused) == [True, "Resolve"]
    assert page.locator("#open-queries-toolbar").inner_text() == "1"
    # Enter again resolves the whole thread; the focus stays.
    with page.expect_response(lambda r: r.url.endswith("/resolve")):
        page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.textContent === 'Reopen'")
    assert page.evaluate(focused) == [True, "Reopen"]
    assert row.locator(".thread-list .comment.open").count() == 0
    assert page.locator("#open-queries-toolbar").inner_text() == "0"
    stored = live.client.get(f"{base}/comments", headers=keys["translator"]).json()
    assert [c["open"] for c in stored] == [False, False, False]
    page.context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_open_query_count_counts_segments_a_filter_hides(
    site: tuple[LiveServer, dict[str, dict[str, str]], str],
    browser: object,
) -> None:
    """The article page's count of open queries (heading, toolbar, approval form) is the article's:
    with "flagged only" on, a query asked and resolved elsewhere on a segment the filter hides is
    counted after the next poll."""
    live, keys, _ = site
    job_id, segs = translated_article(live.client, keys["cms"])
    flagged, clean = segs
    base = f"/v1/articles/{job_id}"
    edited = live.client.patch(
        f"{base}/segments/{clean['id']}",
        json={"text": "州长周二表示反对。", "version": clean["version"]},
        headers=keys["translator"],
    )
    assert edited.status_code == 200 and edited.json()["flags"] == [], edited.text
    assert flagged["flags"], flagged  # the tiny model's output is flagged
    key = keys["translator"]["Authorization"].removeprefix("Bearer ")
    page: Any = sign_in(browser, live, key)
    page.clock.install()
    page.goto(f"/review/articles/{job_id}?flagged=1")
    assert page.locator(f"[data-id='{clean['id']}']").count() == 0
    assert page.locator(".seg").count() == 1
    counts = (
        "() => [...document.querySelectorAll('#open-queries, #open-queries-toolbar, .open-queries-count')]"
        ".map((e) => e.textContent.trim())"
    )
    assert page.evaluate(counts) == ["0", "0", "0"]

    q = live.client.post(f"{base}/segments/{clean['id']}/comments", json={"body": "Tuesday?"}, headers=keys["cms"])
    assert q.status_code == 201, q.text
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:
        page.clock.run_for(15_500)
    assert polled.value.status == 200
    page.wait_for_function(f"() => ({counts})().every((n) => n === '1')", timeout=5000)
    assert page.locator("#approve-override").is_visible()

    live.client.post(f"{base}/comments/{q.json()['id']}/resolve", headers=keys["translator"])
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:
        page.clock.run_for(15_500)
    assert polled.value.status == 200
    page.wait_for_function(f"() => ({counts})().every((n) => n === '0')", timeout=5000)
    page.context.close()
