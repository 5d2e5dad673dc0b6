"""Building the XLIFF 2.0 file for one article variant: the <xliff> and <file> elements, a <unit>
per block with its glossary module, QA notes and originalData, and a <segment> per sentence whose
<source> and <target> are written from the segment's plan (<pc> or <sc>/<ec> codes, <mrk> term
annotations, <cp> for characters XML cannot carry), indented without touching any text content.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml import etree

from service.interchange.xliff.model import (
    _X,
    BASIS_CATEGORY,
    GLOSSARY_NS,
    METADATA_NS,
    ORIGINAL_PREFIX,
    SOURCE_LANG,
    XLIFF_NS,
    XML_NS,
    XDocument,
    XUnit,
    state_for,
)
from service.interchange.xliff.plan import _Ids, _Lone, _Mark, _plain, _plan, _SegmentPlan, _Token

_G = f"{{{GLOSSARY_NS}}}"
_M = f"{{{METADATA_NS}}}"
_XML_SPACE = f"{{{XML_NS}}}space"
# Characters outside XML 1.0's Char production; XLIFF carries them as <cp hex="…"/>.
_NOT_XML = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
# White space an XML tool may collapse unless told to preserve it.
_SIGNIFICANT_SPACE = re.compile(r"^\s|\s$|\s\s|[\t\n\r]")
_NMTOKEN = re.compile(r"[A-Za-z0-9._:\-]+")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_STRUCTURAL = frozenset(
    _X + name for name in ("xliff", "file", "group", "unit", "segment", "ignorable", "notes", "originalData")
) | frozenset((_G + "glossary", _G + "glossEntry", _M + "metadata", _M + "metaGroup"))


def export_xliff(doc: XDocument) -> bytes:
    """The variant as an XLIFF 2.0 file (UTF-8, with an XML declaration)."""
    if not _LANGUAGE.fullmatch(doc.variant):
        raise ValueError(f"variant {doc.variant!r} is not a language tag")
    root = etree.Element(
        _X + "xliff",
        attrib={"version": "2.0", "srcLang": SOURCE_LANG, "trgLang": doc.variant},
        nsmap={None: XLIFF_NS, "gls": GLOSSARY_NS, "mda": METADATA_NS},
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
    bases = [(segment.id, segment.basis) for segment in unit.segments if segment.basis is not None]
    if bases:
        metadata = etree.SubElement(unit_el, _M + "metadata")
        for segment_id, basis in bases:
            group = etree.SubElement(
                metadata, _M + "metaGroup", attrib={"category": BASIS_CATEGORY, "appliesTo": "target"}
            )
            for kind, value in (
                ("segment", segment_id),
                ("version", str(basis.version)),
                ("status", basis.status),
                ("target-sha256", basis.digest),
            ):
                etree.SubElement(group, _M + "meta", attrib={"type": kind}).text = _clean(value)
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
        elif isinstance(token, _Lone):
            ref = plan.codes[token.key]
            data = ref.data_start if token.opening else ref.data_end
            etree.SubElement(current, _X + "ph", attrib={"id": token.id, "dataRef": data})
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
