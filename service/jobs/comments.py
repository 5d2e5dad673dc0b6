"""Queries on segments: a translator asks the desk or the reporter about an ambiguous source
sentence ("is 'the base' Futenma or Henoko here?"), someone answers in the same thread, and the
query is resolved (or reopened). Each comment is one row of `segment_comments`, plain text, with its
own `resolved_at`.

A query is a thread: a segment's comments are one thread, open while any of them is unresolved.
Open queries are counted in threads (segments with an open one), not comments, wherever they are
counted: the approval block, the article's `open_queries`, the review app's totals and markers, the
webhook. Resolving a comment resolves its whole thread (every open comment of the segment, stamped
with the same person and time); reopening a comment reopens the thread (that comment is open again).
An answer therefore never needs resolving on its own.

Who may do what: anyone who may read the article may read its comments and add one (a cms key only
on its owner's articles, so that a desk editor working in the CMS can answer); translators and
admins, who edit the translation, resolve any thread and reopen any comment; anyone else resolves
only a thread it started (its first comment is theirs) and reopens only its own comments. An
article with open queries is approved only with an override reason (service.jobs.review). A
withdrawn article's comments go with it (service.jobs.articles).

A new revision of the article takes over the open threads of its sentences that stand unchanged
(`copy_open_threads`, when it is translated: service.jobs.revisions pairs the sentences), so that a
question asked on the old revision still blocks the new one's approval: each such thread copied
whole, every comment with its author, time and state, the first one's text headed by
`carried_note` naming the revision it came from. Resolved threads stay behind, and so do the
threads of sentences that changed (counted in the log). A copy is no new query: it sends no webhook.

An article with a callback URL gets an `article.query` webhook (service.jobs.deliveries), written in
the transaction of the change it reports, for each comment added (`opened`: the segment had no open
thread; `answered`: it had), each thread resolved and each comment reopened; doing what is already
done changes nothing and sends nothing. The CMS's own actions are sent too, marked by `by` and
`by_role`, so that one stream of events tells the whole thread and its `open_queries` stays current.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.auth import ROLE_PERMISSIONS, Permission
from service.config import Settings
from service.jobs.articles import Principal, get_job, hold_job
from service.jobs.deliveries import enqueue, links
from service.schemas import MAX_ROW_ID
from service.storage.db import Database
from service.storage.tables import Delivery, Job, SegmentComment, StoredSegment, utcnow

MAX_BODY = 2000  # characters: a question or an answer, not a document


class BadComment(ValueError):
    """The comment's text is blank or too long (a 422)."""


class SegmentNotFound(LookupError):
    def __init__(self, job_id: str, segment_id: str) -> None:
        super().__init__(f"article {job_id} has no segment {segment_id!r}")


class CommentNotFound(LookupError):
    def __init__(self, job_id: str, comment_id: str) -> None:
        super().__init__(f"article {job_id} has no comment {comment_id!r}")


def _comment_number(comment_id: str) -> int | None:
    """The comment id in a URL as a number, or None for text that names no comment (not a number,
    out of range of the id column, MAX_ROW_ID): answered as a comment that does not exist, after the
    article is checked, so that another owner's article is a 404 whatever follows its id."""
    if not comment_id.isascii() or not comment_id.isdecimal() or len(comment_id) > 19:
        return None
    number = int(comment_id)
    return number if 1 <= number <= MAX_ROW_ID else None


class NotYours(PermissionError):
    """Resolving another's thread, or reopening another's comment, without the role to (a 403)."""


def checked_body(body: str) -> str:
    """The comment's text with surrounding white space removed; BadComment when nothing is left or
    it is longer than MAX_BODY characters."""
    text = body.strip()
    if not text:
        raise BadComment("body: the comment is empty; write the question or the answer")
    if len(text) > MAX_BODY:
        raise BadComment(f"body: {len(text)} characters, more than the {MAX_BODY} allowed")
    return text


QUERY_EVENT = "article.query"


def add_comment(
    db: Database, job_id: str, segment_id: str, body: str, principal: Principal, *, settings: Settings
) -> SegmentComment:
    """A new, open comment by `principal` on one segment of the article, and its `article.query`
    webhook when the article has a callback. Raises JobNotFound (also for another owner's article
    to a cms key), SegmentNotFound, BadComment."""
    with db.session() as session:
        job = hold_job(session, job_id, principal.scope)
        text = checked_body(body)  # after the article: another owner's is a 404 whatever the body
        source = session.scalar(
            select(StoredSegment.source).where(StoredSegment.job_id == job_id, StoredSegment.id == segment_id)
        )
        if source is None:
            raise SegmentNotFound(job_id, segment_id)
        # An answer is a comment added to a thread with an open one; anything else asks a new query.
        # Only the webhook tells them apart, so without a callback the count is not made.
        action = "answered" if job.callback_url and _open_on_segment(session, job_id, segment_id) else "opened"
        row = SegmentComment(job_id=job_id, segment_id=segment_id, author=principal.name, body=text)
        session.add(row)
        job.updated_at = utcnow()  # a new comment is a change: a CMS polling the list sees it
        session.flush()
        _notify(session, job, row, action, principal, settings, source=source)
        return row


