"""Every error the API returns is JSON `{"error": {"code", "message", "valid"?}}` with a stable code.
The handlers live here, in one place; routes raise `ApiError`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import RouteContext, iter_route_contexts
from sqlalchemy import event
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service.logs import current_request_id
from service.schemas import ErrorResponse
from service.storage.db import Database, Refusal, database_unavailable, describe_error, loggable, refused_write

log = logging.getLogger(__name__)

# Who the API's requests are in the log's account of a database outage (`service.storage.db.Outage`).
API_OUTAGE = "the API"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        valid: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.valid = valid
        self.headers = headers


def error_json(
    status: int, code: str, message: str, valid: list[str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if valid is not None:
        body["valid"] = valid
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def malformed_json(errors: list[dict[str, Any]]) -> str:
    """The message for a body that is not JSON: what the parser found, and where (`json_invalid`,
    whose `loc` ends in the character offset and whose `ctx.error` is the parser's reason)."""
    err = next(e for e in errors if e.get("type") == "json_invalid")
    # json's reasons: "Expecting value", "Unterminated string starting at", …
    reason = str((err.get("ctx") or {}).get("error") or "not JSON").removesuffix(" at")
    where = [p for p in err.get("loc", ()) if isinstance(p, int)]
    at = f" at character {where[-1]}" if where else ""
    return f"the request body is not valid JSON: {reason[:1].lower()}{reason[1:]}{at}"


# The order HTTP's specification lists them in, for Allow.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def routes_of(routes: Sequence[BaseRoute]) -> Iterator[RouteContext]:
    """Every route of an app's list, the routes of included routers among them, with their whole
    paths (an app's list holds an included router as one entry, which has no path of its own)."""
    return iter_route_contexts(routes)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope, also: Iterable[str] = ()) -> list[str]:
    """The methods `scope`'s path takes: those of every route whose path matches it (a path has one
    route per method), with `also` (what the route that answered named), and HEAD wherever GET is
    (the app answers HEAD as GET without the body)."""
    # The path as it came: a mount, routing, rewrites the scope's root_path.
    root = scope.get("app_root_path", scope.get("root_path", ""))
    probe = {"type": "http", "method": "", "path": scope["path"], "root_path": root}
    methods = {m.strip().upper() for m in also if m.strip()}
    for route in routes_of(routes):
        taken = route.methods
        if taken and route.matches(probe)[0] is not Match.NONE:
            methods |= {m.upper() for m in taken}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods, key=lambda m: (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER), m))


