"""Review: translators edit segments, approve them and approve the article.

Edits are optimistic: each names the segment version it was based on, and the UPDATE only applies
when that is still the version stored (a conflicting edit gets VersionConflict, with the newer
text, instead of overwriting it). Every change is kept in `segment_edits`. An imported file's edits
and approvals are worked out first (`edited`) and stored together in one transaction
(`apply_changes`): all of them, or none where one conflicts.

Editing zh-Hans regenerates the Traditional variants from the edit (OpenCC, with each glossary
term's own regional form put in), unless a variant was itself edited by hand, which locks it. In an
article without zh-Hans, an edit of one variant stands in for it: the other unlocked variants are
regenerated from it, through zh-Hans (service.retarget).

A locked variant can be released (`release_variant`): it is unlocked and derived again from the
segment's zh-Hans as an edit of zh-Hans would derive it (QA run again, a new version, its history
noted `UNLOCK_NOTE`), for a translator who once fixed zh-TW by hand and has since corrected zh-Hans.
In an article without zh-Hans it is derived from the variant that stands in for zh-Hans: the other
locked variant a person wrote last (the unlocked ones already follow that one); where no other
variant is locked, nothing but its own derivations could give it a text, and the release is refused.

Repetitions (as CAT tools propagate them): an edit of one segment is applied, in the same
transaction, to the other segments of the article whose source is the same sentence (white space
normalised; in a block of the same kind; with the same inline markup) that no person has edited or
approved; approving a segment approves those of them that read as it does. Each such change is
recorded as the translator's, with a note naming the segment it came from; a segment a person
changed (or approved) is never changed by propagation, nor one changed since it was read (its
version, as for any edit). See `repetitions`.

An article approved with an override (segments still needing review) is published as it is, but
the segments that needed review were approved by no person: their history records it (a note that
starts `OVERRIDE_NOTE` and gives the reason), only the variants of them that a person wrote go into
the translation memory (`written_variants`), and reopening the article puts every one of them back
to review (`overridden`), so that approving it again needs a person's review of them, or an override
again. A person who approves such a segment afterwards (the API, the review app, a file's `final`)
approves it as any segment: recorded (`CONFIRMED_NOTE`; the article is not reopened for it), into
the memory, and no longer the override's.

The translation memory takes a segment's translations when it is approved: by a person
(`approve_segment`, an imported file), or by the article's approval, which stores only the segments
it approves then. A segment approved already was stored when it was, and is not stored again (an
admin's correction or deletion of its entry since stands), nor one that only a reopening put back
to review and that nobody changed since (its override's approval stored what it could).

An edit that leaves the variant's text as it is stored changes nothing (`edit_segment`): no new
version, no history, and an approved segment or article stays approved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.documents import AlignedSegment, plain_text
from service.jobs.articles import DONE_TRANSLATING, InvalidTransition, JobStatus, get_job, hold_job, move
from service.jobs.codec import document_from_json, flags_to_json, segment_from_row, terms_to_json
from service.jobs.comments import open_count
from service.jobs.deliveries import enqueue
from service.jobs.markup import MarkupNotAllowed, check_markup, has_markup, job_format, placed_inlines, with_markup
from service.memory import Remembered, TranslationMemory
from service.qa import QASettings
from service.retarget import realign
from service.storage.db import Database
from service.storage.tables import Job, SegmentEdit, StoredSegment, utcnow
from service.variants import VariantRule

log = logging.getLogger(__name__)

# How the history notes a segment that an article's approval override approved while it needed
# review (the reason follows): no person approved it. A note that starts otherwise is another's.
OVERRIDE_NOTE = "approved unreviewed by the article's approval override"
# How the history notes such a segment put back to review by reopening the article (`_into_review`).
REOPENED_NOTE = "back to review: the article was reopened, and only its approval override had approved this"
# How the history notes a person's approval of a segment that only the override had approved: the
# status stays `approved`, but from now on it is a person's approval (`overridden` no longer names it).
CONFIRMED_NOTE = "approved by a person: only the article's approval override had approved it"
# How the history notes a variant released from its lock (`release_variant`): "unlocked zh-TW:
# derived again from zh-Hans". A person's own change, not a propagation (see `_untouched`).
UNLOCK_NOTE = "unlocked"


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


class NotReleasable(Exception):
    """A release refused: `code` says why, for the API. `not_locked`: the variant follows the
    others already (never edited by hand, released since, or zh-Hans, which is never locked);
    `nothing_to_derive_from`: an article without zh-Hans in which no other variant was written by
    hand, so that only the variant's own derivations could give it a text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ApprovalBlocked(Exception):
    """Approval refused: segments need review, or queries on segments are open (service.jobs.comments)."""

    def __init__(self, pending: int, queries: int = 0) -> None:
        what = [f"{pending} segment(s) still need review"] if pending else []
        what += [f"{queries} query(ies) on segments still open"] if queries else []
        todo = "fix them" if not queries else "resolve them" if not pending else "fix and resolve them"
        super().__init__(f"{' and '.join(what)}; {todo}, or approve with an override reason (recorded)")


