"""What an article approved with an override leaves behind, and how revisions are linked, through
the real HTTP service with API keys, on SQLite and PostgreSQL.

An override (`{"override": "why"}`) publishes an article whose segments still need review; it does
not make their machine translations approved work: those no person edited stay out of the
translation memory (a later article translates the sentence again instead of taking the unreviewed
text as `tm`), a later revision does not take them over as approved, and reopening the article puts
them back to review, so that approving it again needs an override again, while the first override's
reason stays in their history. A revision submitted again after a later one (it was withdrawn)
follows the revision before it by label, never the later one. The tiny model's translations are
flagged (`untranslated`), so every sentence a person does not touch needs review."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from models.engine import Engine
from tests.conftest import LiveServer, keyed_settings, make_keys, serve

Auth = dict[str, dict[str, str]]

EDITED = "The harbour reopened on Monday."
EDITED_TEXT = "港口周一重新开放。"
CHECKED = "Trade resumed after the storm."  # approved by a translator as the model wrote it
UNREVIEWED = "The council met on Tuesday."  # nobody looks at it: only the override approves it
BODY = f"{EDITED}\n\n{CHECKED}\n\n{UNREVIEWED}"
TARGETS = ["zh-Hans", "zh-TW"]
XLIFF = {"x": "urn:oasis:names:tc:xliff:document:2.0"}
# How a segment's history notes its approval by an override (README, Article jobs), then the reason.
OVERRIDE_NOTE = "approved unreviewed by the article's approval override"


@pytest.fixture
def site(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> Iterator[tuple[LiveServer, Auth]]:
    keys = make_keys(database_url, suffix="-override")
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        yield live, {role: {"Authorization": f"Bearer {made.key}"} for role, made in keys.items()}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def submit(live: LiveServer, auth: Auth, body: str, **fields: Any) -> str:
    r = live.client.post("/v1/articles", json={"body": body, "targets": TARGETS, **fields}, headers=auth["cms"])
    assert r.status_code == 202, r.text
    return translated(live, auth, str(r.json()["id"]))


def translated(live: LiveServer, auth: Auth, job_id: str) -> str:
    def done() -> bool:
        status = live.client.get(f"/v1/articles/{job_id}", headers=auth["cms"]).json()["status"]
        assert status != "failed"
        return bool(status == "translated")

    wait_until(done, f"article {job_id} to be translated")
    return job_id


def article(live: LiveServer, auth: Auth, job_id: str) -> dict[str, Any]:
    r = live.client.get(f"/v1/articles/{job_id}", headers=auth["translator"])
    assert r.status_code == 200, r.text
    return dict(r.json())


def segments(live: LiveServer, auth: Auth, job_id: str) -> dict[str, dict[str, Any]]:
    """The article's segments by source sentence."""
    job = article(live, auth, job_id)
    return {s["source"]: s for b in job["document"]["blocks"] for s in b["segments"]}


def history(live: LiveServer, auth: Auth, job_id: str, segment_id: str) -> list[dict[str, Any]]:
    r = live.client.get(f"/v1/articles/{job_id}/segments/{segment_id}/history", headers=auth["translator"])
    assert r.status_code == 200, r.text
    return list(r.json())


def edit(live: LiveServer, auth: Auth, job_id: str, source: str, text: str) -> dict[str, Any]:
    seg = segments(live, auth, job_id)[source]
    r = live.client.patch(
        f"/v1/articles/{job_id}/segments/{seg['id']}",
        json={"text": text, "version": seg["version"]},
        headers=auth["translator"],
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def approve(live: LiveServer, auth: Auth, job_id: str, override: str | None = None) -> Any:
    body = {"override": override} if override is not None else {}
    return live.client.post(f"/v1/articles/{job_id}/approve", json=body, headers=auth["translator"])


def reviewed(live: LiveServer, auth: Auth, **fields: Any) -> str:
    """Article BODY with EDITED edited and CHECKED approved by a translator, UNREVIEWED untouched,
    approved with an override."""
    job_id = submit(live, auth, BODY, **fields)
    before = segments(live, auth, job_id)
    assert {s["status"] for s in before.values()} == {"needs_review"}, before  # the tiny model's are flagged
    assert edit(live, auth, job_id, EDITED, EDITED_TEXT)["status"] == "draft"
    checked = segments(live, auth, job_id)[CHECKED]
    r = live.client.post(
        f"/v1/articles/{job_id}/segments/{checked['id']}/approve",
        json={"version": checked["version"]},
        headers=auth["translator"],
    )
    assert r.status_code == 200, r.text
    blocked = approve(live, auth, job_id)
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "needs_review", blocked.text
    r = approve(live, auth, job_id, "the desk wants it out now")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["approval_override"]) == ("approved", "the desk wants it out now")
    return job_id


