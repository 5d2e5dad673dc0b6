"""The tables. One class per table; JSON columns hold the pipeline's small nested records
(targets per variant, term spans, flags), which are read and written whole with their segment.

Changing a table means a new Alembic revision in `migrations/versions/` (tests compare the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out on every backend (SQLite stores no zone and would hand back
    naive values, which then compare wrongly with aware ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        # A name belongs to one owner. A rotated key's successor takes over its name (and owner) while
        # the rotated key, which then has an expiry, keeps working until it: the name is unique among
        # keys without one (revision 0007). A revoked key keeps its name, as before, except a rotated
        # key's successor revoked during the overlap: rotating the old key again gives the successor
        # an expiry (when it was revoked), and the name passes to the new key (service.keys.rotate_key).
        Index(
            "uq_api_keys_name",
            "name",
            unique=True,
            sqlite_where=text("expires_at IS NULL"),
            postgresql_where=text("expires_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # The public part of the key, to find the row; the key itself is never stored, only its hash.
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    # Signs this key's webhooks; stored in clear because signing needs it.
    webhook_secret: Mapped[str] = mapped_column(String(100))
    # Where this key's jobs report when a submission names no callback_url.
    callback_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # Whose articles this key submits and sees (Job.owner): "key:<id>" of the first key. A rotated
    # key's successor keeps it, so a CMS's revision chains and idempotency keys go on across keys.
    owner: Mapped[str] = mapped_column(String(50))
    # A rotated key works until then (the overlap while the CMS deploys its successor); None: until revoked.
    expires_at: Mapped[datetime | None]

    def usable(self, now: datetime | None = None) -> bool:
        """Whether the key is accepted (at `now`, default the present): neither revoked nor expired."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > (now or utcnow())


class ReviewSession(Base):
    """A signed-in review app session (service.web.session; revision 0004). Deleted on sign-out;
    past `expires_at` it no longer counts and the next sign-in clears it away."""

    __tablename__ = "review_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token, hex
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class StoredArticle(Base):
    """An article exactly as the client sent it."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    revision: Mapped[str | None] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text, default="")
    subtitle: Mapped[str] = mapped_column(Text, default="")
    byline: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """The translation of one article: its state, its settings and who may hear about it."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        UniqueConstraint("owner", "external_id", "revision", name="uq_jobs_owner_external_revision"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_created", "created_at"),  # the review app's list, newest submitted first
        Index("ix_jobs_updated", "updated_at"),
        # A revision's successors (`newer_ids`, and unlinking them when it is withdrawn).
        Index("ix_jobs_previous", "previous_job_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), unique=True)
    # Who submitted it: "key:<id>", or "local" when authentication is disabled. Idempotency is per owner.
    owner: Mapped[str] = mapped_column(String(50))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # SHA-256 of the submission, to tell a true retry from a different request reusing a key.
    request_hash: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    revision: Mapped[str | None] = mapped_column(String(100))
    # The job of this external_id's previous revision.
    previous_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    failure: Mapped[str | None] = mapped_column(Text)
    targets: Mapped[list[Any]] = mapped_column()
    glossaries: Mapped[list[Any]] = mapped_column()
    # The stacked glossary's terms as of submission: a resumed or re-edited job uses the same terms.
    glossary_terms: Mapped[list[Any]] = mapped_column()
    callback_url: Mapped[str | None] = mapped_column(Text)
    # The parsed document's structure (blocks, HTML page), saved when translation starts.
    document: Mapped[dict[str, Any] | None] = mapped_column()
    model: Mapped[str | None] = mapped_column(String(300))
    segments_total: Mapped[int] = mapped_column(default=0)
    segments_done: Mapped[int] = mapped_column(default=0)
    # Claims by runners; a runner that stops renewing its lease (killed) loses the job to the next.
    runner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    # Attempts that count towards DUIYI_JOB_MAX_ATTEMPTS, the one in hand included: not those
    # handed back (a shutdown, a database outage), nor those whose runner was lost.
    attempts: Mapped[int] = mapped_column(default=0)
    # Runners lost with the job in a row (killed, or cut off past their lease), none of which saved a
    # chunk of it: DUIYI_JOB_MAX_LOST_RUNNERS of them fail it. Above 0, the job runs alone in its
    # process (`service.jobs.runner`), so that a job that kills its process takes no other with it.
    lost_runners: Mapped[int] = mapped_column(default=0)
    reviewer: Mapped[str | None] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approval_override: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    translated_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]


