"""Wire schemas (pydantic) for the HTTP API and the CLI's JSON output, and the conversion from
the pipeline's dataclasses. The OpenAPI document is generated from these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from glossary.terms import Glossary, Term
from service.documents import AlignedDocument, AlignedSegment, SourceFormat

if TYPE_CHECKING:
    from service.glossaries import GlossaryInfo
    from service.storage.tables import MemoryEntry


def text_only(value: Any) -> Any:
    """`value`, if every string in it is text UTF-8 can carry: JSON's `\\ud800` escapes can smuggle in
    a lone UTF-16 surrogate, which is not a character, and which storage and the model cannot take;
    and `\\u0000` a NUL, which is no text either and which PostgreSQL refuses to store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"holds a lone UTF-16 surrogate (U+{ord(value[exc.start]):04X} at character {exc.start}), "
                "which is not a character: send the character itself, or both halves of its surrogate pair"
            ) from None
        if "\0" in value:
            raise ValueError(f"holds a NUL (U+0000 at character {value.index(chr(0))}), which is not text: remove it")
    elif isinstance(value, list | tuple):
        for item in value:
            text_only(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            text_only(key)
            text_only(item)
    return value


class Incoming(BaseModel):
    """A request body: its strings are checked to be text (see `text_only`); nested bodies are
    Incoming too. Checked before pydantic's own checks (a length, a pattern), which cannot read a
    lone surrogate and would say only that the value is no unicode string."""

    @field_validator("*", mode="before")
    @classmethod
    def _strings_are_text(cls, value: Any) -> Any:
        return text_only(value)


class ArticleIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    title: str = ""
    subtitle: str = ""
    byline: str = ""
    date: str = ""
    body: str = ""


class TranslateRequest(Incoming):
    """Either `text` or `article` (structured fields), in `format`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Abe Shinzo met John Kerry in Tokyo.", "targets": ["zh-Hans", "zh-TW"]},
                {
                    "article": {"title": "Abe and the alliance", "date": "Nov 07, 2013", "body": "<p>Text.</p>"},
                    "format": "html",
                    "glossaries": ["news"],
                },
            ]
        },
    )
    text: str | None = None
    article: ArticleIn | None = None
    format: SourceFormat = SourceFormat.TEXT
    targets: list[str] | None = Field(default=None, description="variants; default zh-Hans and zh-Hant")
    glossaries: list[str] | None = Field(default=None, description="glossaries stacked in order; default news")


class Span(BaseModel):
    start: int
    end: int


class TermOut(BaseModel):
    term_id: str
    source_text: str
    source_span: Span
    # Where the glossary's form stands in each variant's text; null when the term is missing.
    target_spans: dict[str, Span | None]
    expected: dict[str, str]


class FlagOut(BaseModel):
    code: str
    reason: str
    variant: str | None = None


class SegmentOut(BaseModel):
    id: str
    source: str
    ws_before: str
    targets: dict[str, str]
    terms: list[TermOut]
    flags: list[FlagOut]
    origin: Literal["mt", "tm", "human", "rule"] = Field(
        description="mt: the model; tm: translation memory; human: a person's edit; rule: datelines, terms alone"
    )
    status: Literal["draft", "needs_review", "approved"]
    # Stored articles only: the version an edit must name, and variants edited by hand.
    version: int | None = None
    locked_variants: list[str] | None = None


class BlockOut(BaseModel):
    id: str
    kind: str
    level: int
    segments: list[SegmentOut]


class TranslateResponse(BaseModel):
    model: str
    glossaries: list[str]
    format: SourceFormat
    variants: list[str]
    blocks: list[BlockOut]
    full_text: dict[str, str]


class TermInfo(BaseModel):
    id: str
    forms: list[str]
    targets: dict[str, str]
    case_sensitive: bool | None
    do_not_translate: bool
    note: str


class _GlossaryStored(BaseModel):
    """Where a stored glossary came from, and its last change: what an admin asks before editing."""

    name: str
    origin: Literal["shipped", "file", "api"] = Field(
        description="where it came from: `shipped` (glossary/data/, as released), `file` (DUIYI_GLOSSARY_DIR) or "
        "`api` (created or edited through the API since: a PUT of it or of one of its terms, a term's DELETE)"
    )
    revision: int = Field(description="1 as stored from its file or first PUT; one more with each edit")
    updated_at: datetime = Field(description="when it was stored from its file, created, or last edited")
    updated_by: str | None = Field(
        description="the name of the API key that created it or last edited it; null: stored from its file, "
        "never edited"
    )


class GlossarySummary(_GlossaryStored):
    terms: int = Field(description="how many terms it holds")


class GlossaryOut(_GlossaryStored):
    terms: list[TermInfo]


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code")
    message: str = Field(description="what is wrong and what to do, for a person")
    valid: list[str] | None = Field(default=None, description="the accepted values, where that helps")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    model: str
    device: str


@dataclass(frozen=True)
class SegmentState:
    version: int
    locked_variants: list[str]


def segment_out(s: AlignedSegment, state: SegmentState | None = None) -> SegmentOut:
    return SegmentOut(
        id=s.id,
        source=s.source,
        ws_before=s.ws_before,
        targets=s.targets,
        terms=[
            TermOut(
                term_id=t.term_id,
                source_text=t.source_text,
                source_span=Span(start=t.source_start, end=t.source_end),
                target_spans={v: (Span(start=sp.start, end=sp.end) if sp else None) for v, sp in t.targets.items()},
                expected=t.expected,
            )
            for t in s.terms
        ],
        flags=[FlagOut(code=f.code, reason=f.reason, variant=f.variant) for f in s.flags],
        origin=s.origin,  # type: ignore[arg-type]
        status=s.status,  # type: ignore[arg-type]
        version=state.version if state else None,
        locked_variants=state.locked_variants if state else None,
    )


def stored_segment_out(seg: AlignedSegment, version: int, locked_variants: list[str]) -> SegmentOut:
    """A stored segment on the wire, with the version an edit must name."""
    return segment_out(seg, SegmentState(version, list(locked_variants)))


def aligned_to_response(doc: AlignedDocument, states: Mapping[str, SegmentState] | None = None) -> TranslateResponse:
    blocks = []
    for block in doc.blocks:
        segments = [segment_out(s, states[s.id] if states else None) for s in doc.segments if s.block_id == block.id]
        blocks.append(BlockOut(id=block.id, kind=block.kind.value, level=block.level, segments=segments))
    return TranslateResponse(
        model=doc.model,
        glossaries=list(doc.glossaries),
        format=doc.format,
        variants=list(doc.variants),
        blocks=blocks,
        full_text=doc.full_text,
    )


def term_info(term: Term) -> TermInfo:
    return TermInfo(
        id=term.id,
        forms=list(term.forms),
        targets=dict(term.targets),
        case_sensitive=term.case_sensitive,
        do_not_translate=term.do_not_translate,
        note=term.note,
    )


def _stored(info: GlossaryInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "origin": info.origin,
        "revision": info.revision,
        "updated_at": info.updated_at,
        "updated_by": info.updated_by,
    }


def glossary_summary(info: GlossaryInfo) -> GlossarySummary:
    return GlossarySummary(**_stored(info), terms=info.terms)


def glossary_out(glossary: Glossary, info: GlossaryInfo) -> GlossaryOut:
    return GlossaryOut(**_stored(info), terms=[term_info(t) for t in glossary.terms])


# --- article jobs -------------------------------------------------------------------------------


class ArticleSubmit(Incoming):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "cms-4711",
                    "revision": "3",
                    "title": "Abe and the alliance",
                    "body": "<p>Abe Shinzo met John Kerry in Tokyo.</p>",
                    "format": "html",
                    "targets": ["zh-Hans", "zh-TW"],
                    "callback_url": "https://cms.example.com/hooks/duiyi",
                }
            ]
        },
    )
    external_id: str | None = Field(default=None, max_length=200, description="the CMS's id of the article")
    revision: str | None = Field(
        default=None, max_length=100, description="the CMS's revision; with external_id, makes resubmission safe"
    )
    title: str = ""
    subtitle: str = ""
    byline: str = ""
    date: str = ""
    body: str = ""
    format: SourceFormat = SourceFormat.TEXT
    targets: list[str] | None = Field(default=None, description="variants; default zh-Hans and zh-Hant")
    glossaries: list[str] | None = Field(default=None, description="glossaries stacked in order; default news")
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="receives article.translated, article.approved, article.failed and article.withdrawn",
    )


class JobProgress(BaseModel):
    done: int = Field(description="segments translated")
    total: int = Field(description="segments in the article; 0 until translation starts")


class ArticleLinks(BaseModel):
    self: str
    deliveries: str
    previous: str | None = None


class ArticleJob(BaseModel):
    id: str
    status: Literal["queued", "translating", "translated", "in_review", "approved", "failed"]
    failure: str | None = None
    retry_at: datetime | None = Field(
        default=None, description="queued again after a failed attempt: when it may be tried again"
    )
    external_id: str | None
    revision: str | None
    previous_id: str | None = Field(description="the job of this external_id's previous revision")
    newer_ids: list[str] = Field(description="jobs of later revisions")
    progress: JobProgress
    targets: list[str]
    glossaries: list[str]
    callback_url: str | None
    model: str | None
    reviewer: str | None
    approved_by: str | None
    approval_override: str | None
    open_queries: int = Field(
        description="queries on its segments not resolved: segments whose thread has a comment open, however many "
        "comments it has (approval needs an override while any is); a comment added, or a thread "
        "resolved or reopened, changes `updated_at`, so a CMS polling the list sees the count change"
    )
    created_at: datetime
    updated_at: datetime
    translated_at: datetime | None
    approved_at: datetime | None
    links: ArticleLinks
    document: TranslateResponse | None = Field(default=None, description="the aligned document, once translated")


class ArticleList(BaseModel):
    items: list[ArticleJob]
    next_cursor: str | None = Field(
        description="pass as `after` for the next page, or later to get what changed since this answer (the "
        "position after its last item; with no items, the `after` given, or null)"
    )
    more: bool = Field(description="more jobs follow this page: ask again with `after` now")
    next_since: datetime | None = Field(
        description="deprecated: the last item's `updated_at` when `more`; `since` includes that time, so "
        "paging with it repeats jobs. Use `next_cursor`"
    )


class WithdrawnRows(BaseModel):
    """How many of each were deleted with a withdrawn article (the article itself and its job: one each)."""

    segments: int
    edits: int = Field(description="the segments' edit history")
    deliveries: int = Field(description="webhook deliveries, with their payloads")
    delivery_attempts: int
    memory_entries: int = Field(description="translation memory entries only this article gave (with memory=true)")


class ArticleWithdrawn(BaseModel):
    id: str
    status: Literal["queued", "translating", "translated", "in_review", "approved", "failed"] = Field(
        description="the state it was in when withdrawn"
    )
    external_id: str | None
    revision: str | None
    removed: WithdrawnRows
    memory_kept: int = Field(
        description="translation memory entries it gave that another article's approved segment gives too: kept, "
        "credited to that article (with memory=true)"
    )
    unlinked_ids: list[str] = Field(
        description="later revisions that named it as previous: their previous_id is now null"
    )


class DeliveryAttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: str
    event: str
    url: str
    state: Literal["pending", "delivered", "failed"]
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    attempts: list[DeliveryAttemptOut]


# The longest target a person may store for one segment, however it comes: an edit (/v1 and the
# review app) or an XLIFF import.
MAX_SEGMENT_TEXT = 20_000


class SegmentEditIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    variant: str = Field(default="zh-Hans", description="zh-Hans regenerates the others; another variant locks it")
    text: str = Field(max_length=MAX_SEGMENT_TEXT)
    version: int = Field(description="the segment version this edit is based on")
    propagate: bool = Field(
        default=True,
        description="also make the same edit of this sentence's repetitions (the same source sentence, white "
        "space normalised, in a block of the same kind) that no person has edited or approved; false: this "
        "segment only",
    )


class SegmentApproveIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    version: int
    propagate: bool = Field(
        default=True,
        description="also approve this sentence's repetitions that no person has edited or approved and that "
        "read exactly as this segment does; false: this segment only",
    )


class SegmentUnlockIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(description="the segment version the release is based on")


class SegmentSaved(SegmentOut):
    """The segment as stored after an edit or approval, and the repetitions changed with it."""

    repetitions: list[SegmentOut] = Field(
        default_factory=list,
        description="other segments of the article changed with this one (propagated to the same source "
        "sentence; each recorded in its history as this person's, with a note naming this segment), in "
        "document order; empty when none were, or with propagate false",
    )


class ArticleApproveIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    override: str | None = Field(
        default=None,
        max_length=2000,
        description="why approve although segments still need review or queries are open (recorded)",
    )


class CommentIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    # Checked after the article (service.jobs.comments), so that another owner's article is a 404
    # whatever the body: missing is blank, a 422 on an article the caller may see.
    body: str = Field(
        default="",
        description="the query or the answer, plain text (never read as HTML or Markdown): at most 2,000 "
        "characters, not blank; surrounding white space is removed",
    )


class CommentOut(BaseModel):
    """A comment on a segment: a translator's query, or an answer in its thread."""

    id: int
    segment_id: str
    author: str = Field(description="the name of the API key that wrote it")
    body: str = Field(description="plain text")
    created_at: datetime
    open: bool = Field(
        description="not resolved; its segment's thread is an open query while any of its comments is (an article "
        "with open queries needs an override to be approved)"
    )
    resolved_at: datetime | None
    resolved_by: str | None


class ImportConflictOut(BaseModel):
    current: SegmentOut = Field(description="the segment as stored now, changed since the file's export")
    file_target: str = Field(description="the target the file has for it")


class ConflictBody(ErrorBody):
    current: SegmentOut | None = Field(default=None, description="the segment as stored now")
    segments: list[ImportConflictOut] | None = Field(
        default=None, description="an import's segments changed in duiyi since the file's export (edited_since_export)"
    )


class ConflictResponse(BaseModel):
    error: ConflictBody


# --- API keys and glossary edits ---------------------------------------------------------------


def key_name(name: str) -> str:
    """An API key's name as stored: trimmed, and not blank, since it names who uses the key (the
    one rule of `POST /v1/keys`, `duiyi keys create` and `service.keys.create_key`)."""
    trimmed = name.strip()
    if not trimmed:
        raise ValueError("must not be blank; name who uses the key")
    return trimmed


class KeyIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="who uses the key; trimmed, not blank")
    role: Literal["cms", "translator", "admin"]
    callback_url: str | None = Field(default=None, max_length=2000)

    @field_validator("name", mode="before")
    @classmethod
    def _a_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # pydantic's own check says it is no string
        try:
            return key_name(value)
        except ValueError as exc:
            # Its own type: the message as written, not after pydantic's "Value error, ".
            raise PydanticCustomError("blank_name", str(exc)) from None


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    lookup: str = Field(description="the key's public part, as in duiyi_<lookup>_…")
    callback_url: str | None
    created_at: datetime
    revoked_at: datetime | None
    owner: str = Field(
        description="whose articles the key submits and sees: `key:<id>` of its first key; keys made by "
        "rotation share their predecessor's"
    )
    expires_at: datetime | None = Field(description="a rotated key stops working then (null: until revoked)")
    state: Literal["active", "expiring", "expired", "revoked"] = Field(
        description="whether it works: active; expiring (a rotated key in its overlap, until expires_at); "
        "expired; revoked"
    )


