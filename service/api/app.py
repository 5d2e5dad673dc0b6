"""The app factory: settings and engine in, a FastAPI app out. Nothing is built at import time."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.engine import DecodeOptions, Engine
from models.scheduler import BatchingEngine
from service.api import errors
from service.api.deps import Runtime
from service.api.routes import articles, comments, files, health, keys, translate
from service.api.routes import glossaries as glossaries_routes
from service.api.routes import memory as memory_routes
from service.auth import RateLimiter
from service.config import Settings
from service.glossaries import DatabaseGlossaries, GlossaryStore
from service.jobs.deliveries import Dispatcher
from service.jobs.runner import RunnerPool
from service.keys import SharedRateLimiter, list_keys
from service.logs import RequestIds, install_record_factory
from service.memory import TranslationMemory
from service.metrics import EngineMetrics, RequestMetrics, StoreCollector
from service.pipeline import Memory, Pipeline, PipelineSettings
from service.storage.db import Database
from service.variants import variant_rules
from service.web import routes as web

log = logging.getLogger(__name__)


def build_batching(settings: Settings, engine: Engine, observer: EngineMetrics | None = None) -> BatchingEngine:
    """The one engine worker that every request's and job's sentences go through (models.scheduler)."""
    batching = BatchingEngine(
        engine,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_size=settings.max_batch_size,
        max_queue=settings.max_queue,
        max_wait_s=settings.max_wait_ms / 1000,
        cache_size=settings.cache_size,
        continuous=settings.continuous_batching,
        cuda_graphs=settings.cuda_graphs,
        observer=observer,
    )
    warn_unused_cuda_graphs(settings, engine, batching)
    return batching


def warn_unused_cuda_graphs(settings: Settings, engine: Engine, batching: BatchingEngine | None = None) -> None:
    """Warn, once at start-up, when DUIYI_CUDA_GRAPHS is set where it does nothing: it applies to the
    running batch of `batching` (the engine worker of `serve` and `worker`) for the transformers
    engine on a CUDA device. `batching` None: a command that decodes without one (`duiyi translate`
    translates in whole batches), where it never applies."""
    if not settings.cuda_graphs or (batching is not None and batching.stepper and batching.stepper.cuda_graphs):
        return
    log.warning(
        "DUIYI_CUDA_GRAPHS has no effect here: it applies to the running batch of the transformers "
        "engine on a CUDA device (this engine: %s on %s%s)",
        type(engine).__name__,
        getattr(engine, "device", "?"),
        "; duiyi translate decodes in whole batches, without one" if batching is None else "",
    )


def build_pipeline(settings: Settings, engine: Engine, memory: Memory | None = None) -> Pipeline:
    return Pipeline(
        engine,
        variant_rules(tw_phrases=settings.tw_phrases, hant_corner_quotes=settings.hant_corner_quotes),
        PipelineSettings(
            decode=DecodeOptions(
                beam_size=settings.beam_size,
                max_length_ratio=settings.max_length_ratio,
                max_length_extra=settings.max_length_extra,
            ),
            redecode_loops=settings.redecode_loops,
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_size=settings.max_batch_size,
        ),
        memory=memory,
    )


# Uploads of files (XLIFF, TMX, TBX, CSV, an article file): larger, and in any encoding the format allows.
_FILE_UPLOADS = re.compile(r"^/v1/(articles/[^/]+/import|memory/import|glossaries/[^/]+)$|^/review/new$")
# The most bytes a character can take in a JSON body: a \uXXXX escape is 6, a character beyond
# U+FFFF a pair of them (12); a form's percent-encoding takes at most 12 (%XX for each of 4 bytes).
_BYTES_PER_CHAR = 12
# Room beside the text: the other fields of a request, JSON's punctuation.
_BODY_ROOM = 65_536


def max_body_bytes(max_chars: int) -> int:
    """The largest body, other than an uploaded file, the request guard reads: room for
    `max_chars` characters however they are written, so that the character limit (DUIYI_MAX_CHARS),
    checked after parsing with a message that says so, is what decides for any text within it."""
    return max_chars * _BYTES_PER_CHAR + _BODY_ROOM


class _RequestGuard(BaseHTTPMiddleware):
    """Refuse, before any parsing, a body larger than any request within the character limit could
    be (`max_body_bytes`), and a JSON body that is not UTF-8: for the methods that carry a body
    (POST, PUT, PATCH); a body sent with another is not read, and no route takes one. File uploads
    have their own limit and are decoded by their parsers. And answer an unexpected failure with
    JSON (`errors.unexpected`): here, since Starlette's last-resort handler answers and then
    re-raises, which drops the connection."""

    def __init__(self, app: ASGIApp, max_chars: int, max_file_bytes: int) -> None:
        super().__init__(app)
        self.max_chars = max_chars
        self.max_bytes = max_body_bytes(max_chars)
        self.max_file_bytes = max_file_bytes

    def _too_large(self, size: str, upload: bool) -> Response:
        if upload:
            limit = f"{self.max_file_bytes:,} bytes, DUIYI_MAX_UPLOAD_BYTES"
        else:
            limit = (
                f"{self.max_bytes:,} bytes, more than any request within DUIYI_MAX_CHARS "
                f"({self.max_chars:,} characters) takes"
            )
        return errors.error_json(413, "too_large", f"the request body has {size} bytes; the limit is {limit}")

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method in errors.BODY_METHODS:
            upload = request.method in ("POST", "PUT") and bool(_FILE_UPLOADS.match(request.url.path))
            limit = self.max_file_bytes if upload else self.max_bytes
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                return self._too_large(f"{int(length):,}", upload)
            # Read as it comes, and stop at the limit: a body sent without Content-Length (chunked)
            # is never held in memory beyond it.
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return self._too_large(f"more than {limit:,}", upload)
                chunks.append(chunk)
            body = b"".join(chunks)
            # What Request.body() keeps, so that the route reads the same bytes.
            request._body = body
            if not upload:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return errors.error_json(
                        400, "invalid_utf8", f"the request body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                    )
        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001 (a bug, answered and logged)
            return errors.unexpected(request, exc)


class _HeadAsGet:
    """HEAD on a path that takes GET is answered as GET, without the body (its status and headers,
    Content-Length included), as HTTP has it: a health check or a CDN may send HEAD. FastAPI's
    routes take only the methods they name (Starlette's own routes and static files answer HEAD
    themselves, and are left to). A pure ASGI middleware, so a streamed body is not buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        routes = list(errors.routes_of(scope["app"].router.routes))
        as_get = {**scope, "method": "GET"}
        if any(r.matches(scope)[0] is Match.FULL for r in routes) or not any(
            r.matches(as_get)[0] is Match.FULL for r in routes
        ):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(as_get, receive, headers_only)


