"""The review app's pages and the small JSON API its script calls. Both act through the same
service functions as /v1 (submit, edit, approve), with the signed-in user's API key role.

Pages are excluded from the OpenAPI document: they are not an API for other programs.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from glossary.terms import VARIANTS
from service import concordance, exports
from service import memory as upkeep
from service.api.deps import Runtime
from service.api.errors import _describe, malformed_json
from service.api.security import JobId, SegmentId
from service.auth import Permission, key_lookup
from service.documents import AlignedSegment, Article, Inline, SourceFormat, in_format
from service.formats import FORMAT_BY_SUFFIX
from service.glossaries import UnknownGlossaryError
from service.jobs import comments, files, markup, review
from service.jobs.articles import (
    DONE_TRANSLATING,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    JobStatus,
    Submission,
    TooManyJobs,
    get_job,
    stored_document,
    submit,
)
from service.jobs.codec import segment_from_row
from service.keys import authenticate
from service.memory import SEARCH_LIMIT, SEARCH_MAX
from service.schemas import (
    MAX_SEGMENT_TEXT,
    EntryId,
    Incoming,
    SegmentState,
    memory_entry_out,
    segment_out,
    stored_segment_out,
    text_only,
)
from service.storage.db import contains_in_any_case
from service.storage.tables import Job, SegmentComment, StoredArticle, StoredSegment
from service.translate import InputError
from service.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    BadCsrf,
    Forbidden,
    NotSignedIn,
    WebUser,
    check_csrf,
    current_user,
    sign_in,
    sign_out,
)
from service.webhooks import CallbackRefused

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
# What a block is, in the translator's words (the kind's own name where it says enough).
templates.env.globals["kind_labels"] = {
    "list_item": "list item",
    "image_alt": "image description (alt text)",
    "image_title": "image title",
    "meta": "page description (search results, shared links, structured data)",
    "label": "label (screen readers, abbreviation's expansion)",
}
router = APIRouter(prefix="/review", include_in_schema=False)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _user(request: Request, permission: Permission | None = None) -> WebUser:
    runtime = _runtime(request)
    user = await current_user(request, runtime.db, auth_disabled=runtime.settings.auth_disabled)
    if permission is not None and not user.may(permission):
        raise Forbidden(f"your role ({user.principal.role.value}) may not {permission.value}")
    return user


def _page(request: Request, name: str, user: WebUser | None, code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"user": user, "csrf_field": CSRF_FIELD, **context}, status_code=code
    )


TAG_CLASS = "tag"


def _span(cls: str, title: str, text: str) -> Markup:
    if cls == TAG_CLASS:
        return Markup('<span class="tag">{}</span>').format(text)
    return Markup('<mark class="{}" title="{}">{}</mark>').format(cls, title, text)


def marked(text: str, spans: list[tuple[int, int, str, str]]) -> Markup:
    """`text` escaped, with each (start, end, css class, title) span in a <mark> (a "tag" span,
    inline markup the source has, in a <span class="tag">)."""
    out, pos = [], 0
    for start, end, cls, title in sorted(spans):
        if start < pos or end > len(text) or start >= end:
            continue  # overlapping or stale spans are left unmarked rather than mangled
        out.append(escape(text[pos:start]))
        out.append(_span(cls, title, text[start:end]))
        pos = end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def tag_spans(text: str, markup: list[str]) -> list[tuple[int, int, str, str]]:
    """Where the segment's inline markup strings (its source's tags, link syntax) are in a target,
    as "tag" spans: the translator sees which markup the translation keeps, as in the source."""
    if not markup or not text:
        return []
    pattern = re.compile("|".join(re.escape(m) for m in sorted(markup, key=len, reverse=True)))
    return [(m.start(), m.end(), TAG_CLASS, "") for m in pattern.finditer(text)]


def source_markup(
    text: str, fmt: SourceFormat, inlines: list[tuple[int, int, Inline]], terms: list[tuple[int, int, str, str]]
) -> Markup:
    """A segment's source as its target is written: the text escaped for the article's format
    (`&amp;` in HTML, backslashes in Markdown) with the source's inline markup where it is, each
    markup string in a <span class="tag"> and glossary terms in a <mark>. `inlines` are (start,
    end, inline) within the segment's text; `terms` (start, end, css class, title) spans of it."""
    n = len(text)
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    verbatim: list[tuple[int, int]] = []
    for start, end, inline in sorted(inlines, key=lambda x: (x[0], -x[1])):
        start, end = min(max(start, 0), n), min(max(end, start, 0), n)
        if start == end:
            opens.setdefault(start, []).append(inline.open + inline.close)
            continue
        if inline.open:
            opens.setdefault(start, []).append(inline.open)
        if inline.close:
            closes.setdefault(end, []).insert(0, inline.close)
        if inline.verbatim and fmt is SourceFormat.MARKDOWN:
            verbatim.append((start, end))
    spans = [(a, b, cls, title) for a, b, cls, title in sorted(terms) if 0 <= a < b <= n]
    cuts = sorted({0, n, *opens, *closes, *(x for a, b, _, _ in spans for x in (a, b))})
    out: list[Markup] = []
    for index, pos in enumerate(cuts):
        out += [_span(TAG_CLASS, "", m) for m in closes.get(pos, []) + opens.get(pos, []) if m]
        if index + 1 == len(cuts):
            break
        piece = text[pos : cuts[index + 1]]
        shown = piece if any(a <= pos < b for a, b in verbatim) else in_format(piece, fmt)
        term = next((t for t in spans if t[0] <= pos < t[1]), None)
        out.append(_span(term[2], term[3], shown) if term else escape(shown))
    return Markup("").join(out)


