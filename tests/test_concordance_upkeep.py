"""Keeping the translation memory right from the review workspace: in the Concordance box an admin
(memory:edit) corrects an entry's translation or deletes the entry, in place, with the keyboard
too, through the review app's routes (PATCH and DELETE /review/api/memory/entries/{id}), which
check and log as /v1/memory/entries does. Translators see no such controls and the routes refuse
them; a write without the session's CSRF token is refused like every review write. In a real
browser (Debian's Chromium through Playwright) against the service on loopback. A screenshot of
the box is saved in test-output/."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database
from tests.conftest import REPO, LiveServer, keyed_settings, make_keys, serve

OUTPUT = REPO / "test-output"
ARTICLE = "Boats left the harbour at dawn.\n\nThe talks will continue."
WRONG = "The harbour reopened on Monday."
WRONG_TARGET = "港口周二关闭。"  # a hurried import: the wrong day, the wrong verb
RIGHT_TARGET = "港口周一重新开放。"
GONE = "The harbour master resigned."
STORED = [
    Remembered(WRONG, "zh-Hans", WRONG_TARGET, origin="tmx"),
    Remembered(GONE, "zh-Hans", "港务长辞职。"),
    Remembered("The harbour froze in January.", "zh-Hans", "港口一月结冰。"),
    Remembered(WRONG, "zh-TW", "港口週二關閉。", origin="tmx"),
]
Site = tuple[LiveServer, dict[str, str], str, str]


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path_factory.mktemp('concordance-upkeep') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, suffix="-tm").items()}
    db = Database(url)
    for entry in STORED:  # one at a time: the last is the newest
        TranslationMemory(db).remember([entry])
        time.sleep(0.002)
    db.close()
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        job = live.client.post("/v1/articles", json={"body": ARTICLE, "targets": ["zh-Hans"]}, headers=cms)
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield live, keys, job_id, url


def stored(live: LiveServer, keys: dict[str, str], source: str, variant: str = "zh-Hans") -> list[dict[str, Any]]:
    """The memory's entries of `source` in `variant`, as /v1/memory/search gives them to an admin."""
    r = live.client.get(
        "/v1/memory/search",
        params={"q": source, "variant": variant, "side": "source"},
        headers={"Authorization": f"Bearer {keys['admin']}"},
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json()["memory"] if e["source"] == source]


def entry_id(live: LiveServer, keys: dict[str, str], source: str, variant: str = "zh-Hans") -> int:
    (entry,) = stored(live, keys, source, variant)
    return int(entry["id"])


def signed_in_client(live: LiveServer, key: str) -> tuple[httpx.Client, str]:
    from tests.test_review_ui import signed_in_client as review_client

    return review_client(live, key)


def open_box(page: Any, job_id: str, query: str) -> Any:
    """The article page with the Concordance box open on `query`: the box."""
    page.goto(f"/review/articles/{job_id}")
    page.locator("#concordance-open").click()
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url and "harbour" in r.url):
        page.get_by_label("Word or phrase, English or Chinese").fill(query)
    box = page.locator("#concordance")
    box.locator("#concordance-memory li").first.wait_for()
    return box


