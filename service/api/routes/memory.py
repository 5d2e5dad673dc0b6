"""The translation memory: TMX import and export, concordance search, and its upkeep (an entry's
translation corrected, an entry deleted, an article's entries removed after it was withdrawn).
Suggestions for one segment are an article's (service.api.routes.files)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from glossary.terms import VARIANTS
from service import concordance
from service import memory as upkeep
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.routes.files import download
from service.api.security import AUTH_ERRORS, Requires, check_article
from service.auth import Permission
from service.interchange.tmx import TMEntry, TMXError, export_tmx, import_tmx
from service.jobs.articles import JobNotFound, Principal
from service.memory import MAX_CORRECTION, SEARCH_LIMIT, SEARCH_MAX, SEARCH_MAX_QUERY, Remembered
from service.schemas import ConcordanceOut, EntryId, Incoming, MemoryEntryOut, memory_entry_out

log = logging.getLogger(__name__)
router = APIRouter(tags=["memory"])

MemoryEditor = Annotated[Principal, Requires(Permission.MEMORY_EDIT)]
MemoryReader = Annotated[Principal, Requires(Permission.MEMORY_READ)]
_XML_BODY = {"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}}


class MemoryImported(BaseModel):
    entries: int = Field(description="translations stored: one per English sentence and variant")
    duplicates: int = Field(
        description="translations of a sentence and variant the file already had (white space aside), "
        "merged into the last of them"
    )


@router.post(
    "/v1/memory/import",
    response_model=MemoryImported,
    responses=responses(400, *AUTH_ERRORS, 413, 422),
    openapi_extra=_XML_BODY,
    summary="Seed the translation memory from a TMX file",
)
async def import_memory(request: Request, runtime: RuntimeDep, _: MemoryEditor) -> MemoryImported:
    """For admins. The body is a TMX file whose source language is English: each translation unit's
    English sentence and its Chinese translations (zh-CN, zh-TW, zh-HK… mapped to duiyi's variants)
    become memory entries (origin `tmx`), replacing the memory's entry for the same sentence and
    variant. Articles submitted afterwards reuse them, and suggestions offer them. Units without
    English or without a Chinese translation are skipped. 422 (`invalid_tmx`): not a TMX file, or
    not from English; nothing is stored then."""
    data = await request.body()
    try:
        entries = await run_in_threadpool(import_tmx, data)  # seconds for a large file: off the event loop
    except TMXError as exc:
        raise ApiError(422, "invalid_tmx", str(exc)) from None
    remembered = [Remembered(e.source, e.variant, e.target, origin="tmx") for e in entries]
    stored = await run_in_threadpool(runtime.memory.remember, remembered)
    # import_tmx gives no blank entries, which the memory would skip: the rest repeated a sentence.
    return MemoryImported(entries=stored, duplicates=len(remembered) - stored)


@router.get(
    "/v1/memory/export",
    responses={200: {"content": {"application/x-tmx+xml": {}}}, **responses(*AUTH_ERRORS, 422)},
    summary="The translation memory as TMX 1.4",
    description="For translators and admins: the memory holds every owner's approved sentences.",
)
def export_memory(
    runtime: RuntimeDep,
    _: MemoryReader,
    variant: Annotated[
        str | None,
        Query(description="only this variant (default: every variant)", json_schema_extra={"enum": list(VARIANTS)}),
    ] = None,
) -> Response:
    if variant is not None and variant not in VARIANTS:
        # An empty file would look like an empty memory; a misspelt variant is the client's mistake.
        raise ApiError(
            422,
            "unknown_variant",
            f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}",
            valid=list(VARIANTS),
        )
    rows = runtime.memory.entries(variant)
    entries = [
        TMEntry(r.source, r.variant, r.target, r.created_at, f"{r.origin} {r.job_id or ''}".strip()) for r in rows
    ]
    return download(export_tmx(entries), "application/x-tmx+xml", "duiyi-memory.tmx")


@router.get(
    "/v1/memory/search",
    response_model=ConcordanceOut,
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="Concordance: how a word or phrase was translated before, in the translation memory and the glossaries",
    description="The memory's entries whose English source or Chinese translation holds `q`, newest first, and "
    "the glossary terms whose English or Chinese forms hold it; each with where `q` is in it. `q` is plain text "
    '(`%` and `_` are no wildcards), matched in any case: in English at word boundaries ("base" finds "bases" '
    'and "base\'s", not "database"), in Chinese anywhere. For translators and admins: the memory holds every '
    "owner's approved sentences. 404: no such `article`; 422: `q` blank or too long, or an unknown variant.",
)
def search_memory(
    runtime: RuntimeDep,
    principal: MemoryReader,
    q: Annotated[str, Query(min_length=1, max_length=SEARCH_MAX_QUERY, description="the word or phrase")],
    variant: Annotated[
        str | None,
        Query(
            description="only the memory's entries of this variant (default: every variant); "
            "the glossary terms' forms in it (default: zh-Hans)",
            json_schema_extra={"enum": list(VARIANTS)},
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=SEARCH_MAX, description="at most this many memory entries and glossary terms each")
    ] = SEARCH_LIMIT,
    side: Annotated[
        Literal["both", "source", "target"], Query(description="look in the English sources, the translations, or both")
    ] = "both",
    article: Annotated[
        str | None,
        Query(description="an article's id: glossary terms of its glossaries only (default: every glossary)"),
    ] = None,
) -> ConcordanceOut:
    try:
        concordance.check(q, variant)
    except concordance.BadQuery as exc:
        raise ApiError(422, exc.code, str(exc), valid=exc.valid) from None
    names = None
    if article is not None:
        if "\0" in article:
            raise ApiError(422, "invalid_request", "article: holds a NUL (U+0000), which no article id has")
        check_article(runtime.db, article, principal)
        try:
            names = concordance.article_glossaries(runtime.db, article, principal.scope)
        except JobNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
    found = concordance.search(
        runtime.memory,
        runtime.glossaries,
        runtime.rules,
        q,
        variant=variant,
        limit=limit,
        side=side,
        glossary_names=names,
    )
    return concordance.to_response(found, q, variant)


class MemoryCorrection(Incoming):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(
        min_length=1,
        max_length=MAX_CORRECTION,
        description="the right translation, as plain text: markup in it (`<b>`, `**`) is stored as the characters "
        "typed, and shows as text where an article takes it",
    )


class MemoryForgotten(BaseModel):
    removed: int = Field(description="entries removed: those the article alone gave")
    kept: int = Field(description="entries another article's approved segment also gives: kept, credited to it")


@router.patch(
    "/v1/memory/entries/{entry_id}",
    response_model=MemoryEntryOut,
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="Correct a translation memory entry's translation",
    description="For admins. The entry's translation is replaced (origin `corrected`): the next article with "
    "the same sentence takes it (in zh-Hans, derived for the variants without entries of their own), and "
    "suggestions show it. Only this variant's entry changes. 404: no such entry; 422: a blank or too long target.",
)
def correct_entry(
    entry_id: EntryId, body: MemoryCorrection, runtime: RuntimeDep, principal: MemoryEditor
) -> MemoryEntryOut:
    try:
        entry = upkeep.correct_entry(runtime.memory, entry_id, body.target, by=principal.name)
    except upkeep.BadCorrection as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except upkeep.EntryNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return memory_entry_out(entry)


@router.delete(
    "/v1/memory/entries/{entry_id}",
    response_model=MemoryEntryOut,
    responses=responses(*AUTH_ERRORS, 404, 422),
    summary="Delete a translation memory entry",
    description="For admins. Answers the deleted entry. Its sentence is no longer reused or suggested in its "
    "variant; deleting the zh-Hans entry ends the sentence's exact reuse in every variant. A second DELETE is "
    "a 404.",
)
def delete_entry(entry_id: EntryId, runtime: RuntimeDep, principal: MemoryEditor) -> MemoryEntryOut:
    try:
        entry = upkeep.delete_entry(runtime.memory, entry_id, by=principal.name)
    except upkeep.EntryNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return memory_entry_out(entry)


@router.delete(
    "/v1/memory/articles/{job_id}",
    response_model=MemoryForgotten,
    responses=responses(*AUTH_ERRORS, 422),
    summary="Remove what an article gave the translation memory (after it was withdrawn without it)",
    description="For admins: as `DELETE /v1/articles/{id}?memory=true` does, for an article withdrawn without "
    "`memory=true` (a legal takedown that came later), or one still there. Its entries are removed, except those "
    "another article's approved segment also gives (the same sentence and translation), which stay, credited to "
    "it. An id that names no entry removes nothing (`removed` 0): a withdrawn article's id is known nowhere else.",
)
def forget_article(
    job_id: Annotated[
        str, Path(max_length=36, pattern=r"^[^\x00]+$", description="the article's id (withdrawn, or still there)")
    ],
    runtime: RuntimeDep,
    principal: MemoryEditor,
) -> MemoryForgotten:
    removed, kept = runtime.memory.forget(job_id)
    # %r: the id is whatever the URL held (a line break too), not one this service made.
    log.info("memory of article %r removed by %s: %d entries removed, %d kept", job_id, principal.name, removed, kept)
    return MemoryForgotten(removed=removed, kept=kept)