def carried_note(revision: str | None) -> str:
    """What heads the first comment of a thread copied from the previous revision of its article."""
    return f"[From revision {revision}] " if revision else "[From the previous revision] "


def copy_open_threads(
    session: Session,
    job_id: str,
    previous_id: str,
    onto: Mapping[str, str],
    *,
    unchanged: Collection[str],
    revision: str | None,
) -> tuple[int, int]:
    """In the caller's transaction (the one that writes the new revision's segments): copy the open
    threads of the previous revision (job `previous_id`, labelled `revision`) onto article `job_id`,
    each from the old segment that `onto` names for a new one (new id: old id) to that new one, whole
    (every comment with its author, time and state, so that the thread reads as it did; resolved
    threads are not copied), the first comment headed by `carried_note`. A thread copied there
    already (a resumed translation) is not copied again. No webhook: the CMS heard of the query when
    it was asked. Returns the threads copied, and the open threads of the previous revision left
    behind: those on segments not in `unchanged` (the old ids of the sentences that stand unchanged
    in the new revision)."""
    threads: dict[str, list[SegmentComment]] = {}
    for row in session.scalars(
        select(SegmentComment)
        .where(SegmentComment.job_id == previous_id)
        .order_by(SegmentComment.created_at, SegmentComment.id)
    ):
        threads.setdefault(row.segment_id, []).append(row)
    open_threads = {sid: rows for sid, rows in threads.items() if any(c.resolved_at is None for c in rows)}
    behind = sum(1 for sid in open_threads if sid not in unchanged)
    wanted = {new: old for new, old in onto.items() if old in open_threads}
    if not wanted:
        return 0, behind
    there = {
        (c.segment_id, c.author, c.created_at, c.body)
        for c in session.scalars(
            select(SegmentComment).where(SegmentComment.job_id == job_id, SegmentComment.segment_id.in_(list(wanted)))
        )
    }
    note = carried_note(revision)
    copied = 0
    for new_id, old_id in sorted(wanted.items()):
        copies = [
            SegmentComment(
                job_id=job_id,
                segment_id=new_id,
                author=c.author,
                body=note + c.body if k == 0 else c.body,
                created_at=c.created_at,
                resolved_at=c.resolved_at,
                resolved_by=c.resolved_by,
            )
            for k, c in enumerate(open_threads[old_id])
        ]
        first = copies[0]
        if (new_id, first.author, first.created_at, first.body) in there:
            continue
        session.add_all(copies)
        copied += 1
    return copied, behind


def list_comments(
    db: Database, job_id: str, scope: str | None, *, open_only: bool = False, segment_id: str | None = None
) -> list[SegmentComment]:
    """The article's comments, oldest first (a thread reads in order); only the open ones with
    `open_only`, only one segment's with `segment_id`. JobNotFound as get_job with `scope`."""
    with db.session() as session:
        get_job(session, job_id, scope)
        query = select(SegmentComment).where(SegmentComment.job_id == job_id)
        if open_only:
            query = query.where(SegmentComment.resolved_at.is_(None))
        if segment_id is not None:
            query = query.where(SegmentComment.segment_id == segment_id)
        return list(session.scalars(query.order_by(SegmentComment.created_at, SegmentComment.id)))


def set_resolved(
    db: Database, job_id: str, comment_id: str, principal: Principal, *, resolved: bool, settings: Settings
) -> SegmentComment:
    """Resolve the thread of a comment (every open comment on its segment, stamped with `principal`
    and one time), or, with `resolved` false, reopen the comment (the thread is open again), with
    the `article.query` webhook when the article has a callback. Doing what is already done (a
    thread with nothing open, an open comment) changes nothing and sends nothing: a resolved comment
    keeps who resolved it and when. Returns the comment named. Raises JobNotFound, CommentNotFound,
    NotYours (a role that does not edit translations, resolving a thread whose first comment is
    another's, or reopening another's comment)."""
    with db.session() as session:
        job = hold_job(session, job_id, principal.scope)
        number = _comment_number(comment_id)
        row = (
            session.scalar(select(SegmentComment).where(SegmentComment.job_id == job_id, SegmentComment.id == number))
            if number is not None
            else None
        )
        if row is None:
            raise CommentNotFound(job_id, comment_id)
        edits = Permission.SEGMENTS_EDIT in ROLE_PERMISSIONS[principal.role]
        action = None
        if resolved:
            thread = _thread(session, job_id, row.segment_id)
            still_open = [c for c in thread if c.resolved_at is None]
            # The thread acted on: its open comments, or, once resolved, those resolved with this one.
            acted = still_open or [c for c in thread if c.resolved_at == row.resolved_at] or [row]
            if not edits and acted[0].author != principal.name:
                raise NotYours(
                    f"your role ({principal.role.value}) may resolve only the threads it started; "
                    f"this one is {acted[0].author}'s"
                )
            if still_open:
                now = utcnow()
                for c in still_open:
                    c.resolved_at = now
                    c.resolved_by = principal.name
                action = "resolved"
        else:
            if not edits and row.author != principal.name:
                raise NotYours(
                    f"your role ({principal.role.value}) may reopen only the comments it wrote; "
                    f"this one is {row.author}'s"
                )
            if row.resolved_at is not None:
                row.resolved_at = None
                row.resolved_by = None
                action = "reopened"
        if action is not None:
            job.updated_at = utcnow()  # the open count changed: a CMS polling the list sees it
        session.flush()
        if action is not None:
            _notify(session, job, row, action, principal, settings)
        return row


