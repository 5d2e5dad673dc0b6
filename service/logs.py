"""Logging: plain text or one JSON object a line (`DUIYI_LOG_FORMAT`), and request ids.

Each HTTP request has an id: the caller's `X-Request-ID` when it is a sane token, else a new one.
It is sent back in the answer's `X-Request-ID`, named in a 500's message, and set on every log
record written while the request is handled (uvicorn's access line included), so that a CMS
developer's report ("request 3f2a… failed") finds its lines in the service's logs.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept only if it cannot break a log line or a header: word characters and a few
# separators, at most 128 of them (UUIDs, trace ids, "cms-4711-retry-2").
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("duiyi_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# Libraries whose lines below WARNING name whole URLs (see `configure`).
QUIET_LOGGERS = ("httpx", "httpcore")


class RequestIds:
    """ASGI middleware: the request's id in a context variable while it is handled, and in the
    answer's `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        token = current_request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


def install_record_factory() -> None:
    """Give every log record a `request_id` attribute (the current request's, or "-"), whatever
    handler writes it. Idempotent."""
    old = logging.getLogRecordFactory()
    if getattr(old, "duiyi_request_ids", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        record.request_id = current_request_id.get() or "-"
        return record

    factory.duiyi_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request_id where a
    request is being handled, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def redact_database_errors(record: logging.LogRecord) -> bool:
    """A handler's filter: a record's traceback as `service.storage.db.loggable` has it, without
    what a database error's message may quote (a statement's parameters, the row PostgreSQL quotes
    back: article text), whichever logger wrote it (uvicorn's, a library's). The service's own
    lines do this themselves; this is for the others. Keeps every record."""
    if record.exc_info and record.exc_info[1] is not None:
        from service.storage.db import loggable

        safe = loggable(record.exc_info[1])
        if safe is not record.exc_info[1]:
            record.exc_info = (type(safe), safe, safe.__traceback__)
            record.exc_text = None
    return True


# Query parameters whose values an access line keeps: choices, numbers, times, ids and cursors.
# Any other's value is replaced by "…": a concordance search's `q` is article text, a list's
# search a headline, and a client may put what it should not (`?api_key=`) in any.
LOGGED_QUERY_VALUES = frozenset(
    {"variant", "format", "status", "limit", "side", "open", "since", "after", "external_id", "job", "id"}
)


def _loggable_target(target: str) -> str:
    """A request's path and query as an access line shows it (see LOGGED_QUERY_VALUES)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    kept = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        kept.append(pair if not eq or unquote_plus(name) in LOGGED_QUERY_VALUES else f"{name}=…")
    return f"{path}?{'&'.join(kept)}"


def mask_access_query(record: logging.LogRecord) -> bool:
    """uvicorn.access's filter: the request's target (its args' third) without confidential values."""
    args = record.args
    if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
        record.args = (*args[:2], _loggable_target(args[2]), *args[3:])
    return True


def configure(level: str, fmt: str) -> None:
    """The process's logging: one handler on stderr, in `fmt` ("text" or "json"), at `level`.
    uvicorn's loggers are left without handlers of their own, so their lines (access lines too)
    come through this one, in the same format. httpx and httpcore (the webhook client) log at
    WARNING at most: their INFO and DEBUG lines carry each request's whole URL, and a CMS's callback
    URL may hold a token in its query (the dispatcher logs it without, `loggable_url`). No
    traceback shows what a database error quotes of the data (`redact_database_errors`), and no
    access line a query's text (`mask_access_query`)."""
    install_record_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(redact_database_errors)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if mask_access_query not in access.filters:
        access.addFilter(mask_access_query)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
