"""The review workspace in a real browser (Debian's Chromium through Playwright), where a slip of
the hand or a change elsewhere must not mislead the translator: a held or doubled Ctrl+Enter (or a
double click on Approve) never approves a flagged segment past its warning; a variant edited by hand
says it is locked; every glossary form of a sentence is listed; an article withdrawn while the page
is open says so, and nothing is sent again; a query is posted once however fast Ctrl+Enter is
pressed; a conflict names who changed the segment; the article's approval asks for its reason in the
browser; an approved segment's Approve button rests; controls' accessible names hold their text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.engine import Engine
from service.auth import Role
from service.memory import TranslationMemory
from service.storage.db import Database
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_review_ui import new_job, row_of, sign_in, stored

Site = tuple[LiveServer, dict[str, str]]


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The service with a desk (cms), a translator and a second translator ("translator-night")."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-safety') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-desk").items()}
    keys["night"] = make_keys(url, (Role.TRANSLATOR,), suffix="-night")["translator"].key
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, keys


def watched(page: object) -> list[str]:
    """The page's script errors (uncaught, or logged with console.error), as they come. Chromium's
    own lines about a request answered 404 or 409 are the server's answers, not script errors."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # type: ignore[attr-defined]
    page.on(  # type: ignore[attr-defined]
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    return errors


def remembered(live: LiveServer, source: str) -> list[str]:
    """The translation memory's targets for `source`."""
    db = Database(live.settings.database_url)
    try:
        return [e.target for e in TranslationMemory(db).entries() if e.source == source]
    finally:
        db.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


WARNING = "again to approve it anyway"
# Longer than the page's WARNING_READ_MS (800): a press this long after the warning is deliberate.
READ_MS = 1000


def test_a_held_or_doubled_approval_never_passes_the_warning(site: Site, browser: object) -> None:
    """Holding Ctrl+Enter down on a flagged segment (keydown repeated, `repeat` true) warns once and
    approves nothing; so do a double click on Approve and two presses in quick succession. Nothing
    reaches the translation memory until a separate, later press approves the segment."""
    live, keys = site
    body = "The ferry left the quay at dawn.\n\nThe barge reached the dock at noon.\n\nThe tug came back at dusk."
    job_id = new_job(live, keys, body)
    sources = {s: str(stored(live, keys, job_id, s)["source"]) for s in ("ferry", "barge", "tug")}
    assert all(stored(live, keys, job_id, s)["flags"] for s in sources)  # the tiny model's output is flagged
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    approvals: list[str] = []
    page.on("request", lambda r: approvals.append(r.url) if r.url.endswith("/approve") else None)
    page.goto(f"/review/articles/{job_id}")
    page.evaluate(
        "() => { window.__repeats = 0;"
        " document.addEventListener('keydown', (e) => { if (e.repeat) window.__repeats += 1; }, true); }"
    )

    # Held down for 1.5 s: the first keydown warns, its 45 repeats (33 ms apart) approve nothing.
    ferry = row_of(page, "ferry left")
    ferry.locator(".target-view").click()
    page.keyboard.down("Control")
    page.keyboard.down("Enter")
    ferry.locator(".approve-warning", has_text=WARNING).wait_for()
    for _ in range(45):
        page.keyboard.down("Enter")  # Playwright sends a key already down as a repeat
        page.wait_for_timeout(33)
    page.keyboard.up("Enter")
    page.keyboard.up("Control")
    assert page.evaluate("() => window.__repeats") == 45
    page.wait_for_timeout(300)
    assert approvals == []
    assert stored(live, keys, job_id, "ferry")["status"] == "needs_review"
    assert ferry.locator(".seg-status").inner_text() == "needs_review"
    assert remembered(live, sources["ferry"]) == []
    # A separate press, once the warning could be read, approves it anyway.
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        page.keyboard.press("Control+Enter")
    assert approved.value.status == 200
    ferry.locator(".seg-status", has_text="approved").wait_for()
    assert remembered(live, sources["ferry"]) != []

    # A double click on Approve: the first click warns, the second does not count.
    barge = row_of(page, "barge reached")
    barge.locator("button.approve").dblclick()
    barge.locator(".approve-warning", has_text=WARNING).wait_for()
    page.wait_for_timeout(READ_MS)
    assert len(approvals) == 1
    assert stored(live, keys, job_id, "barge")["status"] == "needs_review"
    assert remembered(live, sources["barge"]) == []
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        barge.locator("button.approve").click()
    assert approved.value.status == 200
    barge.locator(".seg-status", has_text="approved").wait_for()

    # Two separate presses in quick succession (not a repeat): the second came too soon.
    tug = row_of(page, "tug came")
    edit = tug.locator("textarea.target-edit")
    edit.wait_for()  # opened by approving the one before
    edit.press("Control+Enter")
    edit.press("Control+Enter")
    tug.locator(".approve-warning", has_text=WARNING).wait_for()
    page.wait_for_timeout(READ_MS)
    assert len(approvals) == 2
    assert stored(live, keys, job_id, "tug")["status"] == "needs_review"
    assert remembered(live, sources["tug"]) == []
    with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
        edit.press("Control+Enter")
    assert approved.value.status == 200
    assert errors == []
    page.context.close()


def test_a_variant_edited_by_hand_says_it_is_locked(site: Site, browser: object) -> None:
    """A Traditional variant edited by hand is locked (editing zh-Hans no longer regenerates it): the
    zh-Hans view says so beside it, as the page loads and as soon as such an edit (the translator's
    own, or someone else's) reaches the page."""
    live, keys = site
    job_id = new_job(live, keys, "The pier was repainted in spring.\n\nThe lighthouse was closed in winter.")
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.goto(f"/review/articles/{job_id}")
    pier = row_of(page, "pier was")
    mark = pier.locator(".other[data-variant='zh-TW'] .locked-mark")
    assert mark.count() == 1 and mark.is_hidden()  # machine translation: nothing locked

    # Edited by hand in zh-TW: back in zh-Hans, zh-TW is marked locked.
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")
    row = row_of(page, "pier was")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        row.locator("textarea.target-edit").fill("碼頭在春天重新粉刷。")
    assert saved.value.json()["locked_variants"] == ["zh-TW"]
    row.locator(".save-state", has_text=re.compile(r"^Saved$")).wait_for()
    page.goto(f"/review/articles/{job_id}")
    pier = row_of(page, "pier was")
    mark = pier.locator(".other[data-variant='zh-TW'] .locked-mark")
    assert mark.is_visible() and mark.inner_text() == "locked: edited by hand"
    assert "edited by hand" in str(mark.get_attribute("title"))
    # Correcting zh-Hans leaves zh-TW as it was, still marked.
    pier.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        pier.locator("textarea.target-edit").fill("码头在春天重新粉刷了。")
    assert saved.value.json()["targets"]["zh-TW"] == "碼頭在春天重新粉刷。"
    assert pier.locator(".other[data-variant='zh-TW'] .other-text").inner_text() == "碼頭在春天重新粉刷。"
    assert mark.is_visible()
    pier.locator("textarea.target-edit").press("Escape")

    # Someone else locks zh-TW of the other sentence: the poll brings the mark, no reload.
    light = row_of(page, "lighthouse")
    light_mark = light.locator(".other[data-variant='zh-TW'] .locked-mark")
    assert light_mark.is_hidden()
    segment = stored(live, keys, job_id, "lighthouse")
    edited = live.client.patch(
        f"/v1/articles/{job_id}/segments/{segment['id']}",
        json={"variant": "zh-TW", "text": "燈塔在冬天關閉。", "version": segment["version"]},
        headers=auth(keys["night"]),
    )
    assert edited.status_code == 200 and edited.json()["locked_variants"] == ["zh-TW"]
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")  # the poll, now
    light_mark.wait_for(state="visible")
    assert light.locator(".other[data-variant='zh-TW'] .other-text").inner_text() == "燈塔在冬天關閉。"
    assert errors == []
    page.context.close()


def test_every_form_of_a_glossary_entry_in_the_sentence_is_listed(site: Site, browser: object) -> None:
    """One glossary entry hit twice with two forms (the committee's name, then its acronym kept as
    written): the editor's list of terms has a line for each form, not only the first."""
    live, keys = site
    job_id = new_job(live, keys, "Abe Shinzo told the Security Consultative Committee (SCC) that Futenma must move.")
    terms = stored(live, keys, job_id, "SCC")["terms"]
    forms = {t["expected"]["zh-Hans"] for t in terms if t["term_id"] == "scc"}  # type: ignore[index]
    assert forms == {"美日安全保障磋商委员会", "SCC"}, terms
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "Security Consultative")
    row.locator(".target-view").click()
    box = row.locator(".glossary-terms")
    box.wait_for()
    scc = box.locator("li[data-term='scc']")
    assert sorted(scc.locator(".term-form").all_inner_texts()) == sorted(forms)
    assert sorted(scc.locator(".term-source").all_inner_texts()) == ["SCC", "Security Consultative Committee"]
    assert box.locator("li[data-term='abe-shinzo']").count() == 1
    assert errors == []
    page.context.close()


