"""Article jobs over HTTP: submit, read, list, withdraw, deliveries, and review (edit, approve).

A cms key sees only the articles its owner submitted (its own key, and the keys it was rotated
from): another's is a 404 on every route that names an article, and missing from lists.
Translators and admins see every article."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from glossary.terms import VARIANTS
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, DeliveryId, JobId, Requires, SegmentId, article_scope, check_article
from service.auth import Permission
from service.documents import Article
from service.glossaries import UnknownGlossaryError
from service.jobs import comments, markup, review
from service.jobs.articles import (
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    JobStatus,
    Outcome,
    Principal,
    Submission,
    TooManyJobs,
    get_job,
    list_jobs,
    newer_by_job,
    newer_revisions,
    stored_document,
    submit,
    withdraw,
)
from service.jobs.codec import segment_from_row
from service.jobs.deliveries import AlreadyDelivered, DeliveryNotFound, redeliver
from service.schemas import (
    ArticleApproveIn,
    ArticleJob,
    ArticleLinks,
    ArticleList,
    ArticleSubmit,
    ArticleWithdrawn,
    ConflictResponse,
    DeliveryAttemptOut,
    DeliveryOut,
    JobProgress,
    SegmentApproveIn,
    SegmentEditIn,
    SegmentOut,
    SegmentSaved,
    SegmentState,
    SegmentUnlockIn,
    WithdrawnRows,
    aligned_to_response,
    stored_segment_out,
)
from service.storage.db import Database
from service.storage.tables import Delivery, DeliveryAttempt, Job, StoredSegment
from service.translate import InputError
from service.webhooks import CallbackRefused

router = APIRouter(prefix="/v1/articles", tags=["articles"])

Submitter = Annotated[Principal, Requires(Permission.ARTICLES_SUBMIT)]
Reader = Annotated[Principal, Requires(Permission.ARTICLES_READ)]
Editor = Annotated[Principal, Requires(Permission.SEGMENTS_EDIT)]
Approver = Annotated[Principal, Requires(Permission.ARTICLES_APPROVE)]
# Whoever may submit articles (a CMS, an admin) may have their webhooks sent again, and withdraw them.
Redeliverer = Annotated[Principal, Requires(Permission.ARTICLES_SUBMIT)]
Withdrawer = Annotated[Principal, Requires(Permission.ARTICLES_SUBMIT)]


def _job_out(db: Database, job_id: str, *, with_document: bool = True) -> ArticleJob:
    with db.session() as session:
        job = get_job(session, job_id)
        stored = stored_document(session, job) if with_document else None
        newer = newer_revisions(session, job.id)
        open_queries = comments.open_count(session, job.id)
    document = None
    if stored is not None:
        doc, states = stored
        document = aligned_to_response(doc, {k: SegmentState(v, locked) for k, (v, locked) in states.items()})
    return _summary(job, newer, open_queries, document)


def _summary(job: Job, newer: list[str], open_queries: int, document: object = None) -> ArticleJob:
    return ArticleJob(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        failure=job.failure,
        # A queued job's lease_until is when a failed attempt may be retried (service.jobs.runner).
        retry_at=job.lease_until if job.status == JobStatus.QUEUED.value else None,
        external_id=job.external_id,
        revision=job.revision,
        previous_id=job.previous_job_id,
        newer_ids=newer,
        progress=JobProgress(done=job.segments_done, total=job.segments_total),
        targets=list(job.targets),
        glossaries=list(job.glossaries),
        callback_url=job.callback_url,
        model=job.model,
        reviewer=job.reviewer,
        approved_by=job.approved_by,
        approval_override=job.approval_override,
        open_queries=open_queries,
        created_at=job.created_at,
        updated_at=job.updated_at,
        translated_at=job.translated_at,
        approved_at=job.approved_at,
        links=ArticleLinks(
            self=f"/v1/articles/{job.id}",
            deliveries=f"/v1/articles/{job.id}/deliveries",
            previous=f"/v1/articles/{job.previous_job_id}" if job.previous_job_id else None,
        ),
        document=document,  # type: ignore[arg-type]
    )


def _not_found(exc: LookupError) -> ApiError:
    return ApiError(404, "not_found", str(exc))


@router.post(
    "",
    status_code=202,
    response_model=ArticleJob,
    responses={
        200: {"model": ArticleJob, "description": "The same article was submitted before: its existing job"},
        202: {
            "model": ArticleJob,
            "description": "A new job; or the same article's job, which had failed, queued again",
        },
        **responses(400, *AUTH_ERRORS, 413, 422, 503),
    },
    summary="Submit an article for translation (asynchronous)",
)
def submit_article(
    body: ArticleSubmit,
    runtime: RuntimeDep,
    principal: Submitter,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="your id for this submission: resubmitted with the same key, the article is never "
            "duplicated (200 with its job)",
        ),
    ] = None,
) -> ArticleJob:
    """202 with `Location` for a new job. Resubmitting with the same `Idempotency-Key`, or the same
    `external_id` and `revision`, answers 200 with the existing job, except that a job that had
    `failed` is queued again (202, status `queued`, `failure` cleared, segments saved so far kept);
    a new revision of an `external_id` makes a new job linked to the previous one (`previous_id`)."""
    sub = Submission(
        article=Article(body.body, body.format, body.title, body.subtitle, body.byline, body.date),
        targets=body.targets,
        glossaries=body.glossaries,
        external_id=body.external_id,
        revision=body.revision,
        callback_url=body.callback_url,
        idempotency_key=idempotency_key,
    )
    try:
        job, outcome = submit(
            runtime.db, sub, principal=principal, settings=runtime.settings, glossaries=runtime.glossaries
        )
    except InputError as exc:
        raise ApiError(413 if exc.code == "too_large" else 422, exc.code, exc.message, valid=exc.valid) from None
    except UnknownGlossaryError as exc:
        raise ApiError(422, "unknown_glossary", str(exc), valid=exc.valid) from None
    except CallbackRefused as exc:
        raise ApiError(422, "callback_refused", str(exc)) from None
    except IdempotencyConflict as exc:
        raise ApiError(422, "idempotency_conflict", str(exc)) from None
    except TooManyJobs as exc:
        raise ApiError(
            503, "busy", f"{exc}; retry after {exc.retry_after_s} s", headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    response.headers["Location"] = f"/v1/articles/{job.id}"
    if outcome is Outcome.EXISTING:
        response.status_code = 200
    elif runtime.runners is not None:
        runtime.runners.notify()
    return _job_out(runtime.db, job.id)


@router.get(
    "",
    response_model=ArticleList,
    responses=responses(*AUTH_ERRORS, 422),
    summary="List article jobs, oldest change first",
    description="A cms key lists only the articles its owner submitted; translator and admin keys list all. "
    "Jobs come in the order they last changed (ties by id); to page, or to poll for changes, pass the answer's "
    "`next_cursor` as `after` (422 `invalid_cursor` for one this service did not give; 422 `invalid_since` for a "
    "`since` that is no time in years 1 to 9999 once in UTC).",
)
# With a trailing slash too, the same answer (rather than a redirect to the path without it).
@router.get("/", response_model=ArticleList, include_in_schema=False)
def list_articles(
    runtime: RuntimeDep,
    principal: Reader,
    status: Annotated[list[JobStatus] | None, Query(description="only these states (repeatable)")] = None,
    since: Annotated[
        datetime | None,
        Query(description="changed at or after this time (ISO 8601; a time without a timezone is UTC)"),
    ] = None,
    after: Annotated[
        str | None,
        Query(max_length=200, description="the `next_cursor` of an earlier answer: only jobs that changed after it"),
    ] = None,
    external_id: Annotated[str | None, Query(max_length=200, description="only the jobs of this CMS id")] = None,
    limit: Annotated[
        int, Query(ge=1, le=500, description="at most this many jobs (default 50); `next_cursor` continues")
    ] = 50,
) -> ArticleList:
    if since is not None:
        # Times are stored and returned in UTC, so a bare `2024-05-01` or `…T12:00` means UTC too
        # (never the server's local time, which a client cannot know).
        since = _in_utc(since)
    if external_id is not None and "\0" in external_id:
        raise ApiError(422, "invalid_request", "external_id: holds a NUL (U+0000), which no external id has")
    position = None
    if after is not None:
        try:
            position = read_cursor(after)
        except ValueError:
            raise ApiError(
                422, "invalid_cursor", "after: not a cursor this service gave (pass an answer's next_cursor as is)"
            ) from None
    with runtime.db.session() as session:
        jobs = list_jobs(
            session,
            statuses=status or (),
            since=since,
            after=position,
            external_id=external_id,
            owner=article_scope(principal),
            limit=limit + 1,  # one more than asked: whether there is more
        )
        more = len(jobs) > limit
        page = jobs[:limit]
        ids = [j.id for j in page]
        # One query each for the page, not one per article.
        queries, newer = comments.open_by_job(session, ids), newer_by_job(session, ids)
        items = [_summary(j, newer.get(j.id, []), queries.get(j.id, 0)) for j in page]
    last = jobs[len(items) - 1] if items else None
    return ArticleList(
        items=items,
        next_cursor=cursor(last.updated_at, last.id) if last is not None else after,
        more=more,
        next_since=items[-1].updated_at if more else None,
    )


def _in_utc(since: datetime) -> datetime:
    """`since` in UTC (a time without a timezone is UTC); 422 `invalid_since` for a time that UTC
    puts outside the years 1 to 9999 (`9999-12-31T23:59:59-14:00`), which no database takes."""
    if since.tzinfo is None:
        return since.replace(tzinfo=UTC)
    try:
        return since.astimezone(UTC)
    except OverflowError:
        raise ApiError(
            422,
            "invalid_since",
            f"since: {since.isoformat()} is out of range: in UTC it falls before the year 1 or after 9999",
        ) from None


def cursor(updated_at: datetime, job_id: str) -> str:
    """A position in the list's order, opaque to clients: the job's last change and its id."""
    text = f"{updated_at.astimezone(UTC).isoformat()}|{job_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(value: str) -> tuple[datetime, str]:
    """`cursor`'s (updated_at, id); ValueError for anything it did not make."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(value) from None
    at, sep, job_id = text.partition("|")
    moment = datetime.fromisoformat(at) if sep and job_id and "\0" not in job_id else None
    if moment is None or moment.tzinfo is None:
        raise ValueError(value)
    return moment, job_id


