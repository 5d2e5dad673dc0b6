"""What becomes of an accepted article job when something fails, on SQLite and on PostgreSQL: an
engine error is retried (with backoff, a bounded number of times) and a job that keeps failing
fails with its webhook and is queued again by a resubmission; bad job data fails at once; real
database outages and an exhausted connection pool hand the job back without using up its
attempts, and never end a runner's thread; a service shutting down while a chunk is decoding
hands the job back to the queue.

The engine is the real tiny model, wrapped to fail (or be slow) when a test says so."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool

from models.engine import Engine, Translation
from service.api.app import build_pipeline
from service.auth import Role
from service.config import Settings
from service.documents import Article
from service.glossaries import DatabaseGlossaries, GlossaryStore
from service.jobs.articles import Principal, Submission, submit
from service.jobs.runner import JobRunner
from service.storage.db import Database, _sqlite_pragmas
from service.storage.tables import Delivery, Job, StoredArticle, StoredSegment
from tests.conftest import POSTGRES_ADMIN_URL, WebhookReceiver, fresh_postgres, serve

LOCAL = Principal(key_id=None, name="test", role=Role.ADMIN)


class FaultyEngine:
    """The real engine, with a hook run around each call (to fail it, slow it, or start an outage)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.calls = 0
        self.failures = 0
        # Calls to fail before decoding (None: every call), and the error they raise.
        self.fail_calls: set[int] | None = set()
        self.error = "CUDA out of memory. Tried to allocate 2.00 GiB"
        self.delay_s = 0.0
        self.after: Callable[[int], None] | None = None  # run after call n decoded

    def translate_batch(self, sources: Sequence[str], **kwargs: Any) -> list[Translation]:
        self.calls += 1
        number = self.calls
        if self.fail_calls is None or number in self.fail_calls:
            self.failures += 1
            raise RuntimeError(self.error)
        time.sleep(self.delay_s)
        out = self.inner.translate_batch(sources, **kwargs)
        if self.after is not None:
            self.after(number)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def sentences(tag: str, n: int) -> list[str]:
    return [f"Report {tag} item {i} describes harbour works in district {i * 7 + 3}." for i in range(n)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def job_row(db: Database, job_id: str) -> Job:
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def status_of(db: Database, job_id: str) -> str | None:
    """The job's status; None while the database does not answer (a test's outage)."""
    try:
        return job_row(db, job_id).status
    except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError):
        return None


def events(db: Database, job_id: str) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Delivery.event).where(Delivery.job_id == job_id)))


# --- engine errors, through the real service -------------------------------------------------


def service_settings(database_url: str, tiny_dirs: dict[str, Path], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "model": str(tiny_dirs["marian"]),
        "device": "cpu",
        "database_url": database_url,
        "continuous_batching": False,  # whole batches, through the wrapper's translate_batch
        "cache_size": 0,
        "redecode_loops": False,
        "default_glossaries": [],
        "job_poll_s": 0.05,
        "job_lease_s": 1.0,  # retries after a quarter of a lease, doubling
        **extra,
    }
    return Settings(**values)


