"""Job runners: claim queued articles, translate them chunk by chunk, save as they go.

Claiming is a conditional UPDATE (status queued and not waiting out a retry's backoff, or
translating with a lapsed lease) that only one runner can win, on SQLite and PostgreSQL alike;
PostgreSQL also skips rows other runners hold (`FOR UPDATE SKIP LOCKED`) so runners do not queue
behind each other. A runner renews its lease while it works; a runner killed mid-job stops
renewing, and once the lease lapses the next runner takes the job over. Segments are saved in the
same transaction that checks the job is still this runner's, so finished segments are never
redone and a runner that lost its job saves nothing.

What ends an attempt, and what becomes of the job (its saved segments are always kept):

- The runner stops (SIGTERM, the service shutting down), even while the engine is decoding its
  chunk: the job goes back to the queue at once, and the attempt does not count.
- The database is unavailable (connection errors, an exhausted connection pool): the runner hands
  the job back as soon as the database answers again, the attempt does not count, and the runner
  pauses a little longer after each such failure before it claims again.
- Translating a chunk fails (an engine error such as CUDA running out of memory), or the database
  refuses a statement (a constraint, a value: a bug, not an outage): the job goes back to the
  queue, claimable again after a backoff, and the attempt counts; after `job_max_attempts`
  attempts the job fails with the last error as its reason.
- The runner is lost: its process is killed (out of memory, a restart, an article that crashes
  it) or cut off from the database for longer than its lease. The next runner takes the job over
  once the lease lapses; the attempt does not count towards `job_max_attempts` but towards
  `job_max_lost_runners` (`Job.lost_runners`), a count of runners lost in a row without saving a
  chunk of the job. A crash loses the runners of every job its process had in hand, and one of
  them at most is to blame: so a job taken over is a suspect, and runs alone in its process
  (`Neighbours`) until a chunk of it is saved. An article that kills its process each time then
  kills it alone, and fails after `job_max_lost_runners` (its reason says its runners kept
  dying), while the jobs that were beside it at the first crash each lose one runner and finish.
- The job's data cannot be translated (its article does not parse, its stored glossary is
  unreadable): retrying would fail the same way, so the job fails at once. (An article whose markup
  nests deeper than the formats read is refused when submitted; one stored before that fails here.)
- The job is withdrawn (deleted with everything stored for it, `service.jobs.articles.withdraw`):
  the runner finds it gone at its next save or lease renewal (the chunk it is decoding is finished
  first, and then dropped) and stops, writing nothing and settling nothing.

A failed job gets its `article.failed` webhook; resubmitting its article queues it again
(`service.jobs.articles.submit`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models.scheduler import QueueFull
from service.config import Settings
from service.documents import AlignedSegment
from service.formats import FormatError
from service.jobs import revisions
from service.jobs.articles import JobStatus, article_of, move
from service.jobs.codec import document_to_json, glossary_from_json, segment_row
from service.jobs.deliveries import Dispatcher, enqueue
from service.pipeline import Pipeline, Prepared
from service.storage.db import Database, database_unavailable, describe_error, loggable
from service.storage.tables import Delivery, Job, StoredSegment, utcnow
from service.webhooks import backoff_delay

log = logging.getLogger(__name__)

# What the database raises: errors from the driver, and a connection pool with none to spare.
DATABASE_ERRORS = (DBAPIError, PoolTimeout)


class LostJob(Exception):
    """This runner's claim on a job lapsed and another runner may have it now, or the job was
    withdrawn (deleted)."""


class DecodeFailed(Exception):
    """Translating a chunk failed (the engine, or a step after it); the cause is chained. Another
    attempt may well succeed (the engine ran out of memory, a device was reset)."""


def describe(exc: BaseException) -> str:
    """`exc` in one line, for the log and for a failed job's reason (which its API answer and its
    `article.failed` webhook carry): `describe_error`, so never a statement's parameters or the rows
    PostgreSQL quotes back, which are article text."""
    return describe_error(exc)


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _claimable(now: datetime) -> ColumnElement[bool]:
    # A queued job's lease_until, when set, is when it may be retried (it failed and waits out a backoff).
    return or_(
        and_(Job.status == JobStatus.QUEUED.value, or_(Job.lease_until.is_(None), Job.lease_until <= now)),
        and_(Job.status == JobStatus.TRANSLATING.value, Job.lease_until < now),
    )


def _suspect() -> ColumnElement[bool]:
    # Its last runner was lost: it is being taken over now (translating, its lease lapsed; `_claimable`
    # leaves no other translating job), or was since and has saved no chunk yet.
    return or_(Job.status == JobStatus.TRANSLATING.value, Job.lost_runners > 0)


class Neighbours:
    """The jobs that one process's runners have in hand, and which of them are suspects (taken
    over from a lost runner, `Job.lost_runners`). A process dies with every job in it, so a suspect
    runs alone: it is claimed only by a runner whose process has no job in hand, and while it is in
    hand the process's other runners claim nothing. When the oldest job waiting is a suspect, a
    runner with busy neighbours leaves it (and the jobs behind it) for the moment its process is
    idle, or for another process: waiting for neighbours to finish costs less than another crash
    with them. Only the process's own runners share this; a crash of one worker process loses
    nothing of another's."""

    def __init__(self) -> None:
        # Held while a runner claims: two runners of a process never both believe they are alone.
        self.lock = threading.Lock()
        self.in_hand: dict[str, bool] = {}  # job id: whether it is a suspect

    def leave(self, job_id: str) -> None:
        with self.lock:
            self.in_hand.pop(job_id, None)