def _reviewable(job: Job, to: JobStatus = JobStatus.IN_REVIEW) -> None:
    """Refuse review before translation has finished (or after it failed); `to` is what was asked
    (review, or approval), so that the refusal names it."""
    if JobStatus(job.status) not in DONE_TRANSLATING:
        raise InvalidTransition(job, to)


def overridden(session: Session, job_id: str) -> dict[str, str]:
    """The job's segments whose last change is their approval by the article's approval override
    (OVERRIDE_NOTE), by id, each with the status it had before: no person has approved them, nor
    changed them since. Read in the caller's transaction."""
    marked = select(SegmentEdit.segment_id).where(
        SegmentEdit.job_id == job_id, SegmentEdit.note.startswith(OVERRIDE_NOTE, autoescape=True)
    )
    last: dict[str, tuple[str | None, str]] = {}
    # In the order they were made (ids grow; changes to one article take turns, see hold_job).
    for segment_id, note, status_before in session.execute(
        select(SegmentEdit.segment_id, SegmentEdit.note, SegmentEdit.status_before)
        .where(SegmentEdit.job_id == job_id, SegmentEdit.segment_id.in_(marked))
        .order_by(SegmentEdit.id)
    ):
        last[segment_id] = (note, status_before)
    return {
        segment_id: status_before
        for segment_id, (note, status_before) in last.items()
        if note is not None and note.startswith(OVERRIDE_NOTE)
    }


def _reopened(session: Session, job_id: str) -> set[str]:
    """The job's segments whose last change is their return to review by a reopening of the article
    (REOPENED_NOTE): none since the override that had approved them. Read in the caller's
    transaction."""
    last = (
        select(SegmentEdit.segment_id, func.max(SegmentEdit.id).label("last"))
        .where(SegmentEdit.job_id == job_id)
        .group_by(SegmentEdit.segment_id)
        .subquery()
    )
    return set(
        session.scalars(
            select(SegmentEdit.segment_id)
            .join(last, SegmentEdit.id == last.c.last)
            .where(SegmentEdit.note == REOPENED_NOTE)
        )
    )


def _into_review(session: Session, job: Job, by: str) -> dict[str, StoredSegment]:
    """Move a translated or approved job into review (recording its reviewer). An approved one is
    reopened: nothing of its approval is left on the job, and the segments only its override
    approved (`overridden`) go back to the status they had, each a new version with a note in its
    history. Those segments, by id (empty where none went back)."""
    back: dict[str, StoredSegment] = {}
    if job.status == JobStatus.APPROVED.value and job.approval_override is not None:
        back = _override_undone(session, job, by)
    if job.status in (JobStatus.TRANSLATED.value, JobStatus.APPROVED.value):
        move(job, JobStatus.IN_REVIEW)
        # A reopened article is no longer approved: none of the old approval may still show (the
        # override's reason stays in the history of the segments it approved, and in the log).
        job.approved_at = None
        job.approved_by = None
        job.approval_override = None
    if not job.reviewer:
        job.reviewer = by
    return back


def _override_undone(session: Session, job: Job, by: str) -> dict[str, StoredSegment]:
    """The segments of an approved `job` that only its override approved, back to their status
    before it (see `_into_review`)."""
    before = overridden(session, job.id)
    if not before:
        return {}
    now = utcnow()
    rows = session.scalars(
        select(StoredSegment)
        .where(StoredSegment.job_id == job.id, StoredSegment.id.in_(before))
        .execution_options(populate_existing=True)
    )
    back: dict[str, StoredSegment] = {}
    for row in rows:
        if row.status != "approved":
            continue
        session.add(
            SegmentEdit(
                job_id=job.id,
                segment_id=row.id,
                variant=None,
                status_before=row.status,
                status_after=before[row.id],
                by=by,
                at=now,
                note=REOPENED_NOTE,
            )
        )
        row.status = before[row.id]
        row.version += 1
        row.updated_at = now
        row.updated_by = by
        back[row.id] = row
    session.flush()
    log.info(
        "article %s reopened by %s: its approval override (%r) no longer stands; %d segment(s) it alone "
        "approved need review again",
        job.id,
        by,
        job.approval_override,
        len(back),
    )
    return back


def start_review(db: Database, job_id: str, by: str) -> Job:
    with db.session() as session:
        job = hold_job(session, job_id)
        _reviewable(job)
        _into_review(session, job, by)
        job.reviewer = by
        return job


