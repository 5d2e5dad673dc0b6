"""What review leaves in the translation memory and in a segment's history, through the real HTTP
service with API keys (SQLite): an article approved again does not undo an admin's corrections and
deletions of memory entries (README, Translation memory); a person's approval of a segment that only
the article's approval override approved is recorded as theirs (API, review app and XLIFF); saving
a segment's text unchanged changes nothing; and an override puts into the memory only the variants
a person wrote, not the machine's zh-Hans beside the zh-TW a translator fixed. The tiny model's
translations are flagged (`untranslated`), so every sentence a person does not fix needs review."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from models.engine import Engine
from tests.conftest import LiveServer, keyed_settings, make_keys, serve

HARBOUR = "The harbour reopened on Monday."
MAYOR = "The mayor spoke later."
SHIPS = "Ships waited outside for 3 days."
BODY = f"{HARBOUR}\n\n{MAYOR}\n\n{SHIPS}"
TARGETS = ["zh-Hans", "zh-TW"]
# How the history notes a person's approval of what only the override approved (README, Article jobs).
CONFIRMED_NOTE = "approved by a person: only the article's approval override had approved it"
XLIFF = {"x": "urn:oasis:names:tc:xliff:document:2.0"}


class Desk:
    """The service and a client for each role."""

    def __init__(self, live: LiveServer, keys: dict[str, str]) -> None:
        self.live = live
        self.keys = keys
        self.clients = {
            role: httpx.Client(base_url=live.url, timeout=120, headers={"Authorization": f"Bearer {key}"})
            for role, key in keys.items()
        }
        self.cms, self.tr, self.admin = self.clients["cms"], self.clients["translator"], self.clients["admin"]

    def submit(self, body: str, targets: list[str] = TARGETS, **fields: Any) -> str:
        r = self.cms.post("/v1/articles", json={"body": body, "targets": targets, **fields})
        assert r.status_code == 202, r.text
        job_id = str(r.json()["id"])
        deadline = time.monotonic() + 90
        while (status := self.cms.get(f"/v1/articles/{job_id}").json()["status"]) != "translated":
            assert status != "failed" and time.monotonic() < deadline, status
            time.sleep(0.05)
        return job_id

    def article(self, job_id: str) -> dict[str, Any]:
        r = self.tr.get(f"/v1/articles/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def segments(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The article's segments by source sentence."""
        return {s["source"]: s for b in self.article(job_id)["document"]["blocks"] for s in b["segments"]}

    def edit(self, job_id: str, source: str, text: str, variant: str = "zh-Hans") -> dict[str, Any]:
        seg = self.segments(job_id)[source]
        r = self.tr.patch(
            f"/v1/articles/{job_id}/segments/{seg['id']}",
            json={"variant": variant, "text": text, "version": seg["version"]},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def approve(self, job_id: str, override: str | None = None) -> dict[str, Any]:
        r = self.tr.post(f"/v1/articles/{job_id}/approve", json={"override": override} if override else {})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        return dict(r.json())

    def reopen(self, job_id: str) -> None:
        r = self.tr.post(f"/v1/articles/{job_id}/review")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "in_review"

    def history(self, job_id: str, segment_id: str) -> list[dict[str, Any]]:
        r = self.tr.get(f"/v1/articles/{job_id}/segments/{segment_id}/history")
        assert r.status_code == 200, r.text
        return list(r.json())

    def memory(self, query: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The memory's entries holding `query`, by (source, variant)."""
        r = self.tr.get("/v1/memory/search", params={"q": query})
        assert r.status_code == 200, r.text
        return {(e["source"], e["variant"]): e for e in r.json()["memory"]}

    def tmx(self, job_id: str, variant: str) -> list[str]:
        """The sources of the article's TMX export in `variant`."""
        r = self.tr.get(f"/v1/articles/{job_id}/export", params={"format": "tmx", "variant": variant})
        assert r.status_code == 200, r.text
        return sorted(str(tu.findall("tuv")[0].findtext("seg")) for tu in etree.fromstring(r.content).findall(".//tu"))


@pytest.fixture
def desk(tmp_path: Path, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[Desk]:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, suffix="-integrity").items()}
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        desk = Desk(live, keys)
        try:
            yield desk
        finally:
            for client in desk.clients.values():
                client.close()


# --- 1. approving again keeps the memory as an admin left it ----------------------------------------


def test_approving_again_keeps_an_admins_corrections_and_deletions(desk: Desk) -> None:
    job_id = desk.submit(f"{HARBOUR}\n\n{MAYOR}")
    desk.edit(job_id, HARBOUR, "港口周二关闭。")  # a mistake, approved
    desk.edit(job_id, MAYOR, "市长随后讲话。")
    desk.approve(job_id)
    stored = desk.memory("harbour")
    assert stored[(HARBOUR, "zh-Hans")]["target"] == "港口周二关闭。"
    # An admin corrects the mistake in zh-Hans and deletes the zh-TW entry.
    fixed = desk.admin.patch(
        f"/v1/memory/entries/{stored[(HARBOUR, 'zh-Hans')]['id']}", json={"target": "港口周一重新开放。"}
    )
    assert fixed.status_code == 200, fixed.text
    gone = desk.admin.delete(f"/v1/memory/entries/{stored[(HARBOUR, 'zh-TW')]['id']}")
    assert gone.status_code == 200, gone.text

    # Reopened, another segment edited, approved again.
    desk.reopen(job_id)
    desk.edit(job_id, MAYOR, "市长稍后讲话。")
    desk.approve(job_id)
    after = desk.memory("harbour")
    assert set(after) == {(HARBOUR, "zh-Hans")}  # the deleted entry stays deleted
    assert (after[(HARBOUR, "zh-Hans")]["target"], after[(HARBOUR, "zh-Hans")]["origin"]) == (
        "港口周一重新开放。",
        "corrected",
    )
    # The segment this approval approved is stored, with its new text.
    mayor = desk.memory("mayor")
    assert (mayor[(MAYOR, "zh-Hans")]["target"], mayor[(MAYOR, "zh-Hans")]["origin"]) == ("市长稍后讲话。", "approved")
    assert mayor[(MAYOR, "zh-TW")]["target"] == "市長稍後講話。"


def test_a_new_revision_approved_keeps_a_correction_of_what_it_carried_over(desk: Desk) -> None:
    """Revision 1 approved, its memory entry corrected; revision 2 takes the sentence over approved,
    and approving revision 2 does not write revision 1's text back."""
    one = desk.submit(f"{HARBOUR}\n\n{MAYOR}", external_id="cms-9", revision="1")
    desk.edit(one, HARBOUR, "港口周二关闭。")
    desk.edit(one, MAYOR, "市长随后讲话。")
    desk.approve(one)
    entry = desk.memory("harbour")[(HARBOUR, "zh-Hans")]
    assert (
        desk.admin.patch(f"/v1/memory/entries/{entry['id']}", json={"target": "港口周一重新开放。"}).status_code == 200
    )

    two = desk.submit(f"{HARBOUR}\n\n{MAYOR}\n\n{SHIPS}", external_id="cms-9", revision="2")
    carried = desk.segments(two)[HARBOUR]
    assert (carried["status"], carried["targets"]["zh-Hans"]) == ("approved", "港口周二关闭。")
    desk.approve(two, "the new paragraph can wait")
    entry = desk.memory("harbour")[(HARBOUR, "zh-Hans")]
    assert (entry["target"], entry["origin"]) == ("港口周一重新开放。", "corrected")


# --- 2. a person's approval of what only the override approved --------------------------------------


def test_a_persons_approval_after_the_override_is_theirs(desk: Desk) -> None:
    from tests.test_review_ui import signed_in_client

    job_id = desk.submit(BODY)
    exported = desk.tr.get(f"/v1/articles/{job_id}/export", params={"format": "xliff", "variant": "zh-Hans"})
    assert exported.status_code == 200, exported.text
    desk.approve(job_id, "the desk wants it out now")
    before = desk.segments(job_id)
    assert {s["status"] for s in before.values()} == {"approved"}
    assert desk.memory("harbour") == {}

    # Through the API: a new version, recorded as the translator's, into the memory; the article stays approved.
    harbour = before[HARBOUR]
    r = desk.tr.post(f"/v1/articles/{job_id}/segments/{harbour['id']}/approve", json={"version": harbour["version"]})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["version"]) == ("approved", harbour["version"] + 1)
    last = desk.history(job_id, harbour["id"])[-1]
    assert (last["by"], last["status_before"], last["status_after"], last["note"]) == (
        "translator-integrity",
        "approved",
        "approved",
        CONFIRMED_NOTE,
    )
    assert set(desk.memory("harbour")) == {(HARBOUR, "zh-Hans"), (HARBOUR, "zh-TW")}
    assert desk.article(job_id)["status"] == "approved"
    # Approving it again is a person's approval of a person's approval: nothing changes.
    again = desk.tr.post(
        f"/v1/articles/{job_id}/segments/{harbour['id']}/approve", json={"version": r.json()["version"]}
    )
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"], again.text

    # Through the review app, which approves with the same function.
    mayor = before[MAYOR]
    client, csrf = signed_in_client(desk.live, desk.keys["translator"])
    try:
        r = client.post(
            f"/review/api/articles/{job_id}/segments/{mayor['id']}/approve",
            json={"version": mayor["version"]},
            headers={"X-CSRF-Token": csrf},
        )
    finally:
        client.close()
    assert r.status_code == 200, r.text
    assert desk.history(job_id, mayor["id"])[-1]["note"] == CONFIRMED_NOTE
    assert set(desk.memory("mayor")) == {(MAYOR, "zh-Hans"), (MAYOR, "zh-TW")}

    # Through a file exported before the override, the translator setting the segment final.
    ships = before[SHIPS]
    doc = etree.fromstring(exported.content)
    (seg,) = [s for s in doc.findall(".//x:segment", XLIFF) if s.get("id") == ships["id"]]
    seg.set("state", "final")
    seg.attrib.pop("subState", None)
    r = desk.tr.post(
        f"/v1/articles/{job_id}/import",
        params={"format": "xliff"},
        content=etree.tostring(doc, xml_declaration=True, encoding="UTF-8"),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["edited"], r.json()["approved"]) == ([], [ships["id"]])
    assert desk.history(job_id, ships["id"])[-1]["note"] == CONFIRMED_NOTE
    assert set(desk.memory("Ships")) == {(SHIPS, "zh-Hans"), (SHIPS, "zh-TW")}
    assert desk.article(job_id)["status"] == "approved"
    assert desk.tmx(job_id, "zh-Hans") == sorted([HARBOUR, MAYOR, SHIPS])

    # Reopening leaves what a person approved approved.
    desk.reopen(job_id)
    assert {s["status"] for s in desk.segments(job_id).values()} == {"approved"}