def test_a_transient_engine_error_is_retried(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    engine = FaultyEngine(engines["marian"])
    engine.fail_calls = {1}
    # A longer lease, so that the wait before the retry (a quarter of it, give or take) is seen.
    with serve(service_settings(database_url, tiny_dirs, job_lease_s=8.0), engine) as live:  # type: ignore[arg-type]
        r = live.client.post("/v1/articles", json={"body": "The harbour reopened on Monday after repairs."})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert r.json()["retry_at"] is None
        wait_until(
            lambda: live.client.get(f"/v1/articles/{job_id}").json()["retry_at"] is not None, 30, "the retry's time"
        )
        waiting = live.client.get(f"/v1/articles/{job_id}").json()
        when = {k: datetime.fromisoformat(waiting[k]) for k in ("retry_at", "updated_at")}
        assert waiting["status"] == "queued" and when["retry_at"] > when["updated_at"], waiting
        wait_until(
            lambda: live.client.get(f"/v1/articles/{job_id}").json()["status"] in ("translated", "failed"),
            60,
            "the job to end",
        )
        job = live.client.get(f"/v1/articles/{job_id}").json()
    assert (job["status"], job["failure"]) == ("translated", None)
    assert engine.failures == 1 and engine.calls >= 2
    db = Database(database_url)
    try:
        assert job_row(db, job_id).attempts == 2  # the failed attempt counted; the second succeeded
    finally:
        db.close()


def test_a_job_that_keeps_failing_fails_with_a_webhook_and_a_resubmission_queues_it_again(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine], receiver: WebhookReceiver
) -> None:
    engine = FaultyEngine(engines["marian"])
    engine.fail_calls = None  # every call fails, until the engine is mended
    settings = service_settings(
        database_url,
        tiny_dirs,
        job_max_attempts=2,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=True,
        webhook_secret="s3cret",
    )
    body = {
        "external_id": "cms-1",
        "revision": "1",
        "body": "The harbour reopened on Monday after repairs.",
        "callback_url": receiver.url,
    }
    key = {"Idempotency-Key": "k1"}
    with serve(settings, engine) as live:  # type: ignore[arg-type]
        first = live.client.post("/v1/articles", json=body, headers=key)
        assert first.status_code == 202, first.text
        job_id = first.json()["id"]

        def status() -> dict[str, Any]:
            return dict(live.client.get(f"/v1/articles/{job_id}").json())

        wait_until(lambda: status()["status"] == "failed", 60, "the job to fail")
        failed = status()
        assert "2 attempt(s)" in failed["failure"] and "CUDA out of memory" in failed["failure"], failed
        assert engine.failures == 2  # DUIYI_JOB_MAX_ATTEMPTS attempts, then no more
        receiver.wait(1)
        headers, payload = receiver.received[0]
        assert headers["Duiyi-Event"] == "article.failed"
        assert b'"status":"failed"' in payload and job_id.encode() in payload
        assert json.loads(payload)["article"]["failure"] == failed["failure"]  # why, in the webhook itself

        engine.fail_calls = set()  # mended
        again = live.client.post("/v1/articles", json=body, headers=key)
        assert again.status_code == 202, again.text  # queued again, not answered as it was
        assert again.json()["id"] == job_id and again.headers["location"] == f"/v1/articles/{job_id}"
        assert again.json()["status"] in ("queued", "translating", "translated")
        assert again.json()["failure"] is None
        wait_until(lambda: status()["status"] == "translated", 60, "the job to be translated")
        # Resubmitted once more (by key, or by external_id + revision): the job as it is.
        for headers_ in (key, {}):
            same = live.client.post("/v1/articles", json=body, headers=headers_)
            assert same.status_code == 200 and same.json()["id"] == job_id
            assert same.json()["status"] == "translated"
        receiver.wait(2)
        assert [h["Duiyi-Event"] for h, _ in receiver.received] == ["article.failed", "article.translated"]


# --- a runner on its own, for bad data and database outages ------------------------------------


def make_db(url: str, *, pool_size: int | None = None) -> Database:
    """A migrated database; with `pool_size`, a connection pool of that size that waits 0.3 s at
    most for a connection (so a test can exhaust it)."""
    db = Database(url)
    db.migrate()
    DatabaseGlossaries(db).seed(GlossaryStore.load())
    if pool_size is not None:
        db.engine.dispose()
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": 0.3}
        if db.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        db.engine = create_engine(db.url, poolclass=QueuePool, pool_pre_ping=True, **kwargs)
        if db.is_sqlite:
            event.listen(db.engine, "connect", _sqlite_pragmas)
        db.sessions = sessionmaker(db.engine, expire_on_commit=False)
    return db


def add_job(db: Database, settings: Settings, body: list[str]) -> str:
    sub = Submission(article=Article("\n\n".join(body)), targets=["zh-Hans"], glossaries=[])
    job, _ = submit(db, sub, principal=LOCAL, settings=settings, glossaries=DatabaseGlossaries(db))
    return job.id


