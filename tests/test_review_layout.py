"""The review workspace's layout at the window sizes translators use, measured in a real browser
(Playwright driving Debian's Chromium) against the service on loopback: at 1280 × 800 the
concordance is docked beside the article, covering neither the translations nor the toolbar's
button; on a phone (390 × 844) and a tablet (768 × 1024) nothing scrolls sideways, a segment is
one column (source, translation, state) and its editor is as wide as the screen allows.
Screenshots of each size go to test-output/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.engine import Engine
from service.auth import Role
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_review_ui import OUTPUT, row_of, sign_in

# Long enough to scroll at 1280 × 800; "Futenma" is in the default glossary (a concordance hit).
PARAGRAPHS = [
    "The base at Futenma will move to Henoko under the agreement signed in Tokyo on Monday.",
    "Officials counted 3 ships near the harbour before dawn, the coast guard said in a statement.",
    "The mayor of Nago said the relocation plan ignored the wishes of the people who live there.",
    "Protesters gathered outside the prefectural office for the fourth day in a row.",
    "The defence ministry said construction would resume once the weather improved.",
    "Fishermen in the bay said their catch had fallen by half since the work began.",
    "The governor asked the central government to suspend the landfill work for a year.",
    "A court in Naha is expected to rule on the permit later this month.",
    "The United States Marine Corps declined to comment on the timetable.",
    "Residents near Futenma have complained about aircraft noise for decades.",
]
TITLE = "Futenma relocation stalls as the governor asks Tokyo to suspend the landfill work for a year"
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}
DESK = {"width": 1280, "height": 800}

BOX = "el => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
SCROLL_WIDTH = "() => document.scrollingElement.scrollWidth"
# Is the element the one a click at its centre lands on (nothing covers it)?
ON_TOP = """el => {
  const r = el.getBoundingClientRect();
  const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return hit === el || el.contains(hit);
}"""


@pytest.fixture(scope="module")
def desk(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str], str]]:
    """The service with a translated article of ten paragraphs (and a long title), its sentences
    on Futenma approved, and its keys."""
    url = f"sqlite:///{tmp_path_factory.mktemp('layout') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-layout").items()}
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        sent = {
            "title": TITLE,
            "body": "\n\n".join(PARAGRAPHS),
            "external_id": "cms-layout-2031",
            "targets": ["zh-Hans", "zh-TW", "zh-HK"],
        }
        job_id = str(live.client.post("/v1/articles", json=sent, headers=cms).json()["id"])
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{job_id}", headers=cms).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Its sentences on Futenma approved: memory entries, which make the concordance's answer long.
        tr = {"Authorization": f"Bearer {keys['translator']}"}
        doc = live.client.get(f"/v1/articles/{job_id}", headers=tr).json()["document"]
        for seg in (s for b in doc["blocks"] for s in b["segments"] if "Futenma" in s["source"]):
            approved = live.client.post(
                f"/v1/articles/{job_id}/segments/{seg['id']}/approve", json={"version": seg["version"]}, headers=tr
            )
            assert approved.status_code == 200, approved.text
        yield live, keys, job_id


def box(locator: Any) -> dict[str, float]:
    """The element's box in the window (getBoundingClientRect), whether or not it is on screen."""
    return dict(locator.evaluate(BOX))


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def search_concordance(page: Any, query: str) -> None:
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url):
        page.get_by_label("Word or phrase, English or Chinese").fill(query)
    page.locator("#concordance-memory li").first.wait_for()


@pytest.mark.parametrize("size", [PHONE, TABLET], ids=["phone-390", "tablet-768"])
def test_phones_and_tablets_scroll_only_down(
    desk: tuple[LiveServer, dict[str, str], str], browser: object, size: dict[str, int]
) -> None:
    """The article list and the article fit the window's width (the list's table scrolls in its
    own box); each segment is one column, source above its translation above its state; the open
    editor takes at least 90% of the width; on a phone the toolbar stays at the top of the article
    (not over it); the concordance fits on screen."""
    live, keys, job_id = desk
    width = size["width"]
    page: Any = sign_in(browser, live, keys["translator"])
    page.set_viewport_size(size)
    page.goto("/review")
    name = f"review-layout-{width}"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}-list.png"), full_page=True)
    assert page.evaluate(SCROLL_WIDTH) <= width
    table = box(page.locator("table.articles"))
    assert table["x"] >= 0 and table["x"] + table["width"] <= width, table
    header = box(page.locator("header.top"))
    assert header["width"] == width  # its background spans the window, no more

    page.goto(f"/review/articles/{job_id}")
    page.screenshot(path=str(OUTPUT / f"{name}-article.png"))
    assert page.evaluate(SCROLL_WIDTH) <= width
    row = row_of(page, "Officials counted 3 ships")
    source, target, meta = (box(row.locator(sel)) for sel in (".source", ".target", ".meta"))
    assert source["y"] + source["height"] <= target["y"] + 1, (source, target)
    assert target["y"] + target["height"] <= meta["y"] + 1, (target, meta)
    assert target["width"] >= 0.85 * width, target
    if width < 640:
        assert page.locator(".toolbar").evaluate("t => getComputedStyle(t).position") not in ("sticky", "fixed")

    row.locator(".target-view").click()
    editor = row.locator("textarea.target-edit")
    editor.wait_for()
    assert box(editor)["width"] >= 0.9 * width, box(editor)
    assert page.evaluate(SCROLL_WIDTH) <= width
    page.screenshot(path=str(OUTPUT / f"{name}-editing.png"))
    editor.press("Escape")

    page.evaluate("() => window.scrollTo(0, 0)")
    page.locator("#concordance-open").click()
    search_concordance(page, "Futenma")
    panel = box(page.locator("#concordance"))
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= width, panel
    assert panel["y"] >= 0 and panel["y"] + panel["height"] <= size["height"], panel
    assert page.evaluate(SCROLL_WIDTH) <= width
    page.screenshot(path=str(OUTPUT / f"{name}-concordance.png"))
    page.context.close()