@router.get(
    "/{job_id}",
    response_model=ArticleJob,
    responses=responses(*AUTH_ERRORS, 404),
    summary="An article job: status, progress and, once translated, the aligned document",
)
def read_article(job_id: JobId, runtime: RuntimeDep, principal: Reader) -> ArticleJob:
    """404 for an article that does not exist, and for another owner's article to a cms key."""
    check_article(runtime.db, job_id, principal)
    try:
        return _job_out(runtime.db, job_id)
    except JobNotFound as exc:
        raise _not_found(exc) from None


@router.delete(
    "/{job_id}",
    response_model=ArticleWithdrawn,
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="Withdraw an article (a spiked story, a legal takedown): delete it and everything stored for it",
)
def withdraw_article(
    job_id: JobId,
    runtime: RuntimeDep,
    principal: Withdrawer,
    memory: Annotated[
        bool,
        Query(
            description="also remove the translation memory entries this article gave and no other article "
            "gives (default false: the memory is shared work)"
        ),
    ] = False,
) -> ArticleWithdrawn:
    """Deletes, in one transaction, the article as received, its job, segments, edit history, webhook
    deliveries (payloads included) and their attempts. A queued job is never translated; a runner
    translating it stops at its next save and writes nothing; pending webhooks are never sent, and
    an article with a callback gets an `article.withdrawn` webhook instead (its CMS learns that it is
    gone even when an admin withdrew it). Later
    revisions go on, their `previous_id` now null. Resubmitting the same article afterwards (the
    same `Idempotency-Key`, or `external_id` + `revision`) makes a new job. A second DELETE is a
    404. The log records who withdrew which article, never its text. A cms key withdraws only
    its owner's articles (another's is a 404)."""
    check_article(runtime.db, job_id, principal)
    try:
        done = withdraw(runtime.db, job_id, by=principal.name, memory=memory)
    except JobNotFound as exc:
        raise _not_found(exc) from None
    return ArticleWithdrawn(
        id=done.job_id,
        status=done.status,  # type: ignore[arg-type]
        external_id=done.external_id,
        revision=done.revision,
        removed=WithdrawnRows(
            segments=done.segments,
            edits=done.edits,
            deliveries=done.deliveries,
            delivery_attempts=done.delivery_attempts,
            memory_entries=done.memory_removed,
        ),
        memory_kept=done.memory_kept,
        unlinked_ids=list(done.unlinked),
    )