def test_a_file_that_edits_too_reopens_and_approves_what_the_override_approved(desk: Desk) -> None:
    """A file that also edits a segment reopens the article, which puts what only the override
    approved back to review; its `final` of such a segment approves it again, as a person's."""
    job_id = desk.submit(BODY)
    exported = desk.tr.get(f"/v1/articles/{job_id}/export", params={"format": "xliff", "variant": "zh-Hans"})
    desk.approve(job_id, "out now")
    ids = {source: s["id"] for source, s in desk.segments(job_id).items()}
    doc = etree.fromstring(exported.content)
    for seg in doc.findall(".//x:segment", XLIFF):
        if seg.get("id") == ids[HARBOUR]:
            seg.set("state", "final")
            seg.attrib.pop("subState", None)
        elif seg.get("id") == ids[MAYOR]:
            target = seg.find("x:target", XLIFF)
            assert target is not None
            for child in list(target):
                target.remove(child)
            target.text = "市长随后讲话。"
    r = desk.tr.post(
        f"/v1/articles/{job_id}/import",
        params={"format": "xliff"},
        content=etree.tostring(doc, xml_declaration=True, encoding="UTF-8"),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["edited"], r.json()["approved"]) == ([ids[MAYOR]], [ids[HARBOUR]])
    now = desk.segments(job_id)
    assert desk.article(job_id)["status"] == "in_review"
    assert [now[s]["status"] for s in (HARBOUR, MAYOR, SHIPS)] == ["approved", "draft", "needs_review"]
    assert set(desk.memory("harbour")) == {(HARBOUR, "zh-Hans"), (HARBOUR, "zh-TW")}