def memory_sources(live: LiveServer, auth: Auth, query: str) -> set[tuple[str, str]]:
    r = live.client.get("/v1/memory/search", params={"q": query}, headers=auth["translator"])
    assert r.status_code == 200, r.text
    return {(e["source"], e["variant"]) for e in r.json()["memory"]}


def test_an_override_publishes_the_article_but_not_into_the_memory(site: tuple[LiveServer, Auth]) -> None:
    live, auth = site
    job_id = reviewed(live, auth)
    after = segments(live, auth, job_id)
    assert {s["status"] for s in after.values()} == {"approved"}  # published as it is
    # A person's edit and a person's approval are reused; the sentence nobody looked at is not.
    later = segments(live, auth, submit(live, auth, BODY))
    assert (later[EDITED]["origin"], later[EDITED]["targets"]["zh-Hans"]) == ("tm", EDITED_TEXT)
    assert later[CHECKED]["origin"] == "tm"
    assert (later[UNREVIEWED]["origin"], later[UNREVIEWED]["status"]) == ("mt", "needs_review")
    assert memory_sources(live, auth, "harbour") == {(EDITED, "zh-Hans"), (EDITED, "zh-TW")}
    assert memory_sources(live, auth, "storm") == {(CHECKED, "zh-Hans"), (CHECKED, "zh-TW")}
    assert memory_sources(live, auth, "council") == set()

    # The history says that no person approved it, and why it went out.
    last = history(live, auth, job_id, after[UNREVIEWED]["id"])[-1]
    assert (last["status_before"], last["status_after"], last["by"]) == (
        "needs_review",
        "approved",
        "translator-override",
    )
    assert last["note"] == f"{OVERRIDE_NOTE}: the desk wants it out now"
    assert history(live, auth, job_id, after[CHECKED]["id"])[-1]["note"] is None  # a person approved it
    # The article's TMX export, for a CAT tool's memory, leaves it out as the memory does.
    tmx = live.client.get(
        f"/v1/articles/{job_id}/export", params={"format": "tmx", "variant": "zh-Hans"}, headers=auth["translator"]
    )
    assert tmx.status_code == 200, tmx.text
    exported = etree.fromstring(tmx.content).findall(".//tu")
    assert sorted(tu.findall("tuv")[0].findtext("seg") for tu in exported) == sorted([EDITED, CHECKED])


@pytest.mark.parametrize("reopen", ["review", "edit"])
def test_reopening_puts_what_only_the_override_approved_back_to_review(
    site: tuple[LiveServer, Auth], reopen: str
) -> None:
    live, auth = site
    job_id = reviewed(live, auth)
    approved = segments(live, auth, job_id)
    if reopen == "review":
        r = live.client.post(f"/v1/articles/{job_id}/review", headers=auth["translator"])
        assert r.status_code == 200, r.text
    else:  # a translator's edit of an approved article reopens it too
        edit(live, auth, job_id, EDITED, "港口于周一重新开放。")
    job = article(live, auth, job_id)
    assert (job["status"], job["approval_override"], job["approved_by"]) == ("in_review", None, None)
    now = segments(live, auth, job_id)
    assert now[CHECKED]["status"] == "approved" and now[CHECKED]["version"] == approved[CHECKED]["version"]
    unreviewed = now[UNREVIEWED]
    assert (unreviewed["status"], unreviewed["version"]) == ("needs_review", approved[UNREVIEWED]["version"] + 1)
    # The first override's reason is still on record, with what reopening did.
    notes = [(h["status_after"], h["note"]) for h in history(live, auth, job_id, unreviewed["id"])]
    assert notes[-2:] == [
        ("approved", f"{OVERRIDE_NOTE}: the desk wants it out now"),
        ("needs_review", "back to review: the article was reopened, and only its approval override had approved this"),
    ]

    # Approving again needs the segment reviewed, or an override again, recorded again.
    blocked = approve(live, auth, job_id)
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "needs_review", blocked.text
    assert "1 segment(s) still need review" in blocked.json()["error"]["message"]
    again = approve(live, auth, job_id, "still waiting for the desk")
    assert again.status_code == 200, again.text
    assert again.json()["approval_override"] == "still waiting for the desk"
    assert memory_sources(live, auth, "council") == set()