def runner_settings(url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "default_glossaries": [],
        "redecode_loops": False,
        "job_poll_s": 0.05,
        "job_lease_s": 1.0,
        "job_chunk_segments": 2,
        **extra,
    }
    return Settings(**values)


@contextmanager
def running(runner: JobRunner) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        runner.stopping.set()
        thread.join(30)


def test_bad_job_data_fails_at_once(tmp_path: Path, engines: dict[str, Engine]) -> None:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    settings = runner_settings(url)
    db = make_db(url)
    engine = FaultyEngine(engines["marian"])
    job_id = add_job(db, settings, sentences("bad", 2))
    with db.session() as session:  # a stored article no parser can read (a format that does not exist)
        job = session.get(Job, job_id)
        assert job is not None
        job.callback_url = "http://127.0.0.1:9/hooks"
        article = session.get(StoredArticle, job.article_id)
        assert article is not None
        article.format = "docx"
    runner = JobRunner(db, build_pipeline(settings, engine), settings)  # type: ignore[arg-type]
    assert runner.claim() == job_id
    runner.process(job_id)
    job = job_row(db, job_id)
    assert (job.status, job.attempts, job.runner, job.lease_until) == ("failed", 1, None, None)
    assert job.failure is not None and job.failure.startswith("ValueError:"), job.failure
    assert engine.calls == 0
    assert events(db, job_id) == ["article.failed"]
    assert runner.claim() is None  # not retried
    db.close()


