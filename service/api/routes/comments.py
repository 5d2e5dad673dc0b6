"""Queries on segments over HTTP (service.jobs.comments): list an article's comments, add one to a
segment, resolve a comment's thread or reopen a comment.

A query is a thread: a segment's comments, open while any of them is. A cms key reads and comments
on its owner's articles only (another's is a 404, as everywhere), resolves only the threads it
started and reopens only the comments it wrote (403 otherwise); translators and admins do all of it
on every article. Each change fires an `article.query` webhook when the article has a callback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, JobId, Requires, SegmentId
from service.auth import Permission
from service.jobs import comments
from service.jobs.articles import JobNotFound, Principal
from service.schemas import CommentIn, CommentOut
from service.storage.tables import SegmentComment

router = APIRouter(prefix="/v1/articles", tags=["comments"])

Reader = Annotated[Principal, Requires(Permission.ARTICLES_READ)]
Commenter = Annotated[Principal, Requires(Permission.COMMENTS_WRITE)]
CommentId = Annotated[str, Path(description="the comment's id, as `GET …/comments` lists it")]


def _out(row: SegmentComment) -> CommentOut:
    return CommentOut(
        id=row.id,
        segment_id=row.segment_id,
        author=row.author,
        body=row.body,
        created_at=row.created_at,
        open=row.resolved_at is None,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
    )


def _error(exc: Exception) -> Exception:
    if isinstance(exc, JobNotFound | comments.SegmentNotFound | comments.CommentNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, comments.NotYours):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, comments.BadComment):
        return ApiError(422, "invalid_comment", str(exc))
    return exc


@router.get(
    "/{job_id}/comments",
    response_model=list[CommentOut],
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="The article's queries on segments and their answers, oldest first",
    description="A cms key reads only its owner's articles (another's is a 404).",
)
def list_comments(
    job_id: JobId,
    runtime: RuntimeDep,
    principal: Reader,
    open: Annotated[bool, Query(description="only the comments not resolved")] = False,
) -> list[CommentOut]:
    try:
        rows = comments.list_comments(runtime.db, job_id, principal.scope, open_only=open)
    except JobNotFound as exc:
        raise _error(exc) from None
    return [_out(r) for r in rows]


@router.post(
    "/{job_id}/segments/{segment_id}/comments",
    status_code=201,
    response_model=CommentOut,
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="Ask a query about a segment, or answer one (a new open comment)",
    description="A segment's comments are one thread, open while any of them is; an article with open threads "
    "is approved only with an override reason. A cms key comments only on its owner's articles (another's is a "
    "404). An article with a callback gets an `article.query` webhook: action `opened` (the segment had no open "
    "thread: a new query) or `answered` (it had).",
)
def add_comment(
    job_id: JobId, segment_id: SegmentId, body: CommentIn, runtime: RuntimeDep, principal: Commenter
) -> CommentOut:
    try:
        row = comments.add_comment(runtime.db, job_id, segment_id, body.body, principal, settings=runtime.settings)
    except (JobNotFound, comments.SegmentNotFound, comments.BadComment) as exc:
        raise _error(exc) from None
    runtime.dispatcher.wake()
    return _out(row)


def _set_resolved(job_id: str, comment_id: str, runtime: RuntimeDep, principal: Principal, done: bool) -> CommentOut:
    try:
        row = comments.set_resolved(runtime.db, job_id, comment_id, principal, resolved=done, settings=runtime.settings)
    except (JobNotFound, comments.CommentNotFound, comments.NotYours) as exc:
        raise _error(exc) from None
    runtime.dispatcher.wake()
    return _out(row)


@router.post(
    "/{job_id}/comments/{comment_id}/resolve",
    response_model=CommentOut,
    responses=responses(*AUTH_ERRORS, 404),
    summary="Resolve the comment's thread (the query is answered); resolving a resolved thread changes nothing",
    description="Resolves the whole thread the comment is in: every open comment on its segment, the question "
    "and its answers, is marked resolved by you at one time, and the article has one open query fewer. Returns "
    "the comment named. Translators and admins resolve any thread; a cms key only a thread it started (its first "
    "open comment is the key's own; 403 otherwise). An article with a callback gets an `article.query` webhook, "
    "action `resolved` (none when nothing in the thread was open).",
)
def resolve_comment(job_id: JobId, comment_id: CommentId, runtime: RuntimeDep, principal: Commenter) -> CommentOut:
    return _set_resolved(job_id, comment_id, runtime, principal, True)


@router.post(
    "/{job_id}/comments/{comment_id}/reopen",
    response_model=CommentOut,
    responses=responses(*AUTH_ERRORS, 404),
    summary="Reopen a resolved comment, and so its thread; reopening an open one changes nothing",
    description="The comment is open again, and with it its segment's thread (an open query, blocking approval "
    "until resolved); the thread's other comments stay as they are. Translators and admins reopen any comment; "
    "a cms key only those it wrote (403 otherwise). An article with a callback gets an `article.query` webhook, "
    "action `reopened` (none when it was open).",
)
def reopen_comment(job_id: JobId, comment_id: CommentId, runtime: RuntimeDep, principal: Commenter) -> CommentOut:
    return _set_resolved(job_id, comment_id, runtime, principal, False)