# --- sign in -------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/review") -> HTMLResponse:
    request.session.setdefault("login_csrf", secrets.token_urlsafe(16))
    return _page(request, "login.html", None, next=next, login_csrf=request.session["login_csrf"])


@router.post("/login", response_model=None)
async def login(
    request: Request,
    key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    # Fields missing (a form cut short, or not this page's) get the login page saying so, not JSON.
    runtime = _runtime(request)
    if not csrf_token or csrf_token != request.session.get("login_csrf"):
        return _page(
            request,
            "login.html",
            None,
            400,
            next=next,
            error="The form expired; try again.",
            # A fresh token where the session had none (its cookie lost), so that the next try works.
            login_csrf=request.session.setdefault("login_csrf", secrets.token_urlsafe(16)),
        )
    lookup = key_lookup(key.strip())
    row = await run_in_threadpool(authenticate, runtime.db, lookup, key.strip()) if lookup else None
    if row is None:
        return _page(
            request,
            "login.html",
            None,
            401,
            next=next,
            error="That key is not valid (mistyped, or revoked).",
            login_csrf=request.session["login_csrf"],
        )
    await sign_in(request, runtime.db, row, max_age_s=runtime.settings.session_max_age_s)
    target = next if next.startswith("/review") else "/review"
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    user = await _user(request)
    check_csrf(user, csrf_token)
    await sign_out(request, _runtime(request).db)
    return RedirectResponse("/review/login", status_code=303)


# --- the article list and submission ------------------------------------------------------------


def _flag_counts(runtime: Runtime, jobs: list[Job]) -> dict[str, int]:
    """Each job's number of flags: every flag of every segment (a segment with two flags counts
    two). Summed by the database in one grouped query: loading 500 articles' flags into Python took
    most of the list page's time. `json_array_length` is SQLite's and PostgreSQL's (the column is
    JSON, not JSONB, there)."""
    counts: dict[str, int] = {j.id: 0 for j in jobs}
    if not counts:
        return counts
    flags = func.sum(func.json_array_length(StoredSegment.flags))
    with runtime.db.session() as session:
        rows = session.execute(
            select(StoredSegment.job_id, flags)
            .where(StoredSegment.job_id.in_(list(counts)))
            .group_by(StoredSegment.job_id)
        )
        counts.update({job_id: int(n or 0) for job_id, n in rows})
    return counts


LIST_LIMIT = 500


def find_jobs(
    session: Session, *, statuses: list[JobStatus], q: str, limit: int, scope: str | None = None
) -> list[tuple[Job, str]]:
    """The newest submitted jobs (each with its article's title) whose title or external id
    contains `q` (in any case, letters beyond ASCII included: `contains_in_any_case`), or whose id
    starts with it; `q` is plain text (`%` and `_` are no wildcards). With `scope`
    (`Principal.scope`: a cms key's), only that owner's. A `q` holding a NUL finds nothing: no
    stored text has one (and PostgreSQL could not look for it)."""
    if "\0" in q:
        return []
    query = select(Job, StoredArticle.title).join(StoredArticle, StoredArticle.id == Job.article_id)
    if scope is not None:
        query = query.where(Job.owner == scope)
    if statuses:
        query = query.where(Job.status.in_([s.value for s in statuses]))
    if q:
        dialect = session.get_bind().dialect.name
        query = query.where(
            or_(
                contains_in_any_case(StoredArticle.title, q, dialect),
                contains_in_any_case(Job.external_id, q, dialect),
                Job.id.startswith(q.lower(), autoescape=True),
            )
        )
    # By submission, not by last change: an article translating, or one a translator edits, keeps
    # its place while people read the list.
    rows = session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit))
    return [(job, title or "") for job, title in rows]


@router.get("", response_class=HTMLResponse)
async def article_list(request: Request, status: str = "", q: str = "") -> HTMLResponse:
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)
    statuses = [JobStatus(status)] if status in {s.value for s in JobStatus} else []
    q = q.strip()[:200]

    def load() -> tuple[list[tuple[Job, str]], dict[str, int], dict[str, int]]:
        with runtime.db.session() as session:
            found = find_jobs(session, statuses=statuses, q=q, limit=LIST_LIMIT, scope=user.principal.scope)
            # Open queries on the listed articles' segments: one grouped query, not one per article.
            queries = comments.open_by_job(session, [job.id for job, _ in found])
        return found, _flag_counts(runtime, [job for job, _ in found]), queries

    found, flags, queries = await run_in_threadpool(load)
    return _page(
        request,
        "list.html",
        user,
        jobs=found,
        flags=flags,
        queries=queries,
        status=status,
        q=q,
        limit=LIST_LIMIT,
        statuses=[s.value for s in JobStatus],
    )


@router.get("/new", response_class=HTMLResponse)
async def new_page(request: Request) -> HTMLResponse:
    user = await _user(request, Permission.ARTICLES_SUBMIT)
    runtime = _runtime(request)
    return _page(
        request,
        "new.html",
        user,
        variants=VARIANTS,
        defaults=runtime.settings.default_targets,
        glossaries=await run_in_threadpool(runtime.glossaries.names),
        default_glossaries=runtime.settings.default_glossaries,
        form={},
    )


