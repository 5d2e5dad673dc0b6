"""Nothing typed in the review workspace is lost without a word: an admin's correction of a memory
entry in the Concordance box outlives the searches made meanwhile (a new query, the box asked for
again from a segment's editor); a translator's own text that a conflict quoted stays quoted when
others change the segment again; leaving the page with a query or a correction typed and not sent
asks first; the new-article form keeps its text when the session ended or changed in another tab.
In a real browser (Debian's Chromium through Playwright) against the service on loopback. And the
app's form routes answer an article that is not there with the 404 page itself, not a redirect."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database
from tests.conftest import LiveServer, keyed_settings, make_keys, serve

ARTICLE = "The harbour reopened on Monday.\n\nThe talks will continue."
WRONG = "The harbour reopened on Monday."
WRONG_TARGET = "港口周二关闭。"
TYPED = "港口周一重新开放（核对中）。"
FROZE = "The harbour froze in January."
STORED = [
    Remembered(WRONG, "zh-Hans", WRONG_TARGET, origin="tmx"),
    Remembered("The harbour master resigned.", "zh-Hans", "港务长辞职。"),
    Remembered(FROZE, "zh-Hans", "港口一月结冰。"),
]
Site = tuple[LiveServer, dict[str, str], str]


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path_factory.mktemp('unsaved') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, suffix="-unsaved").items()}
    db = Database(url)
    for entry in STORED:  # one at a time: the last is the newest
        TranslationMemory(db).remember([entry])
        time.sleep(0.002)
    db.close()
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, keys, new_job(live, keys)


def new_job(live: LiveServer, keys: dict[str, str], body: str = ARTICLE) -> str:
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    job_id = str(
        live.client.post("/v1/articles", json={"body": body, "targets": ["zh-Hans"]}, headers=cms).json()["id"]
    )
    deadline = time.monotonic() + 60
    while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job_id


def memory_target(live: LiveServer, keys: dict[str, str], source: str) -> str:
    r = live.client.get(
        "/v1/memory/search",
        params={"q": source, "variant": "zh-Hans", "side": "source"},
        headers={"Authorization": f"Bearer {keys['admin']}"},
    )
    (entry,) = [e for e in r.json()["memory"] if e["source"] == source]
    return str(entry["target"])


def search(page: Any, query: str) -> None:
    """`query` typed into the open Concordance box, and its answer shown."""
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url):
        page.get_by_label("Word or phrase, English or Chinese").fill(query)
    page.wait_for_function(
        "q => document.getElementById('concordance-count').textContent.startsWith(`“${q}”`)", arg=query
    )


def test_a_correction_in_progress_outlives_new_searches(site: Site, browser: object) -> None:
    from tests.test_review_ui import row_of, sign_in

    live, keys, job_id = site
    page: Any = sign_in(browser, live, keys["admin"])
    page.goto(f"/review/articles/{job_id}")
    page.locator("#concordance-open").click()
    search(page, "harbour")
    box = page.locator("#concordance")
    hits = box.locator("#concordance-memory li")
    assert hits.count() == 3
    entry = hits.filter(has_text=WRONG)
    entry.locator(".cc-correct").click()
    text = entry.get_by_label("Corrected translation (zh-Hans)")
    text.fill(TYPED)
    done = box.locator("#concordance-done")

    # Another word searched for: the entry being corrected is not found by it, and is kept, marked,
    # at the top, with what was typed; the live region says so.
    search(page, "froze")
    assert hits.count() == 2
    kept = hits.first
    assert "cc-kept" in (kept.get_attribute("class") or "")
    assert "Not found by this search" in kept.inner_text()
    assert kept.get_by_label("Corrected translation (zh-Hans)").input_value() == TYPED
    assert "kept at the top" in done.inner_text()
    assert FROZE in hits.nth(1).inner_text()
    # A blank query keeps it too.
    search_box = page.get_by_label("Word or phrase, English or Chinese")
    search_box.fill("")
    page.wait_for_function("() => document.getElementById('concordance-count').textContent === ''")
    assert hits.count() == 1 and kept.get_by_label("Corrected translation (zh-Hans)").input_value() == TYPED

    # Found again: in its place, the one editor with the text, no longer marked.
    search(page, "harbour")
    assert hits.count() == 3 and box.locator(".cc-edit").count() == 1
    assert "cc-kept" not in (entry.get_attribute("class") or "")
    assert entry.locator(".cc-source mark").inner_text() == "harbour"
    assert text.input_value() == TYPED

    # The search asked for again from a segment's editor, a word selected there.
    row: Any = row_of(page, "reopened")
    row.locator(".target-view").click()
    edit = row.locator("textarea.target-edit")
    edit.evaluate("el => { el.value = 'talks'; el.setSelectionRange(0, 5); }")
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url and "q=talks" in r.url):
        edit.press("Control+Shift+F")
    page.wait_for_function("() => document.getElementById('concordance-count').textContent.startsWith('“talks”')")
    assert hits.count() == 1 and hits.first.get_by_label("Corrected translation (zh-Hans)").input_value() == TYPED

    # Saved from where it was kept: stored, and gone from a list that does not find it.
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/memory/entries/" in r.url) as saved:
        hits.first.get_by_role("button", name="Save").click()
    assert saved.value.status == 200
    page.wait_for_function(
        "() => document.getElementById('concordance-done').textContent.startsWith('Entry corrected')"
    )
    assert hits.count() == 0
    assert memory_target(live, keys, WRONG) == TYPED

    # Cancelled from where it was kept: gone too, nothing stored.
    search(page, "harbour")
    hits.filter(has_text=FROZE).locator(".cc-correct").click()
    hits.filter(has_text=FROZE).get_by_label("Corrected translation (zh-Hans)").fill("不要保存。")
    search(page, "master")
    assert hits.count() == 2 and "cc-kept" in (hits.first.get_attribute("class") or "")
    hits.first.get_by_role("button", name="Cancel").click()
    assert hits.count() == 1 and "Correction cancelled" in done.inner_text()
    assert search_box.evaluate("el => el === document.activeElement")  # the focus not lost with it
    assert memory_target(live, keys, FROZE) == "港口一月结冰。"
    page.context.close()


def test_leaving_with_a_query_or_a_correction_typed_asks_first(site: Site, browser: object) -> None:
    from tests.test_review_ui import row_of, sign_in

    live, keys, job_id = site
    dialogs: list[str] = []
    page: Any = sign_in(browser, live, keys["admin"], dialogs)
    page.goto(f"/review/articles/{job_id}")
    row: Any = row_of(page, "talks")
    row.locator(".queries-toggle").click()
    query = row.get_by_label("Ask a query about this sentence, or answer one")
    query.fill("Which talks?")
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"] and not page.is_closed()
    assert query.input_value() == "Which talks?"

    query.fill("")
    page.locator("#concordance-open").click()
    search(page, "froze")
    page.locator("#concordance-memory li .cc-correct").click()
    correction = page.get_by_label("Corrected translation (zh-Hans)")
    correction.fill("港口一月封冻。")
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload", "beforeunload"] and not page.is_closed()

    # Opened and left as it was: nothing typed, nothing to ask about.
    correction.fill("港口一月结冰。")
    with page.expect_event("close", timeout=5_000):
        page.close(run_before_unload=True)
    assert dialogs == ["beforeunload", "beforeunload"] and page.is_closed()
    page.context.close()


def test_a_quoted_text_of_ones_own_stays_when_others_change_the_segment_again(site: Site, browser: object) -> None:
    """A save refused because someone else changed the segment shows the newer text and quotes the
    translator's; a further change by others, brought by the poll while the editor is open, is
    announced beside that quote, not in place of it (the editor no longer holds that text)."""
    from tests.test_review_ui import row_of, sign_in

    live, keys, _ = site
    job_id = new_job(live, keys, "The ferry left at dawn.")
    tr = {"Authorization": f"Bearer {keys['translator']}"}

    def edit_elsewhere(text: str) -> None:
        doc = live.client.get(f"/v1/articles/{job_id}", headers=tr).json()["document"]
        seg = doc["blocks"][0]["segments"][0]
        r = live.client.patch(
            f"/v1/articles/{job_id}/segments/{seg['id']}", json={"text": text, "version": seg["version"]}, headers=tr
        )
        assert r.status_code == 200, r.text

    page: Any = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    edit_elsewhere("渡轮黎明出发。")
    row: Any = row_of(page, "ferry")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as refused:
        row.locator("textarea.target-edit").fill("我自己的译文。")
    assert refused.value.status == 409
    notice = row.locator(".conflict")
    notice.locator("blockquote.mine").wait_for()
    assert row.locator("textarea.target-edit").input_value() == "渡轮黎明出发。"

    edit_elsewhere("渡轮于黎明时分出发。")
    with page.expect_response(lambda r: "/segments?" in r.url):
        page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")  # the poll, now
    notice.locator("blockquote.theirs").wait_for()
    assert "渡轮于黎明时分出发。" in notice.locator("blockquote.theirs").inner_text()
    assert notice.locator("blockquote.mine").inner_text() == "我自己的译文。"
    page.context.close()


def test_the_new_article_form_keeps_its_text(site: Site, browser: object) -> None:
    from tests.test_review_ui import sign_in

    live, keys, _ = site
    dialogs: list[str] = []
    page: Any = sign_in(browser, live, keys["cms"], dialogs)
    page.goto("/review/new")
    page.locator("input[name=title]").fill("Harbour works")
    page.locator("textarea[name=body]").fill("The harbour works resumed on Monday.")
    # Leaving asks first.
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"] and not page.is_closed()

    # Signed out meanwhile (the session ended): not sent, the text stays, and the page says why.
    page.context.clear_cookies()
    page.get_by_role("button", name="Submit for translation").click()
    problem = page.locator("#new-problem")
    problem.wait_for()
    assert "Not submitted" in problem.inner_text() and "signed out" in problem.inner_text()
    assert "/review/new" in page.url
    assert page.locator("textarea[name=body]").input_value() == "The harbour works resumed on Monday."

    # Signed in again in another tab: this page's token is stale, and the form is sent all the same.
    other = page.context.new_page()
    other.goto("/review/login")
    other.fill("input[name=key]", keys["cms"])
    other.click("button[type=submit]")
    other.wait_for_url(re.compile(r".*/review$"))
    other.close()
    page.get_by_role("button", name="Submit for translation").click()
    page.wait_for_url(re.compile(r".*/review/articles/[0-9a-f-]+$"))
    assert dialogs == ["beforeunload"]  # sent: nothing asked
    assert "Harbour works" in page.content()
    page.context.close()


def test_a_stale_new_article_form_comes_back_with_its_text(site: Site) -> None:
    from tests.test_review_ui import signed_in_client

    live, keys, _ = site
    client, csrf = signed_in_client(live, keys["cms"])
    try:
        sent = {
            "csrf_token": "stale",
            "title": "Ferry <b>talks</b>",
            "body": "The ferry talks resumed.",
            "format": "text",
        }
        r = client.post("/review/new", data=sent)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), r.text[:300]
        assert "Nothing was submitted" in r.text and "The ferry talks resumed.</textarea>" in r.text
        assert 'value="Ferry &lt;b&gt;talks&lt;/b&gt;"' in r.text
        assert f'name="csrf_token" value="{csrf}"' in r.text  # this session's token, to send it again
        # A file chosen is not given back: the page says to choose it again.
        r = client.post(
            "/review/new", data={"csrf_token": "stale"}, files={"file": ("ferry.txt", b"The ferry left.", "text/plain")}
        )
        assert r.status_code == 403 and "The file you chose (ferry.txt) is not kept" in r.text
    finally:
        client.close()
    listed = live.client.get("/v1/articles", params={"limit": 500}, headers={"Authorization": f"Bearer {keys['cms']}"})
    assert not any("ferry talks" in str(item).lower() for item in listed.json()["items"])


def test_form_and_page_routes_answer_404_pages_for_ids_that_name_nothing(site: Site) -> None:
    """A form posted for an article that is not there (an unknown id, or one no article could have:
    a NUL, a `/`) is answered with the 404 page itself, not a redirect to one; a page path no route
    takes is the same page; the script's API answers JSON, as before."""
    from tests.test_review_ui import signed_in_client

    live, keys, job_id = site
    client, csrf = signed_in_client(live, keys["admin"])
    try:
        for job in ("%00", "0f0f0f0f-0000-4000-8000-000000000000", "a%2Fb", "%E2%80%AE"):
            for action in ("approve", "reopen"):
                r = client.post(f"/review/articles/{job}/{action}", data={"csrf_token": csrf})
                assert r.status_code == 404, (job, action, r.status_code, r.headers.get("location"))
                assert r.headers["content-type"].startswith("text/html"), (job, action)
                assert "Not found" in r.text and "\x00" not in r.text, (job, action)
            page = client.get(f"/review/articles/{job}")
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), job
            api = client.get(f"/review/api/articles/{job}/state")
            assert api.status_code == 404 and api.json()["error"]["code"] == "not_found", job
        nul = client.post("/review/articles/%00/approve", data={"csrf_token": csrf})
        assert "There is no article &#39;\\x00&#39;." in nul.text, nul.text
        assert (
            "There is no article 0f0f0f0f-0000-4000-8000-000000000000."
            in client.post(
                "/review/articles/0f0f0f0f-0000-4000-8000-000000000000/approve", data={"csrf_token": csrf}
            ).text
        )
        assert "There is no such page." in client.get("/review/nope").text
        # The form routes of an article that is there still redirect to it, with their notice.
        r = client.post(f"/review/articles/{job_id}/approve", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == f"/review/articles/{job_id}"
        # A stale form for an id holding a NUL links back to it quoted.
        r = client.post("/review/articles/%00/approve", data={"csrf_token": "stale"})
        assert r.status_code == 403 and 'href="/review/articles/%00"' in r.text
        # The API's and the static files' 404s stay JSON; a GET of a form route stays a 405.
        assert client.get("/review/api/nope").json()["error"]["code"] == "not_found"
        assert client.get("/review/static/nope.css").json()["error"]["code"] == "not_found"
        assert client.get(f"/review/articles/{job_id}/approve").status_code == 405
    finally:
        client.close()
    anonymous = httpx.Client(base_url=live.url)
    try:
        r = anonymous.get("/review/nope")
        assert r.status_code == 404 and "There is no such page." in r.text
    finally:
        anonymous.close()
