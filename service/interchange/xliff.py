"""XLIFF 2.0 export of one article variant for a translator's CAT tool, and import of the edited file.

The module works on the plain records below and knows nothing of storage or HTTP.

Layout of an export (XLIFF 2.0 core, `urn:oasis:names:tc:xliff:document:2.0`):

* `<xliff version="2.0" srcLang="en" trgLang="{variant}">` with one `<file id="f1"
  original="duiyi:article/{article_id}">`; the article title, when there is one, is a file-level note.
* One `<unit id="{block id}" name="{kind}">` per block and one `<segment id="{segment id}">` per
  sentence. The white space between two sentences of the source is an `<ignorable>`, so joining a
  unit's sources gives back the block's text exactly. `xml:space="preserve"` is set on a source or
  target whose white space matters (leading, trailing, runs, tabs or line breaks).
* Inline markup (an HTML link, Markdown `**`) is a paired code `<pc id="n" dataRefStart="dns"
  dataRefEnd="dne">` whose markup strings are in the unit's `<originalData>`, so the translator moves
  codes, never types markup. Codes whose ranges cross in the source cannot be `<pc>` (which must
  nest); that segment then uses `<sc>`/`<ec>` pairs for all of its codes. The target carries the same
  codes where the variant's text contains the same markup strings, properly paired; markup that
  cannot be paired is left in the target as plain text, which the translator sees and can fix.
  Characters that XML cannot carry (control characters) are `<cp hex="…"/>`.
* A glossary hit is `<mrk id="mK" type="term" ref="#gls=gK">` around the term in the source, and
  around the glossary's form in the target when it occurs there, each only where it nests with the
  codes. The Glossary module (`urn:oasis:names:tc:xliff:glossary:2.0`) inside the unit has a
  `<gls:glossEntry id="gK" ref="#mK">` per hit with the English term, the variant's form and the
  note. `#gls=gK` and `#mK` are XLIFF fragment identifiers relative to the unit (the `gls` selector
  names a Glossary module element; no prefix names a source inline element, `t=` a target one).
* QA flags are unit notes: `<note category="duiyi:{code}" appliesTo="target">{segment id}: {reason}</note>`.

Status ↔ state. XLIFF has four states (initial, translated, reviewed, final) and a free `subState`:

=============  ==================================================  ==========================
duiyi status   exported as                                         why
=============  ==================================================  ==========================
draft          state="translated"                                  a machine or human draft
needs_review   state="translated" subState="duiyi:needs_review"    it has a target, so not
                                                                   "initial"; the subState
                                                                   keeps the flag visible
approved       state="final"                                       done; no further edits
=============  ==================================================  ==========================

On import: final or reviewed → approved (a reviewer's sign-off is what approval means here);
translated with subState duiyi:needs_review → needs_review (the flag was left as exported);
translated otherwise → draft; initial (also the schema's default when state is absent) →
needs_review, since a tool marks a segment initial to say that it still needs work.

Import refuses (XliffError, a message for the translator) a file that is not XLIFF 2.0 (2.1 shares
the core namespace and is accepted), that is for another article or variant, that names a segment
the article does not have, or whose source text differs from the article's; DTDs and entities are
refused by `safexml` before parsing. Every segment with a `<target>` gives an XEdit, an empty target
included (a translator may fold two English sentences into one Chinese one); segments left out of
the file, or without a target, are not edited. Codes in a target become the markup strings of the
unit's `<originalData>` again; a code whose data the unit does not define is refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree

from service.interchange import safexml

log = logging.getLogger(__name__)

XLIFF_NS = "urn:oasis:names:tc:xliff:document:2.0"
XLIFF_1_NS = "urn:oasis:names:tc:xliff:document:1.2"
GLOSSARY_NS = "urn:oasis:names:tc:xliff:glossary:2.0"
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
_G = f"{{{GLOSSARY_NS}}}"
_XML_SPACE = f"{{{XML_NS}}}space"
# Characters outside XML 1.0's Char production; XLIFF carries them as <cp hex="…"/>.
_NOT_XML = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
# White space an XML tool may collapse unless told to preserve it.
_SIGNIFICANT_SPACE = re.compile(r"^\s|\s$|\s\s|[\t\n\r]")
_NMTOKEN = re.compile(r"[A-Za-z0-9._:\-]+")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_STRUCTURAL = frozenset(
    _X + name for name in ("xliff", "file", "group", "unit", "segment", "ignorable", "notes", "originalData")
) | frozenset((_G + "glossary", _G + "glossEntry"))


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
class XSegment:
    id: str
    source: str
    target: str
    status: str
    inlines: tuple[XInline, ...] = ()
    terms: tuple[XTerm, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    ws_before: str = ""


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


class XliffError(ValueError):
    """A file refused on import; the message tells a translator what is wrong (which segment, what differs)."""


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


# Export ------------------------------------------------------------------------------------------


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


# A segment's content in document order: text runs (never empty) and code/annotation boundaries.
_Token = str | _Code | _Mark


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


def export_xliff(doc: XDocument) -> bytes:
    """The variant as an XLIFF 2.0 file (UTF-8, with an XML declaration)."""
    if not _LANGUAGE.fullmatch(doc.variant):
        raise ValueError(f"variant {doc.variant!r} is not a language tag")
    root = etree.Element(
        _X + "xliff",
        attrib={"version": "2.0", "srcLang": SOURCE_LANG, "trgLang": doc.variant},
        nsmap={None: XLIFF_NS, "gls": GLOSSARY_NS},
    )
    file_el = etree.SubElement(root, _X + "file", attrib={"id": "f1", "original": ORIGINAL_PREFIX + doc.article_id})
    if doc.title:
        notes = etree.SubElement(file_el, _X + "notes")
        etree.SubElement(notes, _X + "note", attrib={"category": "duiyi:title"}).text = _clean(doc.title)
    unit_ids: set[str] = set()
    segment_ids: set[str] = set()
    for unit in doc.units:
        _check_id(unit.id, "block", unit_ids)
        for segment in unit.segments:
            _check_id(segment.id, "segment", segment_ids)
        if unit.segments:
            _export_unit(file_el, unit)
    if not len(file_el.findall(_X + "unit")):
        # A <file> needs at least one unit or group; an empty group keeps a file with nothing to
        # translate valid rather than failing the export.
        etree.SubElement(file_el, _X + "group", attrib={"id": "empty"})
    _indent(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _check_id(value: str, what: str, seen: set[str]) -> None:
    if not _NMTOKEN.fullmatch(value):
        raise ValueError(f"{what} id {value!r} cannot be an XLIFF id (letters, digits, '.', '_', ':', '-')")
    if value in seen:
        raise ValueError(f"{what} id {value!r} appears twice")
    seen.add(value)


def _export_unit(file_el: etree._Element, unit: XUnit) -> None:
    attrib = {"id": unit.id}
    if unit.kind:
        attrib["name"] = unit.kind
    unit_el = etree.SubElement(file_el, _X + "unit", attrib=attrib)
    ids = _Ids(segment.id for segment in unit.segments)
    plans = [_plan(segment, ids) for segment in unit.segments]

    # The core schema orders a unit's children: module elements, notes, originalData, then segments.
    entries = [(plan, key) for plan in plans for key in plan.mark_ids]
    if entries:
        glossary = etree.SubElement(unit_el, _G + "glossary")
        for plan, key in entries:
            _gloss_entry(glossary, plan, key)
    flags = [(plan.segment.id, code, reason) for plan in plans for code, reason in plan.segment.flags]
    if flags:
        notes = etree.SubElement(unit_el, _X + "notes")
        for segment_id, code, reason in flags:
            note = etree.SubElement(
                notes, _X + "note", attrib={"category": f"duiyi:{_clean(code)}", "appliesTo": "target"}
            )
            note.text = _clean(f"{segment_id}: {reason}")
    codes = [(ref, plan.inlines[key]) for plan in plans for key, ref in plan.codes.items()]
    if codes:
        original = etree.SubElement(unit_el, _X + "originalData")
        for ref, inline in codes:
            _append_text(etree.SubElement(original, _X + "data", attrib={"id": ref.data_start}), inline.open)
            _append_text(etree.SubElement(original, _X + "data", attrib={"id": ref.data_end}), inline.close)

    for index, plan in enumerate(plans):
        segment = plan.segment
        if index and segment.ws_before:
            ignorable = etree.SubElement(unit_el, _X + "ignorable")
            _append_content(etree.SubElement(ignorable, _X + "source"), [segment.ws_before], plan)
        state, sub_state = state_for(segment.status)
        attrib = {"id": segment.id, "state": state}
        if sub_state:
            attrib["subState"] = sub_state
        segment_el = etree.SubElement(unit_el, _X + "segment", attrib=attrib)
        _append_content(etree.SubElement(segment_el, _X + "source"), plan.source, plan)
        _append_content(etree.SubElement(segment_el, _X + "target"), plan.target, plan)


def _gloss_entry(glossary: etree._Element, plan: _SegmentPlan, key: int) -> None:
    term = plan.segment.terms[key]
    number = plan.mark_ids[key]
    attrib = {"id": f"g{number}"}
    if key in plan.source_marks:
        attrib["ref"] = f"#m{number}"
    elif key in plan.target_marks:
        attrib["ref"] = f"#t=m{number}"
    entry = etree.SubElement(glossary, _G + "glossEntry", attrib=attrib)
    etree.SubElement(entry, _G + "term", attrib={"source": f"duiyi:{_clean(term.term_id)}"}).text = _clean(
        term.source_text
    )
    etree.SubElement(entry, _G + "translation").text = _clean(term.target)
    if term.note:
        etree.SubElement(entry, _G + "definition").text = _clean(term.note)


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
        if isinstance(token, str):
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
    candidates = {key: inline for key, inline in inlines.items() if inline.open and inline.close}
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
            open_keys.append(key)
            tokens.append(_Code(key, True))
            position += len(inlines[key].open)
            continue
        text.append(target[position])
        position += 1
    flush()
    return tokens, set(open_keys)


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
        if isinstance(token, str):
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


def _append_content(element: etree._Element, tokens: Sequence[_Token], plan: _SegmentPlan) -> None:
    """Build a <source> or <target> from tokens: <pc> (or <sc>/<ec>) for codes, <mrk> for terms."""
    if _SIGNIFICANT_SPACE.search(_plain(tokens)):
        element.set(_XML_SPACE, "preserve")
    stack = [element]
    for token in tokens:
        current = stack[-1]
        if isinstance(token, str):
            _append_text(current, token)
        elif isinstance(token, _Mark):
            if token.opening:
                number = plan.mark_ids[token.key]
                attrib = {"id": f"m{number}", "type": "term", "ref": f"#gls=g{number}"}
                stack.append(etree.SubElement(current, _X + "mrk", attrib=attrib))
            else:
                stack.pop()
        else:
            ref = plan.codes[token.key]
            if plan.paired:
                if token.opening:
                    attrib = {"id": ref.id, "dataRefStart": ref.data_start, "dataRefEnd": ref.data_end}
                    stack.append(etree.SubElement(current, _X + "pc", attrib=attrib))
                else:
                    stack.pop()
            elif token.opening:
                etree.SubElement(current, _X + "sc", attrib={"id": ref.id, "dataRef": ref.data_start})
            else:
                etree.SubElement(current, _X + "ec", attrib={"startRef": ref.id, "dataRef": ref.data_end})


def _append_text(element: etree._Element, text: str) -> None:
    """Append text at the end of `element`'s content, with characters XML cannot carry as <cp>."""
    position = 0
    for match in _NOT_XML.finditer(text):
        _append_plain_text(element, text[position : match.start()])
        etree.SubElement(element, _X + "cp", attrib={"hex": f"{ord(match.group()):04X}"})
        position = match.end()
    _append_plain_text(element, text[position:])