def test_an_article_withdrawn_while_the_page_is_open_says_so(site: Site, browser: object) -> None:
    """The article is withdrawn through the API while two pages have it open. The page whose save is
    answered 404 and the page whose poll is say that the article was withdrawn and that typed text is
    kept on the page to copy, promise nothing more, and send nothing more (no retries, no polls)."""
    live, keys = site
    job_id = new_job(live, keys, "The ferry timetable changed in March.\n\nThe old quay was closed.")
    typing = sign_in(browser, live, keys["translator"])
    watching = sign_in(browser, live, keys["translator"])
    errors = watched(typing) + watched(watching)
    sent: list[str] = []
    typing.on("request", lambda r: sent.append(f"{r.method} {r.url}") if "/review/api/" in r.url else None)
    typing.goto(f"/review/articles/{job_id}")
    watching.goto(f"/review/articles/{job_id}")
    row = row_of(typing, "timetable")
    row.locator(".target-view").click()
    edit = row.locator("textarea.target-edit")
    with typing.expect_response(lambda r: r.request.method == "PATCH") as saved:
        edit.fill("渡轮时刻表在三月更改。")
    assert saved.value.status == 200

    assert live.client.delete(f"/v1/articles/{job_id}", headers=auth(keys["cms"])).status_code == 200
    with typing.expect_response(lambda r: r.request.method == "PATCH") as refused:
        edit.fill("渡轮时刻表在三月更改了，写到一半。")
    assert refused.value.status == 404
    banner = typing.locator("#page-error")
    banner.wait_for(state="visible")
    assert "withdrawn" in banner.inner_text() and "copy" in banner.inner_text()
    problem = row.locator(".conflict")
    assert "withdrawn" in problem.inner_text() and "copy" in problem.inner_text()
    assert row.locator(".save-state").inner_text() == "Not saved — the article was withdrawn"
    # The text stays, to copy; nothing is sent again: not on a timer, not on the next poll.
    assert edit.is_visible() and edit.input_value() == "渡轮时刻表在三月更改了，写到一半。"
    assert edit.evaluate("e => e.readOnly")
    sent.clear()
    typing.evaluate(
        "() => { document.dispatchEvent(new Event('visibilitychange')); window.dispatchEvent(new Event('online')); }"
    )
    typing.wait_for_timeout(2500)  # past the first retry a failed save would have had (2 s)
    assert sent == []
    assert "sent again" not in typing.locator("#article").inner_text()
    assert row.locator("button.approve").is_disabled()

    # The page that only polls: its next poll is answered 404.
    with watching.expect_response(lambda r: r.url.endswith("/state")) as polled:
        watching.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    assert polled.value.status == 404
    other = watching.locator("#page-error")
    other.wait_for(state="visible")
    assert "withdrawn" in other.inner_text()
    assert "sent again" not in watching.locator("#article").inner_text()
    assert errors == []
    typing.context.close()
    watching.context.close()