def _segment(db: Database, job_id: str, segment_id: str) -> StoredSegment:
    with db.session() as session:
        get_job(session, job_id)
        row = session.get(StoredSegment, (job_id, segment_id))
        if row is None:
            raise SegmentNotFound(job_id, segment_id)
        return row


@dataclass(frozen=True)
class Saved:
    """What an edit or approval stored: the segment, and the repetitions changed with it
    (propagated; see `repetitions`), in document order."""

    row: StoredSegment
    repetitions: list[StoredSegment]


# What a repetition (`other`) becomes after the segment it repeats was stored (`stored`): its new
# segment and locked variants, or None to leave it as it is.
Repeat = Callable[[StoredSegment, StoredSegment], tuple[AlignedSegment, list[str]] | None]


def _apply(
    db: Database,
    job_id: str,
    row: StoredSegment,
    new: AlignedSegment,
    *,
    based_on: int,
    by: str,
    locked: list[str],
    repeat: Callable[[Job, list[StoredSegment]], Repeat] | None = None,
    note: str = "",
    memory: TranslationMemory | None = None,
    why: str = "",
) -> Saved:
    """Store `new` over `row` if `row` is still at version `based_on`; history for what changed
    (with `why` as its note, where the change needs one). With `repeat` (given the job and all its
    segments), the repetitions of `row` that no person has changed are changed as it says, in the
    same transaction, each recorded with `note`. With `memory`, the approved ones among them all go
    into the translation memory."""
    now = utcnow()
    with db.session() as session:
        job = hold_job(session, job_id)
        _reviewable(job)
        same, everything = repetitions(session, job, row) if repeat is not None else ([], [])
        stored = _store(session, job, row, new, based_on=based_on, by=by, locked=locked, now=now, note=why)
        done: list[StoredSegment] = []
        if same and repeat is not None:
            change = repeat(job, everything)
            for other in _untouched(session, job.id, same):
                result = change(stored, other)
                if result is None:
                    continue
                saved = _store_if(
                    session, job, other, result[0], based_on=other.version, by=by, locked=result[1], now=now, note=note
                )
                if saved is not None:  # else changed since it was read: left to whoever changed it
                    done.append(saved)
        _remember(session, job, [r for r in (stored, *done) if r.status == "approved"], memory)
        return Saved(stored, done)


def _store(
    session: Session,
    job: Job,
    row: StoredSegment,
    new: AlignedSegment,
    *,
    based_on: int,
    by: str,
    locked: list[str],
    now: datetime,
    note: str = "",
    reopen: bool = True,
) -> StoredSegment:
    """In the caller's transaction: store `new` over `row` if `row` is still at version `based_on`
    (else VersionConflict), history for what changed (with `note`, as `_store_if`), and the job
    into review (unless not `reopen`)."""
    stored = _store_if(
        session, job, row, new, based_on=based_on, by=by, locked=locked, now=now, note=note, reopen=reopen
    )
    if stored is None:
        current = session.get(StoredSegment, (job.id, row.id), populate_existing=True)
        assert current is not None
        # Out of the session before raising: the rollback would expire its attributes, and the
        # caller reads them (the 409 shows the newer segment) after the session is closed.
        session.expunge(current)
        raise VersionConflict(current, based_on)
    return stored