@router.post("/new", response_model=None)
async def new_article(request: Request) -> Response:
    user = await _user(request, Permission.ARTICLES_SUBMIT)
    runtime = _runtime(request)
    form = await request.form()
    try:
        check_csrf(user, str(form.get(CSRF_FIELD, "")))
    except BadCsrf as exc:
        if exc.missing:
            raise  # a form cut short: what arrived of it is no text to offer again
        # A form from a page loaded before the editor last signed in: nothing is submitted, and what
        # they typed comes back in the form, with this session's token, to be sent again.
        return await _new_error(
            request,
            user,
            form,
            "Nothing was submitted: the form was older than your last sign-in. Your text is kept below; "
            "check it and submit it again.",
            code=403,
        )
    body = str(form.get("body", ""))
    fmt = str(form.get("format", "") or "")
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read()
        try:
            body = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return await _new_error(request, user, form, "The file is not UTF-8 text.")
        if not fmt or fmt == "auto":
            fmt = FORMAT_BY_SUFFIX.get(Path(upload.filename).suffix.lower(), "text")
    if fmt not in {f.value for f in SourceFormat}:
        fmt = "text"
    title, byline = str(form.get("title", "")), str(form.get("byline", ""))
    # Text only, as /v1 takes it: no NUL, no lone surrogate (a file could hold one, a form field too).
    what = "The file" if isinstance(upload, UploadFile) and upload.filename else "The text"
    for label, value in (("The title", title), ("The byline", byline), (what, body)):
        try:
            text_only(value)
        except ValueError as exc:
            return await _new_error(request, user, form, f"{label} {exc}.")
    sub = Submission(
        article=Article(body, SourceFormat(fmt), title, "", byline),
        targets=[str(v) for v in form.getlist("targets")] or None,
        glossaries=[str(g) for g in form.getlist("glossaries")],
    )
    try:
        job, _ = await run_in_threadpool(
            lambda: submit(
                runtime.db, sub, principal=user.principal, settings=runtime.settings, glossaries=runtime.glossaries
            )
        )
    except (InputError, UnknownGlossaryError, CallbackRefused, IdempotencyConflict, TooManyJobs) as exc:
        return await _new_error(request, user, form, str(exc))
    if runtime.runners is not None:
        runtime.runners.notify()
    return RedirectResponse(f"/review/articles/{job.id}", status_code=303)


async def _new_error(request: Request, user: WebUser, form: Any, message: str, code: int = 422) -> HTMLResponse:
    """The form again, saying what is wrong, with what the editor typed and chose in it (a browser
    cannot be given a file back: the message says to choose it again)."""
    runtime = _runtime(request)
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        message += f" The file you chose ({upload.filename}) is not kept: choose it (or another) again."
    return _page(
        request,
        "new.html",
        user,
        code,
        error=message,
        variants=VARIANTS,
        defaults=[str(v) for v in form.getlist("targets")] or runtime.settings.default_targets,
        glossaries=await run_in_threadpool(runtime.glossaries.names),
        default_glossaries=[str(g) for g in form.getlist("glossaries")],
        form={k: str(form.get(k, "")) for k in ("title", "byline", "body", "format")},
    )


# --- the article view ---------------------------------------------------------------------------


def _term_titles(job: Job) -> dict[str, str]:
    titles = {}
    for t in job.glossary_terms:
        forms = " · ".join(f"{v} {form}" for v, form in t["targets"].items())
        titles[t["id"]] = " — ".join(x for x in (t.get("note", ""), forms) if x) or t["id"]
    return titles


def _row(
    seg: AlignedSegment,
    state: SegmentState,
    variant: str,
    titles: dict[str, str],
    fmt: SourceFormat,
    inlines: list[tuple[int, int, Inline]],
) -> dict[str, Any]:
    source_spans = [(t.source_start, t.source_end, "term", titles.get(t.term_id, t.term_id)) for t in seg.terms]
    target = seg.targets.get(variant, "")
    markup = sorted({m for _, _, i in inlines for m in (i.open, i.close, i.open + i.close) if m})
    target_spans = tag_spans(target, markup)
    for t in seg.terms:
        span = t.targets.get(variant)
        if span is not None:
            target_spans.append((span.start, span.end, "term", titles.get(t.term_id, t.term_id)))
    return {
        "seg": seg,
        "state": state,
        "source_html": source_markup(seg.source, fmt, inlines, source_spans),
        "target_html": marked(target, target_spans),
        "target": target,
        "markup": markup,
        "flags": [f for f in seg.flags if f.variant in (None, variant)],
        "data": segment_out(seg, state).model_dump(mode="json"),
    }


def _previous_sentences(session: Session, job: Job) -> tuple[Job, set[str]] | None:
    """The previous revision's job and its sentences (white space normalised); None for a job that
    is no revision, or whose previous revision is gone (withdrawn)."""
    previous = session.get(Job, job.previous_job_id) if job.previous_job_id else None
    if previous is None:
        return None
    sources = session.scalars(select(StoredSegment.source).where(StoredSegment.job_id == previous.id))
    return previous, {" ".join(source.split()) for source in sources}