@router.get(
    "/{job_id}/deliveries",
    response_model=list[DeliveryOut],
    responses=responses(*AUTH_ERRORS, 404),
    summary="Webhook deliveries of a job, with every attempt",
)
def read_deliveries(job_id: JobId, runtime: RuntimeDep, principal: Reader) -> list[DeliveryOut]:
    """404 for an article that does not exist, and for another owner's article to a cms key."""
    check_article(runtime.db, job_id, principal)
    with runtime.db.session() as session:
        try:
            get_job(session, job_id)
        except JobNotFound as exc:
            raise _not_found(exc) from None
        deliveries = list(
            session.scalars(select(Delivery).where(Delivery.job_id == job_id).order_by(Delivery.created_at))
        )
        return _deliveries_out(session, deliveries)


def _deliveries_out(session: Session, deliveries: list[Delivery]) -> list[DeliveryOut]:
    attempts: dict[str, list[DeliveryAttemptOut]] = {d.id: [] for d in deliveries}
    for a in session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(list(attempts))).order_by(DeliveryAttempt.number)
    ):
        attempts[a.delivery_id].append(
            DeliveryAttemptOut(
                number=a.number, at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms
            )
        )
    return [
        DeliveryOut(
            id=d.id,
            event=d.event,
            url=d.url,
            state=d.state,  # type: ignore[arg-type]
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
            last_error=d.last_error,
            attempts=attempts[d.id],
        )
        for d in deliveries
    ]