def _store_if(
    session: Session,
    job: Job,
    row: StoredSegment,
    new: AlignedSegment,
    *,
    based_on: int,
    by: str,
    locked: list[str],
    now: datetime,
    note: str = "",
    reopen: bool = True,
) -> StoredSegment | None:
    """`_store`, answering None (and changing nothing) where `row` is no longer at version
    `based_on`. `note`: why, in the history, when the person did not make the change directly.
    `reopen`: move the job into review (reopen an approved one); not for a person's approval of a
    segment approved already (`_confirm`), which changes nothing that was published."""
    # What it was, read before the UPDATE: that brings a `row` in this session up to date with it.
    before, status_before = dict(row.targets), row.status
    done = session.execute(
        update(StoredSegment)
        .where(StoredSegment.job_id == job.id, StoredSegment.id == row.id, StoredSegment.version == based_on)
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
        return None
    changed: list[str | None] = [v for v in new.targets if new.targets[v] != before.get(v)]
    changed = changed or [None]
    for variant in changed:
        session.add(
            SegmentEdit(
                job_id=job.id,
                segment_id=row.id,
                variant=variant,
                before=before.get(variant) if variant else None,
                after=new.targets.get(variant) if variant else None,
                status_before=status_before,
                status_after=new.status,
                by=by,
                at=now,
                note=note or None,
            )
        )
    if reopen:
        _into_review(session, job, by)
    stored = session.get(StoredSegment, (job.id, row.id), populate_existing=True)
    assert stored is not None
    return stored


def repetition_keys(job: Job, rows: Sequence[StoredSegment]) -> dict[str, tuple[object, ...]]:
    """Each segment's repetition key, by id (`rows`: all the job's segments); segments with the same
    key repeat each other: the same kind of block (a heading's sentence is not a caption's), and the
    same sentence, white space normalised; where it has inline markup, the same text with the same
    markup in the same places, since its targets carry that markup. A blank segment has none."""
    doc = document_from_json(job.document) if job.document else None
    blocks = {b.id: b for b in doc.blocks} if doc else {}
    ordered = sorted(rows, key=lambda r: r.position)
    placed = placed_inlines(blocks, ordered) if has_markup(job) else [(0, [])] * len(ordered)
    keys: dict[str, tuple[object, ...]] = {}
    for row, (start, inlines) in zip(ordered, placed, strict=True):
        block = blocks.get(row.block_id)
        kind = block.kind.value if block else ""
        if not row.source.strip():
            continue
        if inlines:
            where = tuple((at - start, i.end - i.start, i.open, i.close) for at, i in inlines)
            keys[row.id] = (kind, row.source, where)
        else:
            keys[row.id] = (kind, " ".join(row.source.split()))
    return keys


def repetitions(session: Session, job: Job, row: StoredSegment) -> tuple[list[StoredSegment], list[StoredSegment]]:
    """In the caller's transaction, before `row` is changed: the other segments of its article that
    repeat it (`repetition_keys`), read again, in document order; and all the article's segments (as
    read before; for their sources and places). On PostgreSQL `row` and its repetitions are locked
    first, in the order of their ids, so that two translators saving repetitions of one sentence at
    once take turns rather than deadlock (and the later one then sees the earlier one's change)."""
    everything = list(session.scalars(select(StoredSegment).where(StoredSegment.job_id == job.id)))
    keys = repetition_keys(job, everything)
    key = keys.get(row.id)
    same = [r.id for r in everything if r.id != row.id and key is not None and keys.get(r.id) == key]
    if not same:
        return [], everything
    if session.get_bind().dialect.name == "postgresql":  # SQLite has one writer at a time anyway
        # In the ids' code point order (collation C), as Python sorts them (see apply_changes).
        session.execute(
            select(StoredSegment.id)
            .where(StoredSegment.job_id == job.id, StoredSegment.id.in_([row.id, *same]))
            .order_by(StoredSegment.id.collate("C"))
            .with_for_update()
        )
    current = session.scalars(
        select(StoredSegment)
        .where(StoredSegment.job_id == job.id, StoredSegment.id.in_(same))
        .order_by(StoredSegment.position)
        .execution_options(populate_existing=True)
    )
    return list(current), everything


def _untouched(session: Session, job_id: str, rows: list[StoredSegment]) -> list[StoredSegment]:
    """Those of `rows` no person has changed: not approved, with no change of a person's own in their
    history (only changes with a note: propagations, and an override's approval undone by
    reopening; a variant unlocked, UNLOCK_NOTE, and an approval CONFIRMED_NOTE are a person's own),
    and not carried over from a person's work in the previous revision (a person's name on it that
    no note explains)."""
    own: set[str] = set()
    propagated: set[str] = set()
    for segment_id, note in session.execute(
        select(SegmentEdit.segment_id, SegmentEdit.note)
        .where(SegmentEdit.job_id == job_id, SegmentEdit.segment_id.in_([r.id for r in rows]))
        .distinct()
    ):
        mine = not note or note.startswith(f"{UNLOCK_NOTE} ") or note == CONFIRMED_NOTE
        (own if mine else propagated).add(segment_id)
    return [
        r for r in rows if r.status != "approved" and r.id not in own and (r.updated_by is None or r.id in propagated)
    ]


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
    propagate: bool = True,
) -> Saved:
    """Edit one variant of a segment (see the module's docstring); with `propagate`, the same edit
    of its repetitions that no person has changed, in the same transaction.

    A text that is the variant's stored text changes nothing (an editor's autosave after a character
    typed and deleted): answered with the segment as stored, whatever `version` it names, since
    nothing conflicts with it; no new version, no history, no lock of a derived variant, and an
    approved segment (or article) stays approved. The edit stores a variant's text as it is given
    (`realign`), so the texts are compared as they are."""
    row = _segment(db, job_id, segment_id)
    if text == row.targets.get(variant):
        with db.session() as session:
            _reviewable(get_job(session, job_id))
        return Saved(row, [])
    if row.version != version:
        raise VersionConflict(row, version)
    if variant not in row.targets:
        raise KeyError(variant)
    with db.session() as session:
        job, block = _with_block(session, job_id, row)
    new, locked = edited(job, block, row, variant=variant, text=text, rules=rules, qa=qa)

    def repeat(job: Job, everything: list[StoredSegment]) -> Repeat:
        def change(_: StoredSegment, other: StoredSegment) -> tuple[AlignedSegment, list[str]] | None:
            try:
                result = edited(job, everything, other, variant=variant, text=text, rules=rules, qa=qa)
            except (KeyError, MarkupNotAllowed):
                return None  # not a repetition this edit fits (its markup is another's): left alone
            same = result[0].targets == other.targets and result[0].status == other.status
            return None if same and result[1] == sorted(other.locked_variants) else result

        return change

    return _apply(
        db,
        job_id,
        row,
        new,
        based_on=version,
        by=by,
        locked=locked,
        repeat=repeat if propagate else None,
        note=f"propagated from segment {segment_id} (the same source sentence)",
    )