@router.get("/articles/{job_id}", response_class=HTMLResponse)
async def article_view(
    request: Request, job_id: str, variant: str = "", flagged: bool = False, changed: bool = False
) -> HTMLResponse:
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)

    def load() -> tuple[Job, str, Any, tuple[Job, set[str]] | None, list[SegmentComment]]:
        with runtime.db.session() as session:
            job = get_job(session, job_id, user.principal.scope)
            article = session.get(StoredArticle, job.article_id)
            title = article.title if article else ""
            stored = stored_document(session, job)
            previous = _previous_sentences(session, job)
        return job, title, stored, previous, comments.list_comments(runtime.db, job_id, user.principal.scope)

    try:
        job, title, stored, previous, thread = await run_in_threadpool(load)
    except JobNotFound:
        return _no_article(request, user, job_id)
    if stored is None:
        return _page(request, "progress.html", user, job=job, title=title)
    doc, states = stored
    variant = variant if variant in doc.variants else doc.variants[0]
    titles = _term_titles(job)
    # Each segment's inline markup, within its text: shown in the source as the target shows it.
    inlines = {
        s.id: [(at - start, at - start + i.end - i.start, i) for at, i in placed]
        for s, (start, placed) in zip(
            doc.segments, markup.placed_inlines({b.id: b for b in doc.blocks}, doc.segments), strict=True
        )
    }
    # A revision: its sentences that the previous revision does not have (corrected or added).
    new_here = {s.id for s in doc.segments if " ".join(s.source.split()) not in previous[1]} if previous else set()
    changed = changed and previous is not None
    blocks = []
    for block in doc.blocks:
        rows = [
            _row(s, SegmentState(*states[s.id]), variant, titles, doc.format, inlines[s.id])
            for s in doc.segments
            if s.block_id == block.id
        ]
        for r in rows:
            r["changed"] = r["seg"].id in new_here
        if flagged:
            rows = [r for r in rows if r["flags"]]
        if changed:
            rows = [r for r in rows if r["changed"]]
        if rows:
            blocks.append({"block": block, "rows": rows})
    open_threads = comments_open(thread)  # a segment's thread is one query, however many comments

    return _page(
        request,
        "article.html",
        user,
        job=job,
        title=title,
        doc=doc,
        blocks=blocks,
        variant=variant,
        flagged=flagged,
        changed=changed,
        previous=previous[0] if previous else None,
        changed_count=len(new_here),
        can_edit=user.may(Permission.SEGMENTS_EDIT),
        # What a locked variant's button derives it from again (service.jobs.review.release_variant).
        derive_from="zh-Hans" if "zh-Hans" in doc.variants else "the last edit",
        can_approve=user.may(Permission.ARTICLES_APPROVE),
        can_search=user.may(Permission.MEMORY_READ),
        # Admins correct and delete memory entries from the Concordance box.
        can_keep_memory=user.may(Permission.MEMORY_EDIT),
        # Queries on segments: every comment, for the script to show in each segment's thread.
        can_comment=user.may(Permission.COMMENTS_WRITE),
        can_resolve_any=user.may(Permission.SEGMENTS_EDIT),
        comments=[_comment_json(c) for c in thread],
        open_queries=len(open_threads),
        open_by_segment=open_threads,
        pending=sum(1 for s in doc.segments if s.status == "needs_review"),
        titles=titles,
        notes={t["id"]: t.get("note", "") for t in job.glossary_terms},
        message=_pop_flash(request),
    )


def _shown_id(job_id: str) -> str:
    """An id from the URL as a page may show it: as typed, unless it holds what no page should
    print (a NUL, a control or direction character): then quoted with escapes, as the JSON API's
    messages quote it."""
    return job_id if job_id.isprintable() else repr(job_id)


def _no_article(request: Request, user: WebUser | None, job_id: str) -> HTMLResponse:
    """The 404 page of an article that is not there (never was, withdrawn, another owner's, or an
    id no article could have): the answer itself, for a page and for a form posted to one, never a
    redirect to it (a browser would show the form's notice on no page, and retry nothing)."""
    message = f"There is no article {_shown_id(job_id)}."
    return _page(request, "message.html", user, 404, title="Not found", message=message)


def _pop_flash(request: Request) -> str:
    """The notice a form post left for the page it redirected to (in the signed session, never
    the URL: a link cannot make the page say anything)."""
    flash = request.session.pop("flash", "")
    return flash if isinstance(flash, str) else ""


@router.post("/articles/{job_id}/approve", response_model=None)
async def approve_article(request: Request, job_id: str) -> Response:
    user = await _user(request, Permission.ARTICLES_APPROVE)
    runtime = _runtime(request)
    form = await request.form()
    check_csrf(user, str(form.get(CSRF_FIELD, "")))
    override = str(form.get("override", "")).strip() or None
    try:
        await run_in_threadpool(
            lambda: review.approve_article(
                runtime.db,
                job_id,
                by=user.principal.name,
                override=override,
                settings=runtime.settings,
                memory=runtime.memory,
            )
        )
        runtime.dispatcher.wake()
        message = "Article approved."
    except JobNotFound:
        return _no_article(request, user, job_id)
    except (InvalidTransition, review.ApprovalBlocked) as exc:
        message = str(exc)
    request.session["flash"] = message
    return RedirectResponse(f"/review/articles/{quote(job_id)}", status_code=303)


@router.post("/articles/{job_id}/reopen", response_model=None)
async def reopen_article(request: Request, job_id: str) -> Response:
    """The article's "Reopen for review" (an approved article) or "Start review" (a translated
    one): POST /v1/articles/{id}/review's `review.start_review`, for those who may edit segments.
    Reopening clears the approval, and the segments that only its override approved need review
    again; the page it redirects to shows them so."""
    user = await _user(request, Permission.SEGMENTS_EDIT)
    runtime = _runtime(request)
    form = await request.form()
    check_csrf(user, str(form.get(CSRF_FIELD, "")))

    def run() -> str:
        with runtime.db.session() as session:
            was = get_job(session, job_id, user.principal.scope).status
        review.start_review(runtime.db, job_id, user.principal.name)
        return "Reopened for review." if was == JobStatus.APPROVED.value else "You are reviewing this article."

    try:
        message = await run_in_threadpool(run)
    except JobNotFound:
        return _no_article(request, user, job_id)
    except InvalidTransition as exc:
        message = str(exc)
    request.session["flash"] = message
    return RedirectResponse(f"/review/articles/{quote(job_id)}", status_code=303)


