"""Glossaries: read by everyone with a key, edited by admins. Edits are stored in the database
and used by every request and job submitted afterwards."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from glossary.csvio import GlossaryFormatError, parse_csv, to_csv
from glossary.terms import Term, UnknownVariantError, separator_problem
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, Requires
from service.auth import Permission
from service.glossaries import UnknownGlossaryError
from service.interchange.tbx import TBXError, export_tbx, import_tbx
from service.jobs.articles import Principal
from service.schemas import (
    GlossaryOut,
    GlossarySummary,
    TermIn,
    TermInfo,
    glossary_out,
    glossary_summary,
    term_info,
)

router = APIRouter(prefix="/v1/glossaries", tags=["glossaries"])

Reader = Annotated[Principal, Requires(Permission.GLOSSARIES_READ)]
Editor = Annotated[Principal, Requires(Permission.GLOSSARIES_EDIT)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="letters, digits, - and _")]
TermId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,200}$", description="the term's id in the glossary")]


def _unknown(exc: UnknownGlossaryError) -> ApiError:
    return ApiError(404, "unknown_glossary", str(exc), valid=exc.valid)


@router.get("", response_model=list[GlossarySummary], responses=responses(*AUTH_ERRORS), summary="List glossaries")
def list_glossaries(runtime: RuntimeDep, _: Reader) -> list[GlossarySummary]:
    """Every glossary, by name: how many terms it holds, where it came from (`origin`: `shipped`,
    `file` or `api`), its `revision`, and when and by which key it was last edited (`updated_at`,
    `updated_by`). Any key may read them; articles name them in `glossaries`."""
    return [glossary_summary(info) for info in runtime.glossaries.infos()]


@router.get(
    "/{name}", response_model=GlossaryOut, responses=responses(*AUTH_ERRORS, 404), summary="One glossary with its terms"
)
def read_glossary(name: Name, runtime: RuntimeDep, _: Reader) -> GlossaryOut:
    """The glossary's terms in their stored order (each with its English forms, its target per
    variant: zh-Hans, and the regional forms only where they differ from OpenCC's conversion, its
    case rule, do-not-translate and note), with where it came from and its last edit as the list
    gives them. 404 `unknown_glossary` (`valid`: the glossaries there are)."""
    try:
        return glossary_out(*runtime.glossaries.described(name))
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None


class GlossaryFormat(StrEnum):
    CSV = "csv"
    TBX = "tbx"


_TBX_TYPES = ("application/x-tbx+xml", "application/tbx+xml", "application/xml", "text/xml")


@router.get(
    "/{name}/export",
    responses={200: {"content": {"text/csv": {}, "application/x-tbx+xml": {}}}, **responses(*AUTH_ERRORS, 404, 422)},
    summary="A glossary as CSV (for spreadsheets) or TBX (for terminology tools)",
)
def export_glossary(
    name: Name,
    runtime: RuntimeDep,
    _: Reader,
    format: Annotated[
        GlossaryFormat, Query(description="csv (for spreadsheets) or tbx (for terminology tools)")
    ] = GlossaryFormat.CSV,
) -> Response:
    """A download (`NAME.csv` or `NAME.tbx`): CSV with the columns the shipped glossary has (UTF-8),
    or TBX-Basic. Either can be edited and sent back whole with `PUT /v1/glossaries/{name}`. 404
    `unknown_glossary`."""
    try:
        glossary = runtime.glossaries.get(name)
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None
    if format is GlossaryFormat.TBX:
        body: bytes | str = export_tbx(glossary)
        media, suffix = "application/x-tbx+xml", "tbx"
    else:
        body, media, suffix = to_csv(glossary), "text/csv; charset=utf-8", "csv"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'})


@router.put(
    "/{name}",
    response_model=GlossaryOut,
    responses={201: {"model": GlossaryOut, "description": "Created"}, **responses(400, *AUTH_ERRORS, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in ("text/csv", "text/plain", *_TBX_TYPES)},
        }
    },
    summary="Create or replace a glossary from CSV or TBX",
)
async def put_glossary(name: Name, request: Request, response: Response, runtime: RuntimeDep, p: Editor) -> GlossaryOut:
    """For admins. The body is the whole glossary: CSV (`text/csv` or `text/plain`, UTF-8, the
    shipped glossary's columns) or TBX (`application/x-tbx+xml`, `application/tbx+xml`,
    `application/xml` or `text/xml`). It replaces the glossary of that name whole, a shipped one
    too (200), or creates it (201); either way its `origin` becomes `api`, and requests and jobs
    submitted from then on use it (a job keeps the terms it was submitted with). 415 for another
    content type; 400 `invalid_utf8`; 422 `invalid_glossary`, naming the row or term at fault."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await request.body()
    try:
        # Read off the event loop: a glossary of thousands of terms takes seconds.
        if media in ("text/csv", "text/plain"):
            glossary = await run_in_threadpool(parse_csv, data.decode("utf-8-sig"), name)
        elif media in _TBX_TYPES:
            glossary = await run_in_threadpool(import_tbx, data, name)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the glossary as CSV (text/csv or text/plain) or TBX ({', '.join(_TBX_TYPES)}), "
                f"not {media or 'no type'}",
            )
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_utf8", f"the CSV is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (GlossaryFormatError, TBXError, UnknownVariantError, ValueError) as exc:
        raise ApiError(422, "invalid_glossary", str(exc)) from None
    stored, info, created = await run_in_threadpool(runtime.glossaries.put, glossary, by=p.name)
    if created:
        response.status_code = 201
    return glossary_out(stored, info)


@router.put(
    "/{name}/terms/{term_id}",
    response_model=TermInfo,
    responses={201: {"model": TermInfo, "description": "Created"}, **responses(*AUTH_ERRORS, 404, 422)},
    summary="Add or replace one term",
)
def put_term(name: Name, term_id: TermId, body: TermIn, response: Response, runtime: RuntimeDep, p: Editor) -> TermInfo:
    """For admins. Adds the term (201) or replaces the one with this id (200), which keeps its place.
    `forms`: its English forms, canonical first (none holding `;`); `targets`: its zh-Hans form
    (required unless `do_not_translate`) and regional forms where they differ from OpenCC's. The
    glossary's `origin` becomes `api` and its `revision` one more. 404 `unknown_glossary`; 422
    `invalid_term`."""
    problem = separator_problem(body.forms)
    if problem:
        raise ApiError(422, "invalid_term", problem)
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
    """For admins. The glossary's `origin` becomes `api` and its `revision` one more. 404:
    `unknown_glossary`, or `not_found` for a term it does not have."""
    try:
        removed = runtime.glossaries.delete_term(name, term_id, by=p.name)
    except UnknownGlossaryError as exc:
        raise _unknown(exc) from None
    if not removed:
        raise ApiError(404, "not_found", f"glossary {name!r} has no term {term_id!r}")
    return Response(status_code=204)
