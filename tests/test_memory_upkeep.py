"""Keeping the translation memory right: a wrong approved translation is reused for every later
article with the same sentence, without the model. An admin corrects an entry's translation
(PATCH /v1/memory/entries/{id}) or deletes it (DELETE), found by concordance search, which gives each
entry's id; and removes what an article gave the memory after it was withdrawn without it (DELETE
/v1/memory/articles/{id}, a legal takedown that came later). On SQLite and PostgreSQL, through the
real service with API keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from models.engine import Engine
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database
from tests.conftest import LiveServer, keyed_settings, make_keys, serve

WRONG = "The harbour reopened on Monday."
WRONG_TARGET = "港口周二关闭。"  # what a hurried approval stored: the wrong day, the wrong verb
RIGHT_TARGET = "港口周一重新开放。"


@pytest.fixture
def site(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> Iterator[tuple[LiveServer, dict[str, dict[str, str]]]]:
    keys = make_keys(database_url, suffix="-upkeep")
    db = Database(database_url)
    TranslationMemory(db).remember(
        [
            Remembered(WRONG, "zh-Hans", WRONG_TARGET, origin="tmx"),
            Remembered(WRONG, "zh-TW", "港口週二關閉。", origin="tmx"),
        ]
    )
    db.close()
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        yield live, {role: {"Authorization": f"Bearer {made.key}"} for role, made in keys.items()}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def entries(live: LiveServer, auth: dict[str, str], q: str) -> list[dict[str, Any]]:
    r = live.client.get("/v1/memory/search", params={"q": q}, headers=auth)
    assert r.status_code == 200, r.text
    return list(r.json()["memory"])


def translate(live: LiveServer, auth: dict[str, str], text: str) -> dict[str, Any]:
    r = live.client.post("/v1/translate", json={"text": text, "targets": ["zh-Hans", "zh-TW"]}, headers=auth)
    assert r.status_code == 200, r.text
    segments = [s for b in r.json()["blocks"] for s in b["segments"]]
    assert len(segments) == 1, segments
    return dict(segments[0])


def test_an_admin_corrects_then_deletes_a_wrong_entry(site: tuple[LiveServer, dict[str, dict[str, str]]]) -> None:
    live, auth = site
    before = translate(live, auth["cms"], WRONG)
    assert (before["origin"], before["targets"]["zh-Hans"]) == ("tm", WRONG_TARGET)  # reused, model never asked

    found = {e["variant"]: e for e in entries(live, auth["translator"], "harbour")}
    assert set(found) == {"zh-Hans", "zh-TW"}
    hans = found["zh-Hans"]
    assert isinstance(hans["id"], int) and hans["job_id"] is None

    url = f"/v1/memory/entries/{hans['id']}"
    # Only admins keep the memory: translators read it, cms keys do not even do that.
    for role, status in (("translator", 403), ("cms", 403)):
        r = live.client.patch(url, json={"target": RIGHT_TARGET}, headers=auth[role])
        assert r.status_code == status and r.json()["error"]["code"] == "forbidden", r.text
    assert live.client.patch(url, json={"target": RIGHT_TARGET}).status_code == 401
    for body in ({"target": "   "}, {"target": ""}, {"target": "x" * 20_001}, {"target": "好", "origin": "x"}, {}):
        r = live.client.patch(url, json=body, headers=auth["admin"])
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["message"], r.text
    r = live.client.patch("/v1/memory/entries/999999", json={"target": RIGHT_TARGET}, headers=auth["admin"])
    assert r.status_code == 404 and "999999" in r.json()["error"]["message"], r.text
    assert live.client.patch("/v1/memory/entries/0", json={"target": "好"}, headers=auth["admin"]).status_code == 422

    r = live.client.patch(url, json={"target": f"  {RIGHT_TARGET} "}, headers=auth["admin"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["id"], out["source"], out["target"], out["variant"], out["origin"]) == (
        hans["id"],
        WRONG,
        RIGHT_TARGET,
        "zh-Hans",
        "corrected",
    )
    assert out["created_at"] > hans["created_at"]
    # The next article with the sentence takes the correction; the zh-TW entry is its own (not corrected).
    after = translate(live, auth["cms"], WRONG)
    assert (after["origin"], after["targets"]["zh-Hans"]) == ("tm", RIGHT_TARGET)
    assert after["targets"]["zh-TW"] == "港口週二關閉。"
    newest = entries(live, auth["admin"], "harbour")[0]
    assert (newest["id"], newest["target"], newest["origin"]) == (hans["id"], RIGHT_TARGET, "corrected")

    # Deleted: the sentence goes to the model again (no zh-Hans entry: no exact reuse in any variant).
    r = live.client.delete(url, headers=auth["translator"])
    assert r.status_code == 403, r.text
    r = live.client.delete(url, headers=auth["admin"])
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["target"]) == (hans["id"], RIGHT_TARGET)
    again = translate(live, auth["cms"], WRONG)
    assert again["origin"] != "tm"
    assert [e["variant"] for e in entries(live, auth["admin"], "harbour")] == ["zh-TW"]
    second = live.client.delete(url, headers=auth["admin"])
    assert second.status_code == 404 and second.json()["error"]["code"] == "not_found", second.text


def test_a_deleted_entry_leaves_a_process_that_had_read_it(database_url: str) -> None:
    """Fuzzy lookups score the sentences a process has read; a deleted one is not suggested again,
    by the process that deleted it or by another that had read it."""
    db = Database(database_url)
    db.migrate()
    try:
        memory, other = TranslationMemory(db), TranslationMemory(db)
        memory.remember(
            [Remembered("The harbour reopened on Monday after repairs.", "zh-Hans", "港口周一修复后重开。")]
        )
        query = "The harbour reopened on Tuesday after repairs."
        assert [s.target for s in memory.fuzzy(query, "zh-Hans")] == ["港口周一修复后重开。"]
        assert [s.target for s in other.fuzzy(query, "zh-Hans")] == ["港口周一修复后重开。"]
        (hit,) = memory.search("harbour").hits
        assert memory.delete(hit.id) is not None
        assert memory.fuzzy(query, "zh-Hans") == [] and other.fuzzy(query, "zh-Hans") == []
        assert memory.delete(hit.id) is None and memory.correct(hit.id, "好") is None
    finally:
        db.close()


def test_an_article_withdrawn_without_its_memory_can_take_it_later(
    site: tuple[LiveServer, dict[str, dict[str, str]]],
) -> None:
    """Withdrawn without memory=true, an article's approved sentences stay in the memory, naming it;
    a later DELETE /v1/memory/articles/{id} removes them, but for a sentence another article's
    approval gives as well, which stays, credited to that article."""
    live, auth = site
    client = live.client
    shared, own = "The new pier opened with a ceremony.", "Vexmoor, the mayor, cut the ribbon."
    texts = {shared: "新码头举行仪式开放。", own: "市长维克斯莫尔剪彩。"}
    jobs = []
    for body in (shared, f"{shared}\n\n{own}"):  # the memory credits `shared` to the last approval
        r = client.post("/v1/articles", json={"body": body, "targets": ["zh-Hans"]}, headers=auth["cms"])
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        url = f"/v1/articles/{job_id}"
        wait_until(lambda u=url: client.get(u, headers=auth["cms"]).json()["status"] == "translated", "the translation")
        job = client.get(url, headers=auth["translator"]).json()
        for seg in (s for b in job["document"]["blocks"] for s in b["segments"]):
            edit = {"text": texts[seg["source"]], "version": seg["version"]}
            r = client.patch(f"{url}/segments/{seg['id']}", json=edit, headers=auth["translator"])
            assert r.status_code == 200, r.text
        r = client.post(f"{url}/approve", json={"override": "checked"}, headers=auth["translator"])
        assert r.status_code == 200, r.text
        jobs.append(job_id)
    second, first = jobs
    r = client.delete(f"/v1/articles/{first}", headers=auth["admin"])
    assert r.status_code == 200 and r.json()["removed"]["memory_entries"] == 0, r.text
    stored = entries(live, auth["admin"], "Vexmoor")
    assert [(e["target"], e["job_id"]) for e in stored] == [(texts[own], first)]  # a job that is gone

    url = f"/v1/memory/articles/{first}"
    assert client.delete(url, headers=auth["translator"]).status_code == 403
    r = client.delete(url, headers=auth["admin"])
    assert r.status_code == 200, r.text
    assert r.json() == {"removed": 1, "kept": 1}
    assert entries(live, auth["admin"], "Vexmoor") == []
    kept = entries(live, auth["admin"], "pier")
    assert [(e["target"], e["job_id"]) for e in kept] == [(texts[shared], second)]
    assert client.delete(url, headers=auth["admin"]).json() == {"removed": 0, "kept": 0}
    assert client.delete(f"/v1/memory/articles/{'x' * 37}", headers=auth["admin"]).status_code == 422


def test_the_openapi_document_lists_the_upkeep_routes(site: tuple[LiveServer, dict[str, dict[str, str]]]) -> None:
    live, _ = site
    paths = live.client.get("/openapi.json").json()["paths"]
    entry = paths["/v1/memory/entries/{entry_id}"]
    assert {"200", "401", "403", "404", "422"} <= set(entry["patch"]["responses"])
    assert {"200", "401", "403", "404"} <= set(entry["delete"]["responses"])
    assert {"200", "401", "403", "422"} <= set(paths["/v1/memory/articles/{job_id}"]["delete"]["responses"])