# --- the script's JSON API (session cookie + CSRF header) ----------------------------------------


class _Edit(Incoming):
    model_config = ConfigDict(extra="forbid")
    variant: str
    text: str = Field(max_length=MAX_SEGMENT_TEXT)  # as /v1's SegmentEditIn
    version: int
    propagate: bool = True  # the same edit of the sentence's untouched repetitions, as /v1


class _Approve(Incoming):
    model_config = ConfigDict(extra="forbid")
    version: int
    propagate: bool = True


class _Unlock(Incoming):
    model_config = ConfigDict(extra="forbid")
    version: int


def _json_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _seg_json(row: StoredSegment) -> dict[str, Any]:
    return stored_segment_out(segment_from_row(row), row.version, row.locked_variants).model_dump(mode="json")


def _saved_json(saved: review.Saved) -> dict[str, Any]:
    """The saved segment, with the repetitions changed with it (the page updates them in place)."""
    return {**_seg_json(saved.row), "repetitions": [_seg_json(r) for r in saved.repetitions]}


@router.get("/api/session")
async def session_info(request: Request) -> JSONResponse:
    """This session's CSRF token, for a page whose token went stale (the translator signed in
    again in another tab): the script asks, and sends its unsaved text again. Readable by the
    app's own pages only (same origin; no CORS)."""
    user = await _user(request)
    return JSONResponse({"csrf": user.csrf, "user": user.principal.name})


@router.get("/api/articles/{job_id}/progress")
async def progress(request: Request, job_id: JobId) -> JSONResponse:
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)

    def load() -> Job:
        with runtime.db.session() as session:
            return get_job(session, job_id, user.principal.scope)

    try:
        job = await run_in_threadpool(load)
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    ready = JobStatus(job.status) in DONE_TRANSLATING
    return JSONResponse(
        {
            "status": job.status,
            "done": job.segments_done,
            "total": job.segments_total,
            "ready": ready,
            "failure": job.failure,
        }
    )


# The bilingual page's own stylesheet is inline, which the app's CSP refuses; it runs no script.
_EXPORT_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@router.get("/api/articles/{job_id}/export")
async def export_article(
    request: Request,
    job_id: JobId,
    format: exports.ExportFormat = exports.ExportFormat.JSON,
    variant: str | None = None,
) -> Response:
    """The article as a file, for the page's Export links: GET /v1/articles/{id}/export's file
    (`service.exports`), its media type and download name, and its errors (JSON, with the same
    codes), with the session's role and scope: a cms user's own articles only."""
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)
    try:
        found = await run_in_threadpool(
            lambda: exports.export(runtime.db, job_id, format, variant, scope=user.principal.scope)
        )
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    except files.NotTranslatedYet as exc:
        return _json_error(409, "invalid_state", str(exc))
    except files.UnknownVariant as exc:
        return _json_error(422, "unknown_variant", str(exc), valid=exc.valid)
    headers = {}
    if disposition := found.content_disposition():
        headers["Content-Disposition"] = disposition
    if format is exports.ExportFormat.HTML:
        headers["Content-Security-Policy"] = _EXPORT_PAGE_CSP
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.get("/api/articles/{job_id}/segments/{segment_id}/suggestions")
async def suggestions(request: Request, job_id: JobId, segment_id: SegmentId, variant: str = "") -> JSONResponse:
    """Translation memory suggestions for the segment a translator opened, best first. Asked for one
    segment at a time, so a page loads without scanning the memory for every segment it shows."""
    await _user(request, Permission.MEMORY_READ)
    runtime = _runtime(request)
    try:
        found = await run_in_threadpool(
            files.suggestions, runtime.db, runtime.memory, job_id, segment_id, variant or None
        )
    except (JobNotFound, review.SegmentNotFound) as exc:
        return _json_error(404, "not_found", str(exc))
    except files.NotTranslatedYet as exc:
        return _json_error(409, "invalid_state", str(exc))
    except files.UnknownVariant as exc:
        return _json_error(422, "unknown_variant", str(exc))
    return JSONResponse(
        [{"score": x.score, "source": x.source, "target": x.target, "diff": [list(d) for d in x.diff]} for x in found]
    )


@router.get("/api/memory/search")
async def concordance_search(
    request: Request, q: str = "", variant: str = "", article: str = "", limit: int = SEARCH_LIMIT
) -> JSONResponse:
    """Concordance for the box on the article page: how a word or phrase was translated before, in
    the memory (of the page's variant) and in the article's glossaries, as /v1/memory/search
    answers. For those who may read the memory (it holds every owner's approved sentences)."""
    user = await _user(request, Permission.MEMORY_READ)
    runtime = _runtime(request)
    try:
        concordance.check(q, variant or None)
    except concordance.BadQuery as exc:
        extra = {"valid": exc.valid} if exc.valid else {}
        return _json_error(422, exc.code, str(exc), **extra)
    if not 1 <= limit <= SEARCH_MAX:
        return _json_error(422, "invalid_request", f"limit: 1 to {SEARCH_MAX}, not {limit}")
    if "\0" in article:
        return _json_error(422, "invalid_request", "article: holds a NUL (U+0000), which no article id has")

    def run() -> concordance.Found:
        names = concordance.article_glossaries(runtime.db, article, user.principal.scope) if article else None
        return concordance.search(
            runtime.memory,
            runtime.glossaries,
            runtime.rules,
            q,
            variant=variant or None,
            limit=limit,
            glossary_names=names,
        )

    try:
        found = await run_in_threadpool(run)
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    return JSONResponse(concordance.to_response(found, q, variant or None).model_dump(mode="json"))


