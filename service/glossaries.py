"""Where glossaries come from: the shipped CSVs in glossary/data/ and DUIYI_GLOSSARY_DIR (files),
and the database, which the service seeds from the files and then keeps (edits through the API).

The only place that reads glossary files or rows; `glossary/` itself stays pure.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

import glossary
from glossary.csvio import parse_csv
from glossary.terms import Glossary, Term, stack
from service.jobs.codec import glossary_from_json, term_to_json
from service.storage.db import Database
from service.storage.tables import StoredGlossary, utcnow

SHIPPED = Path(glossary.__file__).resolve().parent / "data"


class UnknownGlossaryError(LookupError):
    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        super().__init__(f"unknown glossary {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        self.unknown = list(unknown)
        self.valid = list(valid)


@dataclass(frozen=True)
class GlossaryInfo:
    """What an admin asks of a stored glossary besides its terms: where it came from (`origin`:
    "shipped", "file" or "api", as StoredGlossary keeps it), its revision (1 as seeded or created,
    one more with each edit), and when it was stored or last edited, and by whom (None: seeded from
    files). `terms`: how many it holds."""

    name: str
    terms: int
    origin: str
    revision: int
    updated_at: datetime
    updated_by: str | None


class Glossaries(Protocol):
    """What the pipeline's callers need of a glossary source (files or database)."""

    def names(self) -> list[str]: ...
    def get(self, name: str) -> Glossary: ...
    def stacked(self, names: Sequence[str]) -> Glossary: ...


class GlossaryStore:
    """Glossaries read from files. `origins`: where each came from, as StoredGlossary.origin says
    it: "shipped" (glossary/data/) or "file" (DUIYI_GLOSSARY_DIR, a file there replacing a shipped
    glossary of its name included); a name it lacks is "file"."""

    def __init__(self, glossaries: dict[str, Glossary], origins: dict[str, str] | None = None) -> None:
        self._glossaries = glossaries
        self._origins = origins or {}
        self._stacks: dict[tuple[str, ...], Glossary] = {}

    @classmethod
    def load(cls, extra_dir: Path | None = None) -> GlossaryStore:
        found: dict[str, Glossary] = {}
        origins: dict[str, str] = {}
        for directory, origin in ((SHIPPED, "shipped"), (extra_dir, "file")):
            if directory is None:
                continue
            if not directory.is_dir():
                raise FileNotFoundError(f"glossary directory {directory} does not exist")
            for path in sorted(directory.glob("*.csv")):
                found[path.stem] = parse_csv(path.read_text(encoding="utf-8"), path.stem)
                origins[path.stem] = origin
        return cls(found, origins)

    def origin(self, name: str) -> str:
        return self._origins.get(name, "file")

    def names(self) -> list[str]:
        return sorted(self._glossaries)

    def get(self, name: str) -> Glossary:
        if name not in self._glossaries:
            raise UnknownGlossaryError([name], self.names())
        return self._glossaries[name]

    def stacked(self, names: Sequence[str]) -> Glossary:
        """The named glossaries merged in order (later override earlier); cached, so the compiled
        matcher is reused across requests."""
        key = tuple(names)
        unknown = [n for n in key if n not in self._glossaries]
        if unknown:
            raise UnknownGlossaryError(unknown, self.names())
        if key not in self._stacks:
            self._stacks[key] = stack([self._glossaries[n] for n in key])
        return self._stacks[key]


