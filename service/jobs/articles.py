"""Article jobs: submission (idempotent, revisions linked), reading, listing and the state machine.

    queued ──▶ translating ──▶ translated ──▶ in_review ──▶ approved
      ▲  ▲          │
      │  └──────────┤  (handed back: the runner stopped, or an attempt failed and will be retried)
      │             ▼
      └───────── failed (with a reason; resubmitting the article queues it again)

A runner moves queued → translating → translated (`service.jobs.runner`), or hands the job back to
the queue, or fails it; people move a job on through review (`service.jobs.review`). Every state
change that a client may care about writes its webhook delivery in the same transaction
(`service.jobs.deliveries`), so none is lost.

A job in any state can be withdrawn (`withdraw`: a spiked story, a legal takedown): everything
stored for it goes in one transaction, and a runner translating it stops at its next save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Delete

from service.auth import Role, sees_every_article
from service.config import Settings
from service.documents import AlignedDocument, Article, SourceFormat
from service.glossaries import Glossaries
from service.jobs.codec import document_from_json, segment_from_row, term_to_json
from service.jobs.deliveries import enqueue_withdrawn
from service.memory import TranslationMemory
from service.pipeline import assemble_text
from service.storage.db import Database
from service.storage.tables import (
    Delivery,
    DeliveryAttempt,
    Job,
    SegmentComment,
    SegmentEdit,
    StoredArticle,
    StoredSegment,
    utcnow,
)
from service.translate import check_article, check_targets
from service.webhooks import CallbackRefused, check_callback_url

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    QUEUED = "queued"
    TRANSLATING = "translating"
    TRANSLATED = "translated"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    FAILED = "failed"


# Which states a job may move to from each state.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.TRANSLATING, JobStatus.FAILED}),
    # Back to queued: a runner shutting down hands its job back.
    JobStatus.TRANSLATING: frozenset({JobStatus.TRANSLATED, JobStatus.FAILED, JobStatus.QUEUED}),
    JobStatus.TRANSLATED: frozenset({JobStatus.IN_REVIEW, JobStatus.APPROVED}),
    JobStatus.IN_REVIEW: frozenset({JobStatus.APPROVED}),
    # Reopened when a translator edits an approved article.
    JobStatus.APPROVED: frozenset({JobStatus.IN_REVIEW}),
    # Queued again when its article is resubmitted.
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
}
DONE_TRANSLATING = (JobStatus.TRANSLATED, JobStatus.IN_REVIEW, JobStatus.APPROVED)


class InvalidTransition(Exception):
    def __init__(self, job: Job, to: JobStatus) -> None:
        super().__init__(f"article {job.id} is {job.status}; it cannot become {to.value} from there")


def move(job: Job, to: JobStatus) -> None:
    """Change a job's state, refusing moves the state machine does not have."""
    if to not in TRANSITIONS[JobStatus(job.status)]:
        raise InvalidTransition(job, to)
    job.status = to.value
    job.updated_at = utcnow()


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key, or the local user when authentication is disabled."""

    key_id: int | None
    name: str
    role: Role
    callback_url: str | None = None
    # The key's owner (ApiKey.owner), which its predecessors had when it was made by rotation;
    # None: "key:<key_id>".
    key_owner: str | None = None

    @property
    def scope(self) -> str | None:
        """The owner whose articles this caller may see, or None for every article (translators,
        admins, and everyone when authentication is disabled): `get_job`'s `scope`."""
        return None if sees_every_article(self.role) else self.owner

    @property
    def owner(self) -> str:
        """Whose articles these are (Job.owner): idempotency keys and revision chains are per owner."""
        if self.key_owner is not None:
            return self.key_owner
        return f"key:{self.key_id}" if self.key_id is not None else "local"


