"""What a new revision of an article takes over from its previous revision.

A CMS sends a corrected or updated article as a new `revision` of its `external_id`: a new job,
linked to the old one (`previous_job_id`). Translators may be half way through reviewing the old
one. Their work is not thrown away: each sentence of the new revision that stands unchanged in the
old one (the same text, the same inline markup, in the same kind of block) and that a person edited
or approved there keeps that translation, every variant as it was, without the model. Sentences the
editors changed are translated anew.

This is the revision's own history, so unlike the translation memory (approved sentences of any
article, plain text) it also takes unapproved edits and sentences with links or emphasis: their
markup is the same article's. An approval that came only from the old revision's approval override
(service.jobs.review.overridden) is no person's: such a sentence takes over a person's edit, if it
has one, but not that approval, and a machine translation nobody edited is not taken over at all.

Sentences are paired with their places, not only their text (`pair_segments`): the old and new
revisions' sentences (kind of block, text and inline markup) are matched in order
(difflib.SequenceMatcher), so that a sentence that occurs several times, translated differently in
each place (a heading, and the same words ending a paragraph), keeps each place's own translation
when paragraphs are inserted or removed around it. A sentence left unmatched by that pairs with an
old occurrence of the same sentence in the same kind of block that has no place of its own any more
(the sentence moved). One still unpaired (it occurs more often now) takes the translation people
gave it in that kind of block where they gave it one only; where they gave it several, none (it is
translated anew): which of them fits the new place is not known, and a wrong one carried over as
approved would pass unseen, while a sentence translated anew is one the translator is shown.

Open queries follow the sentences they ask about: each sentence that stands unchanged takes the open
threads of its old place (`Carried.pairs`; service.jobs.comments.copy_open_threads), written in the
transaction that writes the carried rows (service.jobs.runner).

Which revision is the previous one is decided on submission (service.jobs.articles.submit).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from glossary.terms import Glossary
from service.documents import Document, Inline, SourceSegment
from service.jobs.articles import article_of
from service.jobs.codec import segment_row
from service.jobs.comments import copy_open_threads, open_count
from service.jobs.review import overridden
from service.pipeline import Pipeline, Prepared
from service.storage.tables import Job, StoredSegment

log = logging.getLogger(__name__)

_NO_TERMS = Glossary("none", ())

Key = tuple[str, tuple[Inline, ...]]


@dataclass
class Carried:
    """What a revision takes over from its previous one (`carried_over`)."""

    rows: dict[int, StoredSegment] = field(default_factory=dict)
    """The rows of the segments (by index) that take over a person's translation."""
    pairs: dict[str, str] = field(default_factory=dict)
    """Every sentence of the revision that stands unchanged in the previous one: its segment id, to
    the id of its old place (one each), whether or not people worked on it: its open queries follow."""
    previous_id: str | None = None
    """The previous revision's job, where there is one that could be read again."""
    previous_revision: str | None = None
    """Its `revision` label."""
    fresh: frozenset[str] = frozenset()
    """The ids of the segments asked about (`indices`): those written now, which take queries."""


def _key(seg: SourceSegment) -> Key:
    return (seg.text, seg.inlines)


def _kinds(doc: Document) -> dict[str, str]:
    return {b.id: b.kind.value for b in doc.blocks}


