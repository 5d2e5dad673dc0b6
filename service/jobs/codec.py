"""The pipeline's dataclasses to and from the JSON the database stores, and back.

Kept in one place so the stored shape is visible at a glance; a change here that old rows cannot
satisfy needs a migration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from glossary.terms import Glossary, Term
from service.documents import (
    AlignedSegment,
    AlignedTerm,
    Block,
    BlockKind,
    Document,
    Flag,
    Inline,
    SourceFormat,
    TargetSpan,
)
from service.storage.tables import StoredSegment

log = logging.getLogger(__name__)


def document_to_json(doc: Document) -> dict[str, Any]:
    """The structure needed to reassemble full texts: blocks, the text's tail, the HTML page."""
    return {
        "format": doc.format.value,
        "tail": doc.tail,
        "html": doc.html,
        "blocks": [
            {
                "id": b.id,
                "kind": b.kind.value,
                "text": b.text,
                "inlines": [[i.start, i.end, i.open, i.close, i.verbatim] for i in b.inlines],
                "level": b.level,
                "sep_before": b.sep_before,
                "prefix": b.prefix,
                "element": b.element,
            }
            for b in doc.blocks
        ],
    }


def document_from_json(data: Mapping[str, Any]) -> Document:
    """A Document with its blocks (its segments live in their own rows)."""
    blocks = tuple(
        Block(
            id=b["id"],
            kind=BlockKind(b["kind"]),
            text=b["text"],
            inlines=tuple(Inline(s, e, o, c, v) for s, e, o, c, v in b["inlines"]),
            level=b["level"],
            sep_before=b["sep_before"],
            prefix=b["prefix"],
            element=b["element"],
        )
        for b in data["blocks"]
    )
    return Document(SourceFormat(data["format"]), blocks, (), tail=data["tail"], html=data["html"])


def terms_to_json(terms: list[AlignedTerm] | tuple[AlignedTerm, ...]) -> list[dict[str, Any]]:
    return [
        {
            "term_id": t.term_id,
            "source_text": t.source_text,
            "source": [t.source_start, t.source_end],
            "targets": {v: ([sp.start, sp.end] if sp else None) for v, sp in t.targets.items()},
            "expected": dict(t.expected),
        }
        for t in terms
    ]


def terms_from_json(data: list[Any]) -> tuple[AlignedTerm, ...]:
    return tuple(
        AlignedTerm(
            term_id=t["term_id"],
            source_text=t["source_text"],
            source_start=t["source"][0],
            source_end=t["source"][1],
            targets={v: (TargetSpan(*sp) if sp else None) for v, sp in t["targets"].items()},
            expected=dict(t["expected"]),
        )
        for t in data
    )


def flags_to_json(flags: tuple[Flag, ...] | list[Flag]) -> list[dict[str, Any]]:
    return [{"code": f.code, "reason": f.reason, "variant": f.variant} for f in flags]


def flags_from_json(data: list[Any]) -> tuple[Flag, ...]:
    return tuple(Flag(f["code"], f["reason"], f.get("variant")) for f in data)


def segment_row(job_id: str, position: int, seg: AlignedSegment) -> StoredSegment:
    return StoredSegment(
        job_id=job_id,
        id=seg.id,
        position=position,
        block_id=seg.block_id,
        source=seg.source,
        ws_before=seg.ws_before,
        targets=dict(seg.targets),
        terms=terms_to_json(seg.terms),
        flags=flags_to_json(seg.flags),
        origin=seg.origin,
        status=seg.status,
        locked_variants=[],
        version=1,
    )


def segment_from_row(row: StoredSegment) -> AlignedSegment:
    return AlignedSegment(
        id=row.id,
        block_id=row.block_id,
        source=row.source,
        ws_before=row.ws_before,
        targets=dict(row.targets),
        terms=terms_from_json(row.terms),
        flags=flags_from_json(row.flags),
        origin=row.origin,
        status=row.status,
    )


def term_to_json(term: Term) -> dict[str, Any]:
    return {
        "id": term.id,
        "forms": list(term.forms),
        "targets": dict(term.targets),
        "case_sensitive": term.case_sensitive,
        "do_not_translate": term.do_not_translate,
        "note": term.note,
    }


def term_from_json(data: Mapping[str, Any]) -> Term:
    return Term(
        id=data["id"],
        forms=tuple(data["forms"]),
        targets=dict(data["targets"]),
        case_sensitive=data.get("case_sensitive"),
        do_not_translate=bool(data.get("do_not_translate", False)),
        note=data.get("note", ""),
    )


def glossary_from_json(name: str, terms: list[Any], description: str = "") -> Glossary:
    """A stored glossary. A stored term that `Term` now refuses (older versions stored a blank
    zh-Hans from `PUT …/terms`) is left out with a warning naming it, rather than failing every
    article that uses the glossary (and every job that holds it), until the term is replaced or
    removed through the API."""
    kept = []
    for data in terms:
        try:
            kept.append(term_from_json(data))
        except (ValueError, KeyError, TypeError) as e:
            log.warning("glossary %r: stored term %r left out: %s", name, _term_id(data), e)
    return Glossary(name=name, terms=tuple(kept), description=description)


def _term_id(data: Any) -> object:
    return data.get("id") if isinstance(data, Mapping) else data
