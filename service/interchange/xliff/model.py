"""The records that the XLIFF export and import work on, the namespaces and other constants of the
format, XliffError, and the mapping between duiyi's segment statuses and XLIFF's states; also the two
small helpers that the export and import modules share (`_X`, the Clark-notation prefix of the XLIFF
core namespace, and `_brief`, which shortens a value from a file for a message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

XLIFF_NS = "urn:oasis:names:tc:xliff:document:2.0"
XLIFF_1_NS = "urn:oasis:names:tc:xliff:document:1.2"
GLOSSARY_NS = "urn:oasis:names:tc:xliff:glossary:2.0"
METADATA_NS = "urn:oasis:names:tc:xliff:metadata:2.0"
# The category of the Metadata module group that records what a segment was when it was exported.
BASIS_CATEGORY = "duiyi:exported"
XML_NS = "http://www.w3.org/XML/1998/namespace"
SOURCE_LANG = "en"
ORIGINAL_PREFIX = "duiyi:article/"
NEEDS_REVIEW_SUBSTATE = "duiyi:needs_review"
# XLIFF 2.1 keeps the 2.0 core namespace and structure; a CAT tool may write either version.
ACCEPTED_VERSIONS = ("2.0", "2.1")

STATUSES = ("draft", "needs_review", "approved")
STATES = ("initial", "translated", "reviewed", "final")
STATUS_TO_STATE: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {
        "draft": ("translated", None),
        "needs_review": ("translated", NEEDS_REVIEW_SUBSTATE),
        "approved": ("final", None),
    }
)

_X = f"{{{XLIFF_NS}}}"


@dataclass(frozen=True)
class XInline:
    """Inline markup around [start, end) of a segment's source text, as the source wrote it."""

    start: int
    end: int
    open: str
    close: str


@dataclass(frozen=True)
class XTerm:
    """A glossary hit at [start, end) of a segment's source text."""

    start: int
    end: int
    term_id: str
    source_text: str
    target: str
    note: str = ""


@dataclass(frozen=True)
class XBasis:
    """What a segment was when its file was exported: its version, its status and a digest of its
    target. The file carries it (a Metadata module group per segment), so that an import can tell
    what the translator changed in the file from what was changed in duiyi after the export."""

    version: int
    status: str
    digest: str


@dataclass(frozen=True)
class XSegment:
    id: str
    source: str
    target: str
    status: str
    inlines: tuple[XInline, ...] = ()
    terms: tuple[XTerm, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    ws_before: str = ""
    # The target is an HTML article's: its text is escaped (`&amp;`) and its markup raw. The file
    # holds text as text, as the source does, so the export unescapes it (import_xliff's `escape`
    # is the way back).
    html: bool = False
    basis: XBasis | None = None


@dataclass(frozen=True)
class XUnit:
    id: str
    kind: str
    segments: tuple[XSegment, ...]


@dataclass(frozen=True)
class XDocument:
    article_id: str
    variant: str
    units: tuple[XUnit, ...]
    title: str = ""


@dataclass(frozen=True)
class XEdit:
    segment_id: str
    target: str
    status: str
    # What the segment was at export, where the file says (files exported before duiyi recorded it,
    # or a tool that drops the Metadata module, say nothing).
    basis: XBasis | None = None


class XliffError(ValueError):
    """A file refused on import; the message tells a translator what is wrong (which segment, what differs)."""


class XliffVariantError(XliffError):
    """A file refused for its target language: it names none, or a variant that the article lacks
    or that is not the one asked for. `valid`: the article's variants, one of which it must name."""

    def __init__(self, message: str, valid: Sequence[str]) -> None:
        super().__init__(message)
        self.valid = list(valid)


def state_for(status: str) -> tuple[str, str | None]:
    """The XLIFF (state, subState) a duiyi status is exported as."""
    try:
        return STATUS_TO_STATE[status]
    except KeyError:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}") from None


def status_for(state: str | None, sub_state: str | None = None) -> str:
    """The duiyi status of an imported segment's XLIFF state and subState."""
    if state is None:
        state = "initial"  # the core schema's default
    if state in ("final", "reviewed"):
        return "approved"
    if state == "translated":
        return "needs_review" if sub_state == NEEDS_REVIEW_SUBSTATE else "draft"
    if state == "initial":
        return "needs_review"
    raise ValueError(f"unknown state {_brief(state)!r}; XLIFF 2.0 allows {', '.join(STATES)}")


def _brief(text: str, limit: int = 80) -> str:
    """A value from the file, cut short for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