def test_a_file_imported_into_an_article_approved_with_an_override(site: tuple[LiveServer, Auth]) -> None:
    """An XLIFF import reopens the article, which puts the override's segments back to review in the
    same transaction: the file's changes of them are applied over that, not refused as conflicts."""
    live, auth = site
    job_id = reviewed(live, auth)
    unreviewed = segments(live, auth, job_id)[UNREVIEWED]
    exported = live.client.get(
        f"/v1/articles/{job_id}/export", params={"format": "xliff", "variant": "zh-Hans"}, headers=auth["translator"]
    )
    assert exported.status_code == 200, exported.text
    doc = etree.fromstring(exported.content)
    (seg,) = [s for s in doc.findall(".//x:segment", XLIFF) if s.get("id") == unreviewed["id"]]
    target = seg.find("x:target", XLIFF)
    assert target is not None
    for child in list(target):
        target.remove(child)
    target.text = "理事会周二开会。"
    seg.set("state", "final")
    seg.attrib.pop("subState", None)
    r = live.client.post(
        f"/v1/articles/{job_id}/import",
        params={"format": "xliff"},
        content=etree.tostring(doc, xml_declaration=True, encoding="UTF-8"),
        headers={"Content-Type": "application/xml", **auth["translator"]},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["edited"], r.json()["approved"]) == ([unreviewed["id"]], [unreviewed["id"]])
    now = segments(live, auth, job_id)[UNREVIEWED]
    assert (now["status"], now["origin"], now["targets"]["zh-Hans"]) == ("approved", "human", "理事会周二开会。")
    assert article(live, auth, job_id)["status"] == "in_review"
    # Now a person approved it: it is reused.
    assert memory_sources(live, auth, "council") == {(UNREVIEWED, "zh-Hans"), (UNREVIEWED, "zh-TW")}


def test_a_later_revision_does_not_take_over_what_only_the_override_approved(site: tuple[LiveServer, Auth]) -> None:
    """A new revision takes over people's work from the previous one (before the memory is looked
    at): the edit and the translator's approval, not the override's approval."""
    live, auth = site
    old = reviewed(live, auth, external_id="cms-88", revision="1")
    new_id = submit(live, auth, BODY, external_id="cms-88", revision="2")
    assert article(live, auth, new_id)["previous_id"] == old
    new = segments(live, auth, new_id)
    assert (new[EDITED]["origin"], new[EDITED]["status"], new[EDITED]["targets"]["zh-Hans"]) == (
        "human",
        "approved",
        EDITED_TEXT,
    )
    assert (new[CHECKED]["origin"], new[CHECKED]["status"]) == ("mt", "approved")
    assert (new[UNREVIEWED]["origin"], new[UNREVIEWED]["status"]) == ("mt", "needs_review")
    blocked = approve(live, auth, new_id)  # it needs review (or an override) again
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "needs_review", blocked.text


def test_an_exact_hit_needs_a_zh_hans_entry(site: tuple[LiveServer, Auth]) -> None:
    """A TMX unit with only a zh-TW translation is stored, found and suggested for zh-TW, but never
    reused as an exact hit (README, Translation memory)."""
    live, auth = site
    sentence = "The ferry to the island resumed service."
    tmx = f"""<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="en" datatype="plaintext" segtype="sentence" adminlang="en"
 o-tmf="x" creationtool="x" creationtoolversion="1"/><body>
<tu><tuv xml:lang="en"><seg>{sentence}</seg></tuv><tuv xml:lang="zh-TW"><seg>往島上的渡輪恢復營運。</seg></tuv></tu>
</body></tmx>"""
    r = live.client.post("/v1/memory/import", content=tmx, headers={"Content-Type": "application/xml", **auth["admin"]})
    assert r.status_code == 200 and r.json() == {"entries": 1, "duplicates": 0}, r.text
    assert memory_sources(live, auth, "ferry") == {(sentence, "zh-TW")}
    job_id = submit(live, auth, sentence, targets=["zh-TW"])
    seg = next(iter(segments(live, auth, job_id).values()))
    assert seg["origin"] == "mt"  # the model's, not the stored zh-TW
    found = live.client.get(
        f"/v1/articles/{job_id}/segments/{seg['id']}/suggestions",
        params={"variant": "zh-TW"},
        headers=auth["translator"],
    )
    assert found.status_code == 200, found.text
    assert [(s["source"], s["target"], s["score"]) for s in found.json()] == [(sentence, "往島上的渡輪恢復營運。", 100)]