@contextmanager
def outages(db: Database, database_url: str) -> Iterator[Callable[[float], None]]:
    """`start(seconds)`: the database refuses service for that long, for real. PostgreSQL: it
    accepts no connections and the open ones are ended. SQLite: another connection holds the
    write lock (and the runner's connections wait 0.1 s for a lock, not 30)."""
    timers: list[threading.Timer] = []
    if db.is_postgres:
        name = db.url.database
        admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

        def allow(on: bool) -> None:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if on else "false"}'))
                if not on:
                    conn.execute(
                        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                        {"name": name},
                    )

        def start(seconds: float) -> None:
            allow(False)
            timers.append(threading.Timer(seconds, allow, args=(True,)))
            timers[-1].start()

        try:
            yield start
        finally:
            for timer in timers:
                timer.join()
            allow(True)
            admin.dispose()
    else:
        event.listen(db.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
        db.engine.dispose()
        assert db.url.database
        path = db.url.database

        def lock(seconds: float) -> None:
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.isolation_level = None
            conn.execute("BEGIN IMMEDIATE")

            def unlock() -> None:
                conn.execute("ROLLBACK")
                conn.close()

            timers.append(threading.Timer(seconds, unlock))
            timers[-1].start()

        try:
            yield lock
        finally:
            for timer in timers:
                timer.join()


def test_database_outages_do_not_use_up_the_jobs_attempts(database_url: str, engines: dict[str, Engine]) -> None:
    settings = runner_settings(database_url, job_max_attempts=3)
    db = make_db(database_url)
    body = sentences("db", 8)  # four chunks of two
    job_id = add_job(db, settings, body)
    engine = FaultyEngine(engines["marian"])
    runner = JobRunner(db, build_pipeline(settings, engine), settings)  # type: ignore[arg-type]
    outages_started: list[int] = []
    with outages(db, database_url) as outage:

        def after(call: int) -> None:
            # Once a chunk is decoded, before it is saved: more outages than the job has attempts.
            if len(outages_started) < 4:
                outages_started.append(call)
                outage(1.0)

        engine.after = after
        with running(runner) as thread:
            wait_until(
                lambda: not thread.is_alive() or status_of(db, job_id) in ("translated", "failed"),
                120,
                "the job to end",
            )
            assert thread.is_alive()
    job = job_row(db, job_id)
    assert (job.status, job.failure, job.attempts) == ("translated", None, 1)
    assert len(outages_started) == 4
    with db.session() as session:
        saved = sorted(s.strip() for s in session.scalars(select(StoredSegment.source)))
    assert saved == sorted(body)
    db.close()


def test_an_exhausted_connection_pool_never_ends_the_runner(database_url: str, engines: dict[str, Engine]) -> None:
    settings = runner_settings(database_url)
    db = make_db(database_url, pool_size=2)
    first, second = add_job(db, settings, sentences("p1", 2)), add_job(db, settings, sentences("p2", 2))
    engine = FaultyEngine(engines["marian"])
    runner = JobRunner(db, build_pipeline(settings, engine), settings)  # type: ignore[arg-type]
    held: list[sqlalchemy.Connection] = []

    def exhaust(call: int) -> None:
        # After the first chunk is decoded: every connection is taken, for 1.5 s (the runner's
        # heartbeat may hold one a moment: wait for it).
        if call != 1:
            return
        while len(held) < 2:
            with suppress(sqlalchemy.exc.TimeoutError):
                held.append(db.engine.connect())

        def give_back() -> None:
            for conn in held:
                conn.close()

        threading.Timer(1.5, give_back).start()

    engine.after = exhaust
    with running(runner) as thread:
        wait_until(
            lambda: not thread.is_alive() or all(status_of(db, j) in ("translated", "failed") for j in (first, second)),
            120,
            "both jobs to end",
        )
        assert thread.is_alive()
    assert held, "the pool was never exhausted"
    for job_id in (first, second):
        job = job_row(db, job_id)
        assert (job.status, job.failure, job.attempts) == ("translated", None, 1)
    db.close()


# --- shutting down while a chunk is being decoded ----------------------------------------------


def test_a_service_shutting_down_mid_chunk_hands_the_job_back(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    engine = FaultyEngine(engines["marian"])
    engine.delay_s = 1.0  # one sentence a second: the chunk of 40 outlasts any wait at shutdown
    settings = service_settings(
        database_url, tiny_dirs, job_lease_s=2.0, job_chunk_segments=40, max_batch_size=1, runners=1
    )
    db = Database(database_url)
    try:
        with serve(settings, engine) as live:  # type: ignore[arg-type]
            r = live.client.post("/v1/articles", json={"body": "\n\n".join(sentences("stop", 40))})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            wait_until(lambda: engine.calls >= 2, 60, "the chunk to be decoding")
        # The app has shut down (or is shutting down): the job goes back to the queue, never failed.
        wait_until(lambda: status_of(db, job_id) != "translating", 60, "the job to be handed back")
        job = job_row(db, job_id)
        assert (job.status, job.failure, job.attempts, job.runner, job.lease_until) == ("queued", None, 0, None, None)
        assert job.segments_done == 0 < job.segments_total == 40  # nothing of the chunk in hand was saved
    finally:
        db.close()


def test_the_api_answers_503_with_retry_after_while_the_database_is_down(
    engines: dict[str, Engine], tiny_dirs: dict[str, Path]
) -> None:
    # A CMS retries a 503 with Retry-After; a 500 (what an outage answered before) it may not.
    with fresh_postgres() as url:
        settings = service_settings(url, tiny_dirs, runners=0)
        with serve(settings, engines["marian"]) as live:
            db = Database(url)
            with outages(db, url) as start:
                start(3.0)
                refused = live.client.post("/v1/articles", json={"body": "Filed during an outage."})
                listed = live.client.get("/v1/articles")
                scraped = live.client.get("/metrics")
            for response in (refused, listed):
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert int(response.headers["retry-after"]) > 0
            assert scraped.status_code == 200 and "duiyi_database_up 0.0" in scraped.text
            # Back: the retry is accepted, and nothing of the refused request was kept.
            assert live.client.post("/v1/articles", json={"body": "Filed during an outage."}).status_code == 202
            assert len(live.client.get("/v1/articles").json()["items"]) == 1
            spec = live.client.get("/openapi.json").json()
            assert "503" in spec["paths"]["/v1/articles"]["get"]["responses"]
            assert "503" in spec["paths"]["/v1/glossaries"]["get"]["responses"]
            db.close()
