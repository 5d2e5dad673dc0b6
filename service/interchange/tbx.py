"""Glossaries as TBX: ISO 30042:2019 (TBX v3), dialect TBX-Basic, DCA style; also reads TBX v2 `martif`.

Export, one `<conceptEntry id="{term.id}">` per term:

    <conceptEntry id="scc">
      <descrip type="definition">{term.note}</descrip>
      <note>duiyi:case=sensitive</note>
      <note>duiyi:dnt</note>
      <langSec xml:lang="en">
        <termSec><term>SCC</term>
          <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></termSec>
        <termSec><term>Security Consultative Committee</term>
          <termNote type="administrativeStatus">admittedTerm-admn-sts</termNote></termSec>
      </langSec>
      <langSec xml:lang="zh-Hans"><termSec><term>美日安全保障磋商委员会</term>…</termSec></langSec>
    </conceptEntry>

How duiyi's fields are carried:
  - forms: the English terms in order. The canonical form is marked `preferredTerm-admn-sts` and the
    aliases `admittedTerm-admn-sts`: that is what TBX-Basic's administrativeStatus means, and CAT tools
    show it. On import a preferred English term is moved to the front.
  - targets: one langSec per variant present, tagged zh-Hans, zh-Hant, zh-TW, zh-HK.
  - note: `<descrip type="definition">` at concept level (TBX-Basic allows a definition at concept and
    language level; import reads both, the English langSec included).
  - case_sensitive and do_not_translate: TBX-Basic has no data category for either (termType,
    administrativeStatus and the rest describe the term, not how a machine should match or keep it),
    so they are free-text `<note>`s at concept level with a `duiyi:` prefix: `duiyi:case=sensitive`,
    `duiyi:case=insensitive` (no note: decide per form), and `duiyi:dnt`. Other tools show them as notes.
The glossary's description is not exported; the name is, as the header's `<p>duiyi glossary {name}</p>`.
Term ids are written as they are; TBX wants an xsd:ID there, which an id starting with a digit or '-'
is not, but changing it would break the round trip and CAT tools do not check.

Import reads TBX v3 (`tbx/text/body/conceptEntry/langSec/termSec/term`, DCA, and DCT's
`<basic:definition>`/`<basic:administrativeStatus>` by their local names) and TBX v2
(`martif/text/body/termEntry/langSet/(tig|ntig/termGrp)/term`). It is as strict as the CSV reader:
an entry without an English term, or without a zh-Hans target when not `duiyi:dnt`, is an error
naming the entry, and so is a duplicate id. Deprecated or superseded Chinese terms are never taken as
targets; deprecated English terms are kept as forms, since they still turn up in source text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from lxml import etree

from glossary.terms import VARIANTS, Glossary, Term, separator_problem
from service.interchange import safexml
from service.interchange.tmx import XML_LANG, is_english, variant_for_tag, xml_safe

TBX_NS = "urn:iso:std:iso:30042:ed-2"
DNT_NOTE = "duiyi:dnt"
CASE_NOTE = "duiyi:case="
_CASE_VALUES = {"sensitive": True, "insensitive": False}
_PREFERRED = "preferredTerm-admn-sts"
_ADMITTED = "admittedTerm-admn-sts"
_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # glossary.csvio's rule, so a TBX glossary can be saved as CSV
_MAX_SLUG = 60


class TBXError(ValueError):
    """A TBX file that cannot be read as a glossary; the message names the entry and what is wrong."""


def _q(local: str) -> str:
    return f"{{{TBX_NS}}}{local}"


def _term_sec(parent: etree._Element, text: str, status: str) -> None:
    sec = etree.SubElement(parent, _q("termSec"))
    etree.SubElement(sec, _q("term")).text = xml_safe(text)
    etree.SubElement(sec, _q("termNote"), type="administrativeStatus").text = status


def export_tbx(glossary: Glossary) -> bytes:
    """The glossary as a TBX-Basic (DCA) document, UTF-8 with XML declaration."""
    root = etree.Element(_q("tbx"), {"type": "TBX-Basic", "style": "dca", XML_LANG: "en"}, nsmap={None: TBX_NS})
    source_desc = etree.SubElement(
        etree.SubElement(etree.SubElement(root, _q("tbxHeader")), _q("fileDesc")), _q("sourceDesc")
    )
    etree.SubElement(source_desc, _q("p")).text = xml_safe(f"duiyi glossary {glossary.name}")
    body = etree.SubElement(etree.SubElement(root, _q("text")), _q("body"))
    for term in glossary.terms:
        if not _ID.match(term.id):
            raise TBXError(f"glossary {glossary.name!r}: term id {term.id!r} is not letters, digits, '-' and '_'")
        entry = etree.SubElement(body, _q("conceptEntry"), id=term.id)
        if term.note:
            etree.SubElement(entry, _q("descrip"), type="definition").text = xml_safe(term.note)
        if term.case_sensitive is not None:
            case = "sensitive" if term.case_sensitive else "insensitive"
            etree.SubElement(entry, _q("note")).text = CASE_NOTE + case
        if term.do_not_translate:
            etree.SubElement(entry, _q("note")).text = DNT_NOTE
        english = etree.SubElement(entry, _q("langSec"), {XML_LANG: "en"})
        for index, form in enumerate(term.forms):
            _term_sec(english, form, _PREFERRED if index == 0 else _ADMITTED)
        for variant in VARIANTS:
            if variant in term.targets:
                target = etree.SubElement(entry, _q("langSec"), {XML_LANG: variant})
                _term_sec(target, term.targets[variant], _PREFERRED)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@dataclass
class _Raw:
    """One entry as read, before ids are settled."""

    index: int
    given_id: str
    forms: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)
    case_sensitive: bool | None = None
    do_not_translate: bool = False
    note: str = ""

    def label(self) -> str:
        if self.given_id:
            return f"entry {self.index} (id {self.given_id!r})"
        if self.forms:
            return f"entry {self.index} ({self.forms[0]!r})"
        return f"entry {self.index}"


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _text(element: etree._Element) -> str:
    return "".join(element.itertext()).strip()


def _typed(element: etree._Element, kind: str, data_category: str) -> bool:
    """Whether `element` is data category `data_category`: DCA `<kind type="...">` or DCT `<x:dataCategory>`."""
    local = _local(element)
    return (local == kind and element.get("type") == data_category) or local == data_category


def _definitions(parent: etree._Element) -> list[str]:
    found: list[str] = []
    for child in parent:
        # A descripGrp wraps a descrip with its source or date; the definition is inside.
        candidates = list(child) if _local(child) == "descripGrp" else [child]
        found.extend(_text(c) for c in candidates if _typed(c, "descrip", "definition") and _text(c))
    return found


def _terms(section: etree._Element) -> list[tuple[str, str]]:
    """(term, administrative status) for each term of a langSec/langSet, in document order."""
    out: list[tuple[str, str]] = []
    containers = [e for e in section.iter() if _local(e) in ("termSec", "tig", "ntig")]
    for container in containers or [section]:
        terms = [e for e in container.iter() if _local(e) == "term"]
        if not terms:
            continue
        statuses = [_text(e) for e in container.iter() if _typed(e, "termNote", "administrativeStatus")]
        if containers:
            out.append((_text(terms[0]), statuses[0] if statuses else ""))
        else:
            # No containers at all (not valid TBX, but seen): each bare <term> counts on its own.
            out.extend((_text(t), "") for t in terms)
    return [(text, status) for text, status in out if text]


def _unusable(status: str) -> bool:
    return status.startswith(("deprecated", "superseded"))


def _read_entry(entry: etree._Element, index: int, name: str) -> _Raw:
    raw = _Raw(index=index, given_id=(entry.get("id") or "").strip())
    plain_notes: list[str] = []
    for child in entry:
        if _local(child) != "note":
            continue
        text = _text(child)
        if text == DNT_NOTE:
            raw.do_not_translate = True
        elif text.startswith(CASE_NOTE):
            value = text[len(CASE_NOTE) :].strip().lower()
            if value not in _CASE_VALUES:
                raise TBXError(f"glossary {name!r} {raw.label()}: {text!r} must be {CASE_NOTE}sensitive or insensitive")
            raw.case_sensitive = _CASE_VALUES[value]
        elif text.startswith("duiyi:"):
            raise TBXError(f"glossary {name!r} {raw.label()}: unknown duiyi note {text!r}")
        elif text:
            plain_notes.append(text)
    definitions = _definitions(entry)

    english: list[tuple[str, str]] = []
    candidates: dict[str, list[tuple[str, str]]] = {}
    for section in entry:
        if _local(section) not in ("langSec", "langSet"):
            continue
        lang = section.get(XML_LANG) or section.get("lang") or ""
        if is_english(lang):
            english.extend(_terms(section))
            # TBX-Basic also allows the definition in the language section: read it from English.
            definitions.extend(_definitions(section))
            continue
        variant = variant_for_tag(lang)
        if variant is not None:
            candidates.setdefault(variant, []).extend(_terms(section))

    forms: list[str] = []
    for text, _status in english:
        if text not in forms:
            forms.append(text)
    preferred = next((text for text, status in english if status.startswith("preferred")), None)
    if preferred is not None:
        forms.remove(preferred)
        forms.insert(0, preferred)
    raw.forms = forms
    for variant in VARIANTS:
        usable = [(text, status) for text, status in candidates.get(variant, []) if not _unusable(status)]
        best = next((text for text, status in usable if status.startswith("preferred")), None)
        if best is None and usable:
            best = usable[0][0]
        if best is not None:
            raw.targets[variant] = best
    raw.note = "\n".join(definitions) if definitions else "; ".join(plain_notes)

    if not raw.forms:
        raise TBXError(f"glossary {name!r} {raw.label()}: no English term (a langSec/langSet with xml:lang en)")
    if not raw.do_not_translate and "zh-Hans" not in raw.targets:
        raise TBXError(
            f"glossary {name!r} {raw.label()}: no zh-Hans target (a zh-Hans, zh-CN, zh-SG or zh term) "
            f"and not marked {DNT_NOTE}"
        )
    return raw


def slug(text: str) -> str:
    """Lower-case ASCII letters and digits joined by '-': 'U.S.-Japan Summit' → 'u-s-japan-summit'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:_MAX_SLUG].rstrip("-")


