"""What a new revision of an article takes over from the previous one, sentence by sentence, through
the real HTTP service, on SQLite and on PostgreSQL: a sentence that occurs several times, translated
differently in each place, keeps each place's translation (paired in order, paragraphs inserted
around it); a sentence that occurs more often now takes a translation only where people gave it one
in that kind of block; and the open queries of the sentences that stand unchanged follow them into
the new revision (whole threads, with their authors and times, marked as coming from the previous
revision), blocking its approval, without a new webhook; resolved threads and those on sentences
that changed stay behind. The tiny model's translations are noise: only where they came from is
asserted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glossary.terms import Glossary
from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, Document, SourceFormat
from service.jobs import revisions
from service.storage.db import Database
from tests.conftest import LiveServer, WebhookReceiver, serve
from tests.test_query_webhooks import Site, site_for


@pytest.fixture
def live(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[LiveServer]:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as server:
        yield server


@pytest.fixture
def site(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[Site]:
    with site_for(database_url, tiny_dirs, engines["marian"]) as made:
        yield made


def wait_for(client: httpx.Client, job_id: str, state: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while (job := client.get(f"/v1/articles/{job_id}", headers=headers).json())["status"] != state:
        assert job["status"] != "failed", job
        assert time.monotonic() < deadline, job["status"]
        time.sleep(0.05)
    return dict(job)


def placed(job: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each segment in document order with its block's kind and its source."""
    return [(b["kind"], s["source"], s) for b in job["document"]["blocks"] for s in b["segments"]]


NO_TERMS = Glossary("none", ())
TALKS = "# Talks ended.\n\nDelegates left early. Talks ended.\n\nTalks ended."


def test_a_repeated_sentence_keeps_each_place_s_translation(live: LiveServer) -> None:
    """ "Talks ended." as a heading, ending a paragraph and as a paragraph of its own, each translated
    differently and approved (not propagated). Revision 2 inserts a paragraph before them and adds one
    after, then says the sentence twice more, in a paragraph and in a heading: the three old places
    keep their own translations, approved; the new heading takes the one heading translation; the new
    paragraph, with two paragraph translations to choose from, takes neither from the revision."""
    client = live.client
    rev = {"format": "markdown", "external_id": "talks", "targets": ["zh-Hans"]}
    v1 = wait_for(
        client, client.post("/v1/articles", json={**rev, "body": TALKS, "revision": "1"}).json()["id"], "translated"
    )
    ours = {("heading", 0): "会谈结束", ("paragraph", 1): "会谈已经结束。", ("paragraph", 2): "谈判结束了。"}
    talks = [(kind, s) for kind, source, s in placed(v1) if source == "Talks ended."]
    assert len(talks) == 3
    for n, (kind, s) in enumerate(talks):
        url = f"/v1/articles/{v1['id']}/segments/{s['id']}"
        edited = client.patch(url, json={"text": ours[(kind, n)], "version": s["version"], "propagate": False})
        assert edited.status_code == 200, edited.text
        approved = client.post(f"{url}/approve", json={"version": edited.json()["version"], "propagate": False})
        assert approved.status_code == 200, approved.text
    before = [
        (k, s["targets"]["zh-Hans"], s["status"])
        for k, src, s in placed(client.get(f"/v1/articles/{v1['id']}").json())
        if src == "Talks ended."
    ]
    assert before == [
        ("heading", "会谈结束", "approved"),
        ("paragraph", "会谈已经结束。", "approved"),
        ("paragraph", "谈判结束了。", "approved"),
    ]

    body = f"Officials met first.\n\n{TALKS}\n\nOne more.\n\nTalks ended.\n\n## Talks ended."
    v2 = wait_for(
        client, client.post("/v1/articles", json={**rev, "body": body, "revision": "2"}).json()["id"], "translated"
    )
    got = [
        (kind, s["targets"]["zh-Hans"], s["status"], s["origin"])
        for kind, source, s in placed(v2)
        if source == "Talks ended."
    ]
    assert got[:3] == [
        ("heading", "会谈结束", "approved", "human"),
        ("paragraph", "会谈已经结束。", "approved", "human"),
        ("paragraph", "谈判结束了。", "approved", "human"),
    ]
    # Said once more in a paragraph: two translations people gave it there, neither known to fit. It
    # is translated anew (the translation memory may offer one of them, as a draft): not approved.
    assert got[3][0] == "paragraph" and got[3][3] in ("mt", "tm") and got[3][2] != "approved"
    assert got[4] == ("heading", "会谈结束", "approved", "human")  # the one heading translation
    for _, source, s in placed(v2):
        if source != "Talks ended.":
            assert s["origin"] == "mt", source


