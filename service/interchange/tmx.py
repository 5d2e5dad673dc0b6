"""Translation memory as TMX 1.4b: what CAT tools (Trados, memoQ, OmegaT, Phrase…) read and write.

Export writes one `<tu>` per English source sentence, with the English `<tuv>` first and one `<tuv>`
per Chinese variant. Where the same source has the same variant twice, the newest `created_at` wins,
as in the service's own memory (the newest approval replaces older ones).

Provenance (`note`) and dates are kept per translation, because one `<tu>` groups translations that
were approved separately:
  - a note shared by every translation of the `<tu>` is written once as the `<tu>`'s `<note>`, which is
    where CAT tools show it; otherwise each target `<tuv>` carries its own `<note>`;
  - the `<tu>`'s `creationdate` is the newest of its translations; a target `<tuv>` carries its own.
Import reads a `<tuv>`'s note and date first and falls back to the `<tu>`'s (so an undated translation
grouped with dated ones comes back with the group's date). Dates have whole seconds, as TMX does.

Import takes files from other tools too: language tags are mapped to duiyi's variants
(`variant_for_tag`), other languages are skipped, and inline markup in `<seg>` is flattened to the
plain text a translator sees. Characters that XML 1.0 cannot carry at all (most C0 controls) are
dropped on export; nothing else is changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from glossary.terms import VARIANTS
from service.interchange import safexml

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DATE = re.compile(r"^\d{8}T\d{6}Z$")
# XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates and U+FFFE/U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Lower-cased language tags (with '_' read as '-') that name one of duiyi's variants. Script-and-region
# tags (zh-Hant-TW) and Microsoft's legacy zh-CHS/zh-CHT are here because CAT tools still write them.
_VARIANT_TAGS: dict[str, str] = {
    "zh": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-my": "zh-Hans",
    "zh-hans-cn": "zh-Hans",
    "zh-hans-sg": "zh-Hans",
    "zh-chs": "zh-Hans",
    "zh-hant": "zh-Hant",
    "zh-cht": "zh-Hant",
    "zh-tw": "zh-TW",
    "zh-hant-tw": "zh-TW",
    "zh-hk": "zh-HK",
    "zh-mo": "zh-HK",
    "zh-hant-hk": "zh-HK",
    "zh-hant-mo": "zh-HK",
}
# Inline elements whose content is native markup (an HTML tag, a placeholder), not text to translate.
# Their <sub> children hold a separate flow of text (a footnote, an alt text) that is not part of
# the sentence either, so the whole element goes, while the text after it (its tail) stays.
_NATIVE_CODES = frozenset({"bpt", "ept", "ph", "it", "ut"})


@dataclass(frozen=True)
class TMEntry:
    source: str  # English sentence (plain text)
    variant: str  # zh-Hans | zh-Hant | zh-TW | zh-HK
    target: str
    created_at: datetime | None = None  # aware, UTC
    note: str = ""  # provenance, e.g. article id / segment id


class TMXError(ValueError):
    """A TMX file that cannot be read or entries that cannot be written; the message says what and where."""


def normalize_tag(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def is_english(tag: str) -> bool:
    """Whether a language tag names English (en, en-US, EN-gb…)."""
    tag = normalize_tag(tag)
    return tag == "en" or tag.startswith("en-")


def variant_for_tag(tag: str) -> str | None:
    """The duiyi variant a language tag stands for, or None for any other language."""
    return _VARIANT_TAGS.get(normalize_tag(tag))


def _lang(element: etree._Element) -> str:
    # TMX 1.1–1.3 used a plain `lang` attribute; 1.4 uses xml:lang. Older tools still write the former.
    return element.get(XML_LANG) or element.get("lang") or ""


def _local(element: etree._Element) -> str:
    # Comments and PIs are removed by safexml, but lxml still types .tag loosely; be explicit.
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot represent even as references (most C0 controls)."""
    return _NOT_XML.sub("", text)


def _format_date(moment: datetime) -> str:
    # A naive datetime is taken to be UTC already: that is how the service stores times.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(_DATE_FORMAT)


