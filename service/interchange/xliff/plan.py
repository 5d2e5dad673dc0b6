"""Laying out one segment for export: its source and target as a sequence of text runs and
inline-code and term-annotation boundaries, with the ids of the codes and annotations. The source's
markup becomes codes at the positions the segmenter gave; the target's codes are found by searching
the variant's text for the same markup strings, properly paired; glossary terms are annotated where
they nest with the codes. The export module turns a plan into XML.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service.interchange.xliff.model import XInline, XSegment, XTerm

# The package's logger, the name these warnings had before the module became a package.
log = logging.getLogger("service.interchange.xliff")


@dataclass(frozen=True)
class _Code:
    """The start (opening=True) or end of inline code `key` (an index into the segment's inlines)."""

    key: int
    opening: bool


@dataclass(frozen=True)
class _Mark:
    """The start or end of the term annotation for the segment's term `key`."""

    key: int
    opening: bool


@dataclass(frozen=True)
class _Lone:
    """The start (opening=True) or end string of inline `key` standing alone in an HTML target, where
    an edit left it unpaired: a standalone code (<ph id="{id}">) rather than text, which the import
    would escape into characters shown on the page."""

    key: int
    opening: bool
    id: str


# A segment's content in document order: text runs (never empty) and code/annotation boundaries.
_Token = str | _Code | _Mark | _Lone


@dataclass(frozen=True)
class _CodeRef:
    id: str
    data_start: str
    data_end: str


@dataclass(frozen=True)
class _SegmentPlan:
    segment: XSegment
    codes: Mapping[int, _CodeRef]
    inlines: Mapping[int, XInline]
    paired: bool
    source: list[_Token]
    target: list[_Token]
    mark_ids: Mapping[int, int]
    source_marks: frozenset[int]
    target_marks: frozenset[int]


class _Ids:
    """Ids of a unit's inline elements. They share one scope with the unit's segment ids, so numbers
    that a segment already uses are skipped."""

    def __init__(self, taken: Iterable[str]) -> None:
        self._taken = set(taken)
        self._code = 0
        self._mark = 0

    def code(self) -> int:
        self._code += 1
        while str(self._code) in self._taken:
            self._code += 1
        return self._code

    def mark(self) -> int:
        self._mark += 1
        while f"m{self._mark}" in self._taken:
            self._mark += 1
        return self._mark


def _plan(segment: XSegment, ids: _Ids) -> _SegmentPlan:
    size = len(segment.source)
    inlines: dict[int, XInline] = {}
    for key, inline in enumerate(segment.inlines):
        if 0 <= inline.start <= inline.end <= size:
            inlines[key] = inline
        else:
            # A bad range is the segmenter's bug; the text still exports, only this markup is lost.
            log.warning("segment %s: inline %r lies outside its %d characters; left out", segment.id, inline, size)
    codes: dict[int, _CodeRef] = {}
    for key in inlines:
        number = ids.code()
        codes[key] = _CodeRef(str(number), f"d{number}s", f"d{number}e")
    source = _source_tokens(segment.source, inlines)
    paired = _nests(source)
    target = _target_tokens(segment.target, inlines, crossing=not paired)
    if segment.html:
        target = _html_text(target, inlines, ids)

    mark_ids = {key: ids.mark() for key in range(len(segment.terms))}
    source_marks: set[int] = set()
    for key, term in enumerate(segment.terms):
        if 0 <= term.start < term.end <= size:
            marked = _insert_mark(source, key, term.start, term.end)
            if marked is not None:
                source = marked
                source_marks.add(key)
    target, target_marks = _mark_target_terms(target, segment.terms)
    return _SegmentPlan(
        segment=segment,
        codes=codes,
        inlines=inlines,
        paired=paired,
        source=source,
        target=target,
        mark_ids=mark_ids,
        source_marks=frozenset(source_marks),
        target_marks=frozenset(target_marks),
    )


def _source_tokens(text: str, inlines: Mapping[int, XInline]) -> list[_Token]:
    """The source as tokens. Where boundaries share a position, ends come before starts (inner ends
    first) so that touching ranges do not overlap, and an empty range opens and closes in place."""
    events: list[tuple[tuple[int, int, int, int], _Code]] = []
    for key, inline in inlines.items():
        if inline.start == inline.end:
            events.append(((inline.start, 1, key, 0), _Code(key, True)))
            events.append(((inline.start, 1, key, 1), _Code(key, False)))
        else:
            events.append(((inline.start, 2, -inline.end, key), _Code(key, True)))
            events.append(((inline.end, 0, -inline.start, -key), _Code(key, False)))
    events.sort(key=lambda event: event[0])
    tokens: list[_Token] = []
    position = 0
    for (at, *_), code in events:
        if at > position:
            tokens.append(text[position:at])
            position = at
        tokens.append(code)
    if position < len(text):
        tokens.append(text[position:])
    return tokens


def _nests(tokens: Sequence[_Token]) -> bool:
    """Whether every start is closed by its end in last-opened-first-closed order (what <pc> needs)."""
    stack: list[_Code | _Mark] = []
    for token in tokens:
        if isinstance(token, str | _Lone):
            continue
        if token.opening:
            stack.append(token)
        elif not stack or type(stack[-1]) is not type(token) or stack[-1].key != token.key:
            return False
        else:
            stack.pop()
    return not stack


def _target_tokens(target: str, inlines: Mapping[int, XInline], *, crossing: bool) -> list[_Token]:
    """The target as tokens, with the source's markup strings found in it as codes.

    An inline whose start string is found but whose end cannot be paired properly drops out, and the
    scan starts again without it, so its markup stays in the text as typed."""
    # Empty markup strings cannot be found in text; such an inline simply has no code in the target.
    # One with a start string only (an HTML <img>) is whole in it, and has a code when that is found.
    candidates = {key: inline for key, inline in inlines.items() if inline.open}
    while True:
        tokens, unclosed = _scan_target(target, candidates, crossing=crossing)
        if not unclosed:
            return tokens
        for key in unclosed:
            del candidates[key]


def _scan_target(target: str, inlines: Mapping[int, XInline], *, crossing: bool) -> tuple[list[_Token], set[int]]:
    tokens: list[_Token] = []
    text: list[str] = []
    open_keys: list[int] = []
    used: set[int] = set()
    found_closes: dict[int, int] = {}

    def flush() -> None:
        if text:
            tokens.append("".join(text))
            text.clear()

    position = 0
    while position < len(target):
        # Only the innermost open code may close, unless the source itself had crossing codes.
        closable = reversed(open_keys) if crossing else open_keys[-1:]
        closing = next((key for key in closable if target.startswith(inlines[key].close, position)), None)
        if closing is not None:
            flush()
            open_keys.remove(closing)
            tokens.append(_Code(closing, False))
            position += len(inlines[closing].close)
            continue
        best: tuple[tuple[int, int, int], int] | None = None
        for key, inline in inlines.items():
            if key in used or not target.startswith(inline.open, position):
                continue
            end = _find_after(target, inline.close, position + len(inline.open), found_closes, key)
            if end < 0:
                continue
            # The longest start string wins ('**' over '*'); among equal ones (two links both
            # opening with '['), the one whose end string comes first, which follows the target's
            # own order even where the translator reordered the links.
            rank = (-len(inline.open), end, key)
            if best is None or rank < best[0]:
                best = (rank, key)
        if best is not None:
            key = best[1]
            flush()
            used.add(key)
            tokens.append(_Code(key, True))
            position += len(inlines[key].open)
            if inlines[key].close:
                open_keys.append(key)
            else:  # closed where it opens: nothing in the target can be inside it
                tokens.append(_Code(key, False))
            continue
        text.append(target[position])
        position += 1
    flush()
    return tokens, set(open_keys)


def _html_text(tokens: list[_Token], inlines: Mapping[int, XInline], ids: _Ids) -> list[_Token]:
    """An HTML target's tokens as the file shows them: text unescaped (`&amp;` is `&`, as in the
    source), and any of the source's markup strings still in it (a tag an edit left unpaired) as a
    standalone code, so that importing the file unchanged gives back the same HTML."""
    found: dict[str, tuple[int, bool]] = {}
    for key, inline in inlines.items():
        found.setdefault(inline.open, (key, True))
        found.setdefault(inline.close, (key, False))
    found.pop("", None)
    # Longest first, so that a string which begins another (`<b>`, `<b class="x">`) does not cut it.
    pattern = re.compile("|".join(re.escape(s) for s in sorted(found, key=len, reverse=True))) if found else None
    result: list[_Token] = []
    for token in tokens:
        if not isinstance(token, str):
            result.append(token)
            continue
        position = 0
        for match in pattern.finditer(token) if pattern else ():
            if match.start() > position:
                result.append(html.unescape(token[position : match.start()]))
            key, opening = found[match.group()]
            result.append(_Lone(key, opening, str(ids.code())))
            position = match.end()
        if position < len(token):
            result.append(html.unescape(token[position:]))
    return result


def _find_after(text: str, needle: str, start: int, cache: dict[int, int], key: int) -> int:
    """`text.find(needle, start)`, remembering the answer per key: the scan only moves forward, so an
    earlier answer at or after `start` (or "none") still holds, and a long target with many start
    strings is not searched over and over."""
    known = cache.get(key)
    if known is None or 0 <= known < start:
        known = cache[key] = text.find(needle, start)
    return known


def _plain(tokens: Sequence[_Token]) -> str:
    return "".join(token for token in tokens if isinstance(token, str))


def _insert_mark(tokens: list[_Token], key: int, start: int, end: int) -> list[_Token] | None:
    """`tokens` with a term annotation around plain-text [start, end), or None where no placement
    nests with the codes and earlier annotations.

    Codes at the same text position as the term's edges can fall inside or outside it; the tightest
    placement that encloses whole code pairs only is taken."""
    tokens = _split_at(_split_at(tokens, start), end)
    offsets = [0]
    for token in tokens:
        offsets.append(offsets[-1] + (len(token) if isinstance(token, str) else 0))
    starts = [index for index, offset in enumerate(offsets) if offset == start]
    ends = [index for index, offset in enumerate(offsets) if offset == end]
    for first in reversed(starts):
        for last in ends:
            if last >= first and _closed(tokens[first:last]):
                return [*tokens[:first], _Mark(key, True), *tokens[first:last], _Mark(key, False), *tokens[last:]]
    return None


def _split_at(tokens: list[_Token], position: int) -> list[_Token]:
    """`tokens` with a text run split so that a token boundary falls at plain-text `position`."""
    result: list[_Token] = []
    offset = 0
    for token in tokens:
        if isinstance(token, str) and offset < position < offset + len(token):
            cut = position - offset
            result += [token[:cut], token[cut:]]
        else:
            result.append(token)
        if isinstance(token, str):
            offset += len(token)
    return result


def _closed(tokens: Sequence[_Token]) -> bool:
    """Whether every boundary in `tokens` has its partner in `tokens` too (start before end)."""
    opened: set[tuple[type, int]] = set()
    closed: set[tuple[type, int]] = set()
    for token in tokens:
        if isinstance(token, str | _Lone):
            continue
        ident = (type(token), token.key)
        if token.opening:
            opened.add(ident)
        elif ident not in opened:
            return False
        else:
            closed.add(ident)
    return opened == closed


def _mark_target_terms(tokens: list[_Token], terms: Sequence[XTerm]) -> tuple[list[_Token], set[int]]:
    """Annotate, for each term, the first occurrence of its glossary form in the target that no
    earlier term took and that nests with the codes."""
    marked: set[int] = set()
    taken: list[tuple[int, int]] = []
    for key, term in enumerate(terms):
        if not term.target:
            continue
        text = _plain(tokens)
        found = text.find(term.target)
        while found >= 0:
            end = found + len(term.target)
            if not any(found < other_end and other_start < end for other_start, other_end in taken):
                annotated = _insert_mark(tokens, key, found, end)
                if annotated is not None:
                    tokens = annotated
                    marked.add(key)
                    taken.append((found, end))
                    break
            found = text.find(term.target, found + 1)
    return tokens, marked