class JobRunner:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        settings: Settings,
        *,
        name: str | None = None,
        dispatcher: Dispatcher | None = None,
        neighbours: Neighbours | None = None,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.settings = settings
        self.name = name or runner_name()
        # The jobs its process's other runners have in hand (RunnerPool's); its own when alone.
        self.neighbours = neighbours or Neighbours()
        # Its record of a database outage (`Outage`): its loop, its lease renewals and its saves.
        self.outage_name = f"runner {self.name}"
        self.dispatcher = dispatcher
        self.stopping = threading.Event()
        # Jobs handed back in a row because the database was unavailable (0 once a chunk is saved):
        # the runner pauses longer after each before it claims again.
        self.database_failures = 0

    # --- claiming --------------------------------------------------------------------------

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.job_lease_s)

    def claim(self) -> str | None:
        """Take the oldest claimable job; its id, or None when there is none, or none this runner
        may take beside its neighbours' (`Neighbours`). The job is in the process's hand until
        `process` is done with it."""
        with self.neighbours.lock:
            held = self.neighbours.in_hand
            if any(held.values()):  # a suspect runs alone
                return None
            claimed = self._claim(alone=not held)
            if claimed is None:
                return None
            job_id, suspect = claimed
            held[job_id] = suspect
            return job_id

    def _claim(self, alone: bool) -> tuple[str, bool] | None:
        """Take the oldest claimable job (a suspect only when `alone`): its id and whether it is a
        suspect. Taking a job over from a lost runner counts that runner in `lost_runners` instead
        of an attempt (the new attempt takes the lost one's number), and fails the job once
        `job_max_lost_runners` runners were lost in a row."""
        for _ in range(5):  # another runner may win the row between the SELECT and the UPDATE
            now = utcnow()
            gave_up, delivery = False, None
            with self.db.session() as session:
                query = (
                    select(Job.id, Job.status, Job.lost_runners, Job.runner)
                    .where(_claimable(now))
                    .order_by(Job.created_at)
                    .limit(1)
                )
                if self.db.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                found = session.execute(query).first()
                if found is None:
                    return None
                job_id, status, lost_before, previous = found
                suspect = status == JobStatus.TRANSLATING.value or lost_before > 0  # as `_suspect`
                if suspect and not alone:
                    # Its turn comes when this process is idle (or another process's runner takes it).
                    return None
                taken_over = Job.status == JobStatus.TRANSLATING.value
                won = session.execute(
                    update(Job)
                    .where(Job.id == job_id, _claimable(now), *(() if alone else (~_suspect(),)))
                    .values(
                        status=JobStatus.TRANSLATING.value,
                        runner=self.name,
                        lease_until=now + self._lease(),
                        # Each SET reads the row as it was: `taken_over` is whether it was translating.
                        attempts=case((taken_over, Job.attempts), else_=Job.attempts + 1),
                        lost_runners=case((taken_over, Job.lost_runners + 1), else_=Job.lost_runners),
                        updated_at=now,
                    )
                )
                if won.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                job = session.get(Job, job_id)
                assert job is not None
                attempts, lost = job.attempts, job.lost_runners
                if suspect and lost >= self.settings.job_max_lost_runners:
                    gave_up = True
                    delivery = self._mark_failed(
                        session,
                        job,
                        f"gave up after its runner was lost {lost} times in a row without saving any of its "
                        "translation: the process translating it kept dying (killed, perhaps by this article: "
                        "out of memory, a crash), or was cut off from the database for longer than its lease; "
                        "see the runners' logs",
                    )
            if gave_up:
                self._wake_dispatcher(delivery)
                continue
            if status == JobStatus.TRANSLATING.value:
                log.warning(
                    "job %s: taken over from runner %s, lost with it (%d of %d runners lost in a row without a "
                    "chunk saved); it runs alone in this process",
                    job_id,
                    previous,
                    lost,
                    self.settings.job_max_lost_runners,
                )
            elif suspect:
                log.warning("job %s: its last runner was lost with it; it runs alone in this process", job_id)
            elif attempts > 1:
                log.warning("job %s: attempt %d (an earlier one failed)", job_id, attempts)
            return job_id, bool(lost)
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
        """Translate a claimed job to the end (or until the runner stops or loses it), and settle
        what becomes of the job when it cannot (see the module's docstring). Raises nothing that
        the database or the job can cause."""
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, stop_beat), daemon=True)
        beat.start()
        try:
            try:
                self._translate(job_id)
            except DecodeFailed as exc:
                cause = exc.__cause__ or exc
                if self.stopping.is_set():  # the engine closed under a stopping runner: not the job's fault
                    log.info("job %s: the engine stopped (%s) while the runner was stopping", job_id, describe(cause))
                    self._hand_back(job_id)
                else:
                    self._retry_or_fail(job_id, cause)
            except DATABASE_ERRORS as exc:
                if database_unavailable(exc):
                    raise
                # A statement the database refused (a constraint, a value): a bug worth a few attempts.
                self._retry_or_fail(job_id, exc)
            except LostJob:
                raise
            except FormatError as exc:  # its article cannot be read (stored before submission refused it)
                self._fail(job_id, exc, reason=f"the article cannot be translated: {exc}")
            # Bad job data (or a bug) before or after the engine: it would fail again. (_fail logs it.)
            except Exception as exc:  # noqa: BLE001
                self._fail(job_id, exc)
        except LostJob:
            if self._withdrawn(job_id):
                log.info("job %s was withdrawn while being translated; the runner stops (nothing saved)", job_id)
            else:
                log.warning("job %s: lost the claim (lease lapsed); another runner continues it", job_id)
        except DATABASE_ERRORS as exc:  # the database, not the job (or settling the job failed on it)
            self.database_failures += 1
            if database_unavailable(exc):
                self.db.outage.failed(exc, self.outage_name)  # logged once per outage
                log.info("job %s: the database is unavailable (%s); handing the job back", job_id, describe(exc))
            else:
                log.warning("job %s: settling it failed (%s); handing the job back", job_id, describe(exc))
            self._hand_back(job_id)
        finally:
            stop_beat.set()
            beat.join()
            self.neighbours.leave(job_id)

    def _withdrawn(self, job_id: str) -> bool:
        """Whether the job is gone (withdrawn); False also when the database cannot say."""
        try:
            with self.db.session() as session:
                return session.get(Job, job_id) is None
        except DATABASE_ERRORS:
            return False

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        """Renew the job's lease every third of it until `stop`. A renewal the database cannot
        answer is part of the runner's outage, told once (`Outage`), its traceback at DEBUG only:
        the next beat, or the chunk's save, tries again."""
        while not stop.wait(self.settings.job_lease_s / 3):
            try:
                with self.db.session() as session:
                    self._ours(session, job_id)
            except LostJob:
                return
            except Exception as exc:  # the next beat (or the chunk's commit) tries again
                if database_unavailable(exc):
                    self.db.outage.failed(exc, self.outage_name)
                    log.debug("job %s: lease renewal failed", job_id, exc_info=loggable(exc))
                else:  # a bug
                    log.error("job %s: lease renewal failed", job_id, exc_info=loggable(exc))
            else:
                self.db.outage.answered(self.outage_name)

    def _translate(self, job_id: str) -> None:
        with self.db.session() as session:
            job = session.get(Job, job_id)
            if job is None:  # withdrawn since it was claimed
                raise LostJob(job_id)
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
            job = session.get(Job, job_id)
            if job is None:
                raise LostJob(job_id)
            # A new revision of an article keeps what people did in the previous one (unchanged sentences).
            carried = revisions.carried_over(session, job, prepared, self.pipeline, todo)
        todo = [i for i in todo if i not in carried.rows]
        with self.db.session() as session:
            # Ours first, as at every save: a job lost or withdrawn meanwhile gets no rows.
            self._ours(
                session,
                job_id,
                document=document_to_json(prepared.doc),
                segments_total=len(segments),
                segments_done=len(current) + len(carried.rows),
                model=self.pipeline.engine.name,
            )
            # Rows from a different segmentation (another model since the last attempt) go.
            session.execute(
                delete(StoredSegment).where(StoredSegment.job_id == job_id, StoredSegment.id.not_in(current))
            )
            session.add_all(carried.rows.values())
            # Open queries on unchanged sentences follow them, with the rows (no webhook: not new).
            copied, behind = revisions.carry_queries(session, job_id, carried)
        if copied or behind:
            log.info(
                "job %s: %d open query(ies) carried over from revision %s; %d left there on sentences that changed",
                job_id,
                copied,
                carried.previous_id,
                behind,
            )
        if saved:
            log.info(
                "job %s: %d of %d segments already saved; translating the rest", job_id, len(current), len(segments)
            )
        for chunk in _chunks(todo, max(1, self.settings.job_chunk_segments)):
            if self.stopping.is_set():
                self._hand_back(job_id)
                return
            aligned = self._decode(prepared, chunk)
            if aligned is None:
                self._hand_back(job_id)
                return
            with self.db.session() as session:
                self._ours(session, job_id)
                session.add_all(segment_row(job_id, i, seg) for i, seg in zip(chunk, aligned, strict=True))
                session.flush()
                done = session.scalar(select(func.count()).where(StoredSegment.job_id == job_id))
                # A chunk saved: whatever killed its earlier runners, the job is getting on.
                self._ours(session, job_id, segments_done=done, lost_runners=0)
            self.database_failures = 0
        with self.db.session() as session:
            self._ours(session, job_id)
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            move(job, JobStatus.TRANSLATED)
            job.translated_at = utcnow()
            job.runner = None
            job.lease_until = None
            delivery = enqueue(session, job, "article.translated", self.settings)
        self.database_failures = 0
        log.info("job %s translated (%d segments)", job_id, len(segments))
        self._wake_dispatcher(delivery)

    def _decode(self, prepared: Prepared, chunk: Sequence[int]) -> list[AlignedSegment] | None:
        """The chunk's aligned segments; None if the runner is stopping while the engine is busy.
        Raises DecodeFailed when translating fails, and database errors as they are."""
        while True:
            try:
                return self.pipeline.translate_segments(prepared, chunk)
            except QueueFull as exc:  # the engine is busy with live requests: jobs wait, they are not lost
                if self.stopping.wait(exc.retry_after_s):
                    return None
            except DATABASE_ERRORS:  # the translation memory's lookup: the database, not the engine
                raise
            except Exception as exc:
                raise DecodeFailed(describe(exc)) from exc

    # --- settling a job that did not finish --------------------------------------------------

    def _release(self, job_id: str) -> bool:
        """Hand a job back to the queue, its saved segments kept and this attempt not counted;
        False when it was no longer this runner's."""
        with self.db.session() as session:
            done = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.runner == self.name, Job.status == JobStatus.TRANSLATING.value)
                .values(
                    status=JobStatus.QUEUED.value,
                    runner=None,
                    lease_until=None,
                    attempts=Job.attempts - 1,
                    updated_at=utcnow(),
                )
            )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def _hand_back(self, job_id: str) -> None:
        """Release the job, retrying while the database is unavailable (each retry at DEBUG: the
        outage itself is told once, `Outage`); a stopping runner tries once more and then leaves
        the job to be taken over once its lease lapses."""
        tries = 0
        while True:
            try:
                released = self._release(job_id)
                self.db.outage.answered(self.outage_name)
                if released:
                    log.info("job %s handed back to the queue", job_id)
                else:
                    log.warning("job %s: not handed back: it is no longer this runner's", job_id)
                return
            except DATABASE_ERRORS as exc:
                tries += 1
                if self.stopping.is_set() and tries > 1:
                    log.error(
                        "job %s: could not hand it back (%s); it is resumed once its lease lapses",
                        job_id,
                        describe(exc),
                    )
                    return
                delay = backoff_delay(tries, base_s=self.settings.job_poll_s, cap_s=10.0)
                unavailable = database_unavailable(exc)
                if unavailable:
                    self.db.outage.failed(exc, self.outage_name)
                log.log(
                    logging.DEBUG if unavailable else logging.WARNING,
                    "job %s: handing it back failed (%s); retrying in %.1f s",
                    job_id,
                    describe(exc),
                    delay,
                )
                self.stopping.wait(delay)
            except Exception as exc:  # a bug: never out of the runner's thread
                log.error(
                    "job %s: could not hand it back; it is resumed once its lease lapses",
                    job_id,
                    exc_info=loggable(exc),
                )
                return

    def _retry_or_fail(self, job_id: str, error: BaseException) -> None:
        """An attempt failed with `error`: the job goes back to the queue, claimable after a backoff
        (exponential in its attempts, from a quarter of a lease up to a lease), or fails once it has
        had DUIYI_JOB_MAX_ATTEMPTS attempts."""
        lease = self.settings.job_lease_s
        with self.db.session() as session:
            self._ours(session, job_id)
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            attempts = job.attempts
            if attempts >= self.settings.job_max_attempts:
                reason = f"translation failed on {attempts} attempt(s); the last error: {describe(error)}"
                delivery = self._mark_failed(session, job, reason, error)
            else:
                delivery = None
                delay = backoff_delay(max(1, attempts), base_s=lease / 4, cap_s=lease)
                move(job, JobStatus.QUEUED)
                job.runner = None
                job.lease_until = utcnow() + timedelta(seconds=delay)
        if attempts >= self.settings.job_max_attempts:
            self._wake_dispatcher(delivery)
        else:
            log.warning(
                "job %s: attempt %d of %d failed; queued again, to be retried in %.1f s",
                job_id,
                attempts,
                self.settings.job_max_attempts,
                delay,
                exc_info=loggable(error),
            )

    def _fail(self, job_id: str, error: BaseException, reason: str | None = None) -> None:
        """Fail the job at once: `error` says its data cannot be translated, and would again. The
        job's failure says `reason`, else the error (logged with its traceback: a bug, or bad data)."""
        with self.db.session() as session:
            self._ours(session, job_id)
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            delivery = self._mark_failed(session, job, reason or describe(error), None if reason else error)
        self._wake_dispatcher(delivery)

    def _mark_failed(
        self, session: Session, job: Job, reason: str, error: BaseException | None = None
    ) -> Delivery | None:
        """Fail `job` in `session`'s transaction, with its `article.failed` webhook."""
        move(job, JobStatus.FAILED)
        job.failure = reason
        job.runner = None
        job.lease_until = None
        log.error("job %s failed: %s", job.id, reason, exc_info=None if error is None else loggable(error))
        return enqueue(session, job, "article.failed", self.settings)

    def _wake_dispatcher(self, delivery: Delivery | None) -> None:
        if delivery is not None and self.dispatcher is not None:
            self.dispatcher.wake()

    # --- the loop ----------------------------------------------------------------------------

    def run(self, wake: threading.Event | None = None) -> None:
        """Claim and translate jobs until `stopping` is set. Nothing the database or a job does
        ends the loop."""
        wake = wake or threading.Event()
        claim_failures = 0  # in a row: each pauses longer, up to 30 s
        while not self.stopping.is_set():
            try:
                job_id = self.claim()
            except Exception as exc:  # nothing ends the loop: the database may be restarting
                claim_failures += 1
                pause = backoff_delay(claim_failures, base_s=self.settings.job_poll_s, cap_s=30.0)
                if database_unavailable(exc):
                    self.db.outage.failed(exc, self.outage_name)  # logged once per outage
                else:  # a bug
                    log.error(
                        "runner %s: could not claim a job; retrying in %.1f s", self.name, pause, exc_info=loggable(exc)
                    )
                self.stopping.wait(pause)
                continue
            claim_failures = 0
            self.db.outage.answered(self.outage_name)
            if job_id is None:
                wake.wait(self.settings.job_poll_s)
                wake.clear()
                continue
            try:
                self.process(job_id)
            except Exception as exc:  # a bug; the job is resumed once its lease lapses
                log.error("runner %s: unexpected error with job %s", self.name, job_id, exc_info=loggable(exc))
                self.database_failures += 1
            if self.database_failures:
                pause = backoff_delay(self.database_failures, base_s=self.settings.job_poll_s, cap_s=30.0)
                log.info("runner %s: pausing %.1f s before claiming again", self.name, pause)
                self.stopping.wait(pause)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RunnerPool:
    """`count` runner threads sharing one pipeline (and so one engine worker's batches)."""

    def __init__(
        self, db: Database, pipeline: Pipeline, settings: Settings, count: int, dispatcher: Dispatcher | None = None
    ) -> None:
        base = runner_name()
        self.settings = settings
        self.wake = threading.Event()
        # One process: its runners die together, so a suspect job runs without neighbours here.
        neighbours = Neighbours()
        self.runners = [
            JobRunner(db, pipeline, settings, name=f"{base}/{i}", dispatcher=dispatcher, neighbours=neighbours)
            for i in range(count)
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

    def stop(
        self, timeout: float | None = None, *, abandon: Callable[[], None] | None = None, grace_s: float = 30.0
    ) -> bool:
        """Stop the runners; True when all have. Each finishes the chunk in hand if it can within
        `timeout` (default: half of DUIYI_JOB_LEASE_S, at most 30 s) and hands its job back to the
        queue. Then `abandon` (closing the engine) ends the decoding of the chunks still in hand,
        and their runners hand their jobs back too (within `grace_s`): a job is never failed
        because its runner stopped."""
        for runner in self.runners:
            runner.stopping.set()
        self.wake.set()
        self._join(timeout if timeout is not None else min(30.0, self.settings.job_lease_s / 2))
        if abandon is not None and any(thread.is_alive() for thread in self.threads):
            log.info("runners: a chunk is still being decoded; abandoning it (its job goes back to the queue)")
            abandon()
            self._join(grace_s)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        for name in stuck:
            log.warning("runner %s did not stop in time; its job is resumed once its lease lapses", name)
        return not stuck

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