def _parse_date(value: str, where: str) -> datetime:
    value = value.strip()
    if not _DATE.match(value):
        raise TMXError(f"{where}: creationdate must look like 20130926T143000Z, not {value!r}")
    try:
        return datetime.strptime(value, _DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise TMXError(f"{where}: creationdate {value!r} is not a real date and time") from None


def _age(moment: datetime | None) -> datetime:
    # Comparable whatever the input: naive counts as UTC, and undated as older than anything dated.
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _newest(entries: list[TMEntry]) -> TMEntry:
    best = entries[0]
    for entry in entries[1:]:
        # Between equal dates the later entry wins, as a later approval replaces an earlier one.
        if _age(entry.created_at) >= _age(best.created_at):
            best = entry
    return best


def _tuid(source: str) -> str:
    # Derived from the source so that exporting again gives the same ids and CAT tools update, not duplicate.
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _check(entry: TMEntry, index: int) -> None:
    where = f"entry {index} ({entry.source[:40]!r})"
    if entry.variant not in VARIANTS:
        raise TMXError(f"{where}: unknown variant {entry.variant!r}; valid: {', '.join(VARIANTS)}")
    if not xml_safe(entry.source).strip():
        raise TMXError(f"entry {index}: empty source")
    if not xml_safe(entry.target).strip():
        raise TMXError(f"{where}: empty {entry.variant} target")


def export_tmx(entries: Iterable[TMEntry], *, tool_version: str = "0.1") -> bytes:
    """The entries as a TMX 1.4b document (UTF-8, with XML declaration), one <tu> per source sentence."""
    groups: dict[str, dict[str, list[TMEntry]]] = {}
    for index, entry in enumerate(entries, start=1):
        _check(entry, index)
        groups.setdefault(xml_safe(entry.source), {}).setdefault(entry.variant, []).append(entry)

    root = etree.Element("tmx", version="1.4")
    header = {
        "creationtool": "duiyi",
        "creationtoolversion": tool_version,
        "segtype": "sentence",
        "o-tmf": "duiyi",
        "adminlang": "en",
        "srclang": "en",
        "datatype": "plaintext",
    }
    etree.SubElement(root, "header", header)
    body = etree.SubElement(root, "body")
    for source, by_variant in groups.items():
        chosen = [_newest(by_variant[v]) for v in VARIANTS if v in by_variant]
        tu = etree.SubElement(body, "tu", tuid=_tuid(source))
        dates = [e.created_at for e in chosen if e.created_at is not None]
        if dates:
            tu.set("creationdate", _format_date(max(dates, key=_age)))
        notes = {e.note for e in chosen}
        shared_note = notes.pop() if len(notes) == 1 else ""
        if shared_note:
            etree.SubElement(tu, "note").text = xml_safe(shared_note)
        english = etree.SubElement(tu, "tuv", {XML_LANG: "en"})
        etree.SubElement(english, "seg").text = source
        for entry in chosen:
            tuv = etree.SubElement(tu, "tuv", {XML_LANG: entry.variant})
            if entry.created_at is not None:
                tuv.set("creationdate", _format_date(entry.created_at))
            if entry.note and not shared_note:
                etree.SubElement(tuv, "note").text = xml_safe(entry.note)
            etree.SubElement(tuv, "seg").text = xml_safe(entry.target)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _flatten(element: etree._Element) -> Iterator[str]:
    """The text a translator sees in a <seg> or <hi>: native codes dropped, highlighted text kept."""
    if element.text:
        yield element.text
    for child in element:
        if _local(child) not in _NATIVE_CODES:
            # <hi>, and anything a tool invented, contributes its text.
            yield from _flatten(child)
        if child.tail:
            yield child.tail


def _seg_text(tuv: etree._Element) -> str | None:
    seg = next((c for c in tuv if _local(c) == "seg"), None)
    if seg is None:
        return None
    return "".join(_flatten(seg)).strip()


def _notes(element: etree._Element) -> str:
    texts = ("".join(c.itertext()).strip() for c in element if _local(c) == "note")
    return "\n".join(t for t in texts if t)


def import_tmx(data: bytes) -> list[TMEntry]:
    """The translations of a TMX file: one entry per <tu> and duiyi variant, in document order.

    A <tu> without an English <tuv> or without any Chinese one duiyi knows is skipped; a second <tuv>
    mapping to a variant already seen in the same <tu> (zh-CN and zh-SG, both zh-Hans) is skipped too.
    """
    try:
        root = safexml.parse(data, what="TMX file")
    except (safexml.UnsafeXML, safexml.MalformedXML) as exc:
        raise TMXError(str(exc)) from None
    if _local(root) != "tmx":
        raise TMXError(f"not a TMX file: the root element is <{_local(root) or root.tag}>, not <tmx>")
    header = next((c for c in root if _local(c) == "header"), None)
    body = next((c for c in root if _local(c) == "body"), None)
    if header is None or body is None:
        missing = "<header>" if header is None else "<body>"
        raise TMXError(f"not a valid TMX file: {missing} is missing under <tmx>")
    srclang = (header.get("srclang") or "").strip()
    # "*all*" (TMX: any language may be the source) is accepted: the English <tuv> is the source then.
    if not (is_english(srclang) or srclang == "*all*"):
        shown = repr(srclang) if srclang else "missing"
        raise TMXError(f"the TMX source language (header srclang) must be English (en, en-US…); it is {shown}")

    entries: list[TMEntry] = []
    for index, tu in enumerate((c for c in body if _local(c) == "tu"), start=1):
        tuid = tu.get("tuid")
        where = f"tu {index}" + (f" (tuid {tuid!r})" if tuid else "")
        tu_date = _parse_date(tu.get("creationdate", ""), where) if tu.get("creationdate") else None
        tu_note = _notes(tu)
        source: str | None = None
        targets: list[tuple[str, str, etree._Element]] = []
        for tuv in (c for c in tu if _local(c) == "tuv"):
            lang = _lang(tuv)
            if is_english(lang):
                if source is None:
                    source = _seg_text(tuv)
                continue
            variant = variant_for_tag(lang)
            if variant is None or any(v == variant for v, _, _ in targets):
                continue
            text = _seg_text(tuv)
            if text:
                targets.append((variant, text, tuv))
        if not source or not targets:
            continue
        for variant, text, tuv in targets:
            date = tuv.get("creationdate")
            entries.append(
                TMEntry(
                    source=source,
                    variant=variant,
                    target=text,
                    created_at=_parse_date(date, f"{where}, {variant}") if date else tu_date,
                    note=_notes(tuv) or tu_note,
                )
            )
    return entries
