"""Translation memory: approved translations, reused.

An exact hit (the same source sentence, white space normalised) takes the approved translation
without calling the model (origin `tm`); fuzzy hits (≥ 75 % similar, rapidfuzz) are shown to the
translator as suggestions with their score and the differences. Seeded by approvals and by TMX.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.db import Database
from service.storage.tables import MemoryEntry, utcnow

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+|[^\w\s]|\s+")
FUZZY_CUTOFF = 75.0
# Fuzzy search compares only sentences within this ratio of the query's length: two sentences whose
# lengths differ more than this cannot reach the cutoff anyway (and the candidates stay few).
_LENGTH_WINDOW = 0.5


def normalize(source: str) -> str:
    return _SPACE.sub(" ", source).strip()


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


class TranslationMemory:
    def __init__(self, db: Database) -> None:
        self.db = db

    def remember(self, entries: Iterable[Remembered], session: Session | None = None) -> int:
        """Store (or replace: the newest approval wins) entries; how many."""
        if session is None:
            with self.db.session() as own:
                return self.remember(entries, own)
        count = 0
        for e in entries:
            if not e.source.strip() or not e.target.strip():
                continue
            key = source_key(e.source)
            row = session.scalar(
                select(MemoryEntry).where(MemoryEntry.variant == e.variant, MemoryEntry.source_key == key)
            )
            if row is None:
                row = MemoryEntry(variant=e.variant, source_key=key, source_length=len(normalize(e.source)))
                session.add(row)
            row.source = normalize(e.source)
            row.target = e.target
            row.origin = e.origin
            row.job_id = e.job_id
            row.segment_id = e.segment_id
            row.created_at = utcnow()
            session.flush()
            count += 1
        return count

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
        """Stored translations of similar sentences, best first (an exact match scores 100)."""
        query = normalize(source)
        if not query:
            return []
        low, high = int(len(query) * (1 - _LENGTH_WINDOW)), int(len(query) * (1 + _LENGTH_WINDOW)) + 1
        with self.db.session() as session:
            rows = session.execute(
                select(MemoryEntry.id, MemoryEntry.source, MemoryEntry.target).where(
                    MemoryEntry.variant == variant, MemoryEntry.source_length.between(low, high)
                )
            ).all()
        choices = {row_id: src for row_id, src, _ in rows}
        targets = {row_id: target for row_id, _, target in rows}
        best = process.extract(query, choices, scorer=fuzz.ratio, score_cutoff=cutoff, limit=limit)
        return [
            Suggestion(
                score=round(score, 1),
                source=choices[row_id],
                target=targets[row_id],
                diff=word_diff(choices[row_id], query),
            )
            for _, score, row_id in best
        ]

    def entries(self, variant: str | None = None) -> list[MemoryEntry]:
        with self.db.session() as session:
            query = select(MemoryEntry).order_by(MemoryEntry.id)
            if variant:
                query = query.where(MemoryEntry.variant == variant)
            return list(session.scalars(query))