def _with_block(session: Session, job_id: str, row: StoredSegment) -> tuple[Job, list[StoredSegment]]:
    """The job, and the stored segments of `row`'s block where its markup is checked (`edited`'s
    `block`: HTML and Markdown articles; else none)."""
    job = get_job(session, job_id)
    if not has_markup(job):
        return job, []
    query = select(StoredSegment).where(StoredSegment.job_id == job_id, StoredSegment.block_id == row.block_id)
    return job, list(session.scalars(query))


def release_variant(
    db: Database,
    job_id: str,
    segment_id: str,
    *,
    variant: str,
    version: int,
    by: str,
    rules: dict[str, VariantRule],
    qa: QASettings,
) -> Saved:
    """Unlock `variant` of a segment and derive it again, as an edit of zh-Hans to the text it has
    now would (`edited`: the variant regenerated with OpenCC and the glossary's regional forms, QA
    run again), stored as a new version if `row` is still at `version` (else VersionConflict), its
    history noted "unlocked zh-TW: derived again from zh-Hans". In an article without zh-Hans, from
    the variant standing in for it (`_stand_in`). Raises KeyError (no such variant), NotReleasable
    and, for an article that cannot be reviewed, InvalidTransition.

    Not propagated to repetitions: a release gives up a text a person wrote for a derived one, which
    the translator decides where they see it, segment by segment; a repetition keeps its lock until
    it is released there. It is a person's change: propagation leaves the segment alone afterwards,
    as after an edit (`_untouched`)."""
    row = _segment(db, job_id, segment_id)
    if row.version != version:
        raise VersionConflict(row, version)
    if variant not in row.targets:
        raise KeyError(variant)
    if variant == "zh-Hans":
        raise NotReleasable("not_locked", "zh-Hans is never locked: the other variants are derived from it")
    if variant not in row.locked_variants:
        raise NotReleasable(
            "not_locked",
            f"{variant} of segment {segment_id} is not locked (not edited by hand, or released already): "
            "it is derived from the others as they are edited",
        )
    with db.session() as session:
        job, block = _with_block(session, job_id, row)
        source = "zh-Hans" if "zh-Hans" in row.targets else _stand_in(session, job, row, variant)
    new, locked = edited(job, block, row, variant=source, text=row.targets[source], rules=rules, qa=qa, release=variant)
    return _apply(
        db,
        job_id,
        row,
        new,
        based_on=version,
        by=by,
        locked=locked,
        why=f"{UNLOCK_NOTE} {variant}: derived again from {source}",
    )


def _stand_in(session: Session, job: Job, row: StoredSegment, variant: str) -> str:
    """In an article without zh-Hans, the variant that stands in for it when `variant` is released:
    of the others locked (written by hand), the one changed last (the unlocked variants were
    regenerated from that edit too); where the history names none of them (a lock carried over
    from the previous revision), the first in the article's targets. NotReleasable where no other
    variant is locked."""
    others = [v for v in job.targets if v != variant and v in row.targets and v in row.locked_variants]
    if not others:
        raise NotReleasable(
            "nothing_to_derive_from",
            f"this article has no zh-Hans, and no variant but {variant} of segment {row.id} was edited by hand: "
            f"there is nothing to derive {variant} from. Edit the variant it should follow; then release it",
        )
    last = session.scalar(
        select(SegmentEdit.variant)
        .where(SegmentEdit.job_id == job.id, SegmentEdit.segment_id == row.id, SegmentEdit.variant.in_(others))
        .order_by(SegmentEdit.id.desc())
        .limit(1)
    )
    return last if last is not None and last in others else others[0]