def _append_plain_text(element: etree._Element, text: str) -> None:
    if not text:
        return
    if len(element):
        last = element[-1]
        last.tail = (last.tail or "") + text
    else:
        element.text = (element.text or "") + text


def _clean(text: str) -> str:
    """Text for an element or attribute without <cp> (notes, glossary): characters XML cannot carry
    become U+FFFD rather than failing the export."""
    return _NOT_XML.sub("\ufffd", text)


def _indent(element: etree._Element, level: int = 0) -> None:
    """Indent structural elements only: white space added inside <source>, <target>, <data> or a
    note would change the text (which lxml's pretty printer does to a source that holds only a <pc>)."""
    if element.tag not in _STRUCTURAL or not len(element):
        return
    inner = "\n" + "  " * (level + 1)
    element.text = inner
    for child in element:
        child.tail = inner
        _indent(child, level + 1)
    element[-1].tail = "\n" + "  " * level


# Import ------------------------------------------------------------------------------------------


def import_xliff(data: bytes, *, article_id: str, variant: str, sources: Mapping[str, str]) -> list[XEdit]:
    """The edits in a translator's XLIFF file for `article_id` in `variant`, in document order.

    `sources` maps each segment id of the article to its source text (markup removed)."""
    try:
        root = safexml.parse(data, what="XLIFF file")
    except (safexml.UnsafeXML, safexml.MalformedXML) as exc:
        raise XliffError(str(exc)) from None
    _check_document(root, article_id=article_id, variant=variant)
    edits: list[XEdit] = []
    seen: set[str] = set()
    for file_el in root.iterfind(_X + "file"):
        for unit in file_el.iter(_X + "unit"):
            edits += _import_unit(unit, sources, seen)
    return edits