@pytest.mark.parametrize("size", [DESK, {"width": 1920, "height": 1080}], ids=["1280", "1920"])
def test_the_concordance_leaves_the_translations_in_view(
    desk: tuple[LiveServer, dict[str, str], str], browser: object, size: dict[str, int]
) -> None:
    """With the concordance open, the toolbar's Concordance button is uncovered, every translation
    on screen is clear of the panel (the article moves over), and the sentence the translator was
    editing when they pressed Ctrl+Shift+F stays on screen, its editor clear of the panel too."""
    live, keys, job_id = desk
    page: Any = sign_in(browser, live, keys["translator"])
    page.set_viewport_size(size)
    page.goto(f"/review/articles/{job_id}")
    concordance, opener = page.locator("#concordance"), page.locator("#concordance-open")

    # Opened with the toolbar's button, at the top of the page.
    opener.click()
    search_concordance(page, "Futenma")
    assert opener.evaluate(ON_TOP), (box(opener), box(concordance))
    panel = box(concordance)
    for target in page.locator(".seg .target").all():
        seen = box(target)
        if seen["y"] < size["height"]:
            assert not overlap(panel, seen), (panel, seen)
            assert seen["x"] + seen["width"] <= panel["x"], (panel, seen)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"review-layout-{size['width']}-concordance.png"))
    page.locator("#concordance-close").click()

    # From a sentence being edited, just under the (sticky) toolbar: Ctrl+Shift+F.
    row = row_of(page, "The mayor of Nago")
    row.evaluate("r => r.scrollIntoView({block: 'start'})")
    row.locator(".target-view").click()
    editor = row.locator("textarea.target-edit")
    editor.press("Control+Shift+F")
    concordance.wait_for()
    search_concordance(page, "Futenma")
    panel, target = box(concordance), box(row.locator(".target"))
    assert not overlap(panel, target), (panel, target)
    assert target["y"] >= 0 and target["y"] + target["height"] <= size["height"], target  # still on screen
    assert opener.evaluate(ON_TOP), (box(opener), panel)
    # Back in its editor with the panel open: the editor is clear of it, and uncovered.
    row.locator(".target-view").click()
    editor.wait_for()
    assert not overlap(panel, box(editor)), (panel, box(editor))
    assert editor.evaluate(ON_TOP)
    page.screenshot(path=str(OUTPUT / f"review-layout-{size['width']}-concordance-editing.png"))
    page.context.close()


@pytest.mark.parametrize("size", [DESK, TABLET, PHONE], ids=["1280", "tablet-768", "phone-390"])
def test_the_sentence_being_edited_stays_in_sight_when_the_concordance_opens(
    desk: tuple[LiveServer, dict[str, str], str], browser: object, size: dict[str, int]
) -> None:
    """Ctrl+Shift+F from a sentence at the very bottom of the window: the article narrows beside
    the docked box (or a sheet rises over the window's lower half), and the sentence is scrolled so
    that its translation is wholly on screen and clear of the box."""
    live, keys, job_id = desk
    page: Any = sign_in(browser, live, keys["translator"])
    page.set_viewport_size(size)
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "The mayor of Nago")
    row.locator(".target-view").click()
    editor = row.locator("textarea.target-edit")
    editor.wait_for()
    row.evaluate("r => r.scrollIntoView({block: 'end'})")
    editor.press("Control+Shift+F")
    concordance = page.locator("#concordance")
    concordance.wait_for()
    page.wait_for_timeout(100)  # one frame for the scroll
    panel, target = box(concordance), box(row.locator(".target"))
    assert not overlap(panel, target), (panel, target)
    assert target["y"] >= 0 and target["y"] + target["height"] <= size["height"], target
    page.context.close()