class KeyCreated(KeyOut):
    key: str = Field(description="shown once; only its hash is stored")
    webhook_secret: str = Field(description="verifies this key's webhooks (Duiyi-Signature)")


class TermIn(Incoming):
    model_config = ConfigDict(extra="forbid")
    forms: list[str] = Field(min_length=1)
    targets: dict[str, str] = Field(default_factory=dict)
    case_sensitive: bool | None = None
    do_not_translate: bool = False
    note: str = ""


# --- concordance (GET /v1/memory/search) ----------------------------------------------------------

_OFFSETS = "where the query is in it: character offsets (Unicode code points, not UTF-16 units), end exclusive"


class MarkedText(BaseModel):
    text: str
    matches: list[Span] = Field(description=_OFFSETS)


class ConcordanceEntry(BaseModel):
    id: int = Field(description="the entry's id: PATCH or DELETE /v1/memory/entries/{id} (admins)")
    job_id: str | None = Field(description="the article whose approval stored it last (it may have been withdrawn)")
    source: str = Field(description="the English sentence, white space normalised")
    target: str = Field(description="its approved translation, as plain text")
    variant: str
    origin: str = Field(description="approved (a reviewed article's segment), tmx (imported) or corrected (an admin's)")
    created_at: datetime = Field(description="when it was stored last (a newer approval or a correction replaces it)")
    source_matches: list[Span] = Field(description=_OFFSETS)
    target_matches: list[Span] = Field(description=_OFFSETS)