# Answers to the page's comment posts reach the script 800 ms late (the server has already stored
# the comment): a slow connection, while the translator presses Ctrl+Enter again.
SLOW_QUERIES = """
const realFetch = window.fetch;
window.fetch = async (url, options) => {
  const response = await realFetch(url, options);
  if (options && options.method === "POST" && String(url).endsWith("/comments")) {
    await new Promise((ok) => setTimeout(ok, 800));
  }
  return response;
};
"""


def test_a_query_is_posted_once_however_fast_ctrl_enter_is_pressed(site: Site, browser: object) -> None:
    live, keys = site
    job_id = new_job(live, keys, "The harbour master resigned on Friday.")
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.add_init_script(SLOW_QUERIES)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/comments") else None)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "harbour master")
    row.locator(".queries-toggle").click()
    box = row.locator(".query-text")
    box.fill("Which harbour: Naha or Nago?")
    for _ in range(3):
        box.press("Control+Enter")
    row.locator(".thread-list li").first.wait_for()
    page.wait_for_timeout(1200)
    assert len(posts) == 1
    listed = live.client.get(f"/v1/articles/{job_id}/comments", headers=auth(keys["cms"])).json()
    assert [c["body"] for c in listed] == ["Which harbour: Naha or Nago?"]
    assert row.locator(".thread-list li").count() == 1 and box.input_value() == ""
    assert errors == []
    page.context.close()


