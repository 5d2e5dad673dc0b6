"""Job runners: claim queued articles, translate them chunk by chunk, save as they go.

Claiming is a conditional UPDATE (status queued, or translating with a lapsed lease) that only one
runner can win, on SQLite and PostgreSQL alike; PostgreSQL also skips rows other runners hold
(`FOR UPDATE SKIP LOCKED`) so runners do not queue behind each other. A runner renews its lease
while it works; a runner killed mid-job stops renewing, and once the lease lapses the next runner
takes the job over. Segments are saved in the same transaction that checks the job is still this
runner's, so finished segments are never redone and a runner that lost its job saves nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models.scheduler import QueueFull
from service.config import Settings
from service.documents import AlignedSegment
from service.jobs.articles import JobStatus, article_of, move
from service.jobs.codec import document_to_json, glossary_from_json, segment_row
from service.jobs.deliveries import Dispatcher, enqueue
from service.pipeline import Pipeline, Prepared
from service.storage.db import Database
from service.storage.tables import Job, StoredSegment, utcnow

log = logging.getLogger(__name__)


class LostJob(Exception):
    """This runner's claim on a job lapsed and another runner may have it now."""


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Job.status == JobStatus.QUEUED.value,
        and_(Job.status == JobStatus.TRANSLATING.value, Job.lease_until < now),
    )


