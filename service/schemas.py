"""Wire schemas (pydantic) for the HTTP API and the CLI's JSON output, and the conversion from
the pipeline's dataclasses. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from glossary.terms import Glossary, Term
from service.documents import AlignedDocument, SourceFormat


class ArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = ""
    subtitle: str = ""
    byline: str = ""
    date: str = ""
    body: str = ""


class TranslateRequest(BaseModel):
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
    origin: Literal["mt", "tm", "human", "rule"]
    status: Literal["draft", "needs_review", "approved"]


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


class GlossarySummary(BaseModel):
    name: str
    terms: int


class GlossaryOut(BaseModel):
    name: str
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


def aligned_to_response(doc: AlignedDocument) -> TranslateResponse:
    blocks = []
    for block in doc.blocks:
        segments = [
            SegmentOut(
                id=s.id,
                source=s.source,
                ws_before=s.ws_before,
                targets=s.targets,
                terms=[
                    TermOut(
                        term_id=t.term_id,
                        source_text=t.source_text,
                        source_span=Span(start=t.source_start, end=t.source_end),
                        target_spans={
                            v: (Span(start=sp.start, end=sp.end) if sp else None) for v, sp in t.targets.items()
                        },
                        expected=t.expected,
                    )
                    for t in s.terms
                ],
                flags=[FlagOut(code=f.code, reason=f.reason, variant=f.variant) for f in s.flags],
                origin=s.origin,  # type: ignore[arg-type]
                status=s.status,  # type: ignore[arg-type]
            )
            for s in doc.segments
            if s.block_id == block.id
        ]
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


def glossary_out(glossary: Glossary) -> GlossaryOut:
    return GlossaryOut(name=glossary.name, terms=[term_info(t) for t in glossary.terms])