def edited(
    job: Job,
    block: list[StoredSegment],
    row: StoredSegment,
    *,
    variant: str,
    text: str,
    rules: dict[str, VariantRule],
    qa: QASettings,
    release: str | None = None,
) -> tuple[AlignedSegment, list[str]]:
    """What editing `row`'s `variant` to `text` makes of the segment (the other variants regenerated,
    QA run again), and its locked variants; nothing is stored. `block`: the stored segments of its
    block (read only for HTML and Markdown articles). `release`: a locked variant to unlock first,
    so that it is regenerated too (`release_variant`). Raises KeyError (no such variant) and
    MarkupNotAllowed."""
    if variant not in row.targets:
        raise KeyError(variant)
    check_markup(job, block, row, text)
    locked = {v for v in row.locked_variants if v != release}
    if variant != "zh-Hans":
        locked.add(variant)
    variants = list(row.targets)
    new = realign(segment_from_row(row), {variant: text}, locked, [rules[v] for v in variants], qa, fmt=job_format(job))
    return new, sorted(locked)


@dataclass(frozen=True)
class Change:
    """One segment's part in `apply_changes`: the segment as read (its version is the one the
    change is based on), what an edit makes of it (`edited`'s answer) or None, and whether to approve
    it afterwards."""

    row: StoredSegment
    edit: tuple[AlignedSegment, list[str]] | None
    approve: bool


def apply_changes(
    db: Database,
    job_id: str,
    changes: Sequence[Change],
    *,
    by: str,
    memory: TranslationMemory | None = None,
) -> list[StoredSegment]:
    """Edits and approvals of several segments (an imported file) in one transaction: each stored as
    edit_segment and approve_segment store it (history kept, the job into review, approved
    translations into the memory), in order. All or nothing: a segment changed since its row was read
    (VersionConflict), or an article that cannot be reviewed (InvalidTransition), leaves every
    segment as it was. The stored segments, in the order of `changes`.

    Approving a segment that only the article's approval override approved is a person's approval
    of it (`_confirm`); a file that does nothing else leaves the article approved."""
    now = utcnow()
    with db.session() as session:
        job = hold_job(session, job_id)
        _reviewable(job)
        unreviewed = overridden(session, job_id)
        confirmed = {
            c.row.id for c in changes if c.approve and c.edit is None and c.row.status == "approved"
        } & unreviewed.keys()
        # Reopened first: the segments that only an override approved go back to review, as new
        # versions, on which this file's changes of them are then based (and approved as others are).
        back = _into_review(session, job, by) if any(c.row.id not in confirmed for c in changes) else {}
        stored: dict[int, StoredSegment] = {}
        approved: list[StoredSegment] = []
        # Stored in the order of their ids, the order `repetitions` locks segments in: an import and
        # an edit that propagates to repetitions take turns (PostgreSQL) rather than deadlock.
        for index, change in sorted(enumerate(changes), key=lambda c: c[1].row.id):
            row = change.row
            again = back.get(row.id)
            if again is not None and again.version == row.version + 1:
                row = again
            if change.edit is not None:
                new, locked = change.edit
                row = _store(session, job, row, new, based_on=row.version, by=by, locked=locked, now=now)
            if change.approve and row.status != "approved":
                row = _approve(session, job, row, by=by, now=now)
                approved.append(row)
            elif change.approve and row.id in confirmed and row.id not in back:
                row = _confirm(session, job, row, by=by, now=now)
                approved.append(row)
            stored[index] = row
        _remember(session, job, approved, memory)
        return [stored[index] for index in range(len(changes))]


def _approved(row: StoredSegment) -> AlignedSegment:
    """The stored segment, approved."""
    seg = segment_from_row(row)
    return AlignedSegment(
        seg.id, seg.block_id, seg.source, seg.ws_before, seg.targets, seg.terms, seg.flags, seg.origin, "approved"
    )


def _confirm(session: Session, job: Job, row: StoredSegment, *, by: str, now: datetime) -> StoredSegment:
    """In the caller's transaction: `by`'s approval of `row`, approved already, but by the article's
    approval override only (`overridden`): a new version (if `row` is still at its version, else
    VersionConflict) and history noted CONFIRMED_NOTE, approved to approved, which makes it a
    person's approval from now on (a reopening leaves it approved; the memory and a TMX export take
    it). The article is not reopened: nothing that was published changes."""
    return _approve(session, job, row, by=by, now=now, note=CONFIRMED_NOTE, reopen=False)


def _approve(
    session: Session, job: Job, row: StoredSegment, *, by: str, now: datetime, note: str = "", reopen: bool = True
) -> StoredSegment:
    """In the caller's transaction: `row` approved as it reads, by `by` (`_store`, based on its version)."""
    return _store(
        session,
        job,
        row,
        _approved(row),
        based_on=row.version,
        by=by,
        locked=list(row.locked_variants),
        now=now,
        note=note,
        reopen=reopen,
    )


