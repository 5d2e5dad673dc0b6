"""The review workspace in a real browser: Playwright driving Debian's Chromium (headless) against
the service running on loopback. A screenshot of the article view is saved in test-output/."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.engine import Engine
from service.auth import Role
from service.config import Settings
from service.keys import create_key
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database
from tests.conftest import REPO, LiveServer, serve

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path(os.environ.get("DUIYI_CHROMIUM", "/usr/bin/chromium"))
OUTPUT = REPO / "test-output"
# What the project's machines need to start Chromium headless as root, with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTICLE = (
    "Abe Shinzo met John Kerry in Tokyo.\n\n"
    "The memo said <script>alert(1)</script> twice.\n\n"
    "Officials counted 3 ships near Futenma."
)


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str], str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'duiyi.db'}"
    db = Database(url)
    db.migrate()
    keys = {
        role.value: create_key(db, name=f"{role.value}-desk", role=role).key for role in (Role.CMS, Role.TRANSLATOR)
    }
    db.close()
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=url,
        auth_disabled=False,
        rate_limit_per_minute=0,
        job_poll_s=0.05,
    )
    with serve(settings, engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        job = live.client.post("/v1/articles", json={"body": ARTICLE, "targets": ["zh-Hans", "zh-TW"]}, headers=cms)
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A translator's edit that drops the source's figure: a flag the page must show.
        tr = {"Authorization": f"Bearer {keys['translator']}"}
        doc = live.client.get(f"/v1/articles/{job_id}", headers=tr).json()["document"]
        ships = next(s for b in doc["blocks"] for s in b["segments"] if "ships" in s["source"])
        edited = live.client.patch(
            f"/v1/articles/{job_id}/segments/{ships['id']}",
            json={"text": "官员在普天间附近数了几艘船。", "version": ships["version"]},
            headers=tr,
        )
        assert any(f["code"] == "number_mismatch" for f in edited.json()["flags"])
        yield live, keys, job_id


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: ./scripts/setup --test installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser: object, live: LiveServer, key: str) -> object:
    context = browser.new_context(base_url=live.url, viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
    page.goto("/review")
    assert "/review/login" in page.url
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/review$"))
    return page


def row_of(page: object, text: str) -> object:
    return page.locator(".seg", has=page.locator(".source", has_text=text))  # type: ignore[attr-defined]


def test_review_workflow(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, job_id = site
    page = sign_in(browser, live, keys["translator"])
    page.click(f"tr[data-id='{job_id}'] a")
    page.wait_for_selector("#article")

    # Glossary term highlighted on the source side, with its note and regional forms on hover.
    abe = row_of(page, "Abe Shinzo")
    mark = abe.locator(".source mark.term", has_text="Abe Shinzo")
    assert mark.count() == 1
    assert "Japanese prime minister" in (mark.get_attribute("title") or "")
    # The flag, with its reason.
    ships = row_of(page, "ships")
    assert "number_mismatch" in ships.locator(".flag").first.inner_text()
    # A source with a script tag shows as text, and nothing ran.
    script_row = row_of(page, "alert(1)")
    assert "<script>alert(1)</script>" in script_row.locator(".source").inner_text()
    assert page.locator(".source script").count() == 0
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "review-article.png"), full_page=True)

    # Edit zh-Hans in place: autosave, and zh-TW is regenerated from the edit with the glossary's forms.
    abe.locator(".target-view").click()
    with page.expect_response(lambda r: "/segments/" in r.url and r.request.method == "PATCH") as saved:
        abe.locator("textarea.target-edit").fill("安倍晋三在东京会见了约翰·克里。")
    assert saved.value.status == 200
    zh_tw = abe.locator(".other[data-variant='zh-TW'] .other-text")
    page.wait_for_function("el => el.textContent.includes('凱瑞')", arg=zh_tw.element_handle())
    assert "東京" in zh_tw.inner_text() and "約翰·凱瑞" in zh_tw.inner_text()
    assert abe.locator(".origin").inner_text() == "human"
    # The target side highlights the glossary form in the edited text.
    assert abe.locator(".target-view mark.term", has_text="安倍晋三").count() == 1

    # Ctrl+Enter (the editor is still open) approves and moves to the next segment.
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        abe.locator("textarea.target-edit").press("Control+Enter")
    assert approved.value.status == 200
    page.wait_for_function("el => el.textContent === 'approved'", arg=abe.locator(".seg-status").element_handle())
    assert page.locator(".seg textarea.target-edit:visible").count() == 1  # the next one is open

    # Reload: the edit and the approval were saved.
    page.reload()
    abe = row_of(page, "Abe Shinzo")
    assert abe.locator(".target-view").inner_text() == "安倍晋三在东京会见了约翰·克里。"
    assert abe.locator(".seg-status").inner_text() == "approved"
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")
    assert "約翰·凱瑞" in row_of(page, "Abe Shinzo").locator(".target-view").inner_text()
    page.context.close()


def test_conflicting_edit_shows_the_newer_text(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, job_id = site
    first = sign_in(browser, live, keys["translator"])
    second = sign_in(browser, live, keys["translator"])
    for page in (first, second):
        page.goto(f"/review/articles/{job_id}")
    # Both opened the same version; the first saves.
    target = row_of(first, "memo")
    target.locator(".target-view").click()
    with first.expect_response(lambda r: "/segments/" in r.url and r.request.method == "PATCH") as saved:
        target.locator("textarea.target-edit").fill("第一位译者的版本。")
    assert saved.value.status == 200
    # The second, still on the old version, is refused and shown the newer text instead.
    stale = row_of(second, "memo")
    stale.locator(".target-view").click()
    with second.expect_response(lambda r: "/segments/" in r.url and r.request.method == "PATCH") as refused:
        stale.locator("textarea.target-edit").fill("第二位译者的版本。")
    assert refused.value.status == 409
    conflict = stale.locator(".conflict")
    conflict.wait_for(state="visible")
    assert "第二位译者的版本。" in conflict.inner_text()
    assert stale.locator("textarea.target-edit").input_value() == "第一位译者的版本。"
    second.reload()
    assert row_of(second, "memo").locator(".target-view").inner_text() == "第一位译者的版本。"
    first.context.close()
    second.context.close()


def test_editor_submits_and_watches_progress(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, _ = site
    page = sign_in(browser, live, keys["cms"])
    page.click("a[href='/review/new']")
    page.fill("input[name=title]", "Harbour works")
    page.fill("textarea[name=body]", "The harbour will reopen in May.\n\nWork began in 2012.")
    page.click("form[action='/review/new'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/review/articles/[0-9a-f-]+$"))
    page.wait_for_selector("#article", timeout=60_000)  # the progress page reloads itself when ready
    assert row_of(page, "reopen in May").count() == 1
    assert row_of(page, "Harbour works").count() == 1  # the title is a block of its own
    # An editor (cms role) can read but not edit or approve.
    assert page.locator("textarea.target-edit").count() == 0
    assert page.locator("button.approve").count() == 0
    # A file upload: the format follows the file name (Markdown here).
    page.goto("/review/new")
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "story.md", "mimeType": "text/markdown", "buffer": b"## Ports\n\nShips **returned** to port."}],
    )
    page.click("form[action='/review/new'] button[type=submit]")
    page.wait_for_selector("#article", timeout=60_000)
    assert page.locator(".block-heading").count() == 1
    assert row_of(page, "returned to port").count() == 1
    page.context.close()


def test_login_refuses_bad_keys_and_forms_need_csrf(site: tuple[LiveServer, dict[str, str], str]) -> None:
    live, keys, job_id = site
    r = live.client.get("/review/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert token
    bad = live.client.post("/review/login", data={"key": "duiyi_00000000_nope", "csrf_token": token.group(1)})
    assert bad.status_code == 401 and "not valid" in bad.text
    good = live.client.post("/review/login", data={"key": keys["translator"], "csrf_token": token.group(1)})
    assert good.status_code == 303
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/review" in cookie
    # Signed in, but a script request without the CSRF header is refused.
    r = live.client.patch(
        f"/review/api/articles/{job_id}/segments/b1.s1", json={"variant": "zh-Hans", "text": "x", "version": 1}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    live.client.cookies.clear()


def test_memory_suggestions_for_the_segment_being_edited(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Similar approved sentences are offered when a translator opens a segment (asked for then, one
    segment at a time, not for the whole page at load), and "Use" puts one in the editor and saves it."""
    live, keys, _ = site
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    body = "The harbour will reopen in May.\n\nTalks resumed in Geneva on Tuesday."
    job_id = live.client.post("/v1/articles", json={"body": body, "targets": ["zh-Hans"]}, headers=cms).json()["id"]
    deadline = time.monotonic() + 60
    while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    doc = live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["document"]
    geneva_now = next(s for b in doc["blocks"] for s in b["segments"] if "Geneva" in s["source"])["targets"]["zh-Hans"]
    db = Database(live.settings.database_url)
    try:
        TranslationMemory(db).remember(
            [
                # Approved since: the same sentence, another translation (100 %).
                Remembered("The harbour will reopen in May.", "zh-Hans", "港口将于五月重开。"),
                # What the Geneva segment already says: no suggestion.
                Remembered("Talks resumed in Geneva on Tuesday.", "zh-Hans", geneva_now),
                # 1.6 times the segment's length and 76.5 % similar: within the cutoff.
                Remembered("The harbour will reopen in May. Officials said so.", "zh-Hans", "官员说港口将于五月重开。"),
                Remembered("The harbour will reopen in June.", "zh-Hans", "港口将于六月重新开放。"),
                Remembered("Talks resumed in Geneva on Tuesday.", "zh-TW", "會談週二在日內瓦恢復。"),  # another variant
                Remembered("The airport closed.", "zh-Hans", "机场关闭。"),  # not similar
                Remembered("<b>The harbour will reopen in May!</b>", "zh-Hans", "<img src=x onerror=alert(1)>"),
            ]
        )
    finally:
        db.close()
    page = sign_in(browser, live, keys["translator"])
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/suggestions" in r.url else None)
    page.goto(f"/review/articles/{job_id}")
    assert asked == []  # nothing scanned the memory to show the page
    harbour = row_of(page, "reopen in May")
    assert harbour.locator(".suggestions").is_hidden()
    with page.expect_response(lambda r: "/suggestions" in r.url) as answered:
        harbour.locator(".target-view").click()
    assert answered.value.status == 200
    offered = harbour.locator(".suggestions li")
    offered.first.wait_for()
    assert offered.count() == 4
    assert [offered.nth(i).locator(".tm-target").inner_text() for i in range(4)] == [
        "港口将于五月重开。",  # the closest first
        "港口将于六月重新开放。",
        "<img src=x onerror=alert(1)>",  # shown as text: nothing in a suggestion is parsed as HTML
        "官员说港口将于五月重开。",
    ]
    assert offered.first.locator(".score").inner_text() == "100%"
    assert "June" in offered.nth(1).locator(".tm-source del").inner_text()
    assert page.locator(".suggestions img").count() == 0
    with page.expect_response(lambda r: "/segments/" in r.url and r.request.method == "PATCH") as saved:
        offered.nth(3).locator(".use-suggestion").click()
    assert saved.value.status == 200
    geneva = row_of(page, "Geneva")
    with page.expect_response(lambda r: "/suggestions" in r.url) as answered:
        geneva.locator(".target-view").click()
    # Its own text (100 %) is answered but not offered; the zh-TW entry is not answered for zh-Hans.
    assert [s["target"] for s in answered.value.json()] == [geneva_now]
    page.wait_for_timeout(200)
    assert geneva.locator(".suggestions").is_hidden()
    page.reload()
    assert row_of(page, "reopen in May").locator(".target-view").inner_text() == "官员说港口将于五月重开。"
    # The route answers for the review app's session only, like the rest of its API.
    live.client.cookies.clear()
    segment = live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["document"]["blocks"][0]["segments"][0]
    url = f"/review/api/articles/{job_id}/segments/{segment['id']}/suggestions"
    assert live.client.get(url).status_code == 401
    page.context.close()


def test_the_suggestions_route_says_what_is_wrong(site: tuple[LiveServer, dict[str, str], str]) -> None:
    live, keys, job_id = site
    token = re.search(r'name="csrf_token" value="([^"]+)"', live.client.get("/review/login").text)
    assert token
    signed_in = live.client.post("/review/login", data={"key": keys["translator"], "csrf_token": token.group(1)})
    assert signed_in.status_code == 303
    try:
        base = f"/review/api/articles/{job_id}/segments"
        doc = live.client.get(f"/v1/articles/{job_id}", headers={"Authorization": f"Bearer {keys['cms']}"}).json()
        first = doc["document"]["blocks"][0]["segments"][0]["id"]
        ok = live.client.get(f"{base}/{first}/suggestions", params={"variant": "zh-TW"})
        assert ok.status_code == 200 and isinstance(ok.json(), list)
        for url, params, status, code in (
            (f"{base}/nope/suggestions", {}, 404, "not_found"),
            (f"/review/api/articles/nope/segments/{first}/suggestions", {}, 404, "not_found"),
            (f"{base}/{first}/suggestions", {"variant": "zh-XX"}, 422, "unknown_variant"),
        ):
            r = live.client.get(url, params=params)
            assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    finally:
        live.client.cookies.clear()