@dataclass(frozen=True)
class Submission:
    article: Article
    targets: list[str] | None = None
    glossaries: list[str] | None = None
    external_id: str | None = None
    revision: str | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What makes two submissions the same request (the idempotency key aside)."""
        a = self.article
        data = [a.body, a.format.value, a.title, a.subtitle, a.byline, a.date, self.targets, self.glossaries]
        data += [self.external_id, self.revision, self.callback_url]
        return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()


class Outcome(StrEnum):
    """What a submission did."""

    CREATED = "created"  # a new job
    EXISTING = "existing"  # the same article was submitted before: its job, as it is
    REQUEUED = "requeued"  # the same article's job had failed: queued again (its saved segments kept)


class IdempotencyConflict(Exception):
    """The same idempotency key (or external_id + revision) with a different request."""


class TooManyJobs(Exception):
    def __init__(self, pending: int, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{pending:,} articles are waiting to be translated (the limit is {limit:,})")
        self.retry_after_s = retry_after_s


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no article job {job_id!r}")


def _existing(session: Session, sub: Submission, owner: str) -> Job | None:
    if sub.idempotency_key:
        job = session.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == sub.idempotency_key))
        if job is not None:
            return job
    if sub.external_id and sub.revision is not None:
        return session.scalar(
            select(Job).where(Job.owner == owner, Job.external_id == sub.external_id, Job.revision == sub.revision)
        )
    return None


def _same_or_conflict(job: Job, sub: Submission) -> Job:
    if job.request_hash != sub.fingerprint():
        what = (
            f"Idempotency-Key {sub.idempotency_key!r}"
            if sub.idempotency_key and job.idempotency_key == sub.idempotency_key
            else f"external_id {sub.external_id!r} revision {sub.revision!r}"
        )
        raise IdempotencyConflict(
            f"{what} was already used for article {job.id} with different content; "
            "use a new key (or a new revision) for a different request"
        )
    return job


def _check_pending(session: Session, settings: Settings) -> None:
    pending = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.TRANSLATING.value]))
    )
    if (pending or 0) >= settings.max_pending_jobs:
        raise TooManyJobs(pending or 0, settings.max_pending_jobs, retry_after_s=30)


def _resubmitted(db: Database, job: Job, settings: Settings) -> tuple[Job, Outcome]:
    """A resubmission of `job`'s article: a failed job is queued again, with a fresh budget of
    attempts and of lost runners, and its saved segments kept (its failure is cleared); any other is
    answered as it is."""
    if job.status != JobStatus.FAILED.value:
        return job, Outcome.EXISTING
    with db.session() as session:
        _check_pending(session, settings)
        # Conditional: of two resubmissions racing, one queues it and the other sees it queued.
        requeued = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.FAILED.value)
            .values(
                status=JobStatus.QUEUED.value,
                failure=None,
                attempts=0,
                lost_runners=0,
                runner=None,
                lease_until=None,
                updated_at=utcnow(),
            )
        )
        again = requeued.rowcount == 1  # type: ignore[attr-defined]
        current = session.get(Job, job.id, populate_existing=True)
        assert current is not None
    return current, Outcome.REQUEUED if again else Outcome.EXISTING


# A revision label's runs of digits and of other characters (`_later_revision`).
_LABEL_RUNS = re.compile(r"\d+|\D+")


def _later_revision(label: str | None, than: str | None) -> bool:
    """Whether revision `label` comes after `than` by their labels: compared run by run, a run of
    digits as a number ("10" after "9", "v10" after "v9", "2024-05-02T08:00" after "2024-05-01T17:30",
    "3.10" after "3.2"), a label that goes on where the other ends after it ("3.1", "3-fix" after
    "3"). Labels whose other characters differ ("a9f3" and "1c2e", "draft" and "final") have no order
    between them: neither is later."""
    if label is None or than is None:
        return False
    mine, theirs = _LABEL_RUNS.findall(label), _LABEL_RUNS.findall(than)
    for a, b in zip(mine, theirs, strict=False):
        if a.isdecimal() and b.isdecimal():
            if int(a) != int(b):
                return int(a) > int(b)
        elif a != b:
            return False
    return len(mine) > len(theirs)


def _previous_revision(session: Session, owner: str, external_id: str, revision: str | None) -> str | None:
    """The job a new revision of `external_id` follows (`previous_job_id`): of those whose revision
    is not later than `revision` by label (`_later_revision`), the one with the latest label; where
    labels have no order (hashes), the newest submitted. So a revision submitted again after a later
    one (it was withdrawn, or came late) follows the one before it, never the later one, and does not
    take over its translators' work."""
    found: tuple[str, str | None] | None = None
    for job_id, label in session.execute(
        select(Job.id, Job.revision)
        .where(Job.owner == owner, Job.external_id == external_id)
        .order_by(Job.created_at.desc(), Job.id.desc())
    ):
        if _later_revision(label, revision):
            continue
        if found is None or _later_revision(label, found[1]):
            found = (job_id, label)
    return found[0] if found else None