def import_tbx(data: bytes, name: str) -> Glossary:
    """The glossary of a TBX v3 or v2 (martif) file, named `name`, its terms in document order."""
    try:
        root = safexml.parse(data, what="TBX file")
    except (safexml.UnsafeXML, safexml.MalformedXML) as exc:
        raise TBXError(str(exc)) from None
    root_name = _local(root)
    namespace = etree.QName(root.tag).namespace if root_name else None
    if not ((root_name == "tbx" and namespace in (None, TBX_NS)) or (root_name == "martif" and namespace is None)):
        raise TBXError(f"not a TBX file: the root element is <{root.tag}>, not <tbx> (TBX v3) or <martif> (TBX v2)")
    text = next((c for c in root if _local(c) == "text"), None)
    body = next((c for c in text if _local(c) == "body"), None) if text is not None else None
    if body is None:
        raise TBXError(f"not a valid TBX file: <text><body> is missing under <{root_name}>")

    entries = [c for c in body if _local(c) in ("conceptEntry", "termEntry")]
    raws = [_read_entry(entry, index, name) for index, entry in enumerate(entries, start=1)]

    taken: dict[str, int] = {}
    for raw in raws:
        if _ID.match(raw.given_id):
            if raw.given_id in taken:
                raise TBXError(
                    f"glossary {name!r} entry {raw.index}: duplicate id {raw.given_id!r} "
                    f"(also entry {taken[raw.given_id]})"
                )
            taken[raw.given_id] = raw.index
    terms: list[Term] = []
    for raw in raws:
        tid = raw.given_id
        if not _ID.match(tid):
            # Missing or unusable as a CSV id: derive one, never taking an id another entry states.
            base = slug(tid) or slug(raw.forms[0]) or "term"
            tid, n = base, 1
            while tid in taken:
                n += 1
                tid = f"{base}-{n}"
            taken[tid] = raw.index
        problem = separator_problem(raw.forms)
        if problem:
            raise TBXError(f"glossary {name!r} {raw.label()}: {problem}")
        try:
            terms.append(
                Term(
                    id=tid,
                    forms=tuple(raw.forms),
                    targets=raw.targets,
                    case_sensitive=raw.case_sensitive,
                    do_not_translate=raw.do_not_translate,
                    note=raw.note,
                )
            )
        except ValueError as exc:
            raise TBXError(f"glossary {name!r} {raw.label()}: {exc}") from None
    return Glossary(name=name, terms=tuple(terms))