def test_sentences_are_paired_by_place(engines: dict[str, Engine]) -> None:
    """The pairing itself (service.jobs.revisions.pair_segments), on documents as the service
    segments them: in order around an inserted and a removed paragraph; a paragraph moved to the
    end pairs with its old place; a sentence in a block of another kind is not paired with it."""
    pipeline = build_pipeline(Settings(device="cpu"), engines["marian"])

    def doc(body: str) -> Document:
        return pipeline.prepare(Article(body, SourceFormat.MARKDOWN), targets=["zh-Hans"], glossary=NO_TERMS).doc

    old = doc("# Rain.\n\nRain. Wind.\n\nGone tomorrow.\n\nRain.\n\nSun later.")
    new = doc("New start.\n\n# Rain.\n\nRain. Wind.\n\nRain.\n\nSun later.\n\nGone tomorrow.\n\n- Rain.")
    pairs = revisions.pair_segments(old, new)
    by_text = [(new.segments[i].text, old.segments[j].id) for i, j in pairs.items()]
    ids = {s.id: s for s in old.segments}
    assert by_text == [
        ("Rain.", "b0.s0"),
        ("Rain.", "b1.s0"),
        ("Wind.", "b1.s1"),
        ("Rain.", "b3.s0"),
        ("Sun later.", "b4.s0"),
        ("Gone tomorrow.", "b2.s0"),  # moved to the end
    ]
    assert all(ids[o].text == t for t, o in by_text)
    # "New start." is new; the list item "Rain." has no unpaired old list item to take.
    assert {new.segments[i].text for i in range(len(new.segments)) if i not in pairs} == {"New start.", "Rain."}


ARTICLE = (
    "The harbour reopened on Monday.\n\n"
    "The mayor spoke later.\n\n"
    "Ships waited outside for 3 days.\n\n"
    "Trade resumed slowly."
)


