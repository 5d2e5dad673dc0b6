"""The review workspace in a real browser: Playwright driving Debian's Chromium (headless) against
the service running on loopback. A screenshot of the article view is saved in test-output/."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service.auth import Role
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database
from service.storage.tables import Job, StoredArticle
from tests.conftest import REPO, LiveServer, keyed_settings, make_keys, serve

OUTPUT = REPO / "test-output"
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
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-desk").items()}
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
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


def sign_in(browser: object, live: LiveServer, key: str, dialogs: list[str] | None = None) -> object:
    """A new browser context signed in with `key`. A dialog fails the test, unless `dialogs` is
    given: then each dialog's type is added to it and the dialog dismissed (the page stays)."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    if dialogs is None:
        page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
    else:
        page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
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
    # The source shows its Markdown as the target does: the emphasis marks, as markup.
    shipped = row_of(page, "Ships **returned** to port.")
    assert shipped.count() == 1
    assert shipped.locator(".source span.tag").all_inner_texts() == ["**", "**"]
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


def test_forms_cut_short_and_form_addresses_opened_get_pages(site: tuple[LiveServer, dict[str, str], str]) -> None:
    # A browser shows what the app answers: a form missing its fields, or an address only a form
    # posts to opened as a page (a bookmark of the sign-out), gets a page of the app, not JSON.
    live, keys, job_id = site
    client = httpx.Client(base_url=live.url, follow_redirects=False)
    for data in ({}, {"key": keys["translator"]}, {"csrf_token": "x"}):
        r = client.post("/review/login", data=data)
        assert r.status_code in (400, 401) and r.headers["content-type"].startswith("text/html"), (data, r.text[:200])
    # The page it answers carries a token that works (the session had none before).
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.post("/review/login", data={}).text)
    assert token and token.group(1)
    signed = client.post("/review/login", data={"key": keys["translator"], "csrf_token": token.group(1)})
    assert signed.status_code == 303
    tokenless = client.post("/review/logout", data={})
    assert tokenless.status_code == 403 and "The form could not be read" in tokenless.text
    assert client.get("/review").status_code == 200  # still signed in: nothing was done
    for path in ("/review/logout", f"/review/articles/{job_id}/approve", f"/review/articles/{job_id}/reopen"):
        r = client.get(path)
        assert r.status_code == 405 and r.headers["content-type"].startswith("text/html"), path
        assert r.headers["allow"] == "POST" and "nothing was done" in r.text
    # The API keeps its JSON.
    api = client.get(f"/review/api/articles/{job_id}/state", headers={"Accept": "application/json"})
    assert api.status_code == 200
    assert client.delete("/review/api/session").headers["content-type"] == "application/json"
    client.close()


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


# --- saving reliably, leaving safely, and the page's other promises -----------------------------

# Answers to the page's PATCH requests reach the script `window.__delay` ms late (the server has
# already saved): a slow connection, without sleeping in the test.
SLOW_SAVES = """
const realFetch = window.fetch;
window.__delay = 1500;
window.fetch = async (url, options) => {
  const response = await realFetch(url, options);
  if (options && options.method === "PATCH") await new Promise((ok) => setTimeout(ok, window.__delay));
  return response;
};
"""


def new_job(
    live: LiveServer, keys: dict[str, str], body: str, fmt: str = "text", targets: list[str] | None = None
) -> str:
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    sent = {"body": body, "format": fmt, "targets": targets or ["zh-Hans", "zh-TW"]}
    job_id = str(live.client.post("/v1/articles", json=sent, headers=cms).json()["id"])
    deadline = time.monotonic() + 60
    while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job_id


def stored(live: LiveServer, keys: dict[str, str], job_id: str, text: str) -> dict[str, object]:
    """The segment whose source contains `text`, as /v1 has it now."""
    doc = live.client.get(f"/v1/articles/{job_id}", headers={"Authorization": f"Bearer {keys['cms']}"}).json()
    return dict(next(s for b in doc["document"]["blocks"] for s in b["segments"] if text in s["source"]))


