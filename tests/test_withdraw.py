"""Withdrawing an article (`DELETE /v1/articles/{id}`: a spiked story, a legal takedown) through the
real HTTP service, on SQLite and on PostgreSQL: a queued job is never translated; a runner
translating it stops at its next save without writing anything back; its webhooks are not sent,
not even retried when one was on its way; nothing of it is left in any table (with `memory=true`,
not in the translation memory either, unless another article gives the same entry); other
articles, a later revision and a resubmission go on. The engine is the real tiny model, held at a
gate when a test needs a runner mid-article."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlalchemy import and_, func, or_, select

from models.engine import Engine, Translation
from service.auth import Role
from service.config import Settings
from service.storage.tables import Base, Job, StoredArticle
from service.webhooks import verify
from tests.conftest import LiveServer, WebhookReceiver, keyed_settings, make_keys, serve

# --- the engine, held at a gate ----------------------------------------------------------------


class GatedEngine:
    """The real engine; a batch holding a sentence that contains `hold` waits at the gate until
    `release` is set. Every sentence it is asked to decode is recorded."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.hold: str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sources: list[str] = []

    def translate_batch(self, sources: Sequence[str], **kwargs: Any) -> list[Translation]:
        self.sources.extend(sources)
        if self.hold is not None and any(self.hold in s for s in sources):
            self.entered.set()
            assert self.release.wait(60), "the test never released the engine"
        return self.inner.translate_batch(sources, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --- the service -----------------------------------------------------------------------------------


def settings_for(database_url: str, tiny_dirs: dict[str, Path], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "model": str(tiny_dirs["marian"]),
        "device": "cpu",
        "database_url": database_url,
        "runners": 1,
        "job_poll_s": 0.05,
        "job_chunk_segments": 2,
        "continuous_batching": False,  # whole batches, through the gate's translate_batch
        "cache_size": 0,
        "redecode_loops": False,
        "default_glossaries": [],
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_allow_private": True,
        "webhook_secret": "s3cret",
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_cap_s": 0.2,
        "webhook_timeout_s": 60,
        **extra,
    }
    return Settings(**values)


@pytest.fixture
def gated(engines: dict[str, Engine]) -> Iterator[GatedEngine]:
    engine = GatedEngine(engines["marian"])
    yield engine
    engine.release.set()


@pytest.fixture
def live(database_url: str, tiny_dirs: dict[str, Path], gated: GatedEngine) -> Iterator[LiveServer]:
    with serve(settings_for(database_url, tiny_dirs), gated) as server:  # type: ignore[arg-type]
        yield server


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def submit(client: httpx.Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = client.post("/v1/articles", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return dict(r.json())


def translated(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def done() -> bool:
        status = client.get(f"/v1/articles/{job_id}").json()["status"]
        assert status != "failed"
        return bool(status == "translated")

    wait_until(done, f"article {job_id} to be translated")
    return dict(client.get(f"/v1/articles/{job_id}").json())


def segments(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"]: s for b in job["document"]["blocks"] for s in b["segments"]}


# --- what the database holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Where a job's rows are: enough to find every one of them after it is gone."""

    job_id: str
    article_id: int
    body: str  # SQLite gives a deleted article's id to the next article: the id alone is not enough
    delivery_ids: tuple[str, ...]


def stored(url: str, job_id: str) -> Stored:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            article_id, body = conn.execute(
                select(StoredArticle.id, StoredArticle.body)
                .join(Job, Job.article_id == StoredArticle.id)
                .where(Job.id == job_id)
            ).one()
            table = Base.metadata.tables["webhook_deliveries"]
            deliveries = tuple(conn.scalars(select(table.c.id).where(table.c.job_id == job_id)))
    finally:
        engine.dispose()
    return Stored(job_id, article_id, body, deliveries)


def rows_of(url: str, job: Stored) -> dict[str, int]:
    """For every table, the rows that belong to or point at `job` (none listed: none left)."""
    engine = sqlalchemy.create_engine(url)
    counts: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                conditions = [c == job.job_id for c in table.columns if c.name in ("job_id", "previous_job_id")]
                if table.name == "jobs":
                    conditions.append(table.c.id == job.job_id)
                if table.name == "articles":
                    conditions.append(and_(table.c.id == job.article_id, table.c.body == job.body))
                if table.name == "webhook_attempts" and job.delivery_ids:
                    conditions.append(table.c.delivery_id.in_(job.delivery_ids))
                if conditions:
                    n = conn.scalar(select(func.count()).select_from(table).where(or_(*conditions)))
                    if n:
                        counts[table.name] = int(n)
    finally:
        engine.dispose()
    return counts


def anywhere(url: str, text: str) -> list[str]:
    """The tables that hold `text` in any column of any row."""
    engine = sqlalchemy.create_engine(url)
    found = []
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if any(
                    text in json.dumps([str(v) for v in row], ensure_ascii=False) for row in conn.execute(select(table))
                ):
                    found.append(table.name)
    finally:
        engine.dispose()
    return found


# --- the tests -------------------------------------------------------------------------------------

BYSTANDER = {"body": "The council met on Tuesday.\n\nIt approved the budget."}


def test_a_queued_article_withdrawn_is_never_translated(
    live: LiveServer, gated: GatedEngine, database_url: str
) -> None:
    client = live.client
    gated.hold = "Gatehold"
    blocker = submit(client, {"body": "Gatehold keeps the only runner busy."})
    assert gated.entered.wait(60), "the runner never started the first article"
    spiked = submit(
        client, {"body": "Spikedstory should never be decoded.\n\nNor this sentence of it.", "external_id": "s-1"}
    )
    assert client.get(f"/v1/articles/{spiked['id']}").json()["status"] == "queued"
    where = stored(database_url, spiked["id"])

    r = client.delete(f"/v1/articles/{spiked['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "id": spiked["id"],
        "status": "queued",
        "external_id": "s-1",
        "revision": None,
        "removed": {"segments": 0, "edits": 0, "deliveries": 0, "delivery_attempts": 0, "memory_entries": 0},
        "memory_kept": 0,
        "unlinked_ids": [],
    }
    gated.release.set()
    translated(client, blocker["id"])
    # A later article is claimed after the withdrawn one would have been (oldest first).
    translated(client, submit(client, BYSTANDER)["id"])
    assert not [s for s in gated.sources if "Spikedstory" in s or "Nor this sentence" in s]
    assert client.get(f"/v1/articles/{spiked['id']}").status_code == 404
    again = client.delete(f"/v1/articles/{spiked['id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    assert rows_of(database_url, where) == {}
    assert anywhere(database_url, "Spikedstory") == []


def test_a_runner_mid_article_stops_at_its_next_save_and_writes_nothing(
    live: LiveServer, gated: GatedEngine, database_url: str, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The job is withdrawn while its runner decodes its second chunk: the runner finishes decoding,
    finds the job gone when it saves, and stops: no segment, job or webhook comes back, nothing is
    logged as an error, and the runner goes on with the next article."""
    caplog.set_level(logging.INFO, logger="service")
    client = live.client
    before = translated(client, submit(client, BYSTANDER)["id"])
    body = "\n\n".join(
        [
            "Ministers met in the capital on Monday.",
            "They spoke for three hours.",
            "Midchunk talks then moved to trade.",
            "No agreement was reached.",
            "Another round is planned.",
            "Officials declined to comment.",
        ]
    )
    gated.hold = "Midchunk"
    job = submit(client, {"body": body, "callback_url": receiver.url})
    assert gated.entered.wait(60), "the runner never reached the second chunk"
    mid = client.get(f"/v1/articles/{job['id']}").json()
    assert mid["status"] == "translating" and mid["progress"] == {"done": 2, "total": 6}
    where = stored(database_url, job["id"])

    r = client.delete(f"/v1/articles/{job['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "translating"
    assert r.json()["removed"]["segments"] == 2
    assert rows_of(database_url, where) == {}
    gated.release.set()
    # The one runner takes the next article only once it has dealt with the withdrawn one.
    after = translated(client, submit(client, {"body": "A later story is translated as usual."})["id"])
    assert after["progress"]["done"] == after["progress"]["total"] == 1
    assert rows_of(database_url, where) == {}
    assert anywhere(database_url, "Midchunk") == []
    assert client.get(f"/v1/articles/{job['id']}").status_code == 404
    # Never `article.translated`; `article.withdrawn`, written by the withdrawal, is the one event.
    wait_until(lambda: ("article.withdrawn", job["id"]) in receiver.events(), "the withdrawal webhook")
    assert [event for event, article in receiver.events() if article == job["id"]] == ["article.withdrawn"]
    assert client.get(f"/v1/articles/{before['id']}").json() == before  # another article, untouched
    messages = [(rec.levelno, rec.getMessage()) for rec in caplog.records if rec.name.startswith("service")]
    assert not [m for level, m in messages if level >= logging.ERROR], messages
    assert any(job["id"] in m and "withdrawn while being translated" in m for _, m in messages), messages
    assert any(job["id"] in m and "withdrawn by local" in m for _, m in messages), messages
    assert not [m for _, m in messages if "Midchunk" in m or "Ministers" in m]  # who and what, never the text


def test_webhooks_of_a_withdrawn_article_are_not_sent_or_retried(
    live: LiveServer, database_url: str, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Article A's webhook is on its way (the receiver holds the request); B's waits behind it (one
    delivery to a URL at a time). Both are withdrawn. A's answer is a 503, which would be retried:
    it is not (nor recorded, nor an error), and B's is never sent; each withdrawal's own
    `article.withdrawn` is, and C's, queued after both, arrives."""
    caplog.set_level(logging.INFO, logger="service")
    client = live.client
    hold = threading.Event()
    receiver.hold, receiver.script = hold, [503]
    a = submit(client, {"body": "Story A is translated.", "callback_url": receiver.url})
    assert receiver.entered.wait(60), "the webhook of A was never sent"
    b = translated(client, submit(client, {"body": "Story B is translated.", "callback_url": receiver.url})["id"])
    pending = client.get(f"/v1/articles/{b['id']}/deliveries").json()
    assert [(d["event"], d["state"], d["attempts"]) for d in pending] == [("article.translated", "pending", [])]
    where = [stored(database_url, a["id"]), stored(database_url, b["id"])]

    for job in (a, b):
        r = client.delete(f"/v1/articles/{job['id']}")
        assert r.status_code == 200, r.text
        assert (r.json()["removed"]["deliveries"], r.json()["removed"]["delivery_attempts"]) == (1, 0)
    receiver.hold = None
    hold.set()  # A's try ends in a 503, after A is gone
    c = submit(client, {"body": "Story C is translated.", "callback_url": receiver.url})
    wait_until(lambda: c["id"] in receiver.articles(), "the webhook of C")
    assert receiver.events() == [
        ("article.translated", a["id"]),  # the try under way when A was withdrawn
        ("article.withdrawn", a["id"]),
        ("article.withdrawn", b["id"]),
        ("article.translated", c["id"]),
    ]
    for job in where:
        assert rows_of(database_url, job) == {}
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("service")]
    assert not [m for level, m in messages if level >= logging.ERROR], messages
    assert any("its article was withdrawn during the attempt" in m for _, m in messages), messages


def test_an_approved_article_withdrawn_with_its_memory(live: LiveServer, database_url: str) -> None:
    """A and B share a sentence, approved with the same translation in both (B first, so the memory
    credits A); A has a sentence of its own. Withdrawn with memory=true, A takes its own sentence's
    entries with it and leaves the shared ones, credited to B: nothing of A's text is left anywhere.
    B, withdrawn without memory=true, leaves its entries."""
    client = live.client
    shared = "The harbour reopened on Monday."
    own = "The new pier in the north of the city opened with a ceremony, Vexmoor said."
    similar = "The new pier in the north of the city opened with a ceremony, officials said."
    a = translated(client, submit(client, {"body": f"{shared}\n\n{own}"})["id"])
    b = translated(client, submit(client, {"body": f"{shared}\n\n{similar}"})["id"])
    texts = {
        shared: "港口周一重新开放。",
        own: "新码头举行仪式开放，维克斯莫尔说。",
        similar: "新码头举行仪式开放，官员说。",
    }
    for job in (b, a):
        for source, seg in segments(job).items():
            url = f"/v1/articles/{job['id']}/segments/{seg['id']}"
            r = client.patch(url, json={"text": texts[source], "version": seg["version"]})
            assert r.status_code == 200, r.text
        r = client.post(f"/v1/articles/{job['id']}/approve", json={"override": "checked"})
        assert r.status_code == 200, r.text
    bystander = translated(client, submit(client, BYSTANDER)["id"])
    b_now = client.get(f"/v1/articles/{b['id']}").json()
    similar_id = segments(b_now)[similar]["id"]
    suggested = client.get(f"/v1/articles/{b['id']}/segments/{similar_id}/suggestions", params={"variant": "zh-Hans"})
    assert own in [s["source"] for s in suggested.json()]  # the process has A's sentence in its memory
    where = stored(database_url, a["id"])
    held = rows_of(database_url, where)
    assert held["tm_entries"] == 4  # both sentences, zh-Hans and zh-Hant

    r = client.delete(f"/v1/articles/{a['id']}", params={"memory": "true"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "approved"
    assert out["removed"] == {
        "segments": held["segments"],
        "edits": held["segment_edits"],
        "deliveries": 0,
        "delivery_attempts": 0,
        "memory_entries": 2,
    }
    assert out["memory_kept"] == 2
    assert rows_of(database_url, where) == {}
    for text in ("Vexmoor", "维克斯莫尔", "維克斯莫爾"):
        assert anywhere(database_url, text) == [], text
    suggested = client.get(f"/v1/articles/{b['id']}/segments/{similar_id}/suggestions", params={"variant": "zh-Hans"})
    assert suggested.status_code == 200, suggested.text
    assert [s["source"] for s in suggested.json()] == [similar]
    # The shared sentence is still in the memory, now credited to B: a new article takes it.
    c = translated(client, submit(client, {"body": shared})["id"])
    hit = segments(c)[shared]
    assert (hit["origin"], hit["targets"]["zh-Hans"]) == ("tm", texts[shared])
    # Entries stored after the deletion (which took the newest ones) are found too: their ids are
    # new ones, above what this process has read, never the deleted entries' again.
    bridge = "The old bridge over the river reopened after repairs, the mayor said."
    d = translated(client, submit(client, {"body": bridge})["id"])
    seg = segments(d)[bridge]
    r = client.patch(
        f"/v1/articles/{d['id']}/segments/{seg['id']}",
        json={"text": "市长说，旧桥修复后重新开放。", "version": seg["version"]},
    )
    assert r.status_code == 200, r.text
    assert client.post(f"/v1/articles/{d['id']}/approve", json={"override": "checked"}).status_code == 200
    e = translated(client, submit(client, {"body": bridge.replace("mayor", "governor")})["id"])
    e_seg = next(iter(segments(e).values()))
    suggested = client.get(f"/v1/articles/{e['id']}/segments/{e_seg['id']}/suggestions", params={"variant": "zh-Hans"})
    assert [s["source"] for s in suggested.json()] == [bridge]
    assert client.get(f"/v1/articles/{b['id']}").json() == b_now
    assert client.get(f"/v1/articles/{bystander['id']}").json() == bystander

    where_b = stored(database_url, b["id"])
    r = client.delete(f"/v1/articles/{b['id']}")
    assert r.status_code == 200, r.text
    assert (r.json()["removed"]["memory_entries"], r.json()["memory_kept"]) == (0, 0)
    assert rows_of(database_url, where_b) == {"tm_entries": 4}  # memory is shared work unless asked


def test_a_later_revision_goes_on_and_a_resubmission_is_a_new_job(live: LiveServer, database_url: str) -> None:
    client = live.client
    v1_body = {"body": "The port reopened.\n\nTrade resumed.", "external_id": "cms-7", "revision": "1"}
    v1 = translated(client, submit(client, v1_body, **{"Idempotency-Key": "k-7"})["id"])
    v2 = translated(client, submit(client, {**v1_body, "body": "The port reopened today.", "revision": "2"})["id"])
    assert v2["previous_id"] == v1["id"]

    r = client.delete(f"/v1/articles/{v1['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["unlinked_ids"] == [v2["id"]]
    later = client.get(f"/v1/articles/{v2['id']}").json()
    assert (later["previous_id"], later["links"]["previous"], later["status"]) == (None, None, "translated")
    seg = next(iter(segments(later).values()))
    edit = client.patch(
        f"/v1/articles/{v2['id']}/segments/{seg['id']}", json={"text": "港口今天重新开放。", "version": seg["version"]}
    )
    assert edit.status_code == 200, edit.text

    # The same Idempotency-Key (and external_id + revision) again: a fresh submission, not the old job.
    again = client.post("/v1/articles", json=v1_body, headers={"Idempotency-Key": "k-7"})
    assert again.status_code == 202, again.text
    fresh = again.json()
    assert fresh["id"] != v1["id"] and fresh["status"] in ("queued", "translating", "translated")
    assert again.headers["location"] == f"/v1/articles/{fresh['id']}"
    assert translated(client, fresh["id"])["progress"]["total"] == 2
    same = client.post("/v1/articles", json=v1_body, headers={"Idempotency-Key": "k-7"})
    assert (same.status_code, same.json()["id"]) == (200, fresh["id"])
    by_revision = client.post("/v1/articles", json=v1_body)
    assert (by_revision.status_code, by_revision.json()["id"]) == (200, fresh["id"])
    assert client.get(f"/v1/articles/{v1['id']}").status_code == 404


def test_a_bad_memory_value_is_refused_and_changes_nothing(live: LiveServer) -> None:
    job = submit(live.client, {"body": "A story."})
    r = live.client.delete(f"/v1/articles/{job['id']}", params={"memory": "perhaps"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    assert live.client.get(f"/v1/articles/{job['id']}").status_code == 200


def test_roles_log_and_openapi(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service")
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR, Role.ADMIN)).items()}
    auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    with serve(keyed_settings(tiny_dirs["marian"], url, runners=0), engines["marian"]) as live:
        client = live.client
        first = client.post("/v1/articles", json={"body": "Secretword story one."}, headers=auth["cms"]).json()
        second = client.post("/v1/articles", json={"body": "Secretword story two."}, headers=auth["cms"]).json()
        assert client.delete(f"/v1/articles/{first['id']}").status_code == 401
        refused = client.delete(f"/v1/articles/{first['id']}", headers=auth["translator"])
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
        assert client.get(f"/v1/articles/{first['id']}", headers=auth["translator"]).status_code == 200
        assert client.delete(f"/v1/articles/{first['id']}", headers=auth["cms"]).status_code == 200
        assert client.delete(f"/v1/articles/{second['id']}", headers=auth["admin"]).status_code == 200
        assert client.delete(f"/v1/articles/{second['id']}", headers=auth["admin"]).status_code == 404
        spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/articles/{job_id}"]["delete"]
    assert {"200", "401", "403", "404", "422", "429", "500"} <= set(operation["responses"])
    memory = next(p for p in operation["parameters"] if p["name"] == "memory")
    assert memory["in"] == "query" and memory["schema"]["default"] is False
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("service")]
    assert any(first["id"] in m and "withdrawn by cms" in m for m in messages), messages
    assert any(second["id"] in m and "withdrawn by admin" in m for m in messages), messages
    assert not [m for m in messages if "Secretword" in m]


def test_the_cms_is_told_when_an_admin_withdraws_its_article(
    database_url: str,
    tiny_dirs: dict[str, Path],
    gated: GatedEngine,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A legal takedown by an admin: the CMS that submitted the article learns of it by a signed
    `article.withdrawn` webhook (signed with the CMS key's secret, naming who withdrew it, holding
    none of the text). That delivery outlives the article; a retention purge later removes it, and
    what the purge itself withdraws tells no CMS (it keeps its own pages)."""
    made = make_keys(database_url, (Role.CMS, Role.ADMIN), callback_url=receiver.url)
    auth = {role: {"Authorization": f"Bearer {key.key}"} for role, key in made.items()}
    settings = settings_for(database_url, tiny_dirs, auth_disabled=False, rate_limit_per_minute=0)
    with serve(settings, gated) as live:  # type: ignore[arg-type]
        client = live.client
        body = {"body": "Takedownword story one.", "external_id": "cms-9", "revision": "2"}
        job = submit(client, body, **auth["cms"])
        wait_until(lambda: ("article.translated", job["id"]) in receiver.events(), "the translated webhook")
        kept = submit(client, {"body": "Another story."}, **auth["cms"])
        wait_until(lambda: ("article.translated", kept["id"]) in receiver.events(), "the second webhook")

        r = client.delete(f"/v1/articles/{job['id']}", headers=auth["admin"])
        assert r.status_code == 200, r.text
        wait_until(lambda: ("article.withdrawn", job["id"]) in receiver.events(), "the withdrawal webhook")

    headers, raw = receiver.lowered()[receiver.events().index(("article.withdrawn", job["id"]))]
    event = json.loads(raw)
    assert event == {
        "id": headers["duiyi-delivery"],
        "event": "article.withdrawn",
        "created_at": event["created_at"],
        "article": {
            "id": job["id"],
            "status": "withdrawn",
            "external_id": "cms-9",
            "revision": "2",
            "previous_status": "translated",
            "withdrawn_by": "admin",
        },
    }
    assert headers["duiyi-event"] == "article.withdrawn"
    assert verify(made["cms"].row.webhook_secret, headers, raw)
    assert not verify(made["admin"].row.webhook_secret, headers, raw)
    assert "Takedownword" not in raw.decode()
    assert anywhere(database_url, "Takedownword") == []
    engine = sqlalchemy.create_engine(database_url)
    deliveries = Base.metadata.tables["webhook_deliveries"]
    with engine.connect() as conn:
        notice = conn.execute(select(deliveries).where(deliveries.c.id == event["id"])).one()
    assert (notice.job_id, notice.state, notice.event) == (None, "delivered", "article.withdrawn")

    # A retention purge: the other article goes without a webhook, and the finished notice goes too.
    from service.cli import main

    monkeypatch.setenv("DUIYI_DATABASE_URL", database_url)
    assert main(["articles", "purge", "--before", "2999-01-01"]) == 0
    out = capsys.readouterr().out
    assert f"withdrew {kept['id']}" in out and "removed 1 finished article.withdrawn webhook(s)" in out
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deliveries)) == 0
        assert conn.scalar(select(func.count()).select_from(Base.metadata.tables["jobs"])) == 0
    engine.dispose()
    assert ("article.withdrawn", kept["id"]) not in receiver.events()


@pytest.mark.parametrize("action", ["edit", "approve", "review"])
def test_a_change_that_meets_the_withdrawal_is_a_404(live: LiveServer, database_url: str, action: str) -> None:
    """A translator's edit (or approval, or review start) arrives while the article's withdrawal is
    under way: it waits for the withdrawal and is answered 404, the article being gone, rather than
    a 500 (PostgreSQL: its segment deleted under it) or a 503 (SQLite: a stale snapshot)."""
    from service.jobs.articles import _withdraw
    from service.storage.db import Database

    client = live.client
    job = translated(client, submit(client, {"body": "The port reopened.\n\nTrade resumed."})["id"])
    seg = next(iter(segments(job).values()))
    at = f"/v1/articles/{job['id']}"
    requests = {
        "edit": ("PATCH", f"{at}/segments/{seg['id']}", {"text": "港口。", "version": seg["version"]}),
        "approve": ("POST", f"{at}/segments/{seg['id']}/approve", {"version": seg["version"]}),
        "review": ("POST", f"{at}/review", None),
    }
    method, path, body = requests[action]
    answers: list[httpx.Response] = []
    db = Database(database_url)
    try:
        with db.session() as session:
            _withdraw(session, job["id"], by="the test", memory=False, notify=False)
            sender = threading.Thread(target=lambda: answers.append(client.request(method, path, json=body)))
            sender.start()
            time.sleep(1.0)  # the change reaches the database and waits for the withdrawal's locks
            assert not answers, answers[0].text  # it did wait
        sender.join(60)
    finally:
        db.close()
    assert len(answers) == 1
    assert answers[0].status_code == 404, answers[0].text
    assert answers[0].json()["error"]["code"] == "not_found"
    assert rows_of(database_url, stored_like(job["id"])) == {}


def stored_like(job_id: str) -> Stored:
    """A withdrawn job's `Stored`, for `rows_of`: its id is all that is left to look for."""
    return Stored(job_id, article_id=-1, body="", delivery_ids=())