def _check_document(root: etree._Element, *, article_id: str, variant: str) -> None:
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == f"{{{XLIFF_1_NS}}}xliff":
        raise XliffError("this is an XLIFF 1.2 file; export and import XLIFF 2.0 files")
    if tag != _X + "xliff":
        raise XliffError(f"this is not an XLIFF 2.0 file (its root element is <{_brief(etree.QName(tag).localname)}>)")
    version = root.get("version")
    if version not in ACCEPTED_VERSIONS:
        raise XliffError(f"this file says XLIFF version {_brief(version or '(none)')!r}; expected 2.0")
    language = root.get("trgLang")
    if not language:
        raise XliffError(f"the file names no target language (trgLang); expected {variant}")
    if language.lower() != variant.lower():  # language tags are case-insensitive (BCP 47)
        raise XliffError(
            f"the file is for {_brief(language)}, not {variant}: import it into the {_brief(language)} variant"
        )
    files = root.findall(_X + "file")
    if not files:
        raise XliffError("the file has no <file> element, so no segments")
    expected = ORIGINAL_PREFIX + article_id
    for file_el in files:
        original = file_el.get("original") or ""
        if original == expected:
            continue
        if original.startswith(ORIGINAL_PREFIX):
            other = original[len(ORIGINAL_PREFIX) :]
            raise XliffError(f"the file is for article {_brief(other)}, not article {article_id}")
        raise XliffError(f"the file was not exported by duiyi for article {article_id} (original={_brief(original)!r})")