def submit(
    db: Database, sub: Submission, *, principal: Principal, settings: Settings, glossaries: Glossaries
) -> tuple[Job, Outcome]:
    """The job for `sub`, and what the submission did: created it; or, as a resubmission of the
    same article (the same Idempotency-Key or external_id + revision, the same content), found
    it, and queued it again if it had failed.

    Raises InputError (bad article or targets, markup nested deeper than the formats read),
    UnknownGlossaryError, CallbackRefused, IdempotencyConflict or TooManyJobs; nothing is stored or
    changed then.
    """
    owner = principal.owner
    with db.session() as session:
        found = _existing(session, sub, owner)
    if found is not None:
        job = _same_or_conflict(found, sub)
        if job.status == JobStatus.FAILED.value:
            check_article(sub.article, settings)  # (accepted before it was refused:) queued again, it would fail again
        return _resubmitted(db, job, settings)

    check_article(sub.article, settings)
    targets = check_targets(sub.targets, settings)
    names = list(sub.glossaries if sub.glossaries is not None else settings.default_glossaries)
    glossary = glossaries.stacked(names) if names else None
    callback = sub.callback_url or principal.callback_url
    if callback:
        check_callback_url(
            callback, allowed_hosts=settings.webhook_allowed_hosts, allow_private=settings.webhook_allow_private
        )
        if principal.key_id is None and not settings.webhook_secret:
            raise CallbackRefused("webhooks must be signed: set DUIYI_WEBHOOK_SECRET (authentication is disabled)")

    try:
        with db.session() as session:
            _check_pending(session, settings)
            previous = None
            if sub.external_id:
                previous = _previous_revision(session, owner, sub.external_id, sub.revision)
            a = sub.article
            stored = StoredArticle(
                external_id=sub.external_id,
                revision=sub.revision,
                format=a.format.value,
                title=a.title,
                subtitle=a.subtitle,
                byline=a.byline,
                date=a.date,
                body=a.body,
            )
            session.add(stored)
            session.flush()
            job = Job(
                id=str(uuid.uuid4()),
                article_id=stored.id,
                owner=owner,
                api_key_id=principal.key_id,
                idempotency_key=sub.idempotency_key,
                request_hash=sub.fingerprint(),
                external_id=sub.external_id,
                revision=sub.revision,
                previous_job_id=previous,
                status=JobStatus.QUEUED.value,
                targets=list(targets),
                glossaries=names,
                glossary_terms=[term_to_json(t) for t in glossary.terms] if glossary else [],
                callback_url=callback,
            )
            session.add(job)
        return job, Outcome.CREATED
    except IntegrityError:
        # Two identical submissions raced; the other one's insert won. Answer with its job.
        with db.session() as session:
            found = _existing(session, sub, owner)
        if found is None:
            raise
        return _same_or_conflict(found, sub), Outcome.EXISTING


def get_job(session: Session, job_id: str, scope: str | None = None) -> Job:
    """The job, or JobNotFound; with `scope` (`Principal.scope`), also JobNotFound for another
    owner's job, so that a caller learns nothing of articles it may not see. An id holding a NUL
    names no job (and PostgreSQL could not look for it)."""
    job = None if "\0" in job_id else session.get(Job, job_id)
    if job is None or (scope is not None and job.owner != scope):
        raise JobNotFound(job_id)
    return job


def hold_job(session: Session, job_id: str, scope: str | None = None) -> Job:
    """The job, held for the rest of the caller's transaction, which is about to change it or what
    belongs to it (a segment, a comment); JobNotFound when it is gone, or, with `scope`, another
    owner's (as `get_job`). A write comes first, as in `withdraw`: on SQLite it takes the database's
    write lock at once (a read first could be refused later as a stale snapshot, "database is
    locked": a 503 for what is an ordinary answer); on PostgreSQL the job's row lock makes the change
    and a withdrawal of the article take turns, so that a change that waited finds the article gone
    (404) instead of failing on rows deleted under it (a 500), and an approval sees every change made
    before it. Changes to one article take turns with each other too; each holds it for milliseconds."""
    if "\0" in job_id:  # no job's id, and no text PostgreSQL could look for
        raise JobNotFound(job_id)
    held = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(updated_at=Job.updated_at)  # no change: the write is for the lock
        .execution_options(synchronize_session=False)
    )
    job = session.get(Job, job_id, populate_existing=True) if held.rowcount == 1 else None  # type: ignore[attr-defined]
    if job is None or (scope is not None and job.owner != scope):
        raise JobNotFound(job_id)
    return job