# --- 3. saving a text unchanged ---------------------------------------------------------------------


def test_saving_the_stored_text_changes_nothing(desk: Desk) -> None:
    job_id = desk.submit(f"{HARBOUR}\n\n{MAYOR}")
    # Not even a translated article is moved into review by it.
    untouched = desk.segments(job_id)[HARBOUR]
    r = desk.tr.patch(
        f"/v1/articles/{job_id}/segments/{untouched['id']}",
        json={"text": untouched["targets"]["zh-Hans"], "version": untouched["version"]},
    )
    assert r.status_code == 200 and r.json()["version"] == untouched["version"], r.text
    assert desk.article(job_id)["status"] == "translated"

    desk.edit(job_id, HARBOUR, "港口周一重新开放。")
    desk.edit(job_id, MAYOR, "市长随后讲话。")
    desk.approve(job_id)
    seg = desk.segments(job_id)[HARBOUR]
    history = desk.history(job_id, seg["id"])
    for version in (seg["version"], seg["version"] - 1):  # current, and stale: nothing conflicts
        r = desk.tr.patch(
            f"/v1/articles/{job_id}/segments/{seg['id']}", json={"text": "港口周一重新开放。", "version": version}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["status"], r.json()["repetitions"]) == (seg["version"], "approved", [])
    # A derived variant saved as it reads is not locked by it.
    r = desk.tr.patch(
        f"/v1/articles/{job_id}/segments/{seg['id']}",
        json={"variant": "zh-TW", "text": seg["targets"]["zh-TW"], "version": seg["version"]},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["locked_variants"]) == (seg["version"], [])
    assert desk.history(job_id, seg["id"]) == history
    job = desk.article(job_id)
    assert (job["status"], job["approved_by"]) == ("approved", "translator-integrity")

    # Another text is an edit as before; on a stale version, a conflict.
    stale = desk.tr.patch(
        f"/v1/articles/{job_id}/segments/{seg['id']}", json={"text": "港口重开。", "version": seg["version"] - 1}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict", stale.text
    edited = desk.edit(job_id, HARBOUR, "港口重开。")
    assert (edited["version"], edited["status"]) == (seg["version"] + 1, "draft")
    assert desk.article(job_id)["status"] == "in_review"


# --- 4. an override stores only what a person wrote -------------------------------------------------


def test_an_override_stores_only_the_variants_a_person_wrote(desk: Desk) -> None:
    job_id = desk.submit(f"{HARBOUR}\n\n{SHIPS}")
    # zh-TW fixed by hand; the machine's zh-Hans beside it is still flagged.
    taiwan = desk.edit(job_id, HARBOUR, "港口週一重新開放。", variant="zh-TW")
    assert (taiwan["status"], taiwan["origin"], taiwan["locked_variants"]) == ("needs_review", "human", ["zh-TW"])
    # zh-Hans fixed by hand, still flagged (the number): every variant is the person's.
    ships = desk.edit(job_id, SHIPS, "船只在港外等了几天。")
    assert (ships["status"], ships["origin"]) == ("needs_review", "human")
    desk.approve(job_id, "the Taiwan desk is done")

    harbour = desk.memory("harbour")
    assert set(harbour) == {(HARBOUR, "zh-TW")}
    assert set(desk.memory("Ships")) == {(SHIPS, "zh-Hans"), (SHIPS, "zh-TW")}
    assert (desk.tmx(job_id, "zh-Hans"), desk.tmx(job_id, "zh-TW")) == ([SHIPS], sorted([HARBOUR, SHIPS]))
    # A later article does not take the machine's zh-Hans as an approved translation.
    later = desk.segments(desk.submit(HARBOUR, targets=["zh-Hans"]))[HARBOUR]
    assert (later["origin"], later["status"]) == ("mt", "needs_review")

    # Reopened and approved with an override again, nothing changed: the memory stays as an admin left it.
    fixed = desk.admin.patch(
        f"/v1/memory/entries/{harbour[(HARBOUR, 'zh-TW')]['id']}", json={"target": "港口週一重開。"}
    )
    assert fixed.status_code == 200, fixed.text
    desk.reopen(job_id)
    assert desk.segments(job_id)[HARBOUR]["status"] == "needs_review"
    desk.approve(job_id, "still waiting for the desk")
    assert desk.memory("harbour")[(HARBOUR, "zh-TW")]["target"] == "港口週一重開。"


def test_an_override_of_a_later_revision_stores_what_a_person_wrote_in_an_earlier_one(desk: Desk) -> None:
    """Sentences carried over from revision 1 with a person's work and approved by revision 2's
    override: the variants that person wrote there."""
    one = desk.submit(f"{HARBOUR}\n\n{SHIPS}", external_id="cms-12", revision="1")
    desk.edit(one, HARBOUR, "港口週一重新開放。", variant="zh-TW")
    desk.edit(one, SHIPS, "船只在港外等了几天。")
    two = desk.submit(f"{HARBOUR}\n\n{SHIPS}\n\n{MAYOR}", external_id="cms-12", revision="2")
    carried = desk.segments(two)
    assert [(carried[s]["origin"], carried[s]["status"]) for s in (HARBOUR, SHIPS)] == [("human", "needs_review")] * 2
    desk.approve(two, "revision 2 goes out")
    assert set(desk.memory("harbour")) == {(HARBOUR, "zh-TW")}
    assert {k: e["target"] for k, e in desk.memory("Ships").items()} == {
        (SHIPS, "zh-Hans"): "船只在港外等了几天。",
        (SHIPS, "zh-TW"): carried[SHIPS]["targets"]["zh-TW"],
    }


def test_an_override_in_an_article_without_zh_hans(desk: Desk) -> None:
    """There the variant a person edits stands in for zh-Hans: the others follow it, and all are stored."""
    job_id = desk.submit(SHIPS, targets=["zh-TW", "zh-HK"])
    seg = desk.edit(job_id, SHIPS, "船隻在港外等了幾天。", variant="zh-TW")
    assert (seg["status"], sorted(seg["targets"])) == ("needs_review", ["zh-HK", "zh-TW"])
    desk.approve(job_id, "out")
    assert set(desk.memory("Ships")) == {(SHIPS, "zh-TW"), (SHIPS, "zh-HK")}


def test_the_review_app_saves_a_character_typed_and_deleted_as_nothing(desk: Desk, browser: object) -> None:
    """The editor saves as the translator types: a character typed and deleted is sent as the text
    stored, answered with the same version, and shown as saved; the article stays approved."""
    from tests.test_review_ui import SAVED, row_of, sign_in

    job_id = desk.submit(f"{HARBOUR}\n\n{MAYOR}")
    desk.edit(job_id, HARBOUR, "港口周一重新开放。")
    desk.edit(job_id, MAYOR, "市长随后讲话。")
    desk.approve(job_id)
    before = desk.segments(job_id)[HARBOUR]
    page: Any = sign_in(browser, desk.live, desk.keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    row: Any = row_of(page, "harbour reopened")
    row.locator(".target-view").click()
    editor = row.locator("textarea.target-edit")
    editor.press("End")
    with page.expect_response(lambda r: r.request.method == "PATCH" and before["id"] in r.url) as answer:
        page.keyboard.type("！")
        page.keyboard.press("Backspace")
    assert answer.value.status == 200
    assert answer.value.json()["version"] == before["version"]
    row.locator(".save-state", has_text=SAVED).wait_for(timeout=10_000)
    assert row.locator(".seg-status").inner_text().strip() == "approved"
    assert row.locator(".conflict").is_hidden()
    assert desk.segments(job_id)[HARBOUR]["version"] == before["version"]
    assert desk.article(job_id)["status"] == "approved"
    page.context.close()