def create_app(
    settings: Settings, engine: Engine, store: GlossaryStore | None = None, db: Database | None = None
) -> FastAPI:
    """The app around a loaded engine. Its sentences from all requests and jobs meet in one engine
    worker (models.scheduler.BatchingEngine); the database is migrated (unless `db`, already
    migrated, is given: the app then owns it), glossaries seeded, and the job runners and webhook
    dispatcher started with the app and stopped with it."""
    metrics = EngineMetrics()
    batching = build_batching(settings, engine, metrics)
    if db is None:
        db = Database(settings.database)
        db.migrate()
    glossaries = DatabaseGlossaries(db)
    added = glossaries.seed(store or GlossaryStore.load(settings.glossary_dir))
    if added:
        log.info("glossaries seeded from files: %s", ", ".join(added))
    memory = TranslationMemory(db)
    pipeline = build_pipeline(settings, batching, memory)
    dispatcher = Dispatcher(db, settings)
    runners = RunnerPool(db, pipeline, settings, settings.runners, dispatcher) if settings.runners > 0 else None
    if settings.auth_disabled:
        log.warning("authentication is DISABLED (DUIYI_AUTH_DISABLED): every caller acts as an admin; local use only")
    elif not list_keys(db):
        log.warning("no API keys yet: create one with `duiyi keys create --role admin --name NAME`")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        dispatcher.start()
        if runners is not None:
            runners.start()
        log.info("database %s; %d job runner(s) in this process", db.describe(), settings.runners)
        yield
        if runners is not None:
            # Each runner finishes its chunk in hand or, past the wait, has it abandoned by closing the
            # engine: either way its job goes back to the queue (never failed) before the database closes.
            await run_in_threadpool(runners.stop, abandon=batching.close)
        await run_in_threadpool(dispatcher.stop)
        batching.close()
        db.close()

    app = FastAPI(
        lifespan=lifespan,
        title="duiyi",
        summary="English → Chinese translation for newsrooms: zh-Hans, zh-Hant, zh-TW, zh-HK, glossary enforced.",
        version="0.1.0",
    )
    metrics.registry.register(StoreCollector(db))
    app.state.runtime = Runtime(
        settings=settings,
        pipeline=pipeline,
        engine=batching,
        glossaries=glossaries,
        metrics=metrics,
        db=db,
        limiter=(
            SharedRateLimiter(db, settings.rate_limit_per_minute, settings.rate_limit_burst)
            if db.is_postgres
            else RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        ),
        dispatcher=dispatcher,
        rules=pipeline.rules,
        memory=memory,
        runners=runners,
    )
    app.add_middleware(_HeadAsGet)
    app.add_middleware(_RequestGuard, max_chars=settings.max_chars, max_file_bytes=settings.max_upload_bytes)
    # The review app's sessions: a signed cookie, HttpOnly, SameSite=Lax, sent to /review only.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret or secrets.token_urlsafe(32),
        session_cookie="duiyi_review",
        max_age=settings.session_max_age_s,
        path="/review",
        same_site="lax",
        https_only=settings.session_https_only,
    )
    routers = [
        m.router for m in (health, translate, articles, comments, files, memory_routes, glossaries_routes, keys, web)
    ]
    # Outermost (added last), so that the other middleware's refusals are counted too; given the
    # routes (their paths are whole: the routers are included without a prefix) to name those.
    app.add_middleware(RequestMetrics, registry=metrics.registry, routes=[r for rt in routers for r in rt.routes])
    # Outermost of all: every line logged while a request is handled carries its id.
    install_record_factory()
    app.add_middleware(RequestIds)
    errors.install(app)
    errors.document_common_errors(app)
    for router in routers[:-1]:
        app.include_router(router)
    web.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/review")

    return app