def test_a_revision_submitted_again_follows_the_one_before_it(site: tuple[LiveServer, Auth]) -> None:
    """cms-4711 revisions 2, 3 and 4, translators at work on 2 and 4; revision 3 is withdrawn and
    submitted again: the new job follows revision 2 (its work carries over), not revision 4, which
    keeps no link to it."""
    live, auth = site
    own = {"2": "Officials closed the old bridge.", "4": "Officials opened the new bridge."}
    body = f"{own['2']}\n\n{own['4']}"
    jobs = {rev: submit(live, auth, body, external_id="cms-4711", revision=rev) for rev in ("2", "3", "4")}
    edit(live, auth, jobs["2"], own["2"], "官员关闭了旧桥。")
    edit(live, auth, jobs["4"], own["4"], "官员开放了新桥。")
    assert article(live, auth, jobs["4"])["previous_id"] == jobs["3"]
    r = live.client.delete(f"/v1/articles/{jobs['3']}", headers=auth["cms"])
    assert r.status_code == 200 and r.json()["unlinked_ids"] == [jobs["4"]], r.text

    r = live.client.post(
        "/v1/articles",
        json={"body": body, "targets": TARGETS, "external_id": "cms-4711", "revision": "3"},
        headers=auth["cms"],
    )
    assert r.status_code == 202, r.text  # a new job: the old one is gone
    again = translated(live, auth, r.json()["id"])
    assert again != jobs["3"]
    job = article(live, auth, again)
    assert (job["previous_id"], job["newer_ids"]) == (jobs["2"], [])
    assert article(live, auth, jobs["2"])["newer_ids"] == [again]
    assert (article(live, auth, jobs["4"])["previous_id"], article(live, auth, jobs["4"])["newer_ids"]) == (None, [])
    carried = segments(live, auth, again)
    assert (carried[own["2"]]["origin"], carried[own["2"]]["targets"]["zh-Hans"]) == ("human", "官员关闭了旧桥。")
    assert carried[own["4"]]["origin"] == "mt"  # revision 4's work is not revision 3's

    # A revision submitted in order follows the latest one before it, not the last one submitted.
    five = submit(live, auth, body, external_id="cms-4711", revision="5")
    assert article(live, auth, five)["previous_id"] == jobs["4"]
    # Labels with no order (hashes) follow the order of submission.
    hashes = [submit(live, auth, body, external_id="cms-4712", revision=label) for label in ("a9f3", "1c2e")]
    assert article(live, auth, hashes[1])["previous_id"] == hashes[0]


@pytest.mark.parametrize(
    ("label", "than", "later"),
    [
        ("4", "3", True),
        ("3", "4", False),
        ("10", "9", True),
        ("v10", "v9", True),
        ("v9", "v10", False),
        ("3.10", "3.2", True),
        ("3.1", "3", True),
        ("3-fix", "3", True),
        ("3", "3.1", False),
        ("2024-05-02T08:00", "2024-05-01T17:30", True),
        ("2024-05-01T17:30", "2024-05-02T08:00", False),
        ("03", "3", False),
        ("3", "03", False),
        # No order: neither is later, and submission order decides.
        ("a9f3", "1c2e", False),
        ("1c2e", "a9f3", False),
        ("final", "draft", False),
        ("draft", "final", False),
        ("3", None, False),
        (None, "3", False),
    ],
)
def test_revision_labels_in_order(label: str | None, than: str | None, later: bool) -> None:
    from service.jobs.articles import _later_revision  # here: the other tests run on code without it

    assert _later_revision(label, than) is later