def _thread(session: Session, job_id: str, segment_id: str) -> list[SegmentComment]:
    """A segment's comments, oldest first: its thread (a handful of rows)."""
    return list(
        session.scalars(
            select(SegmentComment)
            .where(SegmentComment.job_id == job_id, SegmentComment.segment_id == segment_id)
            .order_by(SegmentComment.created_at, SegmentComment.id)
        )
    )


def _open_on_segment(session: Session, job_id: str, segment_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SegmentComment)
            .where(
                SegmentComment.job_id == job_id,
                SegmentComment.segment_id == segment_id,
                SegmentComment.resolved_at.is_(None),
            )
        )
        or 0
    )


def _notify(
    session: Session,
    job: Job,
    row: SegmentComment,
    action: str,
    principal: Principal,
    settings: Settings,
    *,
    source: str | None = None,
) -> Delivery | None:
    """Queue `article.query` for `action` on comment `row` (flushed), in the caller's transaction;
    None when the article has no callback. The payload names the query and its segment, carries its
    text and the segment's source sentence (the CMS's own text: the desk sees what is asked about
    without fetching the article; never the translation), who did it (`by`, `by_role`: a CMS can
    tell its own actions) and the article's open queries after it."""
    if not job.callback_url:
        return None
    if source is None:  # None too for a segment a resumed translation no longer has
        source = session.scalar(
            select(StoredSegment.source).where(StoredSegment.job_id == job.id, StoredSegment.id == row.segment_id)
        )
    base = settings.public_url.rstrip("/")
    query = {
        "id": row.id,
        "action": action,
        "segment_id": row.segment_id,
        "source": source,
        "body": row.body,
        "author": row.author,
        "created_at": row.created_at.isoformat(),
        "open": row.resolved_at is None,
        "by": principal.name,
        "by_role": principal.role.value,
    }
    article = {
        "open_queries": open_count(session, job.id),
        "links": {**links(settings, job.id), "comments": f"{base}/v1/articles/{job.id}/comments"},
    }
    return enqueue(session, job, QUERY_EVENT, settings, article=article, extra={"query": query})


def open_count(session: Session, job_id: str) -> int:
    """How many of the article's queries are open: segments with an open thread (any comment not
    resolved), however many comments each has. Approval is refused while any is, unless overridden."""
    return int(
        session.scalar(
            select(func.count(func.distinct(SegmentComment.segment_id))).where(
                SegmentComment.job_id == job_id, SegmentComment.resolved_at.is_(None)
            )
        )
        or 0
    )


def open_by_job(session: Session, job_ids: list[str]) -> dict[str, int]:
    """How many queries (segments with an open thread) are open on each of these articles (those
    with none left out), in one grouped query whatever their number: the article list's column."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(SegmentComment.job_id, func.count(func.distinct(SegmentComment.segment_id)))
        .where(SegmentComment.job_id.in_(job_ids), SegmentComment.resolved_at.is_(None))
        .group_by(SegmentComment.job_id)
    ).all()
    return {job_id: int(n) for job_id, n in rows}


def open_by_segment(session: Session, job_id: str) -> dict[str, int]:
    """The segments with an open thread, each with 1 (its one open query; segments with none are
    left out): the workspace's markers."""
    rows = session.scalars(
        select(SegmentComment.segment_id)
        .where(SegmentComment.job_id == job_id, SegmentComment.resolved_at.is_(None))
        .distinct()
    ).all()
    return {segment_id: 1 for segment_id in rows}


def thread_marks(session: Session, job_id: str) -> dict[str, list[int]]:
    """Each segment's thread in brief, `[open, all, last id, open comments]` (segments without
    comments left out; `open` is 1 while the thread is open, else 0): what the open workspace polls
    (one grouped query), so that a query asked, answered, resolved or reopened elsewhere changes the
    state's ETag and the page reloads just that thread. The open comments are counted as well: an
    old comment reopened in a thread that is open already changes nothing else."""
    rows = session.execute(
        select(
            SegmentComment.segment_id,
            func.sum(case((SegmentComment.resolved_at.is_(None), 1), else_=0)),
            func.count(),
            func.max(SegmentComment.id),
        )
        .where(SegmentComment.job_id == job_id)
        .group_by(SegmentComment.segment_id)
    ).all()
    return {segment_id: [1 if n_open else 0, int(n), int(last), int(n_open)] for segment_id, n_open, n, last in rows}