def article_of(session: Session, job: Job) -> Article:
    row = session.get(StoredArticle, job.article_id)
    assert row is not None  # a foreign key guarantees it
    return Article(row.body, SourceFormat(row.format), row.title, row.subtitle, row.byline, row.date)


def newer_revisions(session: Session, job_id: str) -> list[str]:
    """The ids of the revisions that follow `job_id`, oldest first."""
    return newer_by_job(session, [job_id]).get(job_id, [])


def newer_by_job(session: Session, job_ids: Sequence[str]) -> dict[str, list[str]]:
    """`newer_revisions` of each of `job_ids` (a page of a list) in one query, by the index on
    `previous_job_id`; a job with none is left out."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(job_ids), 500):
        rows = session.execute(
            select(Job.previous_job_id, Job.id)
            .where(Job.previous_job_id.in_(job_ids[start : start + 500]))
            .order_by(Job.created_at, Job.id)
        )
        for previous, job_id in rows:
            if previous is not None:
                found.setdefault(previous, []).append(job_id)
    return found


def list_jobs(
    session: Session,
    *,
    statuses: Sequence[JobStatus] = (),
    since: datetime | None = None,
    external_id: str | None = None,
    owner: str | None = None,
    limit: int = 50,
    newest_first: bool = False,
    after: tuple[datetime, str] | None = None,
) -> list[Job]:
    """Jobs in the order they last changed (oldest first, ties by id); or newest first, for people.
    `since`: changed at or after that time; `after`: a position in that order, (updated_at, id) of
    the last job a client has seen, for the next page: strictly after it, so that a page never
    repeats the last one's jobs, however many share a time. `owner`: only the jobs it submitted (a
    CMS sees only its own). An `external_id` holding a NUL is none that was stored: no jobs."""
    if external_id is not None and "\0" in external_id:
        return []
    query = select(Job)
    if owner is not None:
        query = query.where(Job.owner == owner)
    if statuses:
        query = query.where(Job.status.in_([s.value for s in statuses]))
    if since is not None:
        query = query.where(Job.updated_at >= since)
    if after is not None:
        at, job_id = after
        query = query.where(or_(Job.updated_at > at, and_(Job.updated_at == at, Job.id > job_id)))
    if external_id is not None:
        query = query.where(Job.external_id == external_id)
    order = (Job.updated_at.desc(), Job.id.desc()) if newest_first else (Job.updated_at, Job.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def stored_document(session: Session, job: Job) -> tuple[AlignedDocument, dict[str, tuple[int, list[str]]]] | None:
    """The job's aligned document as stored now (with people's edits), and each segment's version
    and locked variants; None until translation has finished."""
    if JobStatus(job.status) not in DONE_TRANSLATING or job.document is None:
        return None
    rows = list(
        session.scalars(select(StoredSegment).where(StoredSegment.job_id == job.id).order_by(StoredSegment.position))
    )
    doc = document_from_json(job.document)
    segments = tuple(segment_from_row(r) for r in rows)
    aligned = AlignedDocument(
        format=doc.format,
        variants=tuple(job.targets),
        blocks=doc.blocks,
        segments=segments,
        full_text={v: assemble_text(doc, segments, v) for v in job.targets},
        model=job.model or "",
        glossaries=tuple(job.glossaries),
    )
    return aligned, {r.id: (r.version, list(r.locked_variants)) for r in rows}


# --- withdrawing an article ------------------------------------------------------------------

# PostgreSQL's code for a deadlock it broke by aborting this transaction: safe to run it again.
_DEADLOCK = "40P01"


@dataclass(frozen=True)
class Withdrawn:
    """What withdrawing an article removed (rows, by table) and what it changed elsewhere."""

    job_id: str
    status: str  # the state the job was in
    external_id: str | None
    revision: str | None
    segments: int
    edits: int
    deliveries: int
    delivery_attempts: int
    # Translation memory entries (only when asked): removed, those this article alone gave; kept and
    # credited to another article, those another article's approved segment gives too.
    memory_removed: int
    memory_kept: int
    # Later revisions that named this job as their previous one: that link is now null.
    unlinked: tuple[str, ...]
    # The `article.withdrawn` delivery written for its callback (None: the job had none).
    notice: str | None = None


def withdraw(db: Database, job_id: str, *, by: str, memory: bool = False, notify: bool = True) -> Withdrawn:
    """Delete the job and everything stored for it, in one transaction: its article as received,
    its segments with their edit history and queries, its webhook deliveries with their attempts and payloads;
    with `memory`, also the translation memory entries that it alone contributed. Later revisions
    lose their link to it (`previous_job_id` becomes null) and go on as they are. Raises JobNotFound.

    A queued job is then never claimed; a runner translating it finds it gone at its next save (a
    chunk, a lease renewal) and stops, writing nothing; a pending webhook delivery is never sent,
    and one being sent at this moment is not recorded or retried (`service.jobs.deliveries`). With
    `notify` (not for a retention purge: the CMS keeps its pages), a job with a callback gets one new
    delivery instead, `article.withdrawn`, naming `by` (a key's name), so that its CMS takes the
    translation down too. Review sessions hold no reference to jobs. Who
    withdrew what is logged, never the text."""
    for attempt in range(1, 4):
        try:
            with db.session() as session:
                done = _withdraw(session, job_id, by=by, memory=memory, notify=notify)
            break
        except OperationalError as exc:
            # Someone editing or approving the article at this moment locks its rows in another order.
            if attempt == 3 or getattr(exc.orig, "sqlstate", None) != _DEADLOCK:
                raise
            log.info("article %s: withdrawing it met a deadlock with another writer; trying again", job_id)
    log.info(
        "article %s (external_id %r, revision %r, %s) withdrawn by %s: removed %d segment(s), %d edit(s), "
        "%d webhook delivery(ies) with %d attempt(s), %d memory entry(ies) (%d kept: another article gave them "
        "too); later revisions unlinked: %s; %s",
        done.job_id,
        done.external_id,
        done.revision,
        done.status,
        by,
        done.segments,
        done.edits,
        done.deliveries,
        done.delivery_attempts,
        done.memory_removed,
        done.memory_kept,
        ", ".join(done.unlinked) or "none",
        f"its CMS is told by webhook {done.notice}" if done.notice else "no webhook",
    )
    return done


def _withdraw(session: Session, job_id: str, *, by: str, memory: bool, notify: bool) -> Withdrawn:
    now = utcnow()
    # A write first: on SQLite it takes the database's write lock at once (a read first could be
    # refused later as a stale snapshot). On PostgreSQL the row lock (FOR UPDATE, below) makes a
    # runner's save or lease renewal, and anything adding rows for the job, wait until this commits
    # and then find the job gone; what a runner saved before it is deleted here.
    touched = session.execute(
        update(Job).where(Job.id == job_id).values(updated_at=now).execution_options(synchronize_session=False)
    )
    if touched.rowcount != 1:  # type: ignore[attr-defined]
        raise JobNotFound(job_id)
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    assert job is not None
    status, external_id, revision, article_id = job.status, job.external_id, job.revision, job.article_id
    # A dispatcher recording an attempt holds its delivery's row: wait for it, so the attempt goes too.
    delivery_ids = list(session.scalars(select(Delivery.id).where(Delivery.job_id == job_id).with_for_update()))

    removed_memory = kept_memory = 0
    if memory:
        removed_memory, kept_memory = TranslationMemory.forget_job(session, job_id)
    unlinked = tuple(session.scalars(select(Job.id).where(Job.previous_job_id == job_id).order_by(Job.created_at)))
    if unlinked:
        session.execute(
            update(Job)
            .where(Job.previous_job_id == job_id)
            .values(previous_job_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    def gone(statement: Delete) -> int:
        result = session.execute(statement.execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    attempts = gone(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(delivery_ids))) if delivery_ids else 0
    deliveries = gone(delete(Delivery).where(Delivery.job_id == job_id))
    edits = gone(delete(SegmentEdit).where(SegmentEdit.job_id == job_id))
    # Queries on segments: ON DELETE CASCADE would take them with the job, but deleted here like the
    # other rows, so that nothing depends on the database enforcing foreign keys.
    gone(delete(SegmentComment).where(SegmentComment.job_id == job_id))
    segments = gone(delete(StoredSegment).where(StoredSegment.job_id == job_id))
    session.expunge(job)
    gone(delete(Job).where(Job.id == job_id))
    gone(delete(StoredArticle).where(StoredArticle.id == article_id))
    notice = enqueue_withdrawn(session, job, by=by) if notify else None
    return Withdrawn(
        job_id=job_id,
        status=status,
        external_id=external_id,
        revision=revision,
        segments=segments,
        edits=edits,
        deliveries=deliveries,
        delivery_attempts=attempts,
        memory_removed=removed_memory,
        memory_kept=kept_memory,
        unlinked=unlinked,
        notice=notice.id if notice is not None else None,
    )