def _is_json(request: Request) -> bool:
    """Whether the request's Content-Type is one FastAPI reads as JSON (application/json, or
    application/…+json)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _database(app: FastAPI) -> Database | None:
    runtime = getattr(app.state, "runtime", None)
    db = getattr(runtime, "db", None)
    return db if isinstance(db, Database) else None


def _tell_when_the_database_answers(db: Database) -> None:
    """Close the API's outage (`unexpected` opened it) at the first statement a request gets an
    answer to: the statements run while a request is handled are those with a request id."""

    def answered(*_: Any) -> None:
        if current_request_id.get() is not None:
            db.outage.answered(API_OUTAGE)

    event.listen(db.engine, "after_cursor_execute", answered)


def install(app: FastAPI) -> None:
    if (db := _database(app)) is not None:
        _tell_when_the_database_answers(db)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.code, exc.message, exc.valid, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_json(400, "malformed_json", malformed_json(errors))
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors) and not _is_json(request):
            # FastAPI reads a body as JSON only when its Content-Type says so (`curl -d` sends
            # application/x-www-form-urlencoded): the body as a whole is then "not a dictionary".
            sent = request.headers.get("content-type") or "no Content-Type"
            return error_json(
                422,
                "invalid_request",
                f"body: send a JSON object with Content-Type: application/json (this request has {sent})",
            )
        return error_json(422, "invalid_request", _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            400: "bad_request",
            413: "too_large",
            415: "unsupported_media_type",
        }
        headers = dict(exc.headers or {})
        message = str(exc.detail)
        if exc.status_code == 405:
            # Routing names only the methods of the first route whose path matched; the path may
            # have a route for each of several methods, and Allow names them all.
            allowed = allowed_methods(request.app.router.routes, request.scope, headers.get("Allow", "").split(","))
            headers["Allow"] = ", ".join(allowed)
            message = f"this path does not take {request.method}; it takes {', '.join(allowed)}"
        return error_json(exc.status_code, codes.get(exc.status_code, "http_error"), message, headers=headers)


DATABASE_RETRY_AFTER_S = 5
# A database that refuses writes (full, read-only) waits for an operator: minutes, not seconds.
STORAGE_RETRY_AFTER_S = 60
_NOT_DUPLICATED = (
    "a resubmitted article with the same Idempotency-Key, or external_id and revision, is never duplicated"
)


def _refused(refusal: Refusal) -> JSONResponse:
    """The answer to a request whose write the database refused (`refused_write`): it answered,
    so not `database_unavailable`'s "did not answer", which sends a client and an operator looking
    for an outage that is not there."""
    then = (
        ": this request was not carried out and nothing of it was stored (work accepted before is kept); "
        f"retry after {STORAGE_RETRY_AFTER_S} s ({_NOT_DUPLICATED})"
    )
    headers = {"Retry-After": str(STORAGE_RETRY_AFTER_S)}
    if refusal is Refusal.STORAGE_FULL:
        return error_json(503, "storage_full", f"the service's storage is full{then}", headers=headers)
    return error_json(503, "database_read_only", f"the service's database is read-only{then}", headers=headers)


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a failure no handler expects (a bug): JSON like every other error, so clients
    can parse it and the OpenAPI document is true, with the traceback in the log, not the answer.
    A database that cannot be used just now (down, restarting, out of connections) is no bug: 503
    with Retry-After, which a CMS retries, rather than a 500, which it may not; the outage is logged
    once (a WARNING when it starts, an INFO when a request gets an answer again), not at each of the
    thousands of requests it may refuse. So is a database that answers but refuses to store (its
    storage full, or read-only): 503 `storage_full` or `database_read_only`, and one ERROR in the
    log (`service.storage.db.Outage`). No error's message reaches the log with a statement's
    parameters or the rows PostgreSQL quotes back (`loggable`): they are article text."""
    if database_unavailable(exc):
        db = _database(request.app)
        if db is not None:
            db.outage.failed(exc, API_OUTAGE)
        refusal = refused_write(exc)
        log.log(
            logging.DEBUG if db is not None else logging.WARNING,
            "%s %s: 503, the database %s (%s)",
            request.method,
            request.url.path,
            f"refuses writes: {refusal.why}" if refusal is not None else "is unavailable",
            describe_error(exc),
        )
        if refusal is not None:
            return _refused(refusal)
        return error_json(
            503,
            "database_unavailable",
            f"the database did not answer; retry after {DATABASE_RETRY_AFTER_S} s ({_NOT_DUPLICATED})",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    log.error("%s %s failed", request.method, request.url.path, exc_info=loggable(exc))
    return error_json(
        500,
        "internal_error",
        f"the service failed on this request and logged why (request id {current_request_id.get() or '-'}); "
        "retry, and report it with that id if it fails again",
    )


# What a request cut short by the service's stop is told to wait before it retries (another
# instance may take it at once; this one needs the time to load its model again).
STOPPING_RETRY_AFTER_S = 5


def shutting_down(graceful_s: int) -> JSONResponse:
    """The answer to a request still in flight when the service's graceful stop ran out of time
    (`service.serving`): 503 with Retry-After, and Connection: close."""
    return error_json(
        503,
        "shutting_down",
        f"the service is stopping and this request did not finish in the {graceful_s} s it had; retry after "
        f"{STOPPING_RETRY_AFTER_S} s (a resubmitted article with the same Idempotency-Key, or external_id and "
        "revision, is never duplicated)",
        headers={"Retry-After": str(STOPPING_RETRY_AFTER_S), "Connection": "close"},
    )


_TEXT = {
    400: "Malformed JSON or invalid UTF-8",
    401: "No API key, or not a valid one",
    403: "The API key's role may not do this",
    404: "Not found",
    405: "The path does not take this method: the Allow header names those it takes",
    409: "Conflict: the resource changed (edit based on an old version) or is not in a state that allows this",
    413: "Input larger than the configured limit",
    415: "The body's Content-Type is not one this endpoint reads",
    422: "Empty input, unknown variant or glossary, or another invalid field",
    429: "Rate limit of this API key exceeded: retry after the Retry-After header's seconds",
    500: "Internal error",
    503: (
        "Busy (the queue is full), the database does not answer, the database refuses writes (its storage is "
        "full, or it is read-only: nothing of the request was stored), or the service is stopping: retry after "
        "the Retry-After header's seconds; for /readyz, not ready"
    ),
    504: "The translation did not finish within the request timeout",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return."""
    return {s: {"model": ErrorResponse, "description": _TEXT[s]} for s in statuses}


# Headers that answers with these statuses carry (set where the status is answered: security.py,
# the routes, `unexpected`, the 405 handler).
_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`: send the key as `Authorization: Bearer <key>`"}},
    405: {"Allow": {"description": "the methods this path takes, comma-separated"}},
    429: {"Retry-After": {"description": "seconds to wait before the next request", "schema": {"type": "integer"}}},
    503: {
        "Retry-After": {
            "description": "seconds to wait before retrying (not on /readyz's `not_ready`)",
            "schema": {"type": "integer"},
        }
    },
}
# Success headers the routes set, by operation: the new (or existing) job's URL.
_SUCCESS_HEADERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("post", "/v1/articles"): {"Location": {"description": "the article job's URL, `/v1/articles/{job_id}`"}},
}
# The methods that carry a body: the request guard (service/api/app.py) reads theirs, and answers
# 400 and 413 for them; a body sent with any other method is not read.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _headers(declared: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {"schema": {"type": "string"}} | header for name, header in declared.items()}


def _success_text(status: str, operation: dict[str, Any], spec: dict[str, Any]) -> str:
    """A 2xx's description in place of FastAPI's "Successful Response": the response model's own
    description where it has one, else the status and the operation's summary."""
    content = operation["responses"][status].get("content", {}).get("application/json", {})
    ref = str(content.get("schema", {}).get("$ref", ""))
    described = spec.get("components", {}).get("schemas", {}).get(ref.rpartition("/")[2], {}).get("description")
    if ref and described:
        return str(described)
    phrase = HTTPStatus(int(status)).phrase
    summary = operation.get("summary")
    return f"{phrase}: {summary}" if summary else phrase


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """The HEAD operation beside a GET: the same parameters, statuses and headers, no bodies."""
    head = copy.deepcopy(get)
    head["operationId"] = str(get.get("operationId", "")).removesuffix("_get") + "_head"
    head["summary"] = f"{get.get('summary') or 'GET'} (HEAD: headers only)"
    head["description"] = "Answered as GET, with its status and headers, Content-Length included, and no body."
    for response in head["responses"].values():
        response.pop("content", None)
    return head


def document_common_errors(app: FastAPI) -> None:
    """Complete the OpenAPI document with what the app's shared layers do, so that no route has to
    remember it: 500 and 503 (the database) everywhere; 405, with Allow, everywhere (no path takes
    every method); 400 (malformed JSON, not UTF-8) and 413 (too large) on every POST, PUT and PATCH,
    since the request guard answers those; the headers of 401, 405, 429 and 503 and of the routes'
    answers; a description for each success in place of "Successful Response"; and HEAD beside
    every GET, as the app answers it."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for path, item in spec.get("paths", {}).items():
            for method, operation in item.items():
                answers = operation["responses"]
                statuses = [405, 500, 503] + ([400, 413] if method.upper() in BODY_METHODS else [])
                for status in statuses:
                    answers.setdefault(str(status), {"description": _TEXT[status], "content": copy.deepcopy(ref)})
                for status, response in answers.items():
                    code = int(status) if status.isdigit() else 0
                    declared = _HEADERS.get(code, {})
                    if 200 <= code < 300:
                        declared = _SUCCESS_HEADERS.get((method, path), {})
                        if response.get("description") == "Successful Response":
                            response["description"] = _success_text(status, operation, spec)
                    if declared:
                        response["headers"] = _headers(declared) | response.get("headers", {})
        for path, item in spec.get("paths", {}).items():
            if "get" in item:
                ordered: dict[str, Any] = {}
                for method, operation in item.items():
                    ordered[method] = operation
                    if method == "get":  # HEAD right after GET
                        ordered["head"] = _head(operation)
                spec["paths"][path] = ordered
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