@router.post(
    "/{job_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=responses(*AUTH_ERRORS, 404, 409, 422),
    summary="Send a webhook delivery again (a failed one, or a pending one now rather than at its next retry)",
)
def redeliver_delivery(
    job_id: JobId, delivery_id: DeliveryId, runtime: RuntimeDep, principal: Redeliverer
) -> DeliveryOut:
    """202: a failed delivery is queued again with a fresh round of `DUIYI_WEBHOOK_MAX_ATTEMPTS`
    tries; a pending one is tried at once instead of at `next_attempt_at`. It stays the same
    delivery (same `Duiyi-Delivery` id and body, so a receiver drops a copy it already has), and
    its attempts go on being numbered from the earlier ones; follow them at `…/deliveries`.
    409 (`already_delivered`) once delivered; 422 (`callback_refused`) when the URL is no longer
    one the service may call (allowed hosts changed) or there is no secret to sign with. 404 for
    another owner's article to a cms key."""
    check_article(runtime.db, job_id, principal)
    try:
        redeliver(runtime.db, job_id, delivery_id, runtime.settings)
    except DeliveryNotFound as exc:
        raise _not_found(exc) from None
    except AlreadyDelivered as exc:
        raise ApiError(409, "already_delivered", str(exc)) from None
    except CallbackRefused as exc:
        raise ApiError(422, "callback_refused", str(exc)) from None
    runtime.dispatcher.wake()
    with runtime.db.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return _deliveries_out(session, [row])[0]