class _Correction(Incoming):
    model_config = ConfigDict(extra="forbid")
    target: str  # checked by service.memory.corrected_target, as /v1 does


@router.patch("/api/memory/entries/{entry_id}")
async def correct_memory_entry(request: Request, entry_id: EntryId) -> JSONResponse:
    """An admin corrects a memory entry's translation from the Concordance box, as PATCH
    /v1/memory/entries/{id} does (the same checks and log line: `service.memory.correct_entry`);
    answers the entry as /v1 does."""
    user = await _user(request, Permission.MEMORY_EDIT)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        body: _Correction = await _json_body(request, _Correction)
        entry = await run_in_threadpool(
            upkeep.correct_entry, runtime.memory, entry_id, body.target, by=user.principal.name
        )
    except _MalformedJson as exc:
        return _json_error(400, "malformed_json", str(exc))
    except ValueError as exc:  # a body that is no correction, or a BadCorrection
        return _json_error(422, "invalid_request", str(exc))
    except upkeep.EntryNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    return JSONResponse(memory_entry_out(entry).model_dump(mode="json"))


@router.delete("/api/memory/entries/{entry_id}")
async def delete_memory_entry(request: Request, entry_id: EntryId) -> JSONResponse:
    """An admin deletes a memory entry from the Concordance box, as DELETE /v1/memory/entries/{id}
    does (`service.memory.delete_entry`); answers the deleted entry."""
    user = await _user(request, Permission.MEMORY_EDIT)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        entry = await run_in_threadpool(upkeep.delete_entry, runtime.memory, entry_id, by=user.principal.name)
    except upkeep.EntryNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    return JSONResponse(memory_entry_out(entry).model_dump(mode="json"))