def _remember(
    session: Session,
    job: Job,
    approved: list[StoredSegment],
    memory: TranslationMemory | None,
    variants: dict[str, set[str]] | None = None,
) -> None:
    """`approved`'s translations into the memory (but for sentences with inline markup); with
    `variants`, only those it gives a segment (by id; a segment it does not name: all of them)."""
    if memory is None or not approved:
        return
    everything = list(session.scalars(select(StoredSegment).where(StoredSegment.job_id == job.id)))
    skip = with_markup(job, everything)
    fmt = job_format(job)
    only = variants or {}
    memory.remember(
        (
            Remembered(r.source, variant, plain_text(text, fmt), job_id=job.id, segment_id=r.id)
            for r in approved
            if r.id not in skip
            for variant, text in r.targets.items()
            if r.id not in only or variant in only[r.id]
        ),
        session,
    )


def _variant_edits(session: Session, job_id: str, segment_ids: Sequence[str]) -> dict[str, set[str]]:
    """The variants that the history of `job_id` has people's changes of, by segment."""
    edits: dict[str, set[str]] = {}
    if not segment_ids:
        return edits
    for segment_id, variant in session.execute(
        select(SegmentEdit.segment_id, SegmentEdit.variant)
        .where(
            SegmentEdit.job_id == job_id,
            SegmentEdit.segment_id.in_(list(segment_ids)),
            SegmentEdit.variant.is_not(None),
        )
        .distinct()
    ):
        if variant is not None:  # never, by the query: for the type checker
            edits.setdefault(segment_id, set()).add(variant)
    return edits


def _wrote_base(row: StoredSegment, edited: set[str]) -> bool:
    """Whether changes of `edited` (variants) wrote `row`'s base text: its zh-Hans; in an article
    without zh-Hans, any variant (the one edited stands in for zh-Hans, the others follow it)."""
    return "zh-Hans" in edited if "zh-Hans" in row.targets else bool(edited)


def _same_base(row: StoredSegment, earlier: StoredSegment) -> bool:
    """Whether `earlier` (a previous revision's segment) has `row`'s base text: its zh-Hans; in an
    article without zh-Hans, every variant the two have in common."""
    if "zh-Hans" in row.targets:
        return earlier.targets.get("zh-Hans") == row.targets["zh-Hans"]
    common = [v for v in row.targets if v in earlier.targets]
    return bool(common) and all(earlier.targets[v] == row.targets[v] for v in common)


def _carried_base(session: Session, job: Job, rows: list[StoredSegment]) -> set[str]:
    """Of `rows` (a person's work, origin `human`, whose base text nobody wrote in `job`), those
    whose base text a person wrote in an earlier revision: carried over (service.jobs.revisions) as
    it was there. Looked for revision by revision, back along `previous_job_id`, in the segments of
    the same source sentence and the same base text that were a person's there too."""
    found: set[str] = set()
    pending = rows
    seen = {job.id}
    previous = job.previous_job_id
    while pending and previous is not None and previous not in seen:
        seen.add(previous)
        earlier = list(
            session.scalars(
                select(StoredSegment).where(
                    StoredSegment.job_id == previous,
                    StoredSegment.origin == "human",
                    StoredSegment.source.in_({r.source for r in pending}),
                )
            )
        )
        edits = _variant_edits(session, previous, [e.id for e in earlier])
        further: list[StoredSegment] = []
        for row in pending:
            same = [e for e in earlier if e.source == row.source and _same_base(row, e)]
            if any(_wrote_base(e, edits.get(e.id, set())) for e in same):
                found.add(row.id)
            elif same:  # carried over there too: from further back, or the machine's
                further.append(row)
        pending = further
        before = session.get(Job, previous)
        previous = before.previous_job_id if before is not None else None
    return found


def written_variants(session: Session, job: Job, rows: Sequence[StoredSegment]) -> dict[str, set[str]]:
    """The variants of each of `rows` (the job's segments) that a person wrote, by id: all of them
    where a person wrote its zh-Hans (in an article without zh-Hans, edited any variant, which stands
    in for zh-Hans), since the others are derived from that text or locked; else its locked
    variants, each edited by hand (and not released since: a release derives the variant again from
    the zh-Hans nobody wrote). The history of `job` says whether a person wrote the zh-Hans; for a
    segment carried over with a person's work from the previous revision, the earlier revisions'
    (`_carried_base`). What an article's approval override may put into the memory."""
    edits = _variant_edits(session, job.id, [r.id for r in rows])
    based = {r.id for r in rows if _wrote_base(r, edits.get(r.id, set()))}
    based |= _carried_base(session, job, [r for r in rows if r.id not in based and r.origin == "human"])
    return {r.id: set(r.targets) if r.id in based else set(r.locked_variants) & set(r.targets) for r in rows}