class StoredSegment(Base):
    """One sentence of a job, aligned: source, targets per variant, term spans, flags."""

    __tablename__ = "segments"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "b3.s2"
    position: Mapped[int] = mapped_column()
    block_id: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    ws_before: Mapped[str] = mapped_column(Text, default="")
    targets: Mapped[dict[str, Any]] = mapped_column()
    terms: Mapped[list[Any]] = mapped_column()
    flags: Mapped[list[Any]] = mapped_column()
    origin: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    # Variants a translator edited directly: no longer regenerated from zh-Hans.
    locked_variants: Mapped[list[Any]] = mapped_column(default=list)
    # Bumped on every change; an edit must name the version it was based on (409 otherwise).
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class SegmentEdit(Base):
    """History: every change a person made to a segment."""

    __tablename__ = "segment_edits"
    __table_args__ = (Index("ix_segment_edits_segment", "job_id", "segment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_id: Mapped[str] = mapped_column(String(40))
    variant: Mapped[str | None] = mapped_column(String(10))  # None: a status change
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    status_before: Mapped[str] = mapped_column(String(20))
    status_after: Mapped[str] = mapped_column(String(20))
    by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # Why, when the person did not make the change directly: "propagated from segment b1.s2" (a
    # repetition, service.jobs.review). None: the person's own edit or approval.
    note: Mapped[str | None] = mapped_column(Text)


class SegmentComment(Base):
    """A query on a segment (service.jobs.comments): a translator asks the desk or the reporter about
    an ambiguous source sentence, someone answers in the same thread, and it is resolved (or
    reopened). Open queries block the article's approval unless overridden (service.jobs.review)."""

    __tablename__ = "segment_comments"
    __table_args__ = (Index("ix_segment_comments_job", "job_id", "segment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    # No foreign key to segments: a resumed translation rewrites an article's segments.
    segment_id: Mapped[str] = mapped_column(String(40))
    author: Mapped[str] = mapped_column(String(200))  # the API key's name, as SegmentEdit.by
    body: Mapped[str] = mapped_column(Text)  # plain text, at most 2,000 characters
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]  # None: open
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class Delivery(Base):
    """One webhook event for one job (the outbox): written in the same transaction as the state
    change it reports, then sent by the dispatcher until it succeeds or runs out of attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Null for `article.withdrawn`, which outlives its job (the payload names the article).
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # The key whose webhook secret signs it (null: DUIYI_WEBHOOK_SECRET, or a row from before
    # revision 0009, signed with its job's key).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    event: Mapped[str] = mapped_column(String(50))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent, as UTF-8
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    # A dispatcher's claim, like a job's lease: another process takes over when it lapses.
    lease_until: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column()
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column()


class StoredGlossary(Base):
    """A named glossary. Seeded from the shipped CSVs (and DUIYI_GLOSSARY_DIR) when absent; edits
    through the API are stored here and win from then on."""

    __tablename__ = "glossaries"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    terms: Mapped[list[Any]] = mapped_column()
    # Bumped on every edit, so processes know when their cached copy is stale.
    revision: Mapped[int] = mapped_column(default=1)
    origin: Mapped[str] = mapped_column(String(20))  # shipped | file | api
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class MemoryEntry(Base):
    """Translation memory: an approved translation of one source sentence into one variant."""

    __tablename__ = "tm_entries"
    __table_args__ = (
        UniqueConstraint("variant", "source_key", name="uq_tm_variant_source"),
        Index("ix_tm_variant_length", "variant", "source_length"),
        # Ids never reused (revision 0005): lookups read the entries above the highest id they have
        # seen, and a withdrawn article's entries are deleted (service.memory).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant: Mapped[str] = mapped_column(String(10))
    # SHA-256 of the source with white space normalised: the exact-match key.
    source_key: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    # Characters of the normalised source: fuzzy search only compares sentences of similar length.
    source_length: Mapped[int] = mapped_column()
    target: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(20))  # approved | tmx
    # The article whose approval stored it last (no foreign key: an entry outlives its article unless
    # the article is withdrawn with its memory; then this may name a job that is gone).
    job_id: Mapped[str | None] = mapped_column(String(36))
    segment_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimit(Base):
    """Each API key's rate limit on PostgreSQL, shared by every process (service.keys.SharedRateLimiter):
    the key's theoretical arrival time (GCRA), in seconds since the epoch on the database's clock."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the API key's lookup part
    tat: Mapped[float] = mapped_column(Float)