class DatabaseGlossaries:
    """Glossaries kept in the database: the service's source of truth once it runs.

    Seeded from the files (`GlossaryStore.load`) where a name is not stored yet, so a shipped
    glossary arrives on first start and never overwrites edits made through the API. Each process
    caches parsed glossaries by revision, so another process's edit is seen on the next read.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[int, Glossary]] = {}
        self._stacks: dict[tuple[tuple[str, int], ...], Glossary] = {}
        self._lock = threading.Lock()

    def seed(self, files: GlossaryStore) -> list[str]:
        """Store every file glossary the database lacks; the names added."""
        added = []
        with self.db.session() as session:
            have = set(session.scalars(select(StoredGlossary.name)))
            for name in files.names():
                if name in have:
                    continue
                g = files.get(name)
                session.add(
                    StoredGlossary(
                        name=name,
                        description=g.description,
                        terms=[term_to_json(t) for t in g.terms],
                        origin=files.origin(name),
                    )
                )
                added.append(name)
        return added

    def names(self) -> list[str]:
        with self.db.session() as session:
            return sorted(session.scalars(select(StoredGlossary.name)))

    def _revisions(self, names: Sequence[str]) -> dict[str, int]:
        with self.db.session() as session:
            rows = session.execute(
                select(StoredGlossary.name, StoredGlossary.revision).where(StoredGlossary.name.in_(set(names)))
            )
            return {name: rev for name, rev in rows}

    def _load(self, name: str, revision: int) -> Glossary:
        with self._lock:
            cached = self._cache.get(name)
        if cached and cached[0] == revision:
            return cached[1]
        with self.db.session() as session:
            row = session.get(StoredGlossary, name)
            if row is None:
                raise UnknownGlossaryError([name], self.names())
        return self._parsed(row)

    def _parsed(self, row: StoredGlossary) -> Glossary:
        """The glossary of a committed row, parsed once per revision (cached)."""
        with self._lock:
            cached = self._cache.get(row.name)
        if cached and cached[0] == row.revision:
            return cached[1]
        glossary = glossary_from_json(row.name, row.terms, row.description)
        with self._lock:
            self._cache[row.name] = (row.revision, glossary)
        return glossary

    def _described(self, row: StoredGlossary) -> tuple[Glossary, GlossaryInfo]:
        glossary = self._parsed(row)
        info = GlossaryInfo(
            name=row.name,
            terms=len(glossary.terms),
            origin=row.origin,
            revision=row.revision,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )
        return glossary, info

    def described(self, name: str) -> tuple[Glossary, GlossaryInfo]:
        """The glossary and its GlossaryInfo, of one revision (read together)."""
        with self.db.session() as session:
            row = session.get(StoredGlossary, name)
            if row is None:
                raise UnknownGlossaryError([name], sorted(session.scalars(select(StoredGlossary.name))))
        return self._described(row)

    def infos(self) -> list[GlossaryInfo]:
        """Every glossary's GlossaryInfo, by name."""
        with self.db.session() as session:
            rows = sorted(session.scalars(select(StoredGlossary)), key=lambda row: row.name)
        return [self._described(row)[1] for row in rows]

    def get(self, name: str) -> Glossary:
        revisions = self._revisions([name])
        if name not in revisions:
            raise UnknownGlossaryError([name], self.names())
        return self._load(name, revisions[name])

    def stacked(self, names: Sequence[str]) -> Glossary:
        revisions = self._revisions(names)
        unknown = [n for n in names if n not in revisions]
        if unknown:
            raise UnknownGlossaryError(unknown, self.names())
        key = tuple((n, revisions[n]) for n in names)
        with self._lock:
            cached = self._stacks.get(key)
        if cached is None:
            cached = stack([self._load(n, revisions[n]) for n in names])
            with self._lock:
                if len(self._stacks) > 256:
                    self._stacks.clear()
                self._stacks[key] = cached
        return cached

    def put(self, glossary: Glossary, *, by: str) -> tuple[Glossary, GlossaryInfo, bool]:
        """Create or replace a glossary; the stored glossary, its GlossaryInfo, and whether it is new."""
        with self.db.session() as session:
            row = session.get(StoredGlossary, glossary.name, with_for_update=True)
            terms = [term_to_json(t) for t in glossary.terms]
            created = row is None
            if row is None:
                session.add(
                    StoredGlossary(
                        name=glossary.name, description=glossary.description, terms=terms, origin="api", updated_by=by
                    )
                )
            else:
                row.terms = terms
                row.description = glossary.description or row.description
                row.revision += 1
                row.origin = "api"
                row.updated_at = utcnow()
                row.updated_by = by
        return *self.described(glossary.name), created

    def put_term(self, name: str, term: Term, *, by: str) -> bool:
        """Add or replace one term (by id); whether it is new."""
        with self.db.session() as session:
            row = session.get(StoredGlossary, name, with_for_update=True)
            if row is None:
                raise UnknownGlossaryError([name], sorted(session.scalars(select(StoredGlossary.name))))
            # A replaced term keeps its place (the exported CSV keeps the terminologist's order).
            stored = term_to_json(term)
            terms = [stored if t["id"] == term.id else t for t in row.terms]
            created = not any(t["id"] == term.id for t in row.terms)
            row.terms = [*terms, stored] if created else terms
            row.revision += 1
            row.origin = "api"
            row.updated_at = utcnow()
            row.updated_by = by
        return created

    def delete_term(self, name: str, term_id: str, *, by: str) -> bool:
        """Remove one term; False when the glossary has no such term."""
        with self.db.session() as session:
            row = session.get(StoredGlossary, name, with_for_update=True)
            if row is None:
                raise UnknownGlossaryError([name], sorted(session.scalars(select(StoredGlossary.name))))
            terms = [t for t in row.terms if t["id"] != term_id]
            if len(terms) == len(row.terms):
                return False
            row.terms = terms
            row.revision += 1
            row.origin = "api"
            row.updated_at = utcnow()
            row.updated_by = by
        return True