def _segment_out(row: StoredSegment) -> SegmentOut:
    return stored_segment_out(segment_from_row(row), row.version, row.locked_variants)


def _review_errors(exc: Exception) -> Exception:
    if isinstance(exc, JobNotFound | review.SegmentNotFound):
        return _not_found(exc)
    if isinstance(exc, InvalidTransition):
        return ApiError(409, "invalid_state", str(exc))
    if isinstance(exc, review.ApprovalBlocked):
        return ApiError(409, "needs_review", str(exc))
    return exc


def _saved_out(saved: review.Saved) -> SegmentSaved:
    return SegmentSaved(
        **_segment_out(saved.row).model_dump(), repetitions=[_segment_out(r) for r in saved.repetitions]
    )


def _conflict(exc: review.VersionConflict) -> Response:
    body = ConflictResponse.model_validate(
        {"error": {"code": "version_conflict", "message": str(exc), "current": _segment_out(exc.current)}}
    )
    return Response(body.model_dump_json(), status_code=409, media_type="application/json")


_SEGMENT_ERRORS = {
    **responses(*AUTH_ERRORS, 404, 422),
    409: {"model": ConflictResponse, "description": "Based on an old version (the body has the newer segment)"},
}


@router.patch(
    "/{job_id}/segments/{segment_id}",
    response_model=SegmentSaved,
    responses=_SEGMENT_ERRORS,
    summary="Edit a segment's target (optimistic: name the version the edit is based on)",
)
def edit_segment(
    job_id: JobId, segment_id: SegmentId, body: SegmentEditIn, runtime: RuntimeDep, principal: Editor
) -> SegmentSaved | Response:
    """Unless `propagate` is false, the same edit is made, in the same transaction, of the article's
    other segments with the same source sentence that no person has edited or approved (nor changed
    since: never over anyone's work); they are listed in `repetitions`."""
    # Editors see every article today; checked all the same, so that no role change opens this route.
    check_article(runtime.db, job_id, principal)
    try:
        saved = review.edit_segment(
            runtime.db,
            job_id,
            segment_id,
            variant=body.variant,
            text=body.text,
            version=body.version,
            by=principal.name,
            rules=runtime.rules,
            qa=runtime.pipeline.settings.qa,
            propagate=body.propagate,
        )
    except review.VersionConflict as exc:
        return _conflict(exc)
    except KeyError:
        raise ApiError(422, "unknown_variant", f"this article has no {body.variant!r} target") from None
    except markup.MarkupNotAllowed as exc:
        raise ApiError(422, "markup_not_allowed", str(exc)) from None
    except (JobNotFound, review.SegmentNotFound, InvalidTransition) as exc:
        raise _review_errors(exc) from None
    return _saved_out(saved)


_UNLOCK_ERRORS = {
    **responses(*AUTH_ERRORS, 404, 422),
    409: {
        "model": ConflictResponse,
        "description": "Based on an old version (`version_conflict`: the body has the newer segment); the variant "
        "is not locked (`not_locked`); in an article without zh-Hans, no other variant was edited by hand to derive "
        "it from (`nothing_to_derive_from`); the article cannot be reviewed (`invalid_state`)",
    },
}