def test_an_admin_corrects_one_entry_and_deletes_another(
    site: Site, browser: object, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_review_ui import sign_in

    live, keys, job_id, url = site
    caplog.set_level(logging.INFO, logger="service")
    page: Any = sign_in(browser, live, keys["admin"])
    box = open_box(page, job_id, "harbour")
    hits = box.locator("#concordance-memory li")
    assert hits.count() == 3  # this page's variant (zh-Hans) only
    entry = hits.filter(has_text=WRONG)
    # Each entry says where it came from, and offers its upkeep.
    assert entry.locator(".cc-origin").inner_text() == "tmx"
    assert hits.filter(has_text=GONE).locator(".cc-origin").inner_text() == "approved"
    assert box.locator(".cc-correct").count() == 3 and box.locator(".cc-delete").count() == 3
    OUTPUT.mkdir(exist_ok=True)
    box.screenshot(path=str(OUTPUT / "review-concordance-upkeep.png"))

    # Correct, with the keyboard: the translation in a text box, Ctrl+Enter saves it.
    fix = entry.get_by_role("button", name=f"Correct the translation of “{WRONG}” (zh-Hans)")
    fix.focus()
    page.keyboard.press("Enter")
    text = entry.get_by_label("Corrected translation (zh-Hans)")
    assert text.evaluate("el => el === document.activeElement")
    assert text.input_value() == WRONG_TARGET
    # Esc leaves it as it was (and the box open).
    page.keyboard.press("Escape")
    assert box.is_visible() and text.count() == 0
    assert fix.evaluate("el => el === document.activeElement")
    page.keyboard.press("Enter")
    text.fill(f" {RIGHT_TARGET}  ")
    with page.expect_response(lambda r: r.request.method == "PATCH") as answered:
        page.keyboard.press("Control+Enter")
    assert answered.value.status == 200
    done = box.locator("#concordance-done")
    assert done.get_attribute("role") == "status"
    page.wait_for_function(
        "() => document.getElementById('concordance-done').textContent.startsWith('Entry corrected')"
    )
    assert RIGHT_TARGET in done.inner_text()
    # Updated in place: the translation, its origin; the focus back on Correct.
    assert entry.locator(".cc-target").inner_text() == RIGHT_TARGET
    assert entry.locator(".cc-origin").inner_text() == "corrected"
    assert text.count() == 0 and fix.evaluate("el => el === document.activeElement")
    (after,) = stored(live, keys, WRONG)
    assert (after["target"], after["origin"]) == (RIGHT_TARGET, "corrected")
    assert stored(live, keys, WRONG, "zh-TW")[0]["target"] == "港口週二關閉。"  # its own entry: unchanged

    # Delete: asked first; Keep keeps it.
    gone = hits.filter(has_text=GONE)
    gone_id = entry_id(live, keys, GONE)
    gone.get_by_role("button", name=f"Delete the entry “{GONE}” (zh-Hans)").click()
    keep = gone.get_by_role("button", name="Keep")
    assert keep.evaluate("el => el === document.activeElement")
    assert "no longer be reused" in gone.get_by_role("group").inner_text()
    page.keyboard.press("Enter")
    assert gone.get_by_role("group").count() == 0 and hits.count() == 3
    assert "kept" in done.inner_text()
    assert len(stored(live, keys, GONE)) == 1
    gone.locator(".cc-delete").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        gone.get_by_role("button", name="Delete entry").click()
    assert deleted.value.status == 200
    page.wait_for_function("() => document.querySelectorAll('#concordance-memory li').length === 2")
    assert "Entry deleted" in done.inner_text() and GONE in done.inner_text()
    assert "2 translation memory entries" in box.locator("#concordance-count").inner_text()
    # The focus on a neighbour's Correct button, not lost.
    assert page.evaluate("() => document.activeElement.classList.contains('cc-correct')")
    assert stored(live, keys, GONE) == []
    db = Database(url)
    try:
        ids = {e.id: e for e in TranslationMemory(db).entries()}
    finally:
        db.close()
    assert gone_id not in ids and ids[after["id"]].target == RIGHT_TARGET
    # Who changed which entry, in the log, as the API says it.
    said = [r.getMessage() for r in caplog.records if r.name.startswith("service")]
    assert f"memory entry {after['id']} (zh-Hans) corrected by admin-tm" in said
    assert f"memory entry {gone_id} (zh-Hans) deleted by admin-tm" in said
    page.context.close()


def test_translators_see_no_controls_and_are_refused(site: Site, browser: object) -> None:
    from tests.test_review_ui import sign_in

    live, keys, job_id, _ = site
    page: Any = sign_in(browser, live, keys["translator"])
    box = open_box(page, job_id, "harbour")
    assert box.locator("#concordance-memory li").count() >= 2
    assert box.locator("#concordance-memory li .cc-origin").count() >= 2  # the origin, for them too
    assert box.locator("button.cc-correct, button.cc-delete, .cc-actions").count() == 0
    assert box.locator("#concordance-done").count() == 0
    page.context.close()

    froze = entry_id(live, keys, "The harbour froze in January.")
    client, csrf = signed_in_client(live, keys["translator"])
    try:
        headers = {"X-CSRF-Token": csrf}
        r = client.patch(f"/review/api/memory/entries/{froze}", json={"target": "好"}, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
        r = client.delete(f"/review/api/memory/entries/{froze}", headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    finally:
        client.close()
    assert stored(live, keys, "The harbour froze in January.")[0]["target"] == "港口一月结冰。"
    # Signed out: sign in again.
    anonymous = httpx.Client(base_url=live.url)
    try:
        assert anonymous.patch(f"/review/api/memory/entries/{froze}", json={"target": "好"}).status_code == 401
        assert anonymous.delete(f"/review/api/memory/entries/{froze}").status_code == 401
    finally:
        anonymous.close()


def test_writes_need_the_sessions_csrf_token_and_are_checked_as_the_api_does(site: Site) -> None:
    live, keys, _, _ = site
    froze = entry_id(live, keys, "The harbour froze in January.")
    path = f"/review/api/memory/entries/{froze}"
    client, csrf = signed_in_client(live, keys["admin"])
    try:
        for headers in ({}, {"X-CSRF-Token": "not-this-sessions"}):
            r = client.patch(path, json={"target": "港口一月封冻。"}, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
            r = client.delete(path, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
        assert stored(live, keys, "The harbour froze in January.")[0]["target"] == "港口一月结冰。"

        headers = {"X-CSRF-Token": csrf}
        for body in ({"target": "   "}, {"target": ""}, {"target": "x" * 20_001}, {"target": "好", "origin": "x"}, {}):
            r = client.patch(path, json=body, headers=headers)
            assert r.status_code == 422 and r.json()["error"]["message"], (body, r.text)
        assert client.patch("/review/api/memory/entries/0", json={"target": "好"}, headers=headers).status_code == 422
        r = client.patch("/review/api/memory/entries/999999", json={"target": "好"}, headers=headers)
        assert r.status_code == 404 and "999999" in r.json()["error"]["message"], r.text
        assert client.delete("/review/api/memory/entries/999999", headers=headers).status_code == 404

        r = client.patch(path, json={"target": " 港口一月封冻。\n"}, headers=headers)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["target"], r.json()["origin"]) == (froze, "港口一月封冻。", "corrected")
        r = client.delete(path, headers=headers)
        assert r.status_code == 200 and r.json()["id"] == froze, r.text
        assert client.delete(path, headers=headers).status_code == 404
        assert stored(live, keys, "The harbour froze in January.") == []
    finally:
        client.close()
