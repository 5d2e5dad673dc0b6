"""Review: translators edit segments, approve them and approve the article.

Edits are optimistic: each names the segment version it was based on, and the UPDATE only applies
when that is still the version stored (a conflicting edit gets VersionConflict, with the newer
text, instead of overwriting it). Every change is kept in `segment_edits`.

Editing zh-Hans regenerates the Traditional variants from the edit (OpenCC, with each glossary
term's own regional form put in), unless a variant was itself edited by hand, which locks it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select, update

from service.config import Settings
from service.documents import AlignedSegment, AlignedTerm, Flag, TargetSpan
from service.jobs.articles import DONE_TRANSLATING, InvalidTransition, JobStatus, get_job, move
from service.jobs.codec import flags_to_json, segment_from_row, terms_to_json
from service.jobs.deliveries import enqueue
from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated
from service.storage.db import Database
from service.storage.tables import Job, SegmentEdit, StoredSegment, utcnow
from service.variants import VariantRule, localize

# Private Use Area: OpenCC leaves these alone, so a term's zh-Hans form is kept out of conversion.
_PUA = 0xE000
_MARKUP = re.compile(r"<[^>]+>|\]\([^)]*\)|[\[*_`]")


class SegmentNotFound(LookupError):
    def __init__(self, job_id: str, segment_id: str) -> None:
        super().__init__(f"article {job_id} has no segment {segment_id!r}")


class VersionConflict(Exception):
    """The edit was based on an older version; `current` is what is stored now."""

    def __init__(self, current: StoredSegment, based_on: int) -> None:
        super().__init__(
            f"segment {current.id} changed since version {based_on} (it is at version {current.version}, "
            f"last changed by {current.updated_by or 'the machine'}); reload it and edit the newer text"
        )
        self.current = current


class ApprovalBlocked(Exception):
    def __init__(self, pending: int) -> None:
        super().__init__(
            f"{pending} segment(s) still need review; fix them, or approve with an override reason (recorded)"
        )


def _localize_with_terms(hans: str, terms: Sequence[AlignedTerm], rule: VariantRule) -> str:
    """`hans` in the variant, each glossary term's zh-Hans form replaced by the variant's own form."""
    masked, forms = hans, list[str]()
    for term in sorted(terms, key=lambda t: -len(t.expected.get("zh-Hans", ""))):
        source_form, target_form = term.expected.get("zh-Hans"), term.expected.get(rule.variant)
        if not source_form or target_form is None or source_form not in masked:
            continue
        token = chr(_PUA + len(forms))
        forms.append(target_form)
        masked = masked.replace(source_form, token)
    text = localize(masked, rule)
    for i, form in enumerate(forms):
        text = text.replace(chr(_PUA + i), form)
    return text


def _plain(text: str) -> str:
    return _MARKUP.sub("", text)


def realign(
    seg: AlignedSegment,
    texts: dict[str, str],
    locked: set[str],
    rules: Sequence[VariantRule],
    qa: QASettings,
) -> AlignedSegment:
    """The segment with `texts` (variant → a person's text) in place: unlocked variants regenerated
    from zh-Hans, term spans found again, QA run again on the new zh-Hans."""
    hans = texts.get("zh-Hans", seg.targets.get("zh-Hans", ""))
    targets: dict[str, str] = {}
    for rule in rules:
        v = rule.variant
        if v in texts:
            targets[v] = texts[v]
        elif v == "zh-Hans":
            targets[v] = hans
        elif v in locked:
            targets[v] = seg.targets[v]
        else:
            targets[v] = _localize_with_terms(hans, seg.terms, rule)
    flags: list[Flag] = []
    terms = []
    for term in seg.terms:
        spans: dict[str, TargetSpan | None] = {}
        for v, text in targets.items():
            form = term.expected.get(v, "")
            at = text.find(form) if form else -1
            spans[v] = TargetSpan(at, at + len(form)) if at >= 0 else None
            if at < 0:
                flags.append(
                    Flag("term_missing", f"glossary term “{term.source_text}” ({term.term_id}) should read “{form}”", v)
                )
        terms.append(
            AlignedTerm(term.term_id, term.source_text, term.source_start, term.source_end, spans, dict(term.expected))
        )
    source = seg.source
    for term in sorted(seg.terms, key=lambda t: -t.source_start):
        source = source[: term.source_start] + " " + source[term.source_end :]
    plain = _plain(hans)
    kept = [t.source_text for t in seg.terms if t.expected.get("zh-Hans") == t.source_text]
    checks = [number_mismatch(source, plain), untranslated(plain, kept, qa), length_ratio(seg.source, plain, qa)]
    checks.append(repetition(plain, qa))
    flags.extend(f for f in checks if f is not None)
    return AlignedSegment(
        id=seg.id,
        block_id=seg.block_id,
        source=seg.source,
        ws_before=seg.ws_before,
        targets=targets,
        terms=tuple(terms),
        flags=tuple(flags),
        origin="human",
        status="needs_review" if flags else "draft",
    )


def _reviewable(job: Job) -> None:
    if JobStatus(job.status) not in DONE_TRANSLATING:
        raise InvalidTransition(job, JobStatus.IN_REVIEW)


def _into_review(job: Job, by: str) -> None:
    if job.status in (JobStatus.TRANSLATED.value, JobStatus.APPROVED.value):
        move(job, JobStatus.IN_REVIEW)
        job.approved_at = None
    if not job.reviewer:
        job.reviewer = by


def start_review(db: Database, job_id: str, by: str) -> Job:
    with db.session() as session:
        job = get_job(session, job_id)
        _reviewable(job)
        _into_review(job, by)
        job.reviewer = by
        return job


def _segment(db: Database, job_id: str, segment_id: str) -> StoredSegment:
    with db.session() as session:
        get_job(session, job_id)
        row = session.get(StoredSegment, (job_id, segment_id))
        if row is None:
            raise SegmentNotFound(job_id, segment_id)
        return row


def _apply(
    db: Database,
    job_id: str,
    row: StoredSegment,
    new: AlignedSegment,
    *,
    based_on: int,
    by: str,
    locked: list[str],
) -> StoredSegment:
    """Store `new` over `row` if `row` is still at version `based_on`; history for what changed."""
    now = utcnow()
    with db.session() as session:
        job = get_job(session, job_id)
        _reviewable(job)
        done = session.execute(
            update(StoredSegment)
            .where(StoredSegment.job_id == job_id, StoredSegment.id == row.id, StoredSegment.version == based_on)
            .values(
                targets=dict(new.targets),
                terms=terms_to_json(new.terms),
                flags=flags_to_json(new.flags),
                origin=new.origin,
                status=new.status,
                locked_variants=locked,
                version=based_on + 1,
                updated_at=now,
                updated_by=by,
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            current = session.get(StoredSegment, (job_id, row.id), populate_existing=True)
            assert current is not None
            raise VersionConflict(current, based_on)
        changed: list[str | None] = [v for v in new.targets if new.targets[v] != row.targets.get(v)]
        changed = changed or [None]
        for variant in changed:
            session.add(
                SegmentEdit(
                    job_id=job_id,
                    segment_id=row.id,
                    variant=variant,
                    before=row.targets.get(variant) if variant else None,
                    after=new.targets.get(variant) if variant else None,
                    status_before=row.status,
                    status_after=new.status,
                    by=by,
                    at=now,
                )
            )
        _into_review(job, by)
        stored = session.get(StoredSegment, (job_id, row.id), populate_existing=True)
        assert stored is not None
        return stored


def edit_segment(
    db: Database,
    job_id: str,
    segment_id: str,
    *,
    variant: str,
    text: str,
    version: int,
    by: str,
    rules: dict[str, VariantRule],
    qa: QASettings,
) -> StoredSegment:
    row = _segment(db, job_id, segment_id)
    if row.version != version:
        raise VersionConflict(row, version)
    if variant not in row.targets:
        raise KeyError(variant)
    locked = set(row.locked_variants)
    if variant != "zh-Hans":
        locked.add(variant)
    variants = list(row.targets)
    new = realign(segment_from_row(row), {variant: text}, locked, [rules[v] for v in variants], qa)
    return _apply(db, job_id, row, new, based_on=version, by=by, locked=sorted(locked))


def approve_segment(db: Database, job_id: str, segment_id: str, *, version: int, by: str) -> StoredSegment:
    row = _segment(db, job_id, segment_id)
    if row.version != version:
        raise VersionConflict(row, version)
    seg = segment_from_row(row)
    new = AlignedSegment(
        seg.id, seg.block_id, seg.source, seg.ws_before, seg.targets, seg.terms, seg.flags, seg.origin, "approved"
    )
    return _apply(db, job_id, row, new, based_on=version, by=by, locked=list(row.locked_variants))


def approve_article(db: Database, job_id: str, *, by: str, override: str | None, settings: Settings) -> Job:
    """Approve the article: every segment becomes approved. Refused while a segment needs review,
    unless `override` gives a reason (recorded on the job)."""
    now = utcnow()
    with db.session() as session:
        job = get_job(session, job_id)
        if job.status == JobStatus.APPROVED.value:
            return job
        _reviewable(job)
        rows = list(session.scalars(select(StoredSegment).where(StoredSegment.job_id == job_id)))
        pending = [r for r in rows if r.status == "needs_review"]
        if pending and not (override and override.strip()):
            raise ApprovalBlocked(len(pending))
        for r in rows:
            if r.status != "approved":
                session.add(
                    SegmentEdit(
                        job_id=job_id,
                        segment_id=r.id,
                        variant=None,
                        status_before=r.status,
                        status_after="approved",
                        by=by,
                        at=now,
                    )
                )
                r.status = "approved"
                r.version += 1
                r.updated_at = now
                r.updated_by = by
        move(job, JobStatus.APPROVED)
        job.approved_at = now
        job.approved_by = by
        job.approval_override = override.strip() if pending and override else None
        enqueue(session, job, "article.approved", settings)
        return job
