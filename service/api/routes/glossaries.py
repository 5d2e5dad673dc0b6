"""Glossaries: read by everyone with a key, edited by admins. Edits are stored in the database
and used by every request and job submitted afterwards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from glossary.csvio import GlossaryFormatError, parse_csv, to_csv
from glossary.terms import Term, UnknownVariantError
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, Requires
from service.auth import Permission
from service.glossaries import UnknownGlossaryError
from service.jobs.articles import Principal
from service.schemas import GlossaryOut, GlossarySummary, TermIn, TermInfo, glossary_out, term_info

router = APIRouter(prefix="/v1/glossaries", tags=["glossaries"])

Reader = Annotated[Principal, Requires(Permission.GLOSSARIES_READ)]
Editor = Annotated[Principal, Requires(Permission.GLOSSARIES_EDIT)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="letters, digits, - and _")]
TermId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,200}$")]


def _unknown(exc: UnknownGlossaryError) -> ApiError:
    return ApiError(404, "unknown_glossary", str(exc), valid=exc.valid)


@router.get("", response_model=list[GlossarySummary], responses=responses(*AUTH_ERRORS), summary="List glossaries")
def list_glossaries(runtime: RuntimeDep, _: Reader) -> list[GlossarySummary]:
    store = runtime.glossaries
    return [GlossarySummary(name=n, terms=len(store.get(n).terms)) for n in store.names()]


@router.get(
    "/{name}", response_model=GlossaryOut, responses=responses(*AUTH_ERRORS, 404), summary="One glossary with its terms"
)
def read_glossary(name: Name, runtime: RuntimeDep, _: Reader) -> GlossaryOut:
    try:
        return glossary_out(runtime.glossaries.get(name))
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None


@router.get(
    "/{name}/csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}, **responses(*AUTH_ERRORS, 404)},
    summary="A glossary as CSV (the spreadsheet format terminologists edit)",
)
def export_csv(name: Name, runtime: RuntimeDep, _: Reader) -> Response:
    try:
        text = to_csv(runtime.glossaries.get(name))
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.put(
    "/{name}",
    response_model=GlossaryOut,
    responses={201: {"model": GlossaryOut, "description": "Created"}, **responses(400, *AUTH_ERRORS, 415, 422)},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Create or replace a glossary from CSV",
)
async def put_glossary(name: Name, request: Request, response: Response, runtime: RuntimeDep, p: Editor) -> GlossaryOut:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "text/plain"):
        raise ApiError(415, "unsupported_media_type", f"send the glossary as text/csv, not {media or 'no type'}")
    text = (await request.body()).decode("utf-8")
    try:
        glossary = parse_csv(text, name)
    except (GlossaryFormatError, UnknownVariantError, ValueError) as exc:
        raise ApiError(422, "invalid_glossary", str(exc)) from None
    stored, created = await run_in_threadpool(runtime.glossaries.put, glossary, by=p.name)
    if created:
        response.status_code = 201
    return glossary_out(stored)


@router.put(
    "/{name}/terms/{term_id}",
    response_model=TermInfo,
    responses={201: {"model": TermInfo, "description": "Created"}, **responses(*AUTH_ERRORS, 404, 422)},
    summary="Add or replace one term",
)
def put_term(name: Name, term_id: TermId, body: TermIn, response: Response, runtime: RuntimeDep, p: Editor) -> TermInfo:
    try:
        term = Term(
            id=term_id,
            forms=tuple(f.strip() for f in body.forms if f.strip()),
            targets={k: v for k, v in body.targets.items() if v},
            case_sensitive=body.case_sensitive,
            do_not_translate=body.do_not_translate,
            note=body.note,
        )
    except (UnknownVariantError, ValueError) as exc:
        raise ApiError(422, "invalid_term", str(exc)) from None
    try:
        created = runtime.glossaries.put_term(name, term, by=p.name)
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None
    if created:
        response.status_code = 201
    return term_info(term)


@router.delete(
    "/{name}/terms/{term_id}",
    status_code=204,
    responses=responses(*AUTH_ERRORS, 404),
    summary="Remove one term",
)
def delete_term(name: Name, term_id: TermId, runtime: RuntimeDep, p: Editor) -> Response:
    try:
        removed = runtime.glossaries.delete_term(name, term_id, by=p.name)
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None
    if not removed:
        raise ApiError(404, "not_found", f"glossary {name!r} has no term {term_id!r}")
    return Response(status_code=204)