def settled(live: LiveServer, keys: dict[str, str], job_id: str, text: str, target: str) -> str:
    """The segment's zh-Hans target once it is `target`, or as it is after a few seconds."""
    deadline = time.monotonic() + 8
    while True:
        now = str(stored(live, keys, job_id, text)["targets"]["zh-Hans"])  # type: ignore[index]
        if now == target or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def signed_in_client(live: LiveServer, key: str) -> tuple[httpx.Client, str]:
    """An HTTP client of its own with a review app session, and that session's CSRF token."""
    client = httpx.Client(base_url=live.url, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
    assert token
    assert client.post("/review/login", data={"key": key, "csrf_token": token.group(1)}).status_code == 303
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/review").text)
    assert csrf
    return client, csrf.group(1)


SAVED = re.compile(r"^Saved$")  # not "Unsaved changes" nor "Not saved"
TWO = "The port reopened on Monday.\n\nThe mayor spoke on Tuesday."


def test_a_save_that_fails_keeps_the_text_and_is_sent_again(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    dialogs: list[str] = []
    page = sign_in(browser, live, keys["translator"], dialogs)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "port reopened")
    row.locator(".target-view").click()
    page.context.set_offline(True)
    row.locator("textarea.target-edit").fill("港口周一重新开放。离线时写的。")
    row.locator(".save-state", has_text="Not saved").wait_for()
    assert "could not be reached" in row.locator(".conflict").inner_text()
    # Leaving the segment keeps the editor, and the text, open; leaving the page asks first.
    page.locator("h1").click()
    page.wait_for_timeout(300)
    assert row.locator("textarea.target-edit").input_value() == "港口周一重新开放。离线时写的。"
    assert row.locator("textarea.target-edit").is_visible()
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"] and not page.is_closed()
    # Back online: it is sent again by itself.
    with page.expect_response(lambda r: r.request.method == "PATCH", timeout=10_000) as saved:
        page.context.set_offline(False)
    assert saved.value.status == 200
    row.locator(".save-state", has_text=SAVED).wait_for()
    assert stored(live, keys, job_id, "port reopened")["targets"]["zh-Hans"] == "港口周一重新开放。离线时写的。"  # type: ignore[index]
    assert row.locator(".conflict").is_hidden()
    page.context.close()


def test_saves_and_approval_wait_for_the_save_on_its_way(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Typing on while an autosave is on its way, and Ctrl+Enter then, send the version that save
    got back: no conflict with one's own save, and the approval is of the text typed."""
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.add_init_script(SLOW_SAVES)
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if "/review/api/" in r.url else None)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "port reopened")
    row.locator(".target-view").click()
    edit = row.locator("textarea.target-edit")
    with page.expect_request(lambda r: r.method == "PATCH"):
        edit.fill("港口周一重新开放")
    edit.press("End")
    edit.type("，第二句。")  # the first save's answer is still on its way
    assert settled(live, keys, job_id, "port reopened", "港口周一重新开放，第二句。") == "港口周一重新开放，第二句。"
    row.locator(".save-state", has_text=SAVED).wait_for(timeout=10_000)
    assert row.locator(".conflict").is_hidden()

    mayor = row_of(page, "mayor spoke")
    mayor.locator(".target-view").click()
    with page.expect_request(lambda r: r.method == "PATCH"):
        mayor.locator("textarea.target-edit").fill("市长周二讲话。")
    with page.expect_response(lambda r: r.url.endswith("/approve"), timeout=10_000) as approved:
        mayor.locator("textarea.target-edit").press("Control+Enter")
    assert approved.value.status == 200
    segment = stored(live, keys, job_id, "mayor spoke")
    assert segment["status"] == "approved" and segment["targets"]["zh-Hans"] == "市长周二讲话。"  # type: ignore[index]
    mayor.locator(".save-state", has_text=re.compile(r"^Approved$")).wait_for()
    assert 409 not in answers
    page.context.close()


def test_leaving_the_page_saves_the_typing_first(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "port reopened")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("切换前写的。")
    page.click("nav.variants a:has-text('zh-TW')")  # before the autosave
    page.wait_for_url(re.compile(r".*variant=zh-TW"))
    assert stored(live, keys, job_id, "port reopened")["targets"]["zh-Hans"] == "切换前写的。"  # type: ignore[index]
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "mayor spoke")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("只看标记前写的。")
    page.check("#flagged-only")
    page.wait_for_url(re.compile(r".*flagged=1"))
    assert stored(live, keys, job_id, "mayor spoke")["targets"]["zh-Hans"] == "只看标记前写的。"  # type: ignore[index]
    page.context.close()