class JobRunner:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        settings: Settings,
        *,
        name: str | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.settings = settings
        self.name = name or runner_name()
        self.dispatcher = dispatcher
        self.stopping = threading.Event()

    # --- claiming --------------------------------------------------------------------------

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.job_lease_s)

    def claim(self) -> str | None:
        """Take the oldest claimable job; its id, or None when there is none."""
        for _ in range(5):  # another runner may win the row between the SELECT and the UPDATE
            now = utcnow()
            with self.db.session() as session:
                query = select(Job.id).where(_claimable(now)).order_by(Job.created_at).limit(1)
                if self.db.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                job_id = session.scalar(query)
                if job_id is None:
                    return None
                won = session.execute(
                    update(Job)
                    .where(Job.id == job_id, _claimable(now))
                    .values(
                        status=JobStatus.TRANSLATING.value,
                        runner=self.name,
                        lease_until=now + self._lease(),
                        attempts=Job.attempts + 1,
                        updated_at=now,
                    )
                )
                if won.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                job = session.get(Job, job_id)
                assert job is not None
                if job.attempts > self.settings.job_max_attempts:
                    job.status = JobStatus.FAILED.value
                    job.failure = (
                        f"gave up after {job.attempts - 1} attempts: the runners translating it stopped "
                        "mid-job each time (see their logs)"
                    )
                    job.runner = None
                    job.lease_until = None
                    log.error("job %s failed: %s", job_id, job.failure)
                    continue
                if job.attempts > 1:
                    log.warning("job %s: resuming (attempt %d; a runner stopped mid-job)", job_id, job.attempts)
                return job_id
        return None

    def _ours(self, session: Session, job_id: str, **values: object) -> None:
        """Renew the lease (and set `values`) if the job is still ours, else raise LostJob."""
        now = utcnow()
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.runner == self.name, Job.status == JobStatus.TRANSLATING.value)
            .values(lease_until=now + self._lease(), updated_at=now, **values)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise LostJob(job_id)

    # --- translating -------------------------------------------------------------------------

    def process(self, job_id: str) -> None:
        """Translate a claimed job to the end (or until the runner stops or loses it)."""
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, stop_beat), daemon=True)
        beat.start()
        try:
            self._translate(job_id)
        except LostJob:
            log.warning("job %s: lost the claim (lease lapsed); another runner continues it", job_id)
        except DBAPIError:  # the database, not the job: leave it for the next claim once the lease lapses
            log.exception("job %s: database error; it will be resumed after its lease lapses", job_id)
        except Exception as exc:  # a bug or bad input: the job fails with a reason instead of looping
            log.exception("job %s failed", job_id)
            self._fail(job_id, f"{type(exc).__name__}: {exc}")
        finally:
            stop_beat.set()
            beat.join()

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.settings.job_lease_s / 3):
            try:
                with self.db.session() as session:
                    self._ours(session, job_id)
            except LostJob:
                return
            except Exception:  # the next beat (or the chunk's commit) tries again
                log.exception("job %s: lease renewal failed", job_id)

    def _translate(self, job_id: str) -> None:
        with self.db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            article = article_of(session, job)
            glossary = glossary_from_json("+".join(job.glossaries) or "none", job.glossary_terms)
            targets, names = list(job.targets), list(job.glossaries)
            rows = session.execute(select(StoredSegment.id, StoredSegment.source).where(StoredSegment.job_id == job_id))
            saved = {seg_id: source for seg_id, source in rows}
        prepared = self.pipeline.prepare(article, targets=targets, glossary=glossary, glossary_names=names)
        segments = prepared.doc.segments
        todo = [i for i, seg in enumerate(segments) if saved.get(seg.id) != seg.text]
        current = {seg.id for seg in segments if saved.get(seg.id) == seg.text}
        with self.db.session() as session:
            # Rows from a different segmentation (another model since the last attempt) go.
            session.execute(
                delete(StoredSegment).where(StoredSegment.job_id == job_id, StoredSegment.id.not_in(current))
            )
            self._ours(
                session,
                job_id,
                document=document_to_json(prepared.doc),
                segments_total=len(segments),
                segments_done=len(current),
                model=self.pipeline.engine.name,
            )
        if saved:
            log.info(
                "job %s: %d of %d segments already saved; translating the rest", job_id, len(current), len(segments)
            )
        for chunk in _chunks(todo, max(1, self.settings.job_chunk_segments)):
            if self.stopping.is_set():
                self._release(job_id)
                return
            aligned = self._decode(prepared, chunk)
            if aligned is None:
                self._release(job_id)
                return
            with self.db.session() as session:
                self._ours(session, job_id)
                session.add_all(segment_row(job_id, i, seg) for i, seg in zip(chunk, aligned, strict=True))
                session.flush()
                done = session.scalar(select(func.count()).where(StoredSegment.job_id == job_id))
                self._ours(session, job_id, segments_done=done)
        with self.db.session() as session:
            self._ours(session, job_id)
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            move(job, JobStatus.TRANSLATED)
            job.translated_at = utcnow()
            job.runner = None
            job.lease_until = None
            delivery = enqueue(session, job, "article.translated", self.settings)
        log.info("job %s translated (%d segments)", job_id, len(segments))
        if delivery is not None and self.dispatcher is not None:
            self.dispatcher.wake()

    def _decode(self, prepared: Prepared, chunk: Sequence[int]) -> list[AlignedSegment] | None:
        """The chunk's aligned segments; None if the runner is stopping while the engine is busy."""
        while True:
            try:
                return self.pipeline.translate_segments(prepared, chunk)
            except QueueFull as exc:  # the engine is busy with live requests: jobs wait, they are not lost
                if self.stopping.wait(exc.retry_after_s):
                    return None

    def _release(self, job_id: str) -> None:
        """Hand a job back to the queue (this runner is shutting down)."""
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.runner == self.name)
                .values(status=JobStatus.QUEUED.value, runner=None, lease_until=None, attempts=Job.attempts - 1)
            )
        log.info("job %s handed back to the queue", job_id)

    def _fail(self, job_id: str, reason: str) -> None:
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.runner == self.name)
                .values(
                    status=JobStatus.FAILED.value, failure=reason, runner=None, lease_until=None, updated_at=utcnow()
                )
            )

    # --- the loop ----------------------------------------------------------------------------

    def run(self, wake: threading.Event | None = None) -> None:
        """Claim and translate jobs until `stopping` is set."""
        wake = wake or threading.Event()
        while not self.stopping.is_set():
            try:
                job_id = self.claim()
            except Exception:  # the database may be restarting; keep trying
                log.exception("runner %s: could not claim a job", self.name)
                job_id = None
            if job_id is None:
                wake.wait(self.settings.job_poll_s)
                wake.clear()
                continue
            self.process(job_id)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RunnerPool:
    """`count` runner threads sharing one pipeline (and so one engine worker's batches)."""

    def __init__(
        self, db: Database, pipeline: Pipeline, settings: Settings, count: int, dispatcher: Dispatcher | None = None
    ) -> None:
        base = runner_name()
        self.wake = threading.Event()
        self.runners = [
            JobRunner(db, pipeline, settings, name=f"{base}/{i}", dispatcher=dispatcher) for i in range(count)
        ]
        self.threads = [
            threading.Thread(target=r.run, args=(self.wake,), name=r.name, daemon=True) for r in self.runners
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def notify(self) -> None:
        """A job was submitted: one idle runner looks at once."""
        self.wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the chunk in hand, hand unfinished jobs back, and return."""
        for runner in self.runners:
            runner.stopping.set()
        self.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
