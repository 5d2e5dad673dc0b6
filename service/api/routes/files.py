"""Files for CAT tools and publishing: an article's XLIFF/TMX/HTML/text/JSON exports, XLIFF import, a
segment's translation memory suggestions and its edit history. The memory itself (TMX, concordance,
upkeep) is service.api.routes.memory's."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from glossary.terms import VARIANTS
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, JobId, Requires, SegmentId, check_article
from service.auth import Permission
from service.exports import ExportFormat, export
from service.interchange.xliff import XliffError, XliffVariantError
from service.jobs import files, review
from service.jobs.articles import InvalidTransition, JobNotFound, Principal, get_job
from service.jobs.codec import segment_from_row
from service.schemas import ConflictResponse, stored_segment_out
from service.storage.tables import SegmentEdit, StoredSegment

router = APIRouter(tags=["files"])

Reader = Annotated[Principal, Requires(Permission.ARTICLES_READ)]
Editor = Annotated[Principal, Requires(Permission.SEGMENTS_EDIT)]
MemoryEditor = Annotated[Principal, Requires(Permission.MEMORY_EDIT)]
MemoryReader = Annotated[Principal, Requires(Permission.MEMORY_READ)]
_XML_BODY = {"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}}


class ImportFormat(StrEnum):
    XLIFF = "xliff"


class ImportSummary(BaseModel):
    edited: list[str]
    approved: list[str]
    unchanged: list[str]


class SuggestionOut(BaseModel):
    score: float
    source: str
    target: str
    diff: list[tuple[str, str]]


class EditOut(BaseModel):
    variant: str | None
    before: str | None
    after: str | None
    status_before: str
    status_after: str
    by: str
    at: str
    note: str | None = Field(
        default=None, description="why, for a change the person did not make directly (a repetition's propagation)"
    )


def _file_errors(exc: Exception) -> ApiError:
    if isinstance(exc, JobNotFound | review.SegmentNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, files.NotTranslatedYet | InvalidTransition):
        return ApiError(409, "invalid_state", str(exc))
    if isinstance(exc, files.UnknownVariant):
        return ApiError(422, "unknown_variant", str(exc), valid=exc.valid)
    raise exc


def download(body: bytes | str, media: str, name: str) -> Response:
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get(
    "/v1/articles/{job_id}/export",
    responses={
        200: {
            "description": "The file",
            "content": {
                m: {}
                for m in (
                    "application/json",
                    "application/xliff+xml",
                    "application/x-tmx+xml",
                    "text/html",
                    "text/plain",
                )
            },
        },
        **responses(*AUTH_ERRORS, 404, 409, 422),
    },
    summary="Export an article: XLIFF 2.0, TMX 1.4 (approved segments), bilingual HTML, text or JSON",
    description="A cms key exports only its owner's articles (another's is a 404).",
)
def export_article(
    job_id: JobId,
    runtime: RuntimeDep,
    principal: Reader,
    format: Annotated[
        ExportFormat,
        Query(description="json, xliff (XLIFF 2.0), tmx (approved segments), html (bilingual table) or text"),
    ] = ExportFormat.JSON,
    variant: Annotated[
        str | None,
        Query(
            description="the variant to export (default: the article's first target)",
            json_schema_extra={"enum": list(VARIANTS)},
        ),
    ] = None,
) -> Response:
    check_article(runtime.db, job_id, principal)
    try:
        found = export(runtime.db, job_id, format, variant)
    except (JobNotFound, files.NotTranslatedYet, files.UnknownVariant) as exc:
        raise _file_errors(exc) from None
    disposition = found.content_disposition()
    headers = {"Content-Disposition": disposition} if disposition else None
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.post(
    "/v1/articles/{job_id}/import",
    response_model=ImportSummary,
    responses={
        **responses(400, *AUTH_ERRORS, 404, 413, 422),
        409: {
            "model": ConflictResponse,
            "description": "Not translated yet; segments the file changes or approves were changed in duiyi "
            "since its export (edited_since_export, listed in `segments`); or a segment the file changes was "
            "edited while it was being stored (version_conflict, as `current`). Nothing was applied",
        },
    },
    openapi_extra=_XML_BODY,
    summary="Import a CAT tool's edited XLIFF: targets become translators' edits, final segments approved",
    description="The body is the XLIFF 2.0 (or 2.1) file that `GET /v1/articles/{id}/export?format=xliff` gave, "
    "as the CAT tool saved it. It goes into the variant its `trgLang` names: the tag the export wrote, in any "
    "case or with `_` for `-` (`zh-tw`, `zh_TW`), or with the script its region implies (`zh-Hant-TW` for "
    "zh-TW, `zh-Hant-HK` for zh-HK). A file whose `trgLang` is none of the article's variants, names none, or "
    "disagrees with `variant` is a 422 `invalid_xliff` (`valid`: the article's variants), as is a file for "
    "another article, with changed source text or otherwise damaged; nothing is applied then. Segments the "
    "file changes or approves that were changed in duiyi since its export are a 409 `edited_since_export` "
    "unless `overwrite=true`.",
)
async def import_article(
    job_id: JobId,
    request: Request,
    runtime: RuntimeDep,
    principal: Editor,
    format: Annotated[ImportFormat, Query(description="xliff (XLIFF 2.0 or 2.1), the only one")] = ImportFormat.XLIFF,
    variant: Annotated[
        str | None,
        Query(
            description="the variant to import into, which the file's trgLang must name (else 422 invalid_xliff); "
            "default: the one of the article's variants that its trgLang names. A variant the article lacks is "
            "a 422 unknown_variant",
            json_schema_extra={"enum": list(VARIANTS)},
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        Query(
            description="apply the file's targets also over segments changed in duiyi since the file was "
            "exported (without it, those make the import a 409 edited_since_export); the text it replaces "
            "stays in each segment's history"
        ),
    ] = False,
) -> ImportSummary | Response:
    # Editors see every article today; checked all the same, so that no role change opens this route.
    await run_in_threadpool(check_article, runtime.db, job_id, principal)
    data = await request.body()

    def run() -> files.ImportResult:
        return files.apply_xliff(
            runtime.db,
            job_id,
            data,
            variant=variant,
            by=principal.name,
            rules=runtime.rules,
            qa=runtime.pipeline.settings.qa,
            memory=runtime.memory,
            settings=runtime.settings,
            overwrite=overwrite,
        )

    try:
        result = await run_in_threadpool(run)
    except XliffError as exc:
        valid = exc.valid if isinstance(exc, XliffVariantError) else None
        raise ApiError(422, "invalid_xliff", str(exc), valid=valid) from None
    except files.EditedSinceExport as exc:
        body = ConflictResponse.model_validate(
            {
                "error": {
                    "code": "edited_since_export",
                    "message": f"{exc}; nothing of the file was applied. Export the article again and redo "
                    "those segments in the new file, or import this one with overwrite=true to put the "
                    "file's text over the newer one (which stays in each segment's history)",
                    "segments": [
                        {"current": _segment_out(c.current), "file_target": c.file_target} for c in exc.conflicts
                    ],
                }
            }
        )
        return Response(body.model_dump_json(), status_code=409, media_type="application/json")
    except review.VersionConflict as exc:
        # Someone edited a segment the file changes while it was being imported: nothing was applied.
        body = ConflictResponse.model_validate(
            {
                "error": {
                    "code": "version_conflict",
                    "message": f"{exc}; nothing of the file was applied: import it again (a segment the file "
                    "changes that was changed since the export is then a 409 edited_since_export)",
                    "current": _segment_out(exc.current),
                }
            }
        )
        return Response(body.model_dump_json(), status_code=409, media_type="application/json")
    except (JobNotFound, files.NotTranslatedYet, files.UnknownVariant, InvalidTransition) as exc:
        raise _file_errors(exc) from None
    return ImportSummary(edited=result.edited, approved=result.approved, unchanged=result.unchanged)


def _segment_out(row: StoredSegment) -> dict:
    return stored_segment_out(segment_from_row(row), row.version, row.locked_variants).model_dump()


@router.get(
    "/v1/articles/{job_id}/segments/{segment_id}/suggestions",
    response_model=list[SuggestionOut],
    responses=responses(*AUTH_ERRORS, 404, 409, 422),
    summary="Translation memory suggestions for a segment (≥ 75 % similar), best first",
    description="For translators and admins: the memory holds every owner's approved sentences.",
)
def suggestions(
    job_id: JobId,
    segment_id: SegmentId,
    runtime: RuntimeDep,
    principal: MemoryReader,
    variant: Annotated[
        str | None,
        Query(
            description="the variant to suggest in (default: the article's first target)",
            json_schema_extra={"enum": list(VARIANTS)},
        ),
    ] = None,
) -> list[SuggestionOut]:
    check_article(runtime.db, job_id, principal)
    try:
        found = files.suggestions(runtime.db, runtime.memory, job_id, segment_id, variant)
    except (JobNotFound, review.SegmentNotFound, files.NotTranslatedYet, files.UnknownVariant) as exc:
        raise _file_errors(exc) from None
    return [SuggestionOut(score=s.score, source=s.source, target=s.target, diff=list(s.diff)) for s in found]


@router.get(
    "/v1/articles/{job_id}/segments/{segment_id}/history",
    response_model=list[EditOut],
    responses=responses(*AUTH_ERRORS, 404),
    summary="Every change people made to a segment: who, when, before, after",
    description="A cms key reads only its owner's articles (another's is a 404). 404 for a segment the article "
    "does not have.",
)
def history(job_id: JobId, segment_id: SegmentId, runtime: RuntimeDep, principal: Reader) -> list[EditOut]:
    check_article(runtime.db, job_id, principal)
    with runtime.db.session() as session:
        try:
            get_job(session, job_id)
            if session.get(StoredSegment, (job_id, segment_id)) is None:
                raise review.SegmentNotFound(job_id, segment_id)
        except (JobNotFound, review.SegmentNotFound) as exc:
            raise _file_errors(exc) from None
        rows = session.scalars(
            select(SegmentEdit)
            .where(SegmentEdit.job_id == job_id, SegmentEdit.segment_id == segment_id)
            .order_by(SegmentEdit.at, SegmentEdit.id)
        )
        return [
            EditOut(
                variant=r.variant,
                before=r.before,
                after=r.after,
                status_before=r.status_before,
                status_after=r.status_after,
                by=r.by,
                at=r.at.isoformat(),
                note=r.note,
            )
            for r in rows
        ]