def test_a_conflict_names_who_changed_the_segment(site: Site, browser: object) -> None:
    live, keys = site
    job_id = new_job(live, keys, "The customs office reopened on Monday.")
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.goto(f"/review/articles/{job_id}")
    segment = stored(live, keys, job_id, "customs office")
    edited = live.client.patch(
        f"/v1/articles/{job_id}/segments/{segment['id']}",
        json={"text": "海关办公室周一重新开放。", "version": segment["version"]},
        headers=auth(keys["night"]),
    )
    assert edited.status_code == 200
    row = row_of(page, "customs office")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as refused:
        row.locator("textarea.target-edit").fill("我的版本。")
    assert refused.value.status == 409
    conflict = row.locator(".conflict")
    conflict.wait_for(state="visible")
    assert "translator-night changed this segment" in conflict.inner_text()
    assert "我的版本。" in conflict.inner_text()
    assert errors == []
    page.context.close()


def test_the_approval_form_and_the_approve_buttons_follow_what_is_left(site: Site, browser: object) -> None:
    """The article's approval, while it needs a reason, cannot be sent without one (the browser asks
    for it; no request, no refusal from the server). An approved segment's Approve button is
    disabled: on the page as loaded, after approving in the page, and enabled again by an edit."""
    live, keys = site
    job_id = new_job(live, keys, "The bridge opened at nine.\n\nThe tunnel opened at ten.")
    bridge = stored(live, keys, job_id, "bridge")
    approved = live.client.post(
        f"/v1/articles/{job_id}/segments/{bridge['id']}/approve",
        json={"version": bridge["version"]},
        headers=auth(keys["translator"]),
    )
    assert approved.status_code == 200
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/approve" in r.url else None)
    page.goto(f"/review/articles/{job_id}")

    reason = page.locator("#approve-override input[name=override]")
    assert reason.is_visible() and reason.evaluate("i => i.required")
    page.click("#approve-article")
    page.wait_for_timeout(500)
    assert posted == [] and reason.evaluate("i => i.validity.valueMissing")
    assert page.locator("#job-status").inner_text() != "approved"

    assert row_of(page, "bridge").locator("button.approve").is_disabled()
    tunnel = row_of(page, "tunnel").locator("button.approve")
    assert tunnel.is_enabled()
    tunnel.click()
    page.wait_for_function(
        "r => r.querySelector('.seg-status').textContent === 'approved'"
        " || r.querySelector('.approve-warning').textContent",
        arg=row_of(page, "tunnel").element_handle(),
    )
    if row_of(page, "tunnel").locator(".seg-status").inner_text() != "approved":
        page.wait_for_timeout(READ_MS)
        tunnel.click()
    row_of(page, "tunnel").locator(".seg-status", has_text="approved").wait_for()
    page.wait_for_function("b => b.disabled", arg=tunnel.element_handle())
    # Nothing left: no reason asked for, and none required.
    page.locator("#approve-override").wait_for(state="hidden")
    assert not reason.evaluate("i => i.required")

    # An edit reopens the bridge: its button is back.
    row = row_of(page, "bridge")
    row.locator(".target-view").click()
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        row.locator("textarea.target-edit").fill("大桥九点通车。")
    assert saved.value.status == 200 and saved.value.json()["status"] != "approved"
    page.wait_for_function("b => !b.disabled", arg=row.locator("button.approve").element_handle())
    assert errors == []
    page.context.close()


