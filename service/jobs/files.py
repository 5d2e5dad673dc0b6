"""An article's files: XLIFF for CAT tools (export and import), TMX of its approved segments, a
bilingual HTML page and the publishable text of one variant. The conversions themselves are pure
(`service.interchange`); this module gathers the stored records they need and applies imports."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select

from service.config import Settings
from service.documents import AlignedDocument, AlignedSegment, SourceFormat, in_format, plain_text
from service.interchange.tmx import TMEntry
from service.interchange.xliff import (
    XBasis,
    XDocument,
    XEdit,
    XInline,
    XliffError,
    XSegment,
    XTerm,
    XUnit,
    import_xliff_for,
)
from service.jobs import markup, review
from service.jobs.articles import DONE_TRANSLATING, InvalidTransition, JobStatus, get_job, stored_document
from service.memory import Suggestion, TranslationMemory
from service.qa import QASettings
from service.storage.db import Database
from service.storage.tables import Job, StoredSegment
from service.variants import VariantRule


class NotTranslatedYet(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(
            f"article {job.id} is {job.status}: there is nothing to export or import until it is translated"
        )


class UnknownVariant(ValueError):
    def __init__(self, variant: str, variants: list[str]) -> None:
        super().__init__(f"this article has no {variant!r} translation; it has {', '.join(variants)}")
        self.valid = variants


def load(db: Database, job_id: str) -> tuple[Job, AlignedDocument, dict[str, tuple[int, list[str]]]]:
    with db.session() as session:
        job = get_job(session, job_id)
        stored = stored_document(session, job)
    if stored is None:
        raise NotTranslatedYet(job)
    return job, *stored


def check_variant(variants: Sequence[str], variant: str | None) -> str:
    """`variant` if the article has it (`variants`), its first when None; else UnknownVariant."""
    chosen = variant or variants[0]
    if chosen not in variants:
        raise UnknownVariant(chosen, list(variants))
    return chosen


def suggestions(
    db: Database, memory: TranslationMemory, job_id: str, segment_id: str, variant: str | None
) -> list[Suggestion]:
    """Translation memory suggestions for one segment in one variant (`variant`: the article's first
    when None), best first. Reads the job and that segment only, not the whole document. Raises
    JobNotFound, NotTranslatedYet, UnknownVariant, review.SegmentNotFound."""
    with db.session() as session:
        job = get_job(session, job_id)
        if JobStatus(job.status) not in DONE_TRANSLATING:
            raise NotTranslatedYet(job)
        chosen = check_variant(job.targets, variant)
        row = session.get(StoredSegment, (job.id, segment_id))
        if row is None:
            raise review.SegmentNotFound(job_id, segment_id)
        source = row.source
    return memory.fuzzy(source, chosen)


def to_xliff(job: Job, doc: AlignedDocument, variant: str, versions: dict[str, int]) -> XDocument:
    """The XLIFF records of `variant`; `versions`: each segment's stored version, which the file
    records with its status and target (`XBasis`) for the import to compare."""
    notes = {t["id"]: t.get("note", "") for t in job.glossary_terms}
    blocks = {b.id: b for b in doc.blocks}
    units = []
    by_block: dict[str, list[XSegment]] = {}
    # Each segment's inlines as the segmenter gave them to it. An HTML article's targets hold its
    # code and images as tags, so they are codes too; a Markdown article's code spans and images are
    # text in its targets, its raw HTML tags (which span no text) codes.
    placed = markup.placed_inlines(blocks, doc.segments)
    for seg, (start, inlines) in zip(doc.segments, placed, strict=True):
        target = seg.targets.get(variant, "")
        by_block.setdefault(seg.block_id, []).append(
            XSegment(
                id=seg.id,
                source=seg.source,
                target=target,
                status=seg.status,
                inlines=tuple(
                    XInline(at - start, at - start + i.end - i.start, i.open, i.close)
                    for at, i in inlines
                    if doc.format is SourceFormat.HTML or not i.verbatim or i.start == i.end
                ),
                terms=tuple(
                    XTerm(
                        t.source_start,
                        t.source_end,
                        t.term_id,
                        t.source_text,
                        t.expected.get(variant, ""),
                        notes.get(t.term_id, ""),
                    )
                    for t in seg.terms
                ),
                flags=tuple((f.code, f.reason) for f in seg.flags if f.variant in (None, variant)),
                ws_before=seg.ws_before,
                html=doc.format is SourceFormat.HTML,
                basis=XBasis(versions[seg.id], seg.status, _digest(target, doc.format)),
            )
        )
    for block in doc.blocks:
        if block.id in by_block:
            units.append(XUnit(block.id, block.kind.value, tuple(by_block[block.id])))
    return XDocument(article_id=job.id, variant=variant, units=tuple(units))


def approved_entries(db: Database, job: Job, doc: AlignedDocument, variant: str) -> list[TMEntry]:
    """The article's approved segments in `variant`, for a CAT tool's memory (a TMX export): as the
    translation memory has them, without those that only an approval override approved where no
    person wrote `variant` (`review.approve_article`, `review.written_variants`)."""
    with db.session() as session:
        overridden = set(review.overridden(session, job.id))
        written: dict[str, set[str]] = {}
        if overridden:
            query = select(StoredSegment).where(StoredSegment.job_id == job.id, StoredSegment.id.in_(overridden))
            written = review.written_variants(session, job, list(session.scalars(query)))
    when = job.approved_at or job.updated_at
    return [
        TMEntry(source=s.source, variant=variant, target=target, created_at=when, note=f"{job.id} {s.id}")
        for s in doc.segments
        if s.status == "approved" and s.source.strip() and (s.id not in overridden or variant in written.get(s.id, ()))
        # Plain text, as the source is: without an HTML article's tags and escapes.
        for target in [plain_text(s.targets.get(variant, ""), doc.format)]
        if target.strip()
    ]


def _canonical(target: str, fmt: SourceFormat) -> str:
    """An HTML target with its text escaped one way (`>` and `&gt;` are the same text); its tags as
    they are. Other formats' targets as they are."""
    if fmt is not SourceFormat.HTML:
        return target
    parts: list[str] = []
    position = 0
    for tag in markup.TAG.finditer(target):
        parts += [in_format(html.unescape(target[position : tag.start()]), fmt), tag.group()]
        position = tag.end()
    parts.append(in_format(html.unescape(target[position:]), fmt))
    return "".join(parts)