class ConcordanceTerm(BaseModel):
    glossary: str
    term_id: str
    forms: list[MarkedText] = Field(description="the English forms, canonical first")
    targets: dict[str, str] = Field(description="the glossary's own forms by variant")
    variant: str
    form: MarkedText = Field(description="the form a translation in `variant` must use")
    do_not_translate: bool
    note: str


# The largest id of a row with an Integer key (API keys, translation memory entries, comments): a
# 4-byte integer on PostgreSQL, which refuses a larger number in a query (SQLite would take it).
MAX_ROW_ID = 2**31 - 1
# Such an id in a path: beyond the range, a 422, as for a path that is no number.
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
# A translation memory entry's id in a path (the API's and the review app's upkeep routes).
EntryId = Annotated[RowId, Path(description="the entry's id, as concordance search gives it")]


class MemoryEntryOut(BaseModel):
    id: int
    source: str = Field(description="the English sentence, white space normalised")
    target: str = Field(description="its translation, as plain text")
    variant: str
    origin: str = Field(description="approved (a reviewed article's segment), tmx (imported) or corrected")
    job_id: str | None = Field(description="the article whose approval stored it last (it may have been withdrawn)")
    created_at: datetime = Field(description="when it was stored or corrected last")


def memory_entry_out(entry: MemoryEntry) -> MemoryEntryOut:
    """A translation memory entry as the upkeep routes answer it (the API's and the review app's)."""
    return MemoryEntryOut(
        id=entry.id,
        source=entry.source,
        target=entry.target,
        variant=entry.variant,
        origin=entry.origin,
        job_id=entry.job_id,
        created_at=entry.created_at,
    )


class ConcordanceOut(BaseModel):
    query: str = Field(description="the query as searched: white space normalised")
    variant: str | None = Field(description="the memory's entries of this variant only; null: every variant")
    memory: list[ConcordanceEntry] = Field(description="newest first")
    more: bool = Field(description="further memory entries hold the query beyond `limit`")
    glossary: list[ConcordanceTerm] = Field(
        description="terms holding the query: of the article's glossaries if one was named, else of every glossary"
    )