def test_signing_out_ends_the_session_everywhere(site: tuple[LiveServer, dict[str, str], str]) -> None:
    live, keys, job_id = site
    client, csrf = signed_in_client(live, keys["translator"])
    copy = httpx.Client(
        base_url=live.url, follow_redirects=False, cookies={"duiyi_review": client.cookies["duiyi_review"]}
    )
    assert copy.get("/review").status_code == 200
    out = client.post("/review/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/review/login"
    # The cookie as it was before signing out, replayed: signed in no more.
    assert copy.get("/review").status_code == 303
    r = copy.patch(
        f"/review/api/articles/{job_id}/segments/b1.s1",
        json={"variant": "zh-Hans", "text": "x", "version": 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 401
    client.close()
    copy.close()


def test_pages_cannot_be_framed_or_cached(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, job_id = site
    client, _ = signed_in_client(live, keys["translator"])
    for url in ("/review", f"/review/articles/{job_id}", "/review/login", f"/review/api/articles/{job_id}/progress"):
        r = client.get(url)
        assert r.headers["x-frame-options"] == "DENY", url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], url
        assert "script-src 'self'" in r.headers["content-security-policy"], url
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["cache-control"] == "no-store", url
    assert client.get("/review/static/review.js").headers["x-content-type-options"] == "nosniff"
    client.close()
    # The pages work under that policy: nothing refused in the browser, the list's filter submits.
    page = sign_in(browser, live, keys["translator"])
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"/review/articles/{job_id}")
    row_of(page, "Futenma").locator(".target-view").click()
    assert row_of(page, "Futenma").locator("textarea.target-edit").is_visible()
    page.goto("/review")
    page.select_option("select[name=status]", "translated")
    page.wait_for_url(re.compile(r".*status=translated"))
    assert refused == []
    page.context.close()


def test_notices_come_from_the_app_not_the_url(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}?message=Your+session+expired.+Sign+in+at+https://evil.example")
    assert page.locator("#message").count() == 0 and "evil.example" not in page.content()
    # Two segments need review and the reason is blank (the browser asks for one; a space passes): refused.
    page.fill("input[name=override]", " ")
    page.click("#approve-article")
    page.wait_for_load_state()
    assert "need review" in page.locator("#message").inner_text()
    assert "message=" not in page.url
    page.reload()
    assert page.locator("#message").count() == 0  # said once
    page.context.close()


def test_the_source_shows_its_markup_as_the_target_does(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    live, keys, _ = site
    html_job = new_job(live, keys, '<p>Read <a href="https://x.example/"><b>the memo</b></a> &amp; weep.</p>', "html")
    md_job = new_job(live, keys, "See [the *report*](https://x.example/r) now.", "markdown")
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{html_job}")
    source = row_of(page, "memo").locator(".source")
    assert source.inner_text() == 'Read <a href="https://x.example/"><b>the memo</b></a> &amp; weep.'
    tags = ['<a href="https://x.example/">', "<b>", "</b>", "</a>"]
    assert source.locator("span.tag").all_inner_texts() == tags
    # The target's copies of the same markup are shown the same way.
    target_tags = row_of(page, "memo").locator(".target-view span.tag").all_inner_texts()
    assert sorted(target_tags) == sorted(tags)
    page.goto(f"/review/articles/{md_job}")
    source = row_of(page, "report").locator(".source")
    assert source.inner_text() == "See [the *report*](https://x.example/r) now."
    assert source.locator("span.tag").all_inner_texts() == ["[", "*", "*", "](https://x.example/r)"]
    page.context.close()


def test_each_text_has_its_own_language(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, job_id = site
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")
    ships = row_of(page, "ships")
    langs = ships.evaluate(
        """row => ({
          view: row.querySelector('.target-view').closest('[lang]').lang,
          edit: row.querySelector('.target-edit').closest('[lang]').lang,
          other: [...row.querySelectorAll('.other')].map(
            o => [o.dataset.variant, o.querySelector('.other-text').closest('[lang]').lang]),
          flag: row.querySelector('.flag').closest('[lang]').lang,
          source: row.querySelector('.source').closest('[lang]').lang,
        })"""
    )
    assert langs == {"view": "zh-TW", "edit": "zh-TW", "other": [["zh-Hans", "zh-Hans"]], "flag": "en", "source": "en"}
    page.context.close()


def test_the_editor_refuses_markup_with_the_apis_code(site: tuple[LiveServer, dict[str, str], str]) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, "<p>Plain words here.</p>", "html", ["zh-Hans"])
    segment = stored(live, keys, job_id, "Plain words")
    client, csrf = signed_in_client(live, keys["translator"])
    r = client.patch(
        f"/review/api/articles/{job_id}/segments/{segment['id']}",
        json={"variant": "zh-Hans", "text": "<script>alert(1)</script>", "version": segment["version"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "markup_not_allowed"
    client.close()


def test_a_stale_csrf_token_loses_nothing(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    # Signed out and in again in another tab: this page's token is stale; its typing still saves.
    other = page.context.new_page()
    other.goto("/review")
    other.click("header form.who button")
    other.fill("input[name=key]", keys["translator"])
    other.click("button[type=submit]")
    other.wait_for_url(re.compile(r".*/review$"))
    row = row_of(page, "port reopened")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("换了会话后写的。")
    assert settled(live, keys, job_id, "port reopened", "换了会话后写的。") == "换了会话后写的。"
    row.locator(".save-state", has_text=SAVED).wait_for(timeout=10_000)
    assert row.locator(".conflict").is_hidden()
    page.context.close()
    # A browser form with a stale token gets a page saying so, not JSON.
    client, _ = signed_in_client(live, keys["translator"])
    for url in (f"/review/articles/{job_id}/approve", "/review/logout"):
        r = client.post(url, data={"csrf_token": "stale"})
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), url
        assert "The form expired" in r.text and "Nothing was done" in r.text
    tokenless = client.post(f"/review/articles/{job_id}/approve", data={})
    assert tokenless.status_code == 403 and f'href="/review/articles/{job_id}"' in tokenless.text
    assert "The form could not be read" in tokenless.text and "Nothing was done" in tokenless.text
    # A multipart form cut short carries no token either: not called expired.
    broken = client.post(
        "/review/new",
        content=b'--xyz\r\nContent-Disposition: form-data; name="body"\r\n\r\nHello',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code in (400, 403) and "The form expired" not in broken.text, broken.text[:300]
    client.close()


def test_approving_a_stale_segment_quotes_no_text_of_ones_own(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    translator = {"Authorization": f"Bearer {keys['translator']}"}
    segment = stored(live, keys, job_id, "mayor spoke")
    # A translation with no flags, so that Approve sends the approval at once (the tiny model's
    # output may be flagged, and a flagged segment is only warned of on the first press).
    clean = live.client.patch(
        f"/v1/articles/{job_id}/segments/{segment['id']}",
        json={"text": "市长周二发表了讲话。", "version": segment["version"]},
        headers=translator,
    )
    assert clean.status_code == 200 and clean.json()["flags"] == []
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    edited = live.client.patch(
        f"/v1/articles/{job_id}/segments/{segment['id']}",
        json={"text": "别人刚改的。", "version": clean.json()["version"]},
        headers=translator,
    )
    assert edited.status_code == 200
    row = row_of(page, "mayor spoke")
    with page.expect_response(lambda r: r.url.endswith("/approve")) as refused:
        row.locator("button.approve").click()
    assert refused.value.status == 409
    conflict = row.locator(".conflict")
    conflict.wait_for(state="visible")
    assert "Nothing was approved" in conflict.inner_text() and "Your text was" not in conflict.inner_text()
    assert row.locator(".target-view").inner_text() == "别人刚改的。"
    page.context.close()


def test_the_progress_page_says_why_a_job_failed(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    live, keys, _ = site
    db = Database(live.settings.database_url)
    job_id = str(uuid.uuid4())
    try:
        with db.session() as session:
            article = StoredArticle(format="text", body="Held elsewhere.")
            session.add(article)
            session.flush()
            # Leased by a runner of another process for an hour: this server's runners leave it.
            session.add(
                Job(
                    id=job_id,
                    article_id=article.id,
                    owner="cms-desk",
                    request_hash="h",
                    targets=["zh-Hans"],
                    glossaries=[],
                    glossary_terms=[],
                    status="translating",
                    runner="elsewhere",
                    lease_until=datetime.now(UTC) + timedelta(hours=1),
                    segments_total=3,
                )
            )
        page = sign_in(browser, live, keys["translator"])
        page.goto(f"/review/articles/{job_id}")
        assert page.locator("#progress-failure").is_hidden()
        with db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.failure = "failed", "the model ran out of memory"
        page.get_by_text("the model ran out of memory").wait_for(timeout=10_000)
        assert page.locator("#progress-failure").is_visible()
        assert page.locator("#progress-status").inner_text() == "failed"
        page.context.close()
    finally:
        db.close()


def test_keyboard_names_and_counts_follow_the_edits(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Escape gives the focus back to the translation; each Approve button names its segment; a
    save is said in words; the count of segments needing review follows the approvals."""
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    names = page.locator("button.approve").evaluate_all(
        "bs => bs.map(b => b.getAttribute('aria-label') || b.textContent)"
    )
    assert len(set(names)) == len(names) == 2 and any("port reopened" in n for n in names)
    row = row_of(page, "port reopened")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        row.locator("textarea.target-edit").fill("港口周一重新开放。")
    row.locator(".save-state", has_text=SAVED).wait_for()
    assert row.locator(".save-state").get_attribute("aria-live") == "polite"
    row.locator("textarea.target-edit").press("Escape")
    page.wait_for_function("() => document.activeElement.classList.contains('target-view')")
    assert row.locator(".target-view").evaluate("v => v === document.activeElement")
    before = int(page.locator("#pending-count").inner_text())
    needing = [s for s in ("port reopened", "mayor spoke") if stored(live, keys, job_id, s)["status"] == "needs_review"]
    with page.expect_response(lambda r: r.url.endswith("/approve")):
        row_of(page, "mayor spoke").locator("button.approve").click()
    expected = before - (1 if "mayor spoke" in needing else 0)
    page.wait_for_function(f"() => document.querySelector('#pending-count').textContent.trim() === '{expected}'")
    page.reload()
    assert int(page.locator("#pending-count").inner_text()) == expected
    page.context.close()


# --- moving through an article ------------------------------------------------------------------

# Sentences no other test approves (an approved one comes back from the memory, not needing review).
FOUR = (
    "The ferry port reopened at dawn.\n\nThe mayor spoke at noon.\n\nShips returned at dusk.\n\nTrade resumed at night."
)


def focused_segment(page: object) -> str:
    """The id of the segment whose editor (or translation) has the focus, "" when none has."""
    return str(page.evaluate("() => document.activeElement.closest('.seg')?.dataset.id || ''"))  # type: ignore[attr-defined]


# A second press counts once the warning could be read: this long after it (the page's 800 ms, and some).
WARNING_READ_MS = 1000


def warned(key_target: object, key: str = "Control+Enter") -> None:
    """Asks to approve a flagged segment the first time (a key pressed on, or a click of, `key_target`)
    and checks that its segment says so instead of approving it; returns once a second press would
    count (a press right after the warning is taken for a double press, and ignored)."""
    row = key_target.locator("xpath=ancestor::div[contains(@class, 'seg')][1]")  # type: ignore[attr-defined]
    if key:
        key_target.press(key)  # type: ignore[attr-defined]
    else:
        key_target.click()  # type: ignore[attr-defined]
    row.locator(".approve-warning", has_text="again to approve it anyway").wait_for()
    row.page.wait_for_timeout(WARNING_READ_MS)  # type: ignore[attr-defined]


def test_approving_moves_on_to_the_next_segment_not_yet_approved(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Ctrl+Enter skips segments approved already (as CAT tools do); Alt+Down and the toolbar's
    button open the next segment that needs review, from wherever the translator is."""
    live, keys, _ = site
    job_id = new_job(live, keys, FOUR)
    segs = {s: stored(live, keys, job_id, s) for s in ("ferry", "mayor", "Ships", "Trade")}
    assert all(s["status"] == "needs_review" for s in segs.values())  # the tiny model's output is flagged
    approved = live.client.post(
        f"/v1/articles/{job_id}/segments/{segs['mayor']['id']}/approve",
        json={"version": segs["mayor"]["version"]},
        headers={"Authorization": f"Bearer {keys['translator']}"},
    )
    assert approved.status_code == 200
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    ferry = row_of(page, "ferry port")
    ferry.locator(".target-view").click()
    warned(ferry.locator("textarea.target-edit"))  # flagged: the first Ctrl+Enter only warns
    with page.expect_response(lambda r: r.url.endswith("/approve")) as answered:
        ferry.locator("textarea.target-edit").press("Control+Enter")
    assert answered.value.status == 200
    # The mayor's segment is approved already: on to the ships.
    page.wait_for_function(f"() => document.activeElement.closest('.seg')?.dataset.id === '{segs['Ships']['id']}'")
    assert row_of(page, "Ships returned").locator("textarea.target-edit").is_visible()
    assert row_of(page, "mayor spoke").locator("textarea.target-edit").is_hidden()

    page.keyboard.press("Alt+ArrowDown")  # the next needing review: the last one
    page.wait_for_function(f"() => document.activeElement.closest('.seg')?.dataset.id === '{segs['Trade']['id']}'")
    assert page.evaluate("() => document.activeElement.classList.contains('target-edit')")
    page.click("#next-pending")  # from the last, round to the ships (still needing review)
    page.wait_for_function(f"() => document.activeElement.closest('.seg')?.dataset.id === '{segs['Ships']['id']}'")

    # When nothing is left, it says so, and the focus stays where it was.
    for text in ("Ships returned", "Trade resumed"):  # each opened by approving the one before
        warned(row_of(page, text).locator("textarea.target-edit"))
        with page.expect_response(lambda r: r.url.endswith("/approve")):
            row_of(page, text).locator("textarea.target-edit").press("Control+Enter")
    page.locator("#page-status", has_text="Every segment on this page is approved").wait_for()
    assert focused_segment(page) == segs["Trade"]["id"]
    page.keyboard.press("Alt+ArrowDown")
    page.locator("#page-status", has_text="No segment on this page needs review").wait_for()
    page.context.close()


def test_switching_variant_or_filter_keeps_the_place(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Deep in a long article, the other variant (and the flagged-only view) opens at the segment
    the translator was at, with the focus on it, clear of the sticky toolbar."""
    live, keys, _ = site
    body = "\n\n".join(f"Officials counted {n} ships near the port on day {n}." for n in range(1, 31))
    job_id = new_job(live, keys, body)
    page = sign_in(browser, live, keys["translator"])
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "on day 24.")
    seg_id = row.get_attribute("data-id")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("第二十四天。")

    def shown_and_focused() -> None:
        page.wait_for_function(f"() => document.activeElement.closest('.seg')?.dataset.id === '{seg_id}'")
        box = row_of(page, "on day 24.").bounding_box()
        toolbar = page.locator(".toolbar").bounding_box()
        assert box and toolbar
        assert toolbar["y"] + toolbar["height"] <= box["y"] and box["y"] + box["height"] <= 800, (box, toolbar)

    page.click("nav.variants a:has-text('zh-TW')")
    page.wait_for_url(re.compile(rf".*variant=zh-TW#at={re.escape(str(seg_id))}$"))
    shown_and_focused()
    assert stored(live, keys, job_id, "on day 24.")["targets"]["zh-Hans"] == "第二十四天。"  # type: ignore[index]
    page.check("#flagged-only")
    page.wait_for_url(re.compile(rf".*flagged=1#at={re.escape(str(seg_id))}$"))
    shown_and_focused()
    # Only scrolled there, nothing opened: the segment on screen is the place.
    page.goto(f"/review/articles/{job_id}")
    row_of(page, "on day 17.").evaluate("r => r.scrollIntoView({block: 'start'})")  # just below the toolbar
    page.click("nav.variants a:has-text('zh-TW')")
    page.wait_for_url(re.compile(rf".*#at={re.escape(str(row_of(page, 'on day 17.').get_attribute('data-id')))}$"))
    page.context.close()


def test_the_editor_fits_its_text_and_the_focus_shows(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """A long translation is edited without a scrollbar inside the editor, and opening the editor
    does not shrink the segment (the rows below stay put); the focused translation has a clear
    outline, unlike one under the mouse; an approved row keeps its text's colour."""
    live, keys, _ = site
    job_id = new_job(live, keys, TWO)
    page = sign_in(browser, live, keys["translator"])
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "port reopened")
    long_text = "港口在周一重新开放，市长说这是一个好消息。" * 12
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        row.locator("textarea.target-edit").fill(long_text)
    edit = row.locator("textarea.target-edit")
    scroll, client = edit.evaluate("t => [t.scrollHeight, t.clientHeight]")
    assert scroll <= client, (scroll, client)
    row.locator(".save-state", has_text=SAVED).wait_for()
    edit.press("Escape")
    page.wait_for_function("() => document.activeElement.classList.contains('target-view')")
    view_height = row.locator(".target-view").bounding_box()["height"]
    below = row_of(page, "mayor spoke").bounding_box()["y"]
    row.locator(".target-view").press("Enter")
    assert edit.is_visible()
    assert edit.bounding_box()["height"] >= view_height - 1
    assert abs(row_of(page, "mayor spoke").bounding_box()["y"] - below) <= 24  # no jump of the rows below
    edit.press("Escape")
    page.wait_for_function("() => document.activeElement.classList.contains('target-view')")
    focused = row.locator(".target-view").evaluate("v => getComputedStyle(v).outlineWidth")
    assert float(focused.removesuffix("px")) >= 2
    with page.expect_response(lambda r: r.url.endswith("/approve")):
        row_of(page, "mayor spoke").locator("button.approve").click()
    mayor = row_of(page, "mayor spoke")
    mayor.locator(".seg-status", has_text="approved").wait_for()
    colours = mayor.evaluate(
        "r => [getComputedStyle(r.querySelector('.source')).color, getComputedStyle(document.body).color]"
    )
    assert colours[0] == colours[1]
    page.context.close()


# --- approving with flags, the article's approval, the glossary at hand -------------------------


def test_approving_a_flagged_segment_warns_once(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    """The first Ctrl+Enter (or Approve) on a flagged segment approves nothing: the segment says
    which flags it has, in a live region its editor and button are described by; the second
    approves. A segment without flags is approved at once."""
    live, keys, _ = site
    body = "Abe Shinzo toured the dockyard on Friday.\n\nThe dockyard closed at noon.\n\nThe crane was painted red."
    job_id = new_job(live, keys, body)
    approvals: list[str] = []
    page = sign_in(browser, live, keys["translator"])
    page.on("request", lambda r: approvals.append(r.url) if r.url.endswith("/approve") else None)
    page.goto(f"/review/articles/{job_id}")
    abe = row_of(page, "Abe Shinzo toured")
    abe.locator(".target-view").click()
    edit = abe.locator("textarea.target-edit")
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        edit.fill("他周五参观了船坞。")  # the glossary's 安倍晋三 is missing
    assert any(f["code"] == "term_missing" for f in saved.value.json()["flags"])
    abe.locator(".save-state", has_text=SAVED).wait_for()
    warning = abe.locator(".approve-warning")
    assert warning.get_attribute("role") == "alert"
    assert str(warning.get_attribute("id")) in str(edit.get_attribute("aria-describedby")).split()
    assert str(warning.get_attribute("id")) in str(abe.locator("button.approve").get_attribute("aria-describedby"))
    warned(edit)
    assert "term_missing" in warning.inner_text()
    page.wait_for_timeout(300)
    assert approvals == []
    assert abe.locator(".seg-status").inner_text() == "needs_review"
    assert edit.evaluate("e => e === document.activeElement")  # still editing it
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        edit.press("Control+Enter")
    assert approved.value.status == 200
    abe.locator(".seg-status", has_text="approved").wait_for()
    assert warning.inner_text() == "" and warning.is_hidden()
    assert stored(live, keys, job_id, "Abe Shinzo toured")["status"] == "approved"

    # The Approve button: the same, once.
    closed = row_of(page, "dockyard closed")
    assert stored(live, keys, job_id, "dockyard closed")["flags"]  # the tiny model's output is flagged
    warned(closed.locator("button.approve"), key="")
    assert len(approvals) == 1
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        closed.locator("button.approve").click()
    assert approved.value.status == 200
    closed.locator(".seg-status", has_text="approved").wait_for()

    # Without flags: approved at the first Ctrl+Enter.
    crane = row_of(page, "crane was painted")
    crane.locator("textarea.target-edit").wait_for()  # opened by approving the one before
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        crane.locator("textarea.target-edit").fill("起重机被漆成了红色。")
    assert saved.value.json()["flags"] == []
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        crane.locator("textarea.target-edit").press("Control+Enter")
    assert approved.value.status == 200
    assert crane.locator(".approve-warning").inner_text() == ""
    page.context.close()


def test_the_article_approval_form_follows_the_segments(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Approving the flagged segments one by one takes the "still need review" question off the
    article's approval form; an edit that reopens an approved article brings the form back."""
    live, keys, _ = site
    job_id = new_job(live, keys, "The tugboat left at six.\n\nThe barge followed at seven.")
    assert all(stored(live, keys, job_id, s)["status"] == "needs_review" for s in ("tugboat", "barge"))
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    form = page.locator("form.approve-article")
    question = form.locator("label", has_text="still need review")
    assert question.is_visible() and form.locator(".pending-count").inner_text() == "2"
    for text in ("tugboat", "barge"):
        # Approved with its button, past the warning about its flags (when the page gives one).
        row = row_of(page, text)
        row.locator("button.approve").click()
        page.wait_for_function(
            "r => r.querySelector('.seg-status').textContent === 'approved'"
            " || r.querySelector('.approve-warning')?.textContent",
            arg=row.element_handle(),
        )
        if row.locator(".seg-status").inner_text() != "approved":
            page.wait_for_timeout(WARNING_READ_MS)  # a second click right after the warning is ignored
            row.locator("button.approve").click()
        row.locator(".seg-status", has_text="approved").wait_for()
    question.wait_for(state="hidden")
    assert page.locator("#pending-count").inner_text() == "0"
    assert form.locator("input[name=override]").is_disabled()
    page.click("#approve-article")  # no reason asked for, none needed
    page.wait_for_load_state()
    assert page.locator("#message").inner_text() == "Article approved."
    assert page.locator("#job-status").inner_text() == "approved"
    assert form.is_hidden()

    # An edit reopens the article: the form is back, asking for a reason if the edit is flagged.
    row = row_of(page, "tugboat")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        row.locator("textarea.target-edit").fill("拖船六点出发了。")
    assert saved.value.status == 200
    form.wait_for(state="visible")
    assert page.locator("#job-status").inner_text() == "in_review"
    assert question.is_visible() == (saved.value.json()["status"] == "needs_review")
    page.context.close()


def test_the_glossary_terms_of_the_segment_being_edited_are_listed(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Opened for editing, a segment lists its glossary terms under the editor (the term, the form
    this variant must have, the note), readable without a mouse; the hover titles stay."""
    live, keys, _ = site
    job_id = new_job(live, keys, "John Kerry landed in Seoul at dawn.")
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")
    row = row_of(page, "John Kerry landed")
    box = row.locator(".glossary-terms")
    assert box.is_hidden()
    assert "US Secretary of State" in (row.locator(".source mark.term").first.get_attribute("title") or "")
    row.locator(".target-view").press("Enter")  # from the keyboard
    box.wait_for()
    edit = row.locator("textarea.target-edit")
    assert str(box.get_attribute("id")) in str(edit.get_attribute("aria-describedby")).split()
    kerry = box.locator("li[data-term='john-kerry']")
    assert kerry.locator(".term-source").inner_text() == "John Kerry"
    assert kerry.locator(".term-form").inner_text() == "約翰·凱瑞"  # zh-TW's own form, not 约翰·克里
    assert kerry.locator(".term-form").get_attribute("lang") == "zh-TW"
    assert kerry.locator(".term-note").inner_text() == "US Secretary of State in 2013"
    # An edit that drops the term says so in the list.
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        edit.fill("他黎明時抵達首爾。")
    kerry.locator(".term-absent-note").wait_for()
    edit.press("Escape")
    box.wait_for(state="hidden")
    page.context.close()


def test_a_revision_marks_and_filters_what_changed_since_the_previous_one(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """A correction arrives as a new revision: the translator sees which sentences are new or
    changed since the previous one, and can show only those."""
    live, keys, _ = site
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    first = "The port reopened on Monday. Ships waited outside.\n\nThe mayor spoke at noon."
    second = "The port reopened on Tuesday. Ships waited outside.\n\nThe mayor spoke at noon. She thanked the crews."
    ids = []
    for revision, body in (("1", first), ("2", second)):
        sent = {"body": body, "external_id": "cms-rev-test", "revision": revision, "targets": ["zh-Hans"]}
        ids.append(str(live.client.post("/v1/articles", json=sent, headers=cms).json()["id"]))
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{ids[-1]}", headers=cms).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{ids[1]}")
    assert "2 sentence(s) new or changed since rev 1" in page.locator(".facts").inner_text()
    changed = {row_of(page, t).locator(".badge.changed").count() for t in ("on Tuesday", "thanked the crews")}
    unchanged = {row_of(page, t).locator(".badge.changed").count() for t in ("Ships waited", "spoke at noon")}
    assert (changed, unchanged) == ({1}, {0})
    page.check("#changed-only")
    page.wait_for_url(re.compile(r".*changed=1.*"))
    assert sorted(page.locator(".seg .source").all_inner_texts()) == [
        "She thanked the crews.",
        "The port reopened on Tuesday.",
    ]
    # The first revision is no revision: nothing marked, no filter.
    page.goto(f"/review/articles/{ids[0]}")
    assert page.locator("#changed-only").count() == 0 and page.locator(".badge.changed").count() == 0
    page.context.close()


# --- repetitions, and changes made elsewhere ---------------------------------------------------

BOILERPLATE = "Reporting by the desk in Lisbon."
REPEATED = f"{BOILERPLATE}\n\nThe strike closed the docks.\n\n{BOILERPLATE}\n\n{BOILERPLATE}"


def test_saving_a_sentence_updates_its_repetitions_in_place(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """A save reaches the sentence's repetitions no one has touched: the page shows their new text
    at once (no reload), and says how many it updated; the history says where it came from."""
    live, keys, _ = site
    job_id = new_job(live, keys, REPEATED)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    rows = page.locator(".seg", has=page.locator(".source", has_text="Reporting by the desk"))
    assert rows.count() == 3
    first = rows.nth(0)
    first.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        first.locator("textarea.target-edit").fill("里斯本编辑部报道。")
    assert saved.value.status == 200
    repetitions = {seg["id"]: seg for seg in saved.value.json()["repetitions"]}
    assert len(repetitions) == 2
    for n in (1, 2):
        page.wait_for_function(
            "el => el.textContent === '里斯本编辑部报道。'", arg=rows.nth(n).locator(".target-view").element_handle()
        )
        assert "Changed with segment" in rows.nth(n).locator(".save-state").inner_text()
        # The page has their new versions (and the zh-TW text regenerated with them).
        seg = repetitions[rows.nth(n).get_attribute("data-id") or ""]
        assert rows.nth(n).get_attribute("data-version") == str(seg["version"])
        assert rows.nth(n).locator(".other[data-variant='zh-TW'] .other-text").inner_text() == seg["targets"]["zh-TW"]
    page.locator("#page-status", has_text="2 repetitions of this sentence updated too").wait_for()
    # The sentence that is no repetition was left as it was.
    assert row_of(page, "strike closed").locator(".target-view").inner_text() != "里斯本编辑部报道。"
    # And the page knows the new versions: editing a repetition now saves (no 409).
    second = rows.nth(1)
    second.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as again:
        second.locator("textarea.target-edit").fill("里斯本编辑部的报道。")
    assert again.value.status == 200
    page.context.close()


def test_changes_by_others_arrive_without_a_reload(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """Every 15 s while visible the page asks whether the article changed: a segment another
    translator changed is updated in place and the count needing review follows; the one this
    translator is editing is not replaced, they are told, and it is updated once they close it."""
    live, keys, _ = site
    job_id = new_job(live, keys, FOUR.replace("at", "by"))  # sentences of its own
    page = sign_in(browser, live, keys["translator"])
    page.clock.install()  # type: ignore[attr-defined]
    page.goto(f"/review/articles/{job_id}")  # type: ignore[attr-defined]
    editing = row_of(page, "mayor spoke")
    editing.locator(".target-view").click()
    assert editing.locator("textarea.target-edit").is_visible()
    before_text = editing.locator("textarea.target-edit").input_value()

    # Another translator (the API, with the same role) approves the ferry's sentence and edits the
    # mayor's.
    tr = {"Authorization": f"Bearer {keys['translator']}"}
    ferry = stored(live, keys, job_id, "ferry")
    mayor = stored(live, keys, job_id, "mayor")
    assert ferry["status"] == "needs_review"
    r = live.client.post(
        f"/v1/articles/{job_id}/segments/{ferry['id']}/approve", json={"version": ferry["version"]}, headers=tr
    )
    assert r.status_code == 200, r.text
    r = live.client.patch(
        f"/v1/articles/{job_id}/segments/{mayor['id']}",
        json={"text": "市长周二讲话。", "version": mayor["version"]},
        headers=tr,
    )
    assert r.status_code == 200, r.text
    pending = sum(
        1
        for b in live.client.get(f"/v1/articles/{job_id}", headers=tr).json()["document"]["blocks"]
        for s in b["segments"]
        if s["status"] == "needs_review"
    )

    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:  # type: ignore[attr-defined]
        page.clock.run_for(15_500)  # type: ignore[attr-defined]
    assert polled.value.status == 200
    ferry_row = row_of(page, "ferry port")
    ferry_row.locator(".seg-status", has_text="approved").wait_for()
    assert "changed this segment" in ferry_row.locator(".save-state").inner_text()
    page.wait_for_function(f"() => document.querySelector('#pending-count').textContent.trim() === '{pending}'")
    # The segment being edited: its text is not replaced; the translator is told, with the new text.
    notice = editing.locator(".conflict")
    notice.wait_for(state="visible")
    assert "while you were editing it" in notice.inner_text() and "市长周二讲话。" in notice.inner_text()
    assert editing.locator("textarea.target-edit").input_value() == before_text

    # Nothing changed since: the next poll is a 304, and changes nothing on the page.
    with page.expect_response(lambda r: r.url.endswith("/state")) as polled:  # type: ignore[attr-defined]
        page.clock.run_for(15_500)  # type: ignore[attr-defined]
    assert polled.value.status == 304
    assert editing.locator("textarea.target-edit").input_value() == before_text

    # Closed unchanged: the newer text is put in place.
    editing.locator("textarea.target-edit").press("Escape")
    page.wait_for_function(
        "el => el.textContent === '市长周二讲话。'", arg=editing.locator(".target-view").element_handle()
    )
    assert notice.is_hidden()
    page.context.close()


def test_updating_repetitions_can_be_turned_off(site: tuple[LiveServer, dict[str, str], str], browser: object) -> None:
    """The toolbar's "Update repetitions" (a checkbox, from the keyboard too) turns propagation off
    for the translator's saves and approvals (`propagate: false`): the other repetitions keep their
    text. It is a workspace preference, kept in the browser across reloads; turned on again, a save
    reaches the untouched repetitions and the page says how many."""
    live, keys, _ = site
    job_id = new_job(live, keys, REPEATED)
    page: Any = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    box = page.locator("#propagate")
    assert box.is_visible() and box.is_checked()
    assert page.get_by_label("Update repetitions").count() == 1  # named by its label
    box.focus()
    page.keyboard.press("Space")
    assert not box.is_checked()
    page.locator("#page-status", has_text="its repetitions are left as they are").wait_for()

    rows = page.locator(".seg", has=page.locator(".source", has_text="Reporting by the desk"))
    before = [rows.nth(n).locator(".target-view").inner_text() for n in (1, 2)]
    first = rows.nth(0)
    first.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        first.locator("textarea.target-edit").fill("里斯本编辑部报道。")
    assert saved.value.status == 200
    assert saved.value.request.post_data_json["propagate"] is False
    assert saved.value.json()["repetitions"] == []
    first.locator(".save-state", has_text=SAVED).wait_for()
    page.wait_for_timeout(300)
    assert [rows.nth(n).locator(".target-view").inner_text() for n in (1, 2)] == before
    for n in (1, 2):
        seg_id = rows.nth(n).get_attribute("data-id")
        doc = live.client.get(f"/v1/articles/{job_id}", headers={"Authorization": f"Bearer {keys['cms']}"}).json()
        now = next(s for b in doc["document"]["blocks"] for s in b["segments"] if s["id"] == seg_id)
        assert now["targets"]["zh-Hans"] == before[n - 1]
    # An approval is sent the same way (asked twice when the segment is flagged: the first warns).
    approvals: list[Any] = []
    page.on("request", lambda r: approvals.append(r) if r.url.endswith("/approve") else None)
    first.locator("button.approve").click()
    page.wait_for_function(
        "r => r.querySelector('.seg-status').textContent === 'approved'"
        " || r.querySelector('.approve-warning')?.textContent",
        arg=first.element_handle(),
    )
    if first.locator(".seg-status").inner_text() != "approved":
        page.wait_for_timeout(WARNING_READ_MS)  # a second click right after the warning is ignored
        first.locator("button.approve").click()
    first.locator(".seg-status", has_text="approved").wait_for()
    assert [r.post_data_json["propagate"] for r in approvals] == [False]

    # Kept across a reload; turned on again, the next save reaches the untouched repetition (the
    # first segment is a person's edit now: left alone).
    page.reload()
    box = page.locator("#propagate")
    assert not box.is_checked()
    box.focus()
    page.keyboard.press("Space")
    assert box.is_checked()
    second = rows.nth(1)
    second.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        second.locator("textarea.target-edit").fill("里斯本编辑部的报道。")
    assert saved.value.request.post_data_json["propagate"] is True
    assert [s["id"] for s in saved.value.json()["repetitions"]] == [rows.nth(2).get_attribute("data-id")]
    page.locator("#page-status", has_text="1 repetition of this sentence updated too").wait_for()
    page.wait_for_function(
        "el => el.textContent === '里斯本编辑部的报道。'", arg=rows.nth(2).locator(".target-view").element_handle()
    )
    assert first.locator(".target-view").inner_text() == "里斯本编辑部报道。"
    page.context.close()


def test_the_toolbar_keeps_to_one_line_at_1280_px(
    site: tuple[LiveServer, dict[str, str], str], browser: object
) -> None:
    """At a 1280 × 800 window the workspace's toolbar holds every control on one line, for a
    translator on a revision in four variants (the most it shows), and a message in its status line
    moves none of them; at narrower windows it may wrap. Screenshots go to test-output/."""
    live, keys, _ = site
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    ids = []
    for revision, body in (("1", "The quay reopened on Monday."), ("2", "The quay reopened on Tuesday.")):
        sent = {
            "body": body,
            "external_id": "cms-toolbar",
            "revision": revision,
            "targets": ["zh-Hans", "zh-Hant", "zh-TW", "zh-HK"],
        }
        ids.append(str(live.client.post("/v1/articles", json=sent, headers=cms).json()["id"]))
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{ids[-1]}", headers=cms).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    page: Any = sign_in(browser, live, keys["translator"])
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/review/articles/{ids[1]}")
    controls = (
        "nav.variants a",
        "#flagged-only",
        "#changed-only",
        "#propagate",
        "#queries-total",
        "#next-pending",
        "#concordance-open",
    )
    line = """sel => {
      const bar = document.querySelector('.toolbar').getBoundingClientRect();
      return [...document.querySelectorAll(sel)].map((el) => {
        const box = el.getBoundingClientRect();
        return [box.width > 0 && box.height > 0, Math.round(box.top - bar.top), Math.round(box.bottom - bar.top),
                box.right <= window.innerWidth];
      });
    }"""

    def one_line() -> None:
        boxes = [b for sel in controls for b in page.evaluate(line, sel)]
        # Every control overlaps every other vertically: one line.
        assert max(top for _, top, _, _ in boxes) < min(bottom for _, _, bottom, _ in boxes), boxes
        assert all(shown and inside for shown, _, _, inside in boxes), boxes
        assert len(boxes) == 4 + len(controls) - 1  # all of them there

    one_line()
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "review-toolbar-1280.png"))
    height = page.locator(".toolbar").bounding_box()["height"]
    # A long message in the status line (turning "Update repetitions" off says one).
    page.locator("#propagate").uncheck()
    status = page.locator("#page-status", has_text="its repetitions are left as they are")
    status.wait_for()
    one_line()
    assert abs(page.locator(".toolbar").bounding_box()["height"] - height) < 1
    assert "its repetitions are left as they are" in (status.get_attribute("title") or "")
    page.screenshot(path=str(OUTPUT / "review-toolbar-1280-status.png"))
    page.locator("#propagate").check()
    page.context.close()