def _digest(target: str, fmt: SourceFormat) -> str:
    """What an export records of a target, to tell on import whether it changed: the SHA-256 of its
    canonical form, so that a CAT tool's other escaping of the same text is no change."""
    return hashlib.sha256(_canonical(target, fmt).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ImportResult:
    edited: list[str]
    approved: list[str]
    unchanged: list[str]


@dataclass(frozen=True)
class ImportConflict:
    """A segment that an imported file changes or approves, and that was changed in duiyi after the
    file was exported: `current` as stored, `file_target` as the file has it."""

    current: StoredSegment
    file_target: str


class EditedSinceExport(Exception):
    """The file would overwrite (or approve over) text changed in duiyi since its export."""

    def __init__(self, conflicts: list[ImportConflict]) -> None:
        shown = ", ".join(c.current.id for c in conflicts[:10]) + (", …" if len(conflicts) > 10 else "")
        super().__init__(
            f"{len(conflicts)} segment(s) that the file changes were changed in duiyi after the file was "
            f"exported ({shown})"
        )
        self.conflicts = conflicts


def apply_xliff(
    db: Database,
    job_id: str,
    data: bytes,
    *,
    variant: str | None,
    by: str,
    rules: dict[str, VariantRule],
    qa: QASettings,
    memory: TranslationMemory | None,
    settings: Settings,
    overwrite: bool = False,
) -> ImportResult:
    """Take a CAT tool's edited XLIFF back into the variant it is for: the one its trgLang names
    (`variant`, where given, must be that one; None: whichever of the article's it names). Targets
    the translator changed become their edits (history kept; zh-Hans regenerates the others,
    another variant is locked), segments they set to final/reviewed are approved. All or nothing:
    the whole file is read and checked and every edit worked out before anything is stored, then
    everything is stored in one transaction. Raises XliffError (refused file; XliffVariantError
    where its language is none of the article's variants or not `variant`), NotTranslatedYet,
    UnknownVariant (`variant` is not one of the article's), InvalidTransition,
    EditedSinceExport where the file changes or approves segments changed in duiyi since its
    export (unless `overwrite`: then the file's text wins, the newer text stays in the history),
    and review.VersionConflict where a segment the file changes is edited while it is being
    stored; nothing is applied then."""
    job, doc, _ = load(db, job_id)
    if JobStatus(job.status) == JobStatus.FAILED:
        raise InvalidTransition(job, JobStatus.IN_REVIEW)
    requested = check_variant(doc.variants, variant) if variant else None
    sources = {s.id: s.source for s in doc.segments}
    # Text in the file is text: an HTML article's is escaped again, its codes become the source's tags.
    # A Markdown article's file holds Markdown (its code spans and backslash escapes), taken as it is.
    escape = partial(in_format, fmt=doc.format) if doc.format is SourceFormat.HTML else None
    imported = import_xliff_for(
        data, article_id=job.id, variants=doc.variants, variant=requested, sources=sources, escape=escape
    )
    chosen = imported.variant
    edits: list[XEdit] = imported.edits
    # The segments as read now: each change is based on its version here, so that a segment edited
    # by someone else before the changes are stored is a conflict rather than overwritten.
    with db.session() as session:
        rows = list(session.scalars(select(StoredSegment).where(StoredSegment.job_id == job.id)))
        # Approved by the article's approval override alone: a `final` in the file is a person's approval.
        unreviewed = set(review.overridden(session, job.id))
    by_id = {r.id: r for r in rows}
    result = ImportResult([], [], [])
    changes: list[review.Change] = []
    conflicts: list[ImportConflict] = []
    for edit in edits:
        row = by_id[edit.segment_id]  # import_xliff refuses unknown ids
        stored = row.targets.get(chosen, "")
        # A target that differs from the stored one only in how its text is escaped (`"` or `&quot;`)
        # is the same text: left as stored, so that a file imported without edits changes nothing.
        same_text = _canonical(edit.target, doc.format) == _canonical(stored, doc.format)
        # Three-way, where the file records what each segment was at export (`basis`): what the
        # translator did not change in the file is no edit, so it does not undo an edit made in duiyi
        # since; what they changed, or approved, over text changed since is a conflict. A file that
        # records nothing is taken as it is: each target different from the stored one is an edit.
        basis = edit.basis
        in_file = basis is None or _digest(edit.target, doc.format) != basis.digest
        approving = edit.status == "approved" and (in_file or basis is None or basis.status != "approved")
        since = basis is not None and _digest(stored, doc.format) != basis.digest
        if since and ((in_file and not same_text) or (not in_file and approving)):
            if not overwrite:
                conflicts.append(ImportConflict(row, edit.target))
                continue
            in_file = True  # the file's text over the newer one, as asked; the newer stays in history
        text = edit.target if in_file and not same_text else stored
        change: tuple[AlignedSegment, list[str]] | None = None
        if text != stored:
            try:
                # Refused here, before anything is stored, where a target brings markup its source lacks.
                change = review.edited(job, rows, row, variant=chosen, text=text, rules=rules, qa=qa)
            except markup.MarkupNotAllowed as exc:
                raise XliffError(str(exc)) from None
            result.edited.append(row.id)
        approve = approving and (
            (change[0].status if change else row.status) != "approved" or (change is None and row.id in unreviewed)
        )
        if approve:
            result.approved.append(row.id)
        elif change is None:
            result.unchanged.append(row.id)
        if change is not None or approve:
            changes.append(review.Change(row, change, approve))
    if conflicts:
        raise EditedSinceExport(conflicts)
    if changes:
        review.apply_changes(db, job.id, changes, by=by, memory=memory)
    return result
