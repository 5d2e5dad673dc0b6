"""What a new revision of an article takes over from its previous revision.

A CMS sends a corrected or updated article as a new `revision` of its `external_id`: a new job,
linked to the old one (`previous_job_id`). Translators may be half way through reviewing the old
one. Their work is not thrown away: each sentence of the new revision that stands unchanged in the
old one (the same text, the same inline markup) and that a person edited or approved there keeps
that translation, every variant as it was, without the model. Sentences the editors changed are
translated anew.

This is the revision's own history, so unlike the translation memory (approved sentences of any
article, plain text) it also takes unapproved edits and sentences with links or emphasis: their
markup is the same article's. An approval that came only from the old revision's approval override
(service.jobs.review.overridden) is no person's: such a sentence takes over a person's edit, if it
has one, but not that approval, and a machine translation nobody edited is not taken over at all.

Which revision is the previous one is decided on submission (service.jobs.articles.submit).
"""

from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from glossary.terms import Glossary
from service.documents import Inline
from service.jobs.articles import article_of
from service.jobs.codec import segment_row
from service.jobs.review import overridden
from service.pipeline import Pipeline, Prepared
from service.storage.tables import Job, StoredSegment

log = logging.getLogger(__name__)

_NO_TERMS = Glossary("none", ())


def carried_over(
    session: Session, job: Job, prepared: Prepared, pipeline: Pipeline, indices: list[int]
) -> dict[int, StoredSegment]:
    """Rows for the segments at `indices` of this revision that take over a person's translation
    from the previous revision (see the module's docstring), by index; empty when the job is no
    revision or nothing carries over. A previous revision that cannot be read again carries nothing
    (logged): the new one is translated as if it had none."""
    if not job.previous_job_id or not indices:
        return {}
    previous = session.get(Job, job.previous_job_id)
    if previous is None:
        return {}
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
    if not people:
        return {}
    try:
        # Segmented again, as this revision was, to compare sentences with their inline markup.
        before = pipeline.prepare(article_of(session, previous), targets=prepared.targets, glossary=_NO_TERMS)
    except Exception as exc:  # noqa: BLE001 (the old article's problem is not the new one's)
        log.warning("job %s: its previous revision %s cannot be read again (%s)", job.id, previous.id, exc)
        return {}
    done: dict[tuple[str, tuple[Inline, ...]], StoredSegment] = {}
    for seg in before.doc.segments:
        row = people.get(seg.id)
        if row is not None and row.source == seg.text:
            done.setdefault((seg.text, seg.inlines), row)
    carried: dict[int, StoredSegment] = {}
    for i in indices:
        seg = prepared.doc.segments[i]
        row = done.get((seg.text, seg.inlines))
        if row is None or not row.targets:
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
        carried[i] = new
    if carried:
        log.info("job %s: %d segment(s) carried over from revision %s", job.id, len(carried), previous.id)
    return carried