@router.post(
    "/{job_id}/segments/{segment_id}/variants/{variant}/unlock",
    response_model=SegmentSaved,
    responses=_UNLOCK_ERRORS,
    summary="Unlock a variant edited by hand: derive it again from zh-Hans (optimistic: name the version)",
)
def unlock_variant(
    job_id: JobId,
    segment_id: SegmentId,
    variant: Annotated[
        str,
        Path(
            description="the locked variant (one of the segment's `locked_variants`); one the article lacks is a "
            "422 unknown_variant",
            json_schema_extra={"enum": list(VARIANTS)},
        ),
    ],
    body: SegmentUnlockIn,
    runtime: RuntimeDep,
    principal: Editor,
) -> SegmentSaved | Response:
    """The variant is no longer kept as edited by hand: it is derived again from the segment's
    zh-Hans as an edit of zh-Hans derives it (the glossary's regional forms, QA run again), and
    follows later edits of zh-Hans. A new version, in the segment's history with the note
    `unlocked zh-TW: derived again from zh-Hans`; answered as an edit is (`repetitions` is always
    empty: a release is this segment's alone). In an article without zh-Hans, the variant is
    derived from the other variant edited by hand last; 409 `nothing_to_derive_from` where none
    was. 409 `not_locked` for a variant that is not locked (zh-Hans never is)."""
    check_article(runtime.db, job_id, principal)
    try:
        saved = review.release_variant(
            runtime.db,
            job_id,
            segment_id,
            variant=variant,
            version=body.version,
            by=principal.name,
            rules=runtime.rules,
            qa=runtime.pipeline.settings.qa,
        )
    except review.VersionConflict as exc:
        return _conflict(exc)
    except KeyError:
        raise ApiError(422, "unknown_variant", f"this article has no {variant!r} target") from None
    except review.NotReleasable as exc:
        raise ApiError(409, exc.code, str(exc)) from None
    except (JobNotFound, review.SegmentNotFound, InvalidTransition) as exc:
        raise _review_errors(exc) from None
    return _saved_out(saved)


@router.post(
    "/{job_id}/segments/{segment_id}/approve",
    response_model=SegmentSaved,
    responses=_SEGMENT_ERRORS,
    summary="Approve one segment",
)
def approve_segment(
    job_id: JobId, segment_id: SegmentId, body: SegmentApproveIn, runtime: RuntimeDep, principal: Approver
) -> SegmentSaved | Response:
    """Unless `propagate` is false, the article's other segments with the same source sentence that
    no person has edited or approved, and that read exactly as this one does, are approved with it
    (listed in `repetitions`)."""
    check_article(runtime.db, job_id, principal)
    try:
        saved = review.approve_segment(
            runtime.db,
            job_id,
            segment_id,
            version=body.version,
            by=principal.name,
            memory=runtime.memory,
            propagate=body.propagate,
        )
    except review.VersionConflict as exc:
        return _conflict(exc)
    except (JobNotFound, review.SegmentNotFound, InvalidTransition) as exc:
        raise _review_errors(exc) from None
    return _saved_out(saved)


@router.post(
    "/{job_id}/review",
    response_model=ArticleJob,
    responses=responses(*AUTH_ERRORS, 404, 409),
    summary="Start reviewing a translated article (records the reviewer)",
)
def start_review(job_id: JobId, runtime: RuntimeDep, principal: Editor) -> ArticleJob:
    """For translators and admins: you are recorded as the article's reviewer, and a translated
    article moves to `in_review`. An approved one is reopened so: its approval is cleared, and the
    segments only an approval override approved go back to the status they had. Answers the job
    without its document. 409 (`invalid_state`) while it is still being translated, or after it
    failed."""
    check_article(runtime.db, job_id, principal)
    try:
        review.start_review(runtime.db, job_id, principal.name)
    except (JobNotFound, InvalidTransition) as exc:
        raise _review_errors(exc) from None
    return _job_out(runtime.db, job_id, with_document=False)


@router.post(
    "/{job_id}/approve",
    response_model=ArticleJob,
    responses=responses(*AUTH_ERRORS, 404, 409, 422),
    summary="Approve the article (fires article.approved)",
)
def approve_article(
    job_id: JobId, runtime: RuntimeDep, principal: Approver, body: ArticleApproveIn | None = None
) -> ArticleJob:
    """Refused (409) while a segment needs review, unless `override` says why (recorded)."""
    check_article(runtime.db, job_id, principal)
    try:
        review.approve_article(
            runtime.db,
            job_id,
            by=principal.name,
            override=body.override if body else None,
            settings=runtime.settings,
            memory=runtime.memory,
        )
    except (JobNotFound, InvalidTransition, review.ApprovalBlocked) as exc:
        raise _review_errors(exc) from None
    runtime.dispatcher.wake()
    return _job_out(runtime.db, job_id, with_document=False)