def _import_unit(unit: etree._Element, sources: Mapping[str, str], seen: set[str]) -> list[XEdit]:
    unit_id = _brief(unit.get("id") or "?")
    data: dict[str, str] = {}
    for data_el in unit.iterfind(f"{_X}originalData/{_X}data"):
        data_id = data_el.get("id")
        if data_id:
            data[data_id] = _content(data_el, f"the original data of unit {unit_id}", _no_codes)
    edits: list[XEdit] = []
    for segment in unit.iterfind(_X + "segment"):
        segment_id = segment.get("id")
        if not segment_id:
            raise XliffError(f"a segment of unit {unit_id} has no id, so it cannot be matched to the article")
        where = f"segment {_brief(segment_id)}"
        if segment_id in seen:
            raise XliffError(f"{where} appears twice in the file")
        seen.add(segment_id)
        if segment_id not in sources:
            raise XliffError(f"{where} is not a segment of this article; was the file edited by hand?")
        source_el = segment.find(_X + "source")
        if source_el is None:
            raise XliffError(f"{where} has no <source>")
        source = _content(source_el, where, _no_codes)
        if source != sources[segment_id]:
            raise XliffError(f"{where}: the source text was changed; {_difference(source, sources[segment_id])}")
        target_el = segment.find(_X + "target")
        if target_el is None:
            continue
        target = _content(target_el, where, _Restorer(where, data, source_el))
        try:
            status = status_for(segment.get("state"), segment.get("subState"))
        except ValueError as exc:
            raise XliffError(f"{where}: {exc}") from None
        edits.append(XEdit(segment_id=segment_id, target=target, status=status))
    return edits