def pair_segments(old: Document, new: Document) -> dict[int, int]:
    """The old revision's place (index) of each of the new revision's sentences that stands unchanged
    there (the same text and inline markup, in the same kind of block), by index: matched in order
    (difflib, the sequences of sentences; no junk heuristics), so each keeps its own place when
    paragraphs are inserted or removed around it; then each sentence left unmatched takes an
    unmatched old occurrence of the same sentence in the same kind of block, in order (a sentence
    that moved). Each old place is paired at most once."""
    old_kind, new_kind = _kinds(old), _kinds(new)
    # The kind of block is part of the sentence, as for repetitions (service.jobs.review.repetition_keys):
    # a heading's "Talks ended." is not a paragraph's, and a list item's is neither.
    old_keys = [(old_kind.get(s.block_id, ""), _key(s)) for s in old.segments]
    new_keys = [(new_kind.get(s.block_id, ""), _key(s)) for s in new.segments]
    pairs: dict[int, int] = {}
    matcher = SequenceMatcher(None, old_keys, new_keys, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            pairs[b + k] = a + k
    taken = set(pairs.values())
    spare: dict[tuple[str, Key], deque[int]] = defaultdict(deque)
    for j in range(len(old_keys)):
        if j not in taken:
            spare[old_keys[j]].append(j)
    for i in range(len(new_keys)):
        if i not in pairs and (left := spare.get(new_keys[i])):
            pairs[i] = left.popleft()
    return dict(sorted(pairs.items()))


def _alike(rows: Sequence[StoredSegment]) -> StoredSegment | None:
    """The first of `rows` (people's translations of one sentence in one kind of block) where all of
    them read the same (every variant); None where they differ."""
    first = rows[0] if rows else None
    return first if first is not None and all(r.targets == first.targets for r in rows) else None


def carried_over(session: Session, job: Job, prepared: Prepared, pipeline: Pipeline, indices: list[int]) -> Carried:
    """What this revision takes over from the previous one for the segments at `indices` (see the
    module's docstring): the rows that take over a person's translation, by index, and the pairs of
    unchanged sentences (whose open queries follow them); empty when the job is no revision. A
    previous revision that cannot be read again carries nothing (logged): the new one is translated
    as if it had none."""
    if not job.previous_job_id or not indices:
        return Carried()
    previous = session.get(Job, job.previous_job_id)
    if previous is None:
        return Carried()
    unreviewed = overridden(session, previous.id)
    people = {
        row.id: row
        for row in session.scalars(
            select(StoredSegment).where(
                StoredSegment.job_id == previous.id,
                or_(StoredSegment.origin == "human", StoredSegment.status == "approved"),
            )
        )
        if row.origin == "human" or row.id not in unreviewed
    }
    if not people and not open_count(session, previous.id):
        return Carried()  # nothing to take over, nothing to ask again
    try:
        # Segmented again, as this revision was, to compare sentences with their inline markup.
        before = pipeline.prepare(article_of(session, previous), targets=prepared.targets, glossary=_NO_TERMS)
    except Exception as exc:  # noqa: BLE001 (the old article's problem is not the new one's)
        log.warning("job %s: its previous revision %s cannot be read again (%s)", job.id, previous.id, exc)
        return Carried()
    old_segments, new_segments = before.doc.segments, prepared.doc.segments
    placed = pair_segments(before.doc, prepared.doc)
    result = Carried(
        pairs={new_segments[i].id: old_segments[j].id for i, j in placed.items()},
        previous_id=previous.id,
        previous_revision=previous.revision,
        fresh=frozenset(new_segments[i].id for i in indices),
    )

    def person(j: int) -> StoredSegment | None:
        row = people.get(old_segments[j].id)
        return row if row is not None and row.source == old_segments[j].text and row.targets else None

    # A sentence with no old place of its own: what people made of it in that kind of block, if one thing.
    old_kind, new_kind = _kinds(before.doc), _kinds(prepared.doc)
    elsewhere: dict[tuple[str, Key], list[StoredSegment]] = defaultdict(list)
    for j, seg in enumerate(old_segments):
        if (row := person(j)) is not None:
            elsewhere[(old_kind.get(seg.block_id, ""), _key(seg))].append(row)
    for i in indices:
        seg = new_segments[i]
        if i in placed:
            row = person(placed[i])
        else:
            row = _alike(elsewhere.get((new_kind.get(seg.block_id, ""), _key(seg)), []))
        if row is None:
            continue
        aligned = pipeline.adopt(prepared, i, row.targets, origin=row.origin)
        # Approval carries over unless this revision raises a flag the old one did not have (its
        # glossary changed, say): then the sentence needs a look again.
        flagged = {(f.code, f.variant) for f in aligned.flags} - {(f["code"], f.get("variant")) for f in row.flags}
        approved = row.status == "approved" and row.id not in unreviewed
        status = "approved" if approved and not flagged else aligned.status
        new = segment_row(job.id, i, aligned)
        new.status = status
        new.locked_variants = [v for v in row.locked_variants if v in prepared.targets]
        new.updated_by = row.updated_by
        result.rows[i] = new
    if result.rows:
        log.info("job %s: %d segment(s) carried over from revision %s", job.id, len(result.rows), previous.id)
    return result


def carry_queries(session: Session, job_id: str, carried: Carried) -> tuple[int, int]:
    """In the transaction that writes `carried`'s rows: the previous revision's open queries on the
    sentences that stand unchanged, copied onto those of this revision's segments written now
    (service.jobs.comments.copy_open_threads). Returns the threads copied and the open ones left
    behind on sentences that changed (or went)."""
    if carried.previous_id is None:
        return 0, 0
    onto = {new: old for new, old in carried.pairs.items() if new in carried.fresh}
    return copy_open_threads(
        session,
        job_id,
        carried.previous_id,
        onto,
        unchanged=set(carried.pairs.values()),
        revision=carried.previous_revision,
    )
