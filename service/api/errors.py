"""Every error the API returns is JSON `{"error": {"code", "message", "valid"?}}` with a stable code.
The handlers live here, in one place; routes raise `ApiError`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.logs import current_request_id
from service.schemas import ErrorResponse
from service.storage.db import database_unavailable

log = logging.getLogger(__name__)


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


def _is_json(request: Request) -> bool:
    """Whether the request's Content-Type is one FastAPI reads as JSON (application/json, or
    application/…+json)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.code, exc.message, exc.valid, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_json(400, "malformed_json", f"the request body is not valid JSON: {_describe(errors)}")
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
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            400: "bad_request",
            413: "too_large",
            415: "unsupported_media_type",
        }
        # Its headers too: a 405's Allow names the methods the path takes.
        return error_json(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), headers=dict(exc.headers or {})
        )


DATABASE_RETRY_AFTER_S = 5


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a failure no handler expects (a bug): JSON like every other error, so clients
    can parse it and the OpenAPI document is true, with the traceback in the log, not the answer.
    A database that cannot be used just now (down, restarting, out of connections) is no bug: 503
    with Retry-After, which a CMS retries, rather than a 500, which it may not."""
    if database_unavailable(exc):
        log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path, exc.__class__.__name__)
        return error_json(
            503,
            "database_unavailable",
            f"the database did not answer; retry after {DATABASE_RETRY_AFTER_S} s (a resubmitted article "
            "with the same Idempotency-Key, or external_id and revision, is never duplicated)",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_json(
        500,
        "internal_error",
        f"the service failed on this request and logged why (request id {current_request_id.get() or '-'}); "
        "retry, and report it with that id if it fails again",
    )


_TEXT = {
    400: "Malformed JSON or invalid UTF-8",
    401: "No API key, or not a valid one",
    403: "The API key's role may not do this",
    404: "Not found",
    409: "Conflict: the resource changed (edit based on an old version) or is not in a state that allows this",
    413: "Input larger than the configured limit",
    415: "The body's Content-Type is not one this endpoint reads",
    422: "Empty input, unknown variant or glossary, or another invalid field",
    429: "Rate limit of this API key exceeded: retry after the Retry-After header's seconds",
    500: "Internal error",
    503: (
        "Busy (the queue is full), or the database does not answer: retry after the Retry-After header's "
        "seconds; for /readyz, not ready"
    ),
    504: "The translation did not finish within the request timeout",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return."""
    return {s: {"model": ErrorResponse, "description": _TEXT[s]} for s in statuses}


def document_common_errors(app: FastAPI) -> None:
    """Add to the OpenAPI document the statuses any operation can return from the app's shared
    layers, so no route has to remember them: 500 and 503 (the database) everywhere; 400 (malformed JSON, not UTF-8) and
    413 (too large) wherever there is a request body, since the request guard answers those."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for item in spec.get("paths", {}).values():
            for operation in item.values():
                statuses = [500, 503] + ([400, 413] if "requestBody" in operation else [])
                for status in statuses:
                    operation["responses"].setdefault(str(status), {"description": _TEXT[status], "content": ref})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