# What an inline code stands for in the text: `part` is "start"/"end" for <pc>, else the tag name.
_CodeText = Callable[[etree._Element, str], str]


def _no_codes(element: etree._Element, part: str) -> str:
    return ""


# The attribute that names the original data of each kind of code ("start"/"end": the two of a <pc>).
_DATA_REF = MappingProxyType(
    {"start": "dataRefStart", "end": "dataRefEnd", "sc": "dataRef", "ec": "dataRef", "ph": "dataRef"}
)


class _Restorer:
    """Turns a target's inline codes back into the markup strings of the unit's originalData."""

    def __init__(self, where: str, data: Mapping[str, str], source: etree._Element) -> None:
        self._where = where
        self._data = data
        # A tool may drop the dataRef of a target code, relying on the source code of the same id.
        self._source_refs: dict[tuple[str, str], str] = {}
        for element in source.iter(_X + "pc", _X + "sc", _X + "ec", _X + "ph"):
            name = etree.QName(element).localname
            ident = element.get("startRef") or element.get("id") or ""
            for part in ("start", "end") if name == "pc" else (name,):
                ref = element.get(_DATA_REF[part])
                if ref:
                    self._source_refs[(part, ident)] = ref

    def __call__(self, element: etree._Element, part: str) -> str:
        ident = element.get("startRef") or element.get("id") or ""
        ref = element.get(_DATA_REF[part]) or self._source_refs.get((part, ident))
        name = etree.QName(element).localname
        described = f"<{name} id={_brief(ident)!r}>"
        if not ref:
            raise XliffError(f"{self._where}: the target has an inline code {described} that stands for no markup")
        if ref not in self._data:
            raise XliffError(
                f"{self._where}: the target's inline code {described} refers to data {_brief(ref)!r}, "
                "which the unit's originalData does not define"
            )
        return self._data[ref]


def _content(element: etree._Element, where: str, code_text: _CodeText) -> str:
    parts: list[str] = []
    _walk(element, where, code_text, parts)
    return "".join(parts)


def _walk(element: etree._Element, where: str, code_text: _CodeText, parts: list[str]) -> None:
    # Recursion is bounded: libxml2 refuses documents nested deeper than 256 levels without huge_tree.
    if element.text:
        parts.append(element.text)
    for child in element:
        tag = child.tag
        if isinstance(tag, str):
            name = tag[len(_X) :] if tag.startswith(_X) else None
            if name == "cp":
                parts.append(_code_point(child, where))
            elif name == "pc":
                parts.append(code_text(child, "start"))
                _walk(child, where, code_text, parts)
                parts.append(code_text(child, "end"))
            elif name in ("sc", "ec", "ph"):
                parts.append(code_text(child, name))
            elif name == "mrk":
                _walk(child, where, code_text, parts)
            elif name not in ("sm", "em"):  # annotation boundaries carry no text
                shown = etree.QName(tag)
                raise XliffError(
                    f"{where}: unexpected element <{_brief(shown.localname)}> ({_brief(shown.namespace or '')})"
                )
        if child.tail:
            parts.append(child.tail)


def _code_point(element: etree._Element, where: str) -> str:
    value = element.get("hex") or ""
    try:
        code = int(value, 16)
        return chr(code)
    except (ValueError, OverflowError):
        raise XliffError(f"{where}: <cp hex={_brief(value)!r}> is not a character") from None


def _difference(got: str, want: str) -> str:
    """Both texts around their first difference, briefly."""
    at = next((index for index, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    start = max(0, at - 20)

    def excerpt(text: str) -> str:
        piece = text[start : at + 30]
        return ("…" if start else "") + piece + ("…" if at + 30 < len(text) else "")

    return f"the file has {excerpt(got)!r} where the article has {excerpt(want)!r}"


def _brief(text: str, limit: int = 80) -> str:
    """A value from the file, cut short for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