class _MalformedJson(ValueError):
    """A body that is no JSON: a 400 `malformed_json`, as /v1 answers it (a ValueError: a route that
    does not tell it apart answers a 422)."""


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`: parsed as /v1 parses one (Python's JSON reader, which takes a `\\ud800`
    escape, for `Incoming` to refuse with its own message), then validated. _MalformedJson for no
    JSON, ValueError saying what is wrong as /v1 says it (`errors._describe`) for an invalid body."""
    try:
        data = json.loads(await request.body())
    except json.JSONDecodeError as exc:
        # What FastAPI reports for /v1, for /v1's message.
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "ctx": {"error": exc.msg},
        }
        raise _MalformedJson(malformed_json([error])) from None
    except UnicodeDecodeError:
        raise _MalformedJson("the request body is not valid JSON: it is not UTF-8 text") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_describe([dict(e) for e in exc.errors()])) from None


# What refuses a save of the segment routes below (an edit, an approval, an unlock), each said as
# /v1 says it; a route catches what is its own alone (markup, an unknown variant) before these.
_SAVE_ERRORS = (
    review.VersionConflict,
    _MalformedJson,
    ValueError,
    JobNotFound,
    review.SegmentNotFound,
    InvalidTransition,
)


def _save_refused(exc: Exception) -> JSONResponse:
    """The JSON error for one of `_SAVE_ERRORS`."""
    if isinstance(exc, review.VersionConflict):
        return _json_error(409, "version_conflict", str(exc), current=_seg_json(exc.current))
    if isinstance(exc, _MalformedJson):
        return _json_error(400, "malformed_json", str(exc))
    if isinstance(exc, ValueError):
        return _json_error(422, "invalid_request", str(exc))
    if isinstance(exc, LookupError):  # JobNotFound, SegmentNotFound
        return _json_error(404, "not_found", str(exc))
    return _json_error(409, "invalid_state", str(exc))  # InvalidTransition


@router.patch("/api/articles/{job_id}/segments/{segment_id}")
async def edit(request: Request, job_id: JobId, segment_id: SegmentId) -> JSONResponse:
    user = await _user(request, Permission.SEGMENTS_EDIT)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        body: _Edit = await _json_body(request, _Edit)
        saved = await run_in_threadpool(
            lambda: review.edit_segment(
                runtime.db,
                job_id,
                segment_id,
                variant=body.variant,
                text=body.text,
                version=body.version,
                by=user.principal.name,
                rules=runtime.rules,
                qa=runtime.pipeline.settings.qa,
                propagate=body.propagate,
            )
        )
    except markup.MarkupNotAllowed as exc:
        return _json_error(422, "markup_not_allowed", str(exc))  # as /v1 says it
    except KeyError as exc:
        return _json_error(422, "invalid_request", str(exc))
    except _SAVE_ERRORS as exc:
        return _save_refused(exc)
    return JSONResponse(_saved_json(saved))


@router.post("/api/articles/{job_id}/segments/{segment_id}/approve")
async def approve_segment(request: Request, job_id: JobId, segment_id: SegmentId) -> JSONResponse:
    user = await _user(request, Permission.ARTICLES_APPROVE)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        body: _Approve = await _json_body(request, _Approve)
        saved = await run_in_threadpool(
            lambda: review.approve_segment(
                runtime.db,
                job_id,
                segment_id,
                version=body.version,
                by=user.principal.name,
                memory=runtime.memory,
                propagate=body.propagate,
            )
        )
    except _SAVE_ERRORS as exc:
        return _save_refused(exc)
    return JSONResponse(_saved_json(saved))


@router.post("/api/articles/{job_id}/segments/{segment_id}/variants/{variant}/unlock")
async def unlock_variant(request: Request, job_id: JobId, segment_id: SegmentId, variant: str) -> JSONResponse:
    """The "Derive from zh-Hans again" button of a locked variant: /v1's unlock, answered as a save
    is (the page updates the segment in place)."""
    user = await _user(request, Permission.SEGMENTS_EDIT)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        body: _Unlock = await _json_body(request, _Unlock)
        saved = await run_in_threadpool(
            lambda: review.release_variant(
                runtime.db,
                job_id,
                segment_id,
                variant=variant,
                version=body.version,
                by=user.principal.name,
                rules=runtime.rules,
                qa=runtime.pipeline.settings.qa,
            )
        )
    except review.NotReleasable as exc:
        return _json_error(409, exc.code, str(exc))  # as /v1 says it
    except KeyError:
        return _json_error(422, "unknown_variant", f"this article has no {variant!r} target")
    except _SAVE_ERRORS as exc:
        return _save_refused(exc)
    return JSONResponse(_saved_json(saved))


# --- queries on segments (service.jobs.comments) -----------------------------------------------


class _Comment(Incoming):
    model_config = ConfigDict(extra="forbid")
    body: str = ""  # blank is refused after the article is checked, as /v1 does


def _comment_json(row: SegmentComment) -> dict[str, Any]:
    """A comment as /v1 gives it (CommentOut); the script shows its text with text nodes only."""
    return {
        "id": row.id,
        "segment_id": row.segment_id,
        "author": row.author,
        "body": row.body,
        "created_at": row.created_at.isoformat(),
        "open": row.resolved_at is None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "resolved_by": row.resolved_by,
    }


def comments_open(thread: list[SegmentComment]) -> dict[str, int]:
    """The segments with an open thread (a comment not resolved), each with 1: a thread is one query
    however many comments it has. For the markers and the totals (segments with none left out)."""
    return {c.segment_id: 1 for c in thread if c.resolved_at is None}


def _comment_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, comments.BadComment):
        return _json_error(422, "invalid_comment", str(exc))
    if isinstance(exc, _MalformedJson):
        return _json_error(400, "malformed_json", str(exc))
    if isinstance(exc, ValueError):
        return _json_error(422, "invalid_request", str(exc))
    if isinstance(exc, comments.NotYours):
        return _json_error(403, "forbidden", str(exc))
    return _json_error(404, "not_found", str(exc))


_COMMENT_ERRORS = (
    ValueError,
    JobNotFound,
    comments.SegmentNotFound,
    comments.CommentNotFound,
    comments.NotYours,
)


@router.post("/api/articles/{job_id}/segments/{segment_id}/comments")
async def add_comment(request: Request, job_id: JobId, segment_id: SegmentId) -> JSONResponse:
    """A query on a segment, or an answer in its thread, as POST /v1/.../comments."""
    user = await _user(request, Permission.COMMENTS_WRITE)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        body: _Comment = await _json_body(request, _Comment)
        row = await run_in_threadpool(
            lambda: comments.add_comment(
                runtime.db, job_id, segment_id, body.body, user.principal, settings=runtime.settings
            )
        )
    except _COMMENT_ERRORS as exc:
        return _comment_error(exc)
    runtime.dispatcher.wake()  # its article.query webhook, if the article has a callback
    return JSONResponse(_comment_json(row), status_code=201)


async def _set_resolved(request: Request, job_id: str, comment_id: str, resolved: bool) -> JSONResponse:
    user = await _user(request, Permission.COMMENTS_WRITE)
    check_csrf(user, request.headers.get(CSRF_HEADER))
    runtime = _runtime(request)
    try:
        row = await run_in_threadpool(
            lambda: comments.set_resolved(
                runtime.db, job_id, comment_id, user.principal, resolved=resolved, settings=runtime.settings
            )
        )
    except _COMMENT_ERRORS as exc:
        return _comment_error(exc)
    runtime.dispatcher.wake()
    return JSONResponse(_comment_json(row))


@router.get("/api/articles/{job_id}/comments")
async def thread_comments(request: Request, job_id: JobId) -> JSONResponse:
    """The article's comments, oldest first, as /v1 lists them: the page asks for them when the
    polled state says a thread changed elsewhere (`article_state`'s `queries`)."""
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)
    try:
        thread = await run_in_threadpool(comments.list_comments, runtime.db, job_id, user.principal.scope)
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    return JSONResponse({"comments": [_comment_json(c) for c in thread]})


@router.post("/api/articles/{job_id}/comments/{comment_id}/resolve")
async def resolve_comment(request: Request, job_id: JobId, comment_id: str) -> JSONResponse:
    return await _set_resolved(request, job_id, comment_id, True)


@router.post("/api/articles/{job_id}/comments/{comment_id}/reopen")
async def reopen_comment(request: Request, job_id: JobId, comment_id: str) -> JSONResponse:
    return await _set_resolved(request, job_id, comment_id, False)


def article_state(session: Session, job_id: str, scope: str | None = None) -> dict[str, Any]:
    """What an open article page polls for: the job's status, how many segments need review, and
    each segment's version and who last changed it (one small query; the page then asks only for
    the segments whose version it does not have), and each segment's queries in brief
    (`comments.thread_marks`: open, all, last id, open comments; a second small query), so that the markers and
    an open thread follow what others ask, answer and resolve. `scope`: as `get_job`'s."""
    job = get_job(session, job_id, scope)
    rows = session.execute(
        select(StoredSegment.id, StoredSegment.version, StoredSegment.status, StoredSegment.updated_by).where(
            StoredSegment.job_id == job_id
        )
    ).all()
    return {
        "status": job.status,
        "pending": sum(1 for r in rows if r.status == "needs_review"),
        "segments": {r.id: [r.version, r.updated_by or ""] for r in rows},
        "queries": comments.thread_marks(session, job_id),
    }


@router.get("/api/articles/{job_id}/state")
async def state(request: Request, job_id: JobId) -> Response:
    """The article's state for an open page (`article_state`), polled while it is visible, so that
    counts and segments others changed are brought up to date without a reload. With the ETag of
    the last answer in If-None-Match, an unchanged state is a bodiless 304."""
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)

    def load() -> dict[str, Any]:
        with runtime.db.session() as session:
            return article_state(session, job_id, user.principal.scope)

    try:
        found = await run_in_threadpool(load)
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    body = json.dumps(found, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    # `*` matches any state there is (RFC 9110 13.1.2); the article's is one, else it was a 404.
    if {etag, "*"} & {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.get("/api/articles/{job_id}/segments")
async def segments(request: Request, job_id: JobId, id: Annotated[list[str] | None, Query()] = None) -> JSONResponse:
    """The segments named (`?id=…&id=…`; at most 200), as the page shows them: those whose version
    the page found out of date. Ids the article does not have are left out."""
    user = await _user(request, Permission.ARTICLES_READ)
    runtime = _runtime(request)
    # An id holding a NUL is none the article has (and PostgreSQL could not look for it): left out.
    wanted = [i for i in dict.fromkeys(id or []) if "\0" not in i]
    if len(wanted) > 200:
        return _json_error(422, "invalid_request", f"at most 200 segments at a time, not {len(wanted)}")

    def load() -> list[StoredSegment]:
        with runtime.db.session() as session:
            get_job(session, job_id, user.principal.scope)  # an article that is not there is a 404, ids or none
            if not wanted:
                return []
            return list(
                session.scalars(
                    select(StoredSegment)
                    .where(StoredSegment.job_id == job_id, StoredSegment.id.in_(wanted))
                    .order_by(StoredSegment.position)
                )
            )

    try:
        rows = await run_in_threadpool(load)
    except JobNotFound as exc:
        return _json_error(404, "not_found", str(exc))
    return JSONResponse({"segments": [_seg_json(r) for r in rows]})


def install(app: Any) -> None:
    """Mount the app's pages, its static files and the handlers that turn session problems into
    a login redirect (pages) or a JSON error (the script's API)."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount("/review/static", StaticFiles(directory=HERE / "static"), name="review-static")

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _: NotSignedIn) -> Response:
        if request.url.path.startswith("/review/api/"):
            return _json_error(401, "unauthorized", "sign in again")
        return RedirectResponse(f"/review/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/review/api/"):
            return _json_error(403, "forbidden", str(exc))
        return _page(request, "message.html", None, 403, title="Not allowed", message=str(exc))

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, exc: BadCsrf) -> Response:
        if request.url.path.startswith("/review/api/"):
            return _json_error(403, "csrf", "the request lacks this session's CSRF token (signed in again since?)")
        # A browser form from a page loaded before the session changed: a page, not JSON, saying
        # nothing was done, with the way back.
        back = _FORM_BACK.match(request.url.path)
        try:
            user: WebUser | None = await _user(request)
        except NotSignedIn:
            user = None
        return _page(
            request,
            "message.html",
            user,
            403,
            title="The form could not be read" if exc.missing else "The form expired",
            message=(
                "Nothing was done: the form arrived without its security token (cut short, or not sent from "
                "this app's pages). Open the page again and repeat what you did."
                if exc.missing
                else "Nothing was done: the page was loaded before you last signed in (or out). "
                "Open it again and repeat what you did."
            ),
            back=f"/review/articles/{quote(back.group(1), safe='')}" if back else "/review",
        )

    # A page or form path of the app that no route takes (an article id holding a `/`, a path
    # mistyped): the app's 404 page, as for an article that is not there; the script's API and the
    # static files answer as the rest of the service does (JSON).
    answer_http_error = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)

    @app.exception_handler(StarletteHTTPException)
    async def page_not_found(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        page = (path == "/review" or path.startswith("/review/")) and not path.startswith(
            ("/review/api/", "/review/static/")
        )
        if exc.status_code not in (404, 405) or not page:
            answered: Response = await answer_http_error(request, exc)
            return answered
        try:
            user: WebUser | None = await _user(request)
        except NotSignedIn:
            user = None
        if exc.status_code == 405:
            # An address a form posts to, opened in the browser (a bookmark, or typed): a page, with
            # the Allow header the answer must carry.
            refused = _page(
                request,
                "message.html",
                user,
                405,
                title="Not a page",
                message="This address takes a form sent from the app's pages; nothing was done.",
            )
            refused.headers.update(exc.headers or {})
            return refused
        return _page(request, "message.html", user, 404, title="Not found", message="There is no such page.")

    app.add_middleware(SecurityHeaders)


_FORM_BACK = re.compile(r"^/review/articles/([^/]+)/(?:approve|reopen)$")

# The review app's own script and stylesheet only: no inline script or style (the pages' JSON data
# blocks are not scripts that run), no framing, forms posted back to the app only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SecurityHeaders:
    """Headers on every /review response: not framed (clickjacking), the CSP above, no MIME
    sniffing; pages and API answers (article text, CSRF tokens) not stored by any cache."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (path == "/review" or path.startswith("/review/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/review/static/")

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or static]
                # A response's own policy (an exported page's: no script at all) stands.
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", CSP.encode()))
                headers += [
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
