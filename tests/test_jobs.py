"""Article jobs through the real HTTP service, on SQLite and on PostgreSQL: submission,
idempotency, revisions, states, progress, review and approval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from sqlalchemy import update

from models.engine import Engine
from service.config import Settings
from service.storage.tables import Job
from tests.conftest import LiveServer, serve

ARTICLE = {
    "title": "Abe and the alliance",
    "body": (
        "Abe Shinzo met John Kerry in Tokyo on Thursday.\n\n"
        "The SCC discussed the Futenma base. Officials said 3 plans were ready.\n\n"
        "Talks will resume in 2014."
    ),
}


@pytest.fixture
def live(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[LiveServer]:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=database_url,
        job_poll_s=0.05,
        job_chunk_segments=2,
    )
    with serve(settings, engines["marian"]) as server:
        yield server


def wait_for(client: httpx.Client, job_id: str, *states: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/articles/{job_id}").json()
        if job["status"] in states:
            return job
        assert job["status"] != "failed", job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.05)


def test_submit_translate_and_read(live: LiveServer) -> None:
    r = live.client.post("/v1/articles", json={**ARTICLE, "targets": ["zh-Hans", "zh-TW"]})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/articles/{job['id']}"
    assert job["status"] in ("queued", "translating", "translated")
    done = wait_for(live.client, job["id"], "translated")
    assert done["progress"]["done"] == done["progress"]["total"] > 0
    doc = done["document"]
    segments = [s for b in doc["blocks"] for s in b["segments"]]
    assert len(segments) == done["progress"]["total"]
    assert {s["version"] for s in segments} == {1}
    assert set(doc["full_text"]) == {"zh-Hans", "zh-TW"}
    # The glossary holds in the stored document, as in the synchronous API.
    seg = next(s for s in segments if any(t["term_id"] == "abe-shinzo" for t in s["terms"]))
    abe = next(t for t in seg["terms"] if t["term_id"] == "abe-shinzo")
    assert abe["expected"]["zh-Hans"] == "安倍晋三"
    for variant, span in abe["target_spans"].items():
        # Placed where the glossary says, or flagged: never silently lost (the tiny model may drop it).
        if span:
            assert seg["targets"][variant][span["start"] : span["end"]] == abe["expected"][variant]
        else:
            assert any(f["code"] == "term_missing" and f["variant"] == variant for f in seg["flags"])
    assert done["translated_at"] is not None
    assert done["model"]


def test_idempotency_key_returns_the_same_job(live: LiveServer) -> None:
    headers = {"Idempotency-Key": "req-1"}
    first = live.client.post("/v1/articles", json=ARTICLE, headers=headers)
    again = live.client.post("/v1/articles", json=ARTICLE, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other = live.client.post("/v1/articles", json={**ARTICLE, "body": "Something else."}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_conflict"
    listed = live.client.get("/v1/articles").json()["items"]
    assert [j["id"] for j in listed] == [first.json()["id"]]


def test_external_id_and_revision(live: LiveServer) -> None:
    v1 = live.client.post("/v1/articles", json={**ARTICLE, "external_id": "cms-1", "revision": "1"})
    same = live.client.post("/v1/articles", json={**ARTICLE, "external_id": "cms-1", "revision": "1"})
    assert (v1.status_code, same.status_code) == (202, 200)
    assert same.json()["id"] == v1.json()["id"]
    v2 = live.client.post(
        "/v1/articles", json={**ARTICLE, "body": ARTICLE["body"] + " More.", "external_id": "cms-1", "revision": "2"}
    )
    assert v2.status_code == 202
    assert v2.json()["id"] != v1.json()["id"]
    assert v2.json()["previous_id"] == v1.json()["id"]
    assert v2.json()["links"]["previous"] == f"/v1/articles/{v1.json()['id']}"
    assert live.client.get(f"/v1/articles/{v1.json()['id']}").json()["newer_ids"] == [v2.json()["id"]]
    by_external = live.client.get("/v1/articles", params={"external_id": "cms-1"}).json()["items"]
    assert {j["revision"] for j in by_external} == {"1", "2"}


def test_the_list_gives_each_revisions_successors_in_one_query(live: LiveServer) -> None:
    """`newer_ids` in a listed page comes from one query for the page, not one per article (each
    of which read the whole jobs table before `previous_job_id` had an index)."""
    ids = []
    for revision in ("1", "2", "3"):
        body = {**ARTICLE, "body": f"Revision {revision}.", "external_id": "cms-2", "revision": revision}
        ids.append(live.client.post("/v1/articles", json=body).json()["id"])
    lone = live.client.post("/v1/articles", json={**ARTICLE, "body": "Alone."}).json()["id"]
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    try:
        items = live.client.get("/v1/articles", params={"limit": 10}).json()["items"]
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    newer = {j["id"]: j["newer_ids"] for j in items}
    assert newer == {ids[0]: [ids[1]], ids[1]: [ids[2]], ids[2]: [], lone: []}
    successors = [s for s in statements if "previous_job_id IN" in s]
    assert len(successors) == 1, statements


def _segments(job: dict) -> dict[str, dict]:
    return {s["source"]: s for b in job["document"]["blocks"] for s in b["segments"]}


def test_a_new_revision_keeps_what_people_did_in_the_previous_one(live: LiveServer) -> None:
    """Translators edit a sentence with a link and approve another in revision 1; the CMS sends
    revision 2 with one sentence changed and one added. The unchanged sentences keep the edit (every
    variant, the lock on the zh-TW a translator wrote) and the approval; the changed and the new
    ones are translated by the model."""
    body = (
        '<p>Abe met <a href="https://example.com/kerry">John Kerry</a> in Tokyo. Talks resumed.</p>'
        "<p>Exports doubled. Imports fell. Prices rose.</p>"
    )
    first = {"body": body, "format": "html", "targets": ["zh-Hans", "zh-TW"], "external_id": "cms-9"}
    v1 = wait_for(
        live.client, live.client.post("/v1/articles", json={**first, "revision": "1"}).json()["id"], "translated"
    )
    old = _segments(v1)
    met, exports, imports = (old[k] for k in ("Abe met John Kerry in Tokyo.", "Exports doubled.", "Imports fell."))
    url = f"/v1/articles/{v1['id']}/segments"
    edited = live.client.patch(
        f"{url}/{met['id']}",
        json={"text": '安倍在东京会见了<a href="https://example.com/kerry">约翰·克里</a>。', "version": met["version"]},
    ).json()
    assert edited["origin"] == "human"
    approved = live.client.post(f"{url}/{exports['id']}/approve", json={"version": exports["version"]}).json()
    assert approved["status"] == "approved"
    taiwan = live.client.patch(
        f"{url}/{imports['id']}", json={"variant": "zh-TW", "text": "進口下跌了。", "version": imports["version"]}
    ).json()
    assert taiwan["locked_variants"] == ["zh-TW"]

    changed = body.replace("Talks resumed.", "Talks resumed on Friday.") + "<p>More talks are planned.</p>"
    r = live.client.post("/v1/articles", json={**first, "body": changed, "revision": "2"})
    assert r.status_code == 202, r.text
    new = _segments(wait_for(live.client, r.json()["id"], "translated"))
    assert new["Abe met John Kerry in Tokyo."]["targets"] == edited["targets"]
    assert new["Abe met John Kerry in Tokyo."]["origin"] == "human"
    assert new["Exports doubled."]["targets"] == approved["targets"]
    assert new["Exports doubled."]["status"] == "approved"
    assert new["Imports fell."]["targets"] == taiwan["targets"]
    assert new["Imports fell."]["locked_variants"] == ["zh-TW"]
    for source in ("Talks resumed on Friday.", "More talks are planned."):
        assert new[source]["origin"] == "mt" and new[source]["status"] != "approved"
    # A sentence nobody touched in revision 1 is the model's again.
    assert new["Prices rose."]["origin"] == "mt"


def test_review_edit_conflict_and_approval(live: LiveServer) -> None:
    job_id = live.client.post("/v1/articles", json={**ARTICLE, "targets": ["zh-Hans", "zh-TW"]}).json()["id"]
    job = wait_for(live.client, job_id, "translated")
    seg = next(s for b in job["document"]["blocks"] for s in b["segments"] if "Abe" in s["source"])
    edit = {"text": "安倍晋三周四在东京会见了约翰·克里。", "version": seg["version"]}
    r = live.client.patch(f"/v1/articles/{job_id}/segments/{seg['id']}", json=edit)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["origin"] == "human"
    assert edited["version"] == seg["version"] + 1
    assert edited["targets"]["zh-Hans"] == edit["text"]
    # zh-TW is regenerated from the edit with OpenCC (Taiwan phrases): 東京, 會見.
    assert "東京" in edited["targets"]["zh-TW"] and "會見" in edited["targets"]["zh-TW"]
    assert live.client.get(f"/v1/articles/{job_id}").json()["status"] == "in_review"
    # A second edit based on the old version is refused with the newer text.
    stale = live.client.patch(f"/v1/articles/{job_id}/segments/{seg['id']}", json={**edit, "text": "旧的"})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_conflict"
    assert stale.json()["error"]["current"]["targets"]["zh-Hans"] == edit["text"]
    # Approving one segment, then the article.
    ok = live.client.post(f"/v1/articles/{job_id}/segments/{seg['id']}/approve", json={"version": edited["version"]})
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    full = live.client.get(f"/v1/articles/{job_id}").json()
    pending = [s for b in full["document"]["blocks"] for s in b["segments"] if s["status"] == "needs_review"]
    r = live.client.post(f"/v1/articles/{job_id}/approve", json={})
    if pending:
        assert r.status_code == 409 and r.json()["error"]["code"] == "needs_review"
        r = live.client.post(f"/v1/articles/{job_id}/approve", json={"override": "publishing now; fix later"})
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved"
    assert approved["approved_by"] == "local"
    assert (approved["approval_override"] is not None) == bool(pending)
    final = live.client.get(f"/v1/articles/{job_id}").json()
    assert {s["status"] for b in final["document"]["blocks"] for s in b["segments"]} == {"approved"}


def test_states_that_do_not_allow_review(live: LiveServer) -> None:
    r = live.client.post("/v1/articles/nope/approve", json={})
    assert r.status_code == 404
    assert live.client.get("/v1/articles/nope").status_code == 404


def test_bad_submissions(live: LiveServer) -> None:
    cases = [
        ({"body": "  "}, 422, "empty_input"),
        ({"body": "x", "targets": ["zh-XX"]}, 422, "unknown_variant"),
        ({"body": "x", "glossaries": ["nope"]}, 422, "unknown_glossary"),
        ({"body": "x", "callback_url": "http://127.0.0.1:9/hook"}, 422, "callback_refused"),
        ({"body": "x", "colour": "red"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        r = live.client.post("/v1/articles", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
    big = live.client.post("/v1/articles", json={"body": "word " * 30_000})
    assert big.status_code == 413
    assert live.client.get("/v1/articles").json()["items"] == []


def test_list_filters(live: LiveServer) -> None:
    a = live.client.post("/v1/articles", json=ARTICLE).json()["id"]
    wait_for(live.client, a, "translated")
    mark = live.client.get(f"/v1/articles/{a}").json()["updated_at"]
    b = live.client.post("/v1/articles", json={**ARTICLE, "body": "Second story."}).json()["id"]
    wait_for(live.client, b, "translated")
    assert [j["id"] for j in live.client.get("/v1/articles", params={"status": "translated"}).json()["items"]] == [a, b]
    later = live.client.get("/v1/articles", params={"since": mark}).json()["items"]
    assert b in [j["id"] for j in later]
    assert live.client.get("/v1/articles", params={"status": "approved"}).json()["items"] == []
    assert live.client.get("/v1/articles", params={"status": "bogus"}).status_code == 422


def test_paging_and_polling_with_the_cursor_repeat_and_miss_nothing(live: LiveServer, database_url: str) -> None:
    """Five jobs changed at the very same time (a bulk import, a coarse clock): paging with `after`
    gives each exactly once, in order, however small the pages; the last cursor then polls for
    changes. (`since`=`next_since` gave the last job of every page again, and one page forever when
    `limit` jobs shared a time.)"""
    ids = [live.client.post("/v1/articles", json={**ARTICLE, "body": f"Story {n}."}).json()["id"] for n in range(5)]
    for job_id in ids:
        wait_for(live.client, job_id, "translated")
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(Job).values(updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
    engine.dispose()
    in_order = sorted(ids)  # ties go by id
    for limit in (1, 2, 5, 6):
        seen: list[str] = []
        after = None
        for _ in range(10):
            params: dict[str, object] = {"limit": limit} | ({"after": after} if after else {})
            page = live.client.get("/v1/articles", params=params).json()
            seen += [j["id"] for j in page["items"]]
            after = page["next_cursor"]
            if not page["more"]:
                break
        assert seen == in_order, limit
        last = page
    # Nothing changed since: the cursor finds nothing and stays; a change is found, once.
    quiet = live.client.get("/v1/articles", params={"after": after}).json()
    assert (quiet["items"], quiet["next_cursor"], quiet["more"]) == ([], after, False)
    assert last["next_since"] is None
    r = live.client.post(f"/v1/articles/{in_order[2]}/review")
    assert r.status_code == 200, r.text
    changed = live.client.get("/v1/articles", params={"after": after}).json()
    assert [j["id"] for j in changed["items"]] == [in_order[2]]
    assert live.client.get("/v1/articles", params={"after": changed["next_cursor"]}).json()["items"] == []
    for bad in ("nonsense", "bm9uc2Vuc2U", "MjAyNi0wMS0wMlQwMzowNDowNXx4", "", "%00"):
        r = live.client.get("/v1/articles", params={"after": bad})
        codes = ("invalid_cursor", "invalid_request")
        assert r.status_code == 422 and r.json()["error"]["code"] in codes, (bad, r.text)


def test_queue_limit(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> None:
    settings = Settings(
        model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, runners=0, max_pending_jobs=2
    )
    with serve(settings, engines["marian"]) as live:
        for i in range(2):
            assert live.client.post("/v1/articles", json={"body": f"Story {i}."}).status_code == 202
        r = live.client.post("/v1/articles", json={"body": "One too many."})
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["error"]["code"] == "busy"


def test_a_variant_edited_by_hand_is_no_longer_regenerated(live: LiveServer) -> None:
    job_id = live.client.post(
        "/v1/articles", json={"body": "Abe Shinzo spoke.", "targets": ["zh-Hans", "zh-TW"]}
    ).json()["id"]
    seg = wait_for(live.client, job_id, "translated")["document"]["blocks"][0]["segments"][0]
    url = f"/v1/articles/{job_id}/segments/{seg['id']}"
    tw = live.client.patch(
        url, json={"variant": "zh-TW", "text": "安倍晉三發表講話。", "version": seg["version"]}
    ).json()
    assert tw["locked_variants"] == ["zh-TW"] and tw["targets"]["zh-TW"] == "安倍晉三發表講話。"
    hans = live.client.patch(url, json={"text": "安倍晋三讲话了。", "version": tw["version"]}).json()
    assert hans["targets"]["zh-Hans"] == "安倍晋三讲话了。"
    assert hans["targets"]["zh-TW"] == "安倍晉三發表講話。"  # the translator's own zh-TW stands
    history = live.client.get(f"{url}/history").json()
    assert [(h["variant"], h["after"]) for h in history] == [
        ("zh-TW", "安倍晉三發表講話。"),
        ("zh-Hans", "安倍晋三讲话了。"),
    ]


def test_approving_an_approved_segment_changes_nothing(live: LiveServer) -> None:
    job_id = live.client.post("/v1/articles", json={"body": "Abe Shinzo spoke."}).json()["id"]
    wait_for(live.client, job_id, "translated")
    r = live.client.post(f"/v1/articles/{job_id}/approve", json={"override": "checked by phone"})
    assert r.status_code == 200, r.text
    approved = r.json()
    overridden = live.client.get(f"/v1/articles/{job_id}").json()["document"]["blocks"][0]["segments"][0]
    url = f"/v1/articles/{job_id}/segments/{overridden['id']}"
    # Only the override had approved it: a person's approval is recorded (tests/test_review_integrity.py).
    first = live.client.post(f"{url}/approve", json={"version": overridden["version"]})
    assert first.status_code == 200 and first.json()["version"] == overridden["version"] + 1, first.text
    seg = {k: v for k, v in first.json().items() if k != "repetitions"}
    again = live.client.post(f"{url}/approve", json={"version": seg["version"]})
    assert again.status_code == 200, again.text
    assert again.json() == {**seg, "repetitions": []}  # no new version
    job = live.client.get(f"/v1/articles/{job_id}").json()
    assert job["status"] == "approved"
    assert (job["approved_at"], job["approved_by"], job["approval_override"]) == (
        approved["approved_at"],
        "local",
        "checked by phone",
    )
    # An edit does reopen the article, and then nothing of the old approval is left on it.
    edited = live.client.patch(url, json={"text": "安倍晋三讲话了。", "version": seg["version"]})
    assert edited.status_code == 200, edited.text
    job = live.client.get(f"/v1/articles/{job_id}").json()
    assert job["status"] == "in_review"
    assert (job["approved_at"], job["approved_by"], job["approval_override"]) == (None, None, None)


def test_since_without_a_timezone_is_utc(live: LiveServer) -> None:
    job_id = live.client.post("/v1/articles", json=ARTICLE).json()["id"]
    updated = wait_for(live.client, job_id, "translated")["updated_at"]
    naive = updated.replace("Z", "").split("+")[0]
    for since, found in (("2020-01-01", [job_id]), ("2020-01-01T00:00:00", [job_id]), (naive, [job_id])):
        r = live.client.get("/v1/articles", params={"since": since})
        assert r.status_code == 200, (since, r.text)
        assert [j["id"] for j in r.json()["items"]] == found, since
    # A naive time after the change finds nothing.
    later = live.client.get("/v1/articles", params={"since": "2999-01-01T00:00:00"}).json()["items"]
    assert later == []
    described = live.client.get("/openapi.json").json()["paths"]["/v1/articles"]["get"]["parameters"]
    assert "UTC" in next(p for p in described if p["name"] == "since")["description"]


def test_error_messages_name_what_was_asked(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, runners=0)
    with serve(settings, engines["marian"]) as live:
        missing = live.client.get("/v1/articles/nope")
        assert missing.json()["error"]["message"] == "no article job 'nope'"
        exported = live.client.get("/v1/articles/nope/export")
        assert exported.json()["error"]["message"] == "no article job 'nope'"
        job_id = live.client.post("/v1/articles", json={"body": "Still queued."}).json()["id"]
        r = live.client.post(f"/v1/articles/{job_id}/approve", json={})
        assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
        assert "approved" in r.json()["error"]["message"] and "in_review" not in r.json()["error"]["message"]
        r = live.client.get("/v1/memory/export", params={"variant": "xx"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "unknown_variant"
        assert "zh-TW" in r.json()["error"]["valid"]
        assert live.client.get("/v1/memory/export", params={"variant": "zh-TW"}).status_code == 200
