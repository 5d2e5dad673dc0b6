"""Translation memory: approved translations, reused.

The memory holds plain text, whatever the article's format: HTML and Markdown articles' targets
are stored without markup and unescaped (`documents.plain_text`), and a hit is escaped again for the
article it goes into (`documents.in_format`), so a stored “&”, “<” or “*” is text in every article,
never markup.

An exact hit (the same source sentence, white space normalised) takes the approved translation
without calling the model (origin `tm`); fuzzy hits (≥ 75 % similar, rapidfuzz) are shown to the
translator as suggestions with their score and the differences. Seeded by approvals and by TMX.

Fuzzy lookups score the stored sentences in this process's memory, not read from the database
each time: reading the tens of thousands of sentences that a 100,000-entry memory holds in a
sentence's length window took about ten times as long as scoring them (docs/benchmarks.md). Each
lookup first reads the entries added since the last one (those with a higher id), so every
process sees every other's writes at its next lookup. That relies on ids growing in the order
writes commit: writers take turns (SQLite has one writer at a time; on PostgreSQL `remember`
holds an advisory lock until its transaction ends), and entries are replaced in place. The cost is
the stored sentences' text in each process that looks things up (about 200 bytes a sentence), read
in full at its first lookup of a variant.

Each entry names the article (job and segment) whose approval stored it last. Entries are deleted
when an article is withdrawn with its memory (`forget_job`), or later for an article withdrawn
without it (`forget`): those it alone gave; and one at a time by an admin (`delete`), who may also
correct an entry's translation (`correct`). A process drops a deleted entry's sentence from its own
copy when a lookup next meets it.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rapidfuzz import fuzz, process
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.documents import SourceFormat, plain_text
from service.storage.db import LONG_WAIT, Database, contains_in_any_case
from service.storage.tables import Job, MemoryEntry, StoredArticle, StoredSegment, utcnow

log = logging.getLogger(__name__)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+|[^\w\s]|\s+")
FUZZY_CUTOFF = 75.0
# Any constant: the PostgreSQL advisory lock that makes writers to the memory take turns.
_WRITER_LOCK = 0x64757469


def normalize(source: str) -> str:
    return _SPACE.sub(" ", source).strip()


def length_window(length: int, cutoff: float = FUZZY_CUTOFF) -> tuple[int, int]:
    """The stored sentences' lengths (characters, normalised) that can score `cutoff` against a
    sentence of `length`. The score (rapidfuzz's `ratio`) is 100 × (1 − d / (a + b)) for lengths a
    and b and an insert/delete distance d ≥ |a − b|; so |a − b| ≤ c (a + b) with c = 1 − cutoff / 100,
    that is b between a (1 − c) / (1 + c) and a (1 + c) / (1 − c): 0.6 a to 1.67 a at 75 %."""
    c = max(0.0, min(1.0, 1 - cutoff / 100))
    high = length * (1 + c) / (1 - c) if c < 1 else float(2**31 - 1)
    return math.floor(length * (1 - c) / (1 + c)), min(2**31 - 1, math.ceil(high))


# Concordance search (`TranslationMemory.search`): how many hits by default, and at most.
SEARCH_LIMIT = 20
SEARCH_MAX = 100
SEARCH_MAX_QUERY = 200  # characters
# Letters of words written with spaces between them (Latin, with accents) and digits: a query that
# starts or ends with one matches only at a word's start or end there. Chinese has no spaces
# between words, so a query in Chinese characters matches anywhere (a substring).
_LATIN = "0-9A-Za-z\u00c0-\u024f"
# English endings a whole-word match may carry: "base" finds "bases", "Futenma" finds "Futenma's".
_ENDING = "(?:s|es|'s|\u2019s)?"
SearchSide = Literal["source", "target", "both"]


def query_pattern(query: str) -> re.Pattern[str]:
    """What a concordance query matches, in any case: its text, white space normalised; where it
    starts with a Latin letter or digit, only at the start of a word, and where it ends with one, at
    the end of a word or before an English plural or possessive ending. So "base" finds "bases" and
    "base's" but not "database" or "baseline", "US" not "use", while "基地" finds "军事基地". The
    query is composed (NFC) first, as text typed or pasted on some systems comes decomposed (É as E
    and a combining accent) while stored text is almost always composed."""
    text = unicodedata.normalize("NFC", normalize(query))
    if not text:
        raise ValueError("the query is empty")
    latin = re.compile(f"[{_LATIN}]")
    start = f"(?<![{_LATIN}])" if latin.match(text[0]) else ""
    end = f"{_ENDING}(?![{_LATIN}])" if latin.match(text[-1]) else ""
    return re.compile(start + re.escape(text) + end, re.IGNORECASE)


def match_spans(pattern: re.Pattern[str], text: str) -> tuple[tuple[int, int], ...]:
    """Where `pattern` matches in `text`: (start, end) in characters (code points), in order."""
    return tuple((m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start())


def source_key(source: str) -> str:
    return hashlib.sha256(normalize(source).encode()).hexdigest()


@dataclass(frozen=True)
class Suggestion:
    score: float  # 0–100
    source: str
    target: str
    # The stored source against the new one, word by word: ("equal" | "insert" | "delete", text).
    diff: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Remembered:
    source: str
    variant: str
    target: str
    origin: str = "approved"
    job_id: str | None = None
    segment_id: str | None = None


@dataclass(frozen=True)
class Concordance:
    """A stored entry that holds a concordance query, with where (`match_spans`) on each side."""

    id: int
    job_id: str | None  # the article whose approval stored it last (it may have been withdrawn)
    source: str
    target: str
    variant: str
    origin: str
    created_at: datetime
    source_matches: tuple[tuple[int, int], ...]
    target_matches: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SearchResult:
    hits: list[Concordance]
    more: bool  # whether further entries match beyond the limit


def word_diff(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """How `new` differs from `old`, in words: equal runs, words only in `old` (delete), only in `new` (insert)."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return tuple(out)


_REPLACED = ("source", "source_length", "target", "origin", "job_id", "segment_id", "created_at")


def _upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (variant, source_key) DO UPDATE, in the database's own dialect."""
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(MemoryEntry)
    elif dialect == "sqlite":
        stmt = sqlite.insert(MemoryEntry)
    else:
        raise RuntimeError(f"the translation memory needs SQLite or PostgreSQL, not {dialect}")
    return stmt.on_conflict_do_update(
        index_elements=["variant", "source_key"], set_={c: stmt.excluded[c] for c in _REPLACED}
    )


@dataclass
class _Sources:
    """One variant's stored sentences as this process has read them: (id, source) by length."""

    seen: int = 0  # the highest id read
    by_length: dict[int, list[tuple[int, str]]] = field(default_factory=dict)


class TranslationMemory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._sources: dict[str, _Sources] = {}
        self._sources_lock = threading.Lock()

    def remember(self, entries: Iterable[Remembered], session: Session | None = None) -> int:
        """Store (or replace: the newest approval wins) entries; how many were stored, one per source
        sentence (white space normalised) and variant: of entries repeating one, only the last is
        stored, and blank ones are skipped. Written 500 at a time, one statement each (a TMX import
        may hold hundreds of thousands), in the order of their keys: writers at once lock rows in one
        order, so they wait for each other instead of deadlocking."""
        if session is None:
            with self.db.session() as own:
                return self.remember(entries, own)
        keyed: dict[tuple[str, str], Remembered] = {}
        for e in entries:
            if e.source.strip() and e.target.strip():
                keyed[(e.variant, source_key(e.source))] = e  # of repeats, the last wins
        ordered = sorted(keyed.items())
        if ordered:
            self.lock_writers(session)
            # An approval that raced its article's withdrawal (`forget_job`, which takes the same
            # lock) must not put the article's text back.
            jobs = {e.job_id for _, e in ordered if e.job_id is not None}
            if jobs:
                there = set(session.scalars(select(Job.id).where(Job.id.in_(jobs))))
                ordered = [(k, e) for k, e in ordered if e.job_id is None or e.job_id in there]
        now = utcnow()
        for start in range(0, len(ordered), 500):
            rows = [
                {
                    "variant": variant,
                    "source_key": key,
                    "source": normalize(e.source),
                    "source_length": len(normalize(e.source)),
                    "target": e.target,
                    "origin": e.origin,
                    "job_id": e.job_id,
                    "segment_id": e.segment_id,
                    "created_at": now,
                }
                for (variant, key), e in ordered[start : start + 500]
            ]
            # One upsert: approvals of the same sentence at once cannot collide on the unique key.
            session.execute(_upsert(session.get_bind().dialect.name), rows)
        return len(ordered)

    @staticmethod
    def lock_writers(session: Session) -> None:
        """On PostgreSQL, take the writers' turn until this transaction ends: the next writer's ids
        then follow all of this one's, which is what lets lookups read only what is new (see the
        module's docstring). SQLite has one writer at a time anyway."""
        if session.get_bind().dialect.name == "postgresql":
            # As long as another writer's import takes: no statement_timeout for this wait.
            session.execute(select(func.pg_advisory_xact_lock(_WRITER_LOCK)).execution_options(**LONG_WAIT))

    @classmethod
    def forget_job(cls, session: Session, job_id: str) -> tuple[int, int]:
        """In the caller's transaction, for an article being withdrawn: remove the entries credited
        to `job_id` (it was the last to store them) that no other article's approved segment also
        gives; credit those that one does give to that article instead. (removed, kept)."""
        cls.lock_writers(session)
        entries = list(session.scalars(select(MemoryEntry).where(MemoryEntry.job_id == job_id)))
        if not entries:
            return 0, 0
        others = _other_contributors(session, job_id, entries)
        for entry in entries:
            if entry.id in others:
                entry.job_id, entry.segment_id = others[entry.id]
        doomed = [entry.id for entry in entries if entry.id not in others]
        removed = 0
        for start in range(0, len(doomed), 500):
            result = session.execute(
                delete(MemoryEntry)
                .where(MemoryEntry.id.in_(doomed[start : start + 500]))
                .execution_options(synchronize_session=False)
            )
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        return removed, len(others)

    def exact(self, sources: Sequence[str], variants: Sequence[str]) -> dict[str, dict[str, str]]:
        """For each source with a zh-Hans entry: its stored targets by variant."""
        keys = {source_key(s): s for s in sources if s.strip()}
        if not keys:
            return {}
        found: dict[str, dict[str, str]] = {}
        with self.db.session() as session:
            for start in range(0, len(keys), 500):
                chunk = list(keys)[start : start + 500]
                rows = session.execute(
                    select(MemoryEntry.source_key, MemoryEntry.variant, MemoryEntry.target).where(
                        MemoryEntry.source_key.in_(chunk), MemoryEntry.variant.in_(["zh-Hans", *variants])
                    )
                )
                for key, variant, target in rows:
                    found.setdefault(keys[key], {})[variant] = target
        return {source: targets for source, targets in found.items() if "zh-Hans" in targets}

    def fuzzy(self, source: str, variant: str, *, limit: int = 5, cutoff: float = FUZZY_CUTOFF) -> list[Suggestion]:
        """Stored translations of similar sentences, best first (an exact match scores 100). Scores
        only the stored sentences whose length can reach the cutoff, and reads only the hits'
        translations."""
        query = normalize(source)
        if not query:
            return []
        low, high = length_window(len(query), cutoff)
        with self.db.session() as session:
            while True:
                candidates = self._within(session, variant, low, high)
                best = process.extract(
                    query, [src for _, src in candidates], scorer=fuzz.ratio, score_cutoff=cutoff, limit=limit
                )
                hits = [(score, *candidates[i]) for _, score, i in best]
                stmt = select(MemoryEntry.id, MemoryEntry.target).where(MemoryEntry.id.in_([i for _, i, _ in hits]))
                targets = {row_id: target for row_id, target in session.execute(stmt)} if hits else {}
                gone = [(row_id, src) for _, row_id, src in hits if row_id not in targets]
                if not gone:
                    break
                # Deleted since this process read them (an article withdrawn with its memory): drop
                # them here too, and score again without them.
                self._drop(variant, gone)
        return [
            Suggestion(score=round(score, 1), source=src, target=targets[row_id], diff=word_diff(src, query))
            for score, row_id, src in hits
        ]

    def _within(self, session: Session, variant: str, low: int, high: int) -> list[tuple[int, str]]:
        """The variant's stored (id, source) pairs of `low` to `high` characters, after reading the
        entries added since the last lookup."""
        with self._sources_lock:
            known = self._sources.setdefault(variant, _Sources())
            new = session.execute(
                select(MemoryEntry.id, MemoryEntry.source, MemoryEntry.source_length)
                .where(MemoryEntry.variant == variant, MemoryEntry.id > known.seen)
                .order_by(MemoryEntry.id)
            ).all()
            for row_id, src, length in new:
                known.by_length.setdefault(length, []).append((row_id, src))
            if new:
                known.seen = new[-1][0]
            return [pair for length, pairs in known.by_length.items() if low <= length <= high for pair in pairs]

    def _drop(self, variant: str, entries: Sequence[tuple[int, str]]) -> None:
        """Forget stored (id, source) pairs of `variant` that are no longer in the database."""
        with self._sources_lock:
            known = self._sources.get(variant)
            if known is None:
                return
            for row_id, src in entries:
                pairs = known.by_length.get(len(src), [])
                known.by_length[len(src)] = [pair for pair in pairs if pair[0] != row_id]

    def search(
        self,
        query: str,
        *,
        variant: str | None = None,
        limit: int = SEARCH_LIMIT,
        side: SearchSide = "both",
    ) -> SearchResult:
        """Concordance: the stored entries whose English source (`side` "source"), Chinese target
        ("target") or either ("both") holds `query` as `query_pattern` says, newest first (the last
        approval of a sentence counts), at most `limit` (1 to SEARCH_MAX); of one variant, or of all.
        The query is plain text: `%` and `_` are no wildcards.

        The database finds the entries that hold the query's text in any case, letters beyond
        ASCII included (É and é, Σ and ς, Д and д; `service.storage.db.contains_in_any_case`): a
        scan of the table; at 100,000 entries about 30 to 80 ms on SQLite, 30 ms for Chinese and
        130 to 250 ms for English on PostgreSQL, where lower() is the cost, and about 250 ms for
        a query of Greek or Cyrillic letters only on SQLite (docs/benchmarks.md). Newest first,
        and this process keeps those that match at word boundaries (`query_pattern`, whose
        IGNORECASE takes every pair of characters the database does), reading them as a stream and
        stopping at the limit: a query that many entries hold reads only a few of them."""
        pattern = query_pattern(query)
        text = unicodedata.normalize("NFC", normalize(query))
        limit = max(1, min(limit, SEARCH_MAX))
        hits: list[Concordance] = []
        more = False
        with self.db.session() as session:
            dialect = session.get_bind().dialect.name
            on_sqlite = dialect == "sqlite"
            columns = [
                col
                for col, name in ((MemoryEntry.source, "source"), (MemoryEntry.target, "target"))
                if side in (name, "both")
            ]
            # On PostgreSQL, lower() on every row takes 4 to 5 times as long as LIKE alone (ILIKE
            # longer still): paid only where the query has letters with a case, not for one in
            # Chinese; a query with letters beyond ASCII is a regular expression instead, which
            # costs about as much and needs no locale.
            holds = [contains_in_any_case(col, text, dialect) for col in columns]
            stmt = (
                select(
                    MemoryEntry.id,
                    MemoryEntry.job_id,
                    MemoryEntry.source,
                    MemoryEntry.target,
                    MemoryEntry.variant,
                    MemoryEntry.origin,
                    MemoryEntry.created_at,
                )
                .where(or_(*holds))
                .order_by(MemoryEntry.created_at.desc(), MemoryEntry.id.desc())
            )
            if variant is not None:
                # On SQLite `variant || ''`: the same test, but not by the (variant, length) index,
                # whose lookups of every row of the variant took 5 times as long as reading the table.
                stmt = stmt.where((MemoryEntry.variant + "" if on_sqlite else MemoryEntry.variant) == variant)
            # Streamed (a server-side cursor on PostgreSQL): left unread once the limit is passed.
            rows = session.execute(stmt.execution_options(yield_per=200))
            try:
                for row_id, job_id, source, target, row_variant, origin, created_at in rows:
                    in_source = match_spans(pattern, source)
                    in_target = match_spans(pattern, target)
                    if not ((side != "target" and in_source) or (side != "source" and in_target)):
                        continue  # the text is there, but inside a word ("base" in "database")
                    if len(hits) == limit:
                        more = True
                        break
                    hits.append(
                        Concordance(
                            row_id, job_id, source, target, row_variant, origin, created_at, in_source, in_target
                        )
                    )
            finally:
                rows.close()
        return SearchResult(hits, more)

    def correct(self, entry_id: int, target: str) -> MemoryEntry | None:
        """Replace a stored entry's translation (a translator found it wrong): origin `corrected`,
        stored now; None when there is no such entry. The entry keeps its id and the article it came
        from, so withdrawing that article with its memory still removes it; the next exact hit of the
        sentence takes the corrected translation."""
        with self.db.session() as session:
            self.lock_writers(session)
            entry = session.get(MemoryEntry, entry_id)
            if entry is None:
                return None
            entry.target, entry.origin, entry.created_at = target, "corrected", utcnow()
            return entry

    def delete(self, entry_id: int) -> MemoryEntry | None:
        """Delete one stored entry (one sentence in one variant); None when there is no such entry.
        Its sentence is no longer reused or suggested in that variant: deleting the zh-Hans entry
        ends exact reuse of the sentence in every variant (`exact` needs it)."""
        with self.db.session() as session:
            self.lock_writers(session)
            entry = session.get(MemoryEntry, entry_id)
            if entry is None:
                return None
            session.delete(entry)
        self._drop(entry.variant, [(entry.id, entry.source)])
        return entry

    def forget(self, job_id: str) -> tuple[int, int]:
        """`forget_job` in a transaction of its own, for an article withdrawn without its memory (or
        still there): its entries are removed, but for those another article's approval also gives.
        (removed, kept)."""
        with self.db.session() as session:
            return self.forget_job(session, job_id)

    def entries(self, variant: str | None = None) -> list[MemoryEntry]:
        with self.db.session() as session:
            query = select(MemoryEntry).order_by(MemoryEntry.id)
            if variant:
                query = query.where(MemoryEntry.variant == variant)
            return list(session.scalars(query))


# --- an admin's upkeep: the same checks and log lines from the API and from the review app --------

# A stored translation is one sentence; a corrected one that is longer than a whole segment's edit
# may be (service.schemas.SegmentEditIn) is a mistake.
MAX_CORRECTION = 20_000


class BadCorrection(ValueError):
    """A correction that cannot be stored; the message says why (a 422)."""


class EntryNotFound(LookupError):
    """No memory entry has this id (deleted, or never there): a 404."""

    def __init__(self, entry_id: int) -> None:
        super().__init__(f"no translation memory entry {entry_id}")


def corrected_target(target: str) -> str:
    """The translation a correction stores: `target` trimmed. BadCorrection when it is longer than
    MAX_CORRECTION characters (as sent, as the API's body schema counts them) or blank."""
    if len(target) > MAX_CORRECTION:
        raise BadCorrection(f"target: at most {MAX_CORRECTION:,} characters, not {len(target):,}")
    trimmed = target.strip()
    if not trimmed:
        raise BadCorrection("target: blank; to remove the entry, delete it")
    return trimmed


def correct_entry(memory: TranslationMemory, entry_id: int, target: str, *, by: str) -> MemoryEntry:
    """Person `by` corrects entry `entry_id`'s translation (`TranslationMemory.correct`), logged
    with who did it. BadCorrection for a target `corrected_target` refuses, EntryNotFound."""
    entry = memory.correct(entry_id, corrected_target(target))
    if entry is None:
        raise EntryNotFound(entry_id)
    log.info("memory entry %s (%s) corrected by %s", entry_id, entry.variant, by)
    return entry


def delete_entry(memory: TranslationMemory, entry_id: int, *, by: str) -> MemoryEntry:
    """Person `by` deletes entry `entry_id` (`TranslationMemory.delete`), logged with who did it;
    the deleted entry. EntryNotFound when there is none (a second delete too)."""
    entry = memory.delete(entry_id)
    if entry is None:
        raise EntryNotFound(entry_id)
    log.info("memory entry %s (%s) deleted by %s", entry_id, entry.variant, by)
    return entry


def _other_contributors(session: Session, job_id: str, entries: list[MemoryEntry]) -> dict[int, tuple[str, str]]:
    """For each of `entries` that an approved segment of another article also gives (the same
    sentence, white space aside, with the same translation in that variant, as plain text): that
    job and segment, by entry id, the oldest article first. Candidates are found by the sentence as
    the entries and `job_id`'s segments hold it; the same sentence spaced otherwise in another
    article is not found."""
    wanted = {(e.variant, e.source): e for e in entries}
    own = [e.segment_id for e in entries if e.segment_id]
    sources = {e.source for e in entries}
    for start in range(0, len(own), 500):
        sources.update(
            session.scalars(
                select(StoredSegment.source).where(
                    StoredSegment.job_id == job_id, StoredSegment.id.in_(own[start : start + 500])
                )
            )
        )
    found: dict[int, tuple[str, str]] = {}
    listed = sorted(sources)
    for start in range(0, len(listed), 500):
        rows = session.execute(
            select(
                StoredSegment.job_id,
                StoredSegment.id,
                StoredSegment.source,
                StoredSegment.targets,
                StoredArticle.format,
            )
            .join(Job, Job.id == StoredSegment.job_id)
            .join(StoredArticle, StoredArticle.id == Job.article_id)
            .where(
                StoredSegment.job_id != job_id,
                StoredSegment.status == "approved",
                StoredSegment.source.in_(listed[start : start + 500]),
            )
            .order_by(Job.created_at, StoredSegment.position)
        )
        for other, segment_id, source, targets, fmt in rows:
            for variant, text in targets.items():
                entry = wanted.get((variant, normalize(source)))
                if entry is not None and entry.id not in found and plain_text(text, SourceFormat(fmt)) == entry.target:
                    found[entry.id] = (other, segment_id)
    return found