def test_open_queries_follow_unchanged_sentences(site: Site, receiver: WebhookReceiver) -> None:
    """Revision 1: a translator asks about the harbour, the desk answers from the CMS, the translator
    fixes the sentence; a query on the mayor (no edit); a query on the ships, resolved; a query on
    trade, whose sentence revision 2 rewrites. Revision 2 (a paragraph inserted first, the trade
    sentence changed): the harbour's and the mayor's threads are there, open, read as they did (the
    first comment saying where it came from), so approval is refused without an override; the
    resolved thread and the changed sentence's are not; no query webhook is sent for the copies; and
    copying again (a resumed translation) copies nothing twice."""
    client = site.live.client
    tr, cms = site.auth("translator"), site.auth("cms")
    rev: dict[str, Any] = {"external_id": "cms-77", "callback_url": receiver.url, "targets": ["zh-Hans"]}
    made = client.post("/v1/articles", json={**rev, "body": ARTICLE, "revision": "1"}, headers=cms)
    assert made.status_code == 202, made.text
    v1 = wait_for(client, made.json()["id"], "translated", cms)
    harbour, mayor, ships, trade = (s for _, _, s in placed(v1))
    base1 = f"/v1/articles/{v1['id']}"

    def ask(segment: dict[str, Any], body: str, headers: dict[str, str]) -> dict[str, Any]:
        r = client.post(f"{base1}/segments/{segment['id']}/comments", json={"body": body}, headers=headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    question = ask(harbour, "Which harbour?", tr)
    answer = ask(harbour, "Naha.", cms)
    fixed = client.patch(
        f"{base1}/segments/{harbour['id']}",
        json={"text": "那霸港周一重新开放。", "version": harbour["version"]},
        headers=tr,
    )
    assert fixed.status_code == 200, fixed.text
    asked_mayor = ask(mayor, "Which mayor?", tr)
    resolved = ask(ships, "Three or four days?", tr)
    assert client.post(f"{base1}/comments/{resolved['id']}/resolve", headers=tr).status_code == 200
    ask(trade, "Trade in what?", tr)
    receiver.wait_queries(6)  # four questions, an answer, a resolution

    body2 = "Officials confirmed it.\n\n" + ARTICLE.replace("Trade resumed slowly.", "Trade resumed on Tuesday.")
    made2 = client.post("/v1/articles", json={**rev, "body": body2, "revision": "2"}, headers=cms)
    assert made2.status_code == 202, made2.text
    v2 = wait_for(client, made2.json()["id"], "translated", cms)
    base2 = f"/v1/articles/{v2['id']}"
    segs2 = {source: s for _, source, s in placed(v2)}
    assert segs2[harbour["source"]]["targets"] == fixed.json()["targets"]  # the edit carried over
    assert v2["open_queries"] == 2

    listed = client.get(f"{base2}/comments", headers=tr).json()
    threads: dict[str, list[dict[str, Any]]] = {}
    for c in listed:
        threads.setdefault(c["segment_id"], []).append(c)
    assert set(threads) == {segs2[harbour["source"]]["id"], segs2[mayor["source"]]["id"]}
    copied = threads[segs2[harbour["source"]]["id"]]
    assert [(c["author"], c["body"], c["created_at"], c["open"]) for c in copied] == [
        ("translator", "[From revision 1] Which harbour?", question["created_at"], True),
        ("cms", "Naha.", answer["created_at"], True),
    ]
    assert [(c["author"], c["body"], c["open"]) for c in threads[segs2[mayor["source"]]["id"]]] == [
        ("translator", "[From revision 1] Which mayor?", True)
    ]
    assert asked_mayor["body"] == "Which mayor?"
    # Revision 1's own threads are as they were.
    assert client.get(f"/v1/articles/{v1['id']}", headers=tr).json()["open_queries"] == 3

    # Nothing else needs review: the queries alone block approval.
    for _, _, s in placed(v2):
        if s["status"] != "approved":
            r = client.post(f"{base2}/segments/{s['id']}/approve", json={"version": s["version"]}, headers=tr)
            assert r.status_code == 200, r.text
    blocked = client.post(f"{base2}/approve", headers=tr)
    assert blocked.status_code == 409, blocked.text
    assert "2 query(ies) on segments still open" in blocked.json()["error"]["message"]

    # The copies are no new queries: revision 2's webhooks are only its own.
    receiver.wait_event("article.translated")
    events = [d["event"] for d in client.get(f"{base2}/deliveries", headers=cms).json()]
    assert "article.query" not in events and "article.translated" in events

    # Copied again, as a resumed translation would: nothing is copied twice.
    pairs = {segs2[s["source"]]["id"]: s["id"] for s in (harbour, mayor, ships)}
    again = revisions.Carried(pairs=pairs, previous_id=v1["id"], previous_revision="1", fresh=frozenset(pairs))
    db = Database(site.url)
    try:
        with db.session() as session:
            assert revisions.carry_queries(session, v2["id"], again) == (0, 1)  # trade's stayed behind
    finally:
        db.close()
    assert len(client.get(f"{base2}/comments", headers=tr).json()) == 3
