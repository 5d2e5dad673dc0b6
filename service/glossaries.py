"""Where glossaries come from: the shipped CSVs in glossary/data/, then DUIYI_GLOSSARY_DIR.

The only place that reads glossary files; `glossary/` itself stays pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import glossary
from glossary.csvio import parse_csv
from glossary.terms import Glossary, stack

SHIPPED = Path(glossary.__file__).resolve().parent / "data"


class UnknownGlossaryError(LookupError):
    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        super().__init__(f"unknown glossary {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        self.unknown = list(unknown)
        self.valid = list(valid)


class GlossaryStore:
    def __init__(self, glossaries: dict[str, Glossary]) -> None:
        self._glossaries = glossaries
        self._stacks: dict[tuple[str, ...], Glossary] = {}

    @classmethod
    def load(cls, extra_dir: Path | None = None) -> GlossaryStore:
        found: dict[str, Glossary] = {}
        for directory in (SHIPPED, extra_dir):
            if directory is None:
                continue
            if not directory.is_dir():
                raise FileNotFoundError(f"glossary directory {directory} does not exist")
            for path in sorted(directory.glob("*.csv")):
                found[path.stem] = parse_csv(path.read_text(encoding="utf-8"), path.stem)
        return cls(found)

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