def shown_text(locator: object) -> str:
    """The text the element shows: without what is hidden, or there for screen readers only."""
    return str(
        locator.evaluate(  # type: ignore[attr-defined]
            "el => { const c = el.cloneNode(true);"
            " c.querySelectorAll('.visually-hidden, [hidden]').forEach((x) => x.remove());"
            " return c.textContent.replace(/\\s+/g, ' ').trim(); }"
        )
    )


def accessible_name(locator: object) -> str:
    """The element's accessible name, as Chromium computes it (Playwright's ARIA snapshot)."""
    snapshot = str(locator.aria_snapshot())  # type: ignore[attr-defined]
    found = re.match(r'- \'?\w+ "((?:[^"\\]|\\.)*)"', snapshot)  # YAML quotes a name with a colon
    assert found, snapshot
    return found.group(1)


def test_controls_are_named_by_what_they_show(site: Site, browser: object) -> None:
    """Each control's accessible name holds the text it shows (WCAG 2.5.3, axe's
    label-content-name-mismatch): the Queries button with its open count, the Concordance's Close
    button with its key; a translation that opens the editor is a button; a skip link passes the
    toolbar."""
    live, keys = site
    job_id = new_job(live, keys, "The coastguard sent two boats.")
    segment = stored(live, keys, job_id, "coastguard")
    asked = live.client.post(
        f"/v1/articles/{job_id}/segments/{segment['id']}/comments",
        json={"body": "Two or three boats?"},
        headers=auth(keys["cms"]),
    )
    assert asked.status_code == 201
    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "coastguard")

    queries = row.locator(".queries-toggle")
    assert shown_text(queries) == "Queries 1 open"
    assert accessible_name(queries) == f"Queries 1 open on segment {segment['id']}"
    page.click("#concordance-open")
    close = page.locator("#concordance-close")
    shown = shown_text(close)
    assert shown == "Close Esc"
    assert shown in accessible_name(close)
    assert close.get_attribute("aria-keyshortcuts") == "Escape"
    close.click()
    # Every button on the page holds its visible text in its name.
    for button in page.locator("button:visible").all():
        text = shown_text(button)
        assert text in accessible_name(button), (text, button.aria_snapshot())

    view = row.locator(".target-view")
    assert view.get_attribute("role") == "button"
    assert accessible_name(view) == view.inner_text()
    # The skip link: the first thing of the article the keyboard reaches, it moves past the toolbar.
    skip = page.locator("a.skip-link")
    skip.focus()
    assert skip.is_visible()
    skip.press("Enter")
    page.wait_for_function("() => document.activeElement.id === 'sentences'")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.classList.contains('target-view')")
    assert errors == []
    page.context.close()