def approve_segment(
    db: Database,
    job_id: str,
    segment_id: str,
    *,
    version: int,
    by: str,
    memory: TranslationMemory | None = None,
    propagate: bool = True,
) -> Saved:
    """Approve one segment; its translations go into the translation memory. With `propagate`, its
    repetitions that no person has changed and that read as it does (every variant the same text: a
    propagated edit, or the same machine translation) are approved with it, in the same transaction;
    one that reads otherwise is left for the translator to look at.

    A segment approved already is left as it is (a new version would make others' edits conflict
    for nothing), unless only the article's approval override approved it: then this is the first
    person's approval of it, recorded (`_confirm`) and into the memory, with no repetitions (they
    are approved already) and the article left approved."""
    row = _segment(db, job_id, segment_id)
    if row.version != version:
        raise VersionConflict(row, version)
    if row.status == "approved":
        with db.session() as session:
            _reviewable(get_job(session, job_id))
            if row.id not in overridden(session, job_id):
                return Saved(row, [])
        with db.session() as session:
            job = hold_job(session, job_id)
            _reviewable(job)
            confirmed = _confirm(session, job, row, by=by, now=utcnow())
            _remember(session, job, [confirmed], memory)
            return Saved(confirmed, [])

    def repeat(_job: Job, _everything: list[StoredSegment]) -> Repeat:
        def change(stored: StoredSegment, other: StoredSegment) -> tuple[AlignedSegment, list[str]] | None:
            return (_approved(other), list(other.locked_variants)) if other.targets == stored.targets else None

        return change

    return _apply(
        db,
        job_id,
        row,
        _approved(row),
        based_on=version,
        by=by,
        locked=list(row.locked_variants),
        repeat=repeat if propagate else None,
        note=f"approved with segment {segment_id} (the same source sentence and translation)",
        memory=memory,
    )


def approve_article(
    db: Database,
    job_id: str,
    *,
    by: str,
    override: str | None,
    settings: Settings,
    memory: TranslationMemory | None = None,
) -> Job:
    """Approve the article: every segment becomes approved. Refused while a segment needs review or
    a query on a segment is open, unless `override` gives a reason (recorded on the job, and in the
    history of each segment that needed review, which the override alone approves).

    The translations of the segments it approves go into the translation memory: not those approved
    already (stored when they were approved; an admin's correction or deletion of their entries
    since stands), nor those that only a reopening put back to review and nobody changed since
    (`REOPENED_NOTE`: their override's approval stored what it could); of those the override alone
    approves, only the variants a person wrote (`written_variants`): a machine translation nobody
    looked at is not reused as approved."""
    now = utcnow()
    with db.session() as session:
        job = hold_job(session, job_id)
        if job.status == JobStatus.APPROVED.value:
            return job
        _reviewable(job, JobStatus.APPROVED)
        rows = list(session.scalars(select(StoredSegment).where(StoredSegment.job_id == job_id)))
        pending = [r for r in rows if r.status == "needs_review"]
        queries = open_count(session, job_id)  # open queries block approval as pending segments do
        reason = override.strip() if override else ""
        if (pending or queries) and not reason:
            raise ApprovalBlocked(len(pending), queries)
        approving = [r for r in rows if r.status != "approved"]
        # What the memory takes of them, read before they change: see above.
        stored_before = _reopened(session, job_id)
        written = written_variants(session, job, pending)
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
                        note=f"{OVERRIDE_NOTE}: {reason}" if r.status == "needs_review" else None,
                    )
                )
                r.status = "approved"
                r.version += 1
                r.updated_at = now
                r.updated_by = by
        # A person's edit is their translation, which the override publishes as it is: the variants
        # they wrote, not a machine's zh-Hans beside the zh-TW they fixed.
        remembered = [r for r in approving if r.id not in stored_before]
        _remember(session, job, remembered, memory, written)
        unreviewed = {r.id for r in pending if written[r.id] != set(r.targets)}
        move(job, JobStatus.APPROVED)
        job.approved_at = now
        job.approved_by = by
        job.approval_override = reason if pending or queries else None
        enqueue(session, job, "article.approved", settings)
        if job.approval_override is not None:
            log.info(
                "article %s approved by %s with an override (%r): %d segment(s) approved unreviewed (%d kept "
                "out of the translation memory, wholly or in the variants no person wrote), %d open query(ies)",
                job_id,
                by,
                reason,
                len(pending),
                len(unreviewed),
                queries,
            )
        return job
