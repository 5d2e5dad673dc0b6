"""Reading a translator's edited XLIFF file back: checking that it is an XLIFF 2.0 (or 2.1) file
exported for this article, working out which of the article's variants it is for (the one its
trgLang names, which must be the one asked for where one is), matching each segment to the
article's and refusing changed source text, and turning each target back into text, its inline codes
restored to the markup strings of the unit's originalData. Every refusal is an XliffError with a
message the translator can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree

from service.interchange import safexml
from service.interchange.xliff.model import (
    _X,
    ACCEPTED_VERSIONS,
    BASIS_CATEGORY,
    METADATA_NS,
    ORIGINAL_PREFIX,
    STATUSES,
    XLIFF_1_NS,
    XBasis,
    XEdit,
    XliffError,
    XliffVariantError,
    _brief,
    status_for,
)
from service.schemas import MAX_SEGMENT_TEXT


@dataclass(frozen=True)
class XImport:
    """What a file brings back: the variant it is for and its edits, in document order."""

    variant: str
    edits: list[XEdit]


def import_xliff(
    data: bytes,
    *,
    article_id: str,
    variant: str,
    sources: Mapping[str, str],
    escape: Callable[[str], str] | None = None,
) -> list[XEdit]:
    """The edits in a translator's XLIFF file for `article_id` in `variant`, in document order; a
    file whose trgLang names another variant is refused. See `import_xliff_for`."""
    return import_xliff_for(
        data, article_id=article_id, variants=(variant,), variant=variant, sources=sources, escape=escape
    ).edits


def import_xliff_for(
    data: bytes,
    *,
    article_id: str,
    variants: Sequence[str],
    variant: str | None = None,
    sources: Mapping[str, str],
    escape: Callable[[str], str] | None = None,
) -> XImport:
    """The edits in a translator's XLIFF file for `article_id`, and the variant they are for: the one
    of the article's `variants` that the file's trgLang names (see `variant_for`). `variant`, where
    the caller asks for one, must be that one; a file that names no variant of the article, or
    another than `variant`, is refused (XliffVariantError, with the article's variants).

    `sources` maps each segment id of the article to its source text (markup removed). `escape`
    turns a target's text (not its codes' markup) into the article's format: an HTML article's
    `html.escape`, so that `a<b` typed in a CAT tool stays text in the page."""
    try:
        root = safexml.parse(data, what="XLIFF file")
    except (safexml.UnsafeXML, safexml.MalformedXML) as exc:
        raise XliffError(str(exc)) from None
    chosen = _check_document(root, article_id=article_id, variants=variants, variant=variant)
    edits: list[XEdit] = []
    seen: set[str] = set()
    for file_el in root.iterfind(_X + "file"):
        for unit in file_el.iter(_X + "unit"):
            edits += _import_unit(unit, sources, seen, escape or _as_is)
    return XImport(chosen, edits)


# Forms of a variant's tag that a CAT tool may write in place of the one exported, each meaning
# that variant and no other: the region's tag with the script its Chinese is written in spelled out
# (CLDR's likely subtags make zh-TW zh-Hant-TW). Never a script's tag with a region added (zh-Hant
# as zh-Hant-TW, zh-Hans as zh-Hans-CN): that guesses at what the file meant, and zh-Hant-TW would
# then name two variants.
_EQUIVALENT_TAGS: Mapping[str, str] = MappingProxyType({"zh-hant-tw": "zh-TW", "zh-hant-hk": "zh-HK"})


def _tag_key(tag: str) -> str:
    """A language tag as tags compare: case-insensitively (BCP 47), a POSIX locale's `_` (which
    some tools write) as `-`."""
    return tag.replace("_", "-").lower()


def variant_for(language: str, variants: Sequence[str]) -> str | None:
    """The variant of `variants` that a file's language tag (its trgLang) names, or None. The export
    writes the variant's own tag; the import takes that tag in any case or with `_` for `-`
    (`zh-tw`, `zh_TW`), and the form that spells out the script its region implies (`zh-Hant-TW`
    for zh-TW, `zh-Hant-HK` for zh-HK), which names no other variant."""
    key = _tag_key(language)
    candidates = [key, _tag_key(_EQUIVALENT_TAGS[key])] if key in _EQUIVALENT_TAGS else [key]
    for candidate in candidates:
        for name in variants:
            if _tag_key(name) == candidate:
                return name
    return None


def _check_document(root: etree._Element, *, article_id: str, variants: Sequence[str], variant: str | None) -> str:
    """Refuse a file that is not an XLIFF 2 file exported for `article_id`; the variant it is for."""
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == f"{{{XLIFF_1_NS}}}xliff":
        raise XliffError("this is an XLIFF 1.2 file; export and import XLIFF 2.0 files")
    if tag != _X + "xliff":
        raise XliffError(f"this is not an XLIFF 2.0 file (its root element is <{_brief(etree.QName(tag).localname)}>)")
    version = root.get("version")
    if version not in ACCEPTED_VERSIONS:
        raise XliffError(f"this file says XLIFF version {_brief(version or '(none)')!r}; expected 2.0")
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
    # After the article: a file for another article is refused as that, whatever its language.
    return _file_variant(root.get("trgLang"), variants, variant)


def _file_variant(language: str | None, variants: Sequence[str], variant: str | None) -> str:
    """The variant of `variants` that the file's trgLang names, which must be `variant` where one is
    asked for; else XliffVariantError, saying what the file may be imported into."""
    shown = ", ".join(variants)
    if not language:
        # XLIFF 2 requires the trgLang of a file with targets; without it nothing says what they are in.
        expected = variant or f"one of this article's variants ({shown})"
        raise XliffVariantError(f"the file names no target language (trgLang); expected {expected}", variants)
    named = variant_for(language, variants)
    # A form read as another tag is shown with it: "zh-Hant-TW (that is, zh-TW)".
    meant = _EQUIVALENT_TAGS.get(_tag_key(language)) or _brief(language)
    lang = _brief(language) if meant == _brief(language) else f"{_brief(language)} (that is, {meant})"
    if variant is None:
        if named is None:
            raise XliffVariantError(
                f"the file is for {lang}, and this article has no {meant} translation: it has {shown}", variants
            )
        return named
    if named == variant:
        return variant
    if named is None:
        raise XliffVariantError(
            f"the file is for {lang}, not {variant}, and names none of this article's variants ({shown})",
            variants,
        )
    raise XliffVariantError(
        f"the file is for {lang}, not {variant}: import it into the {named} variant (variant={named}), "
        "or without variant, which imports a file into the variant it names",
        variants,
    )


def _as_is(text: str) -> str:
    return text


def _import_unit(
    unit: etree._Element, sources: Mapping[str, str], seen: set[str], escape: Callable[[str], str]
) -> list[XEdit]:
    unit_id = _brief(unit.get("id") or "?")
    data: dict[str, str] = {}
    for data_el in unit.iterfind(f"{_X}originalData/{_X}data"):
        data_id = data_el.get("id")
        if data_id:
            data[data_id] = _content(data_el, f"the original data of unit {unit_id}", _no_codes)
    bases = _bases(unit, unit_id)
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
        # A source is only compared with the article's, which may hold a NUL (SQLite stores one).
        source = _content(source_el, where, _no_codes, stored_text=False)
        if source != sources[segment_id]:
            raise XliffError(f"{where}: the source text was changed; {_difference(source, sources[segment_id])}")
        target_el = segment.find(_X + "target")
        if target_el is None:
            continue
        target = _content(target_el, where, _Restorer(where, data, source_el), escape)
        if len(target) > MAX_SEGMENT_TEXT:
            raise XliffError(
                f"{where}: the target has {len(target):,} characters, more than the {MAX_SEGMENT_TEXT:,} a "
                "segment may hold (as an edit may)"
            )
        try:
            status = status_for(segment.get("state"), segment.get("subState"))
        except ValueError as exc:
            raise XliffError(f"{where}: {exc}") from None
        edits.append(XEdit(segment_id=segment_id, target=target, status=status, basis=bases.get(segment_id)))
    return edits


_M = f"{{{METADATA_NS}}}"
_VERSION = re.compile(r"[0-9]{1,18}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _bases(unit: etree._Element, unit_id: str) -> dict[str, XBasis]:
    """What each segment of the unit was when exported, from its Metadata module groups. A group
    that is there but damaged is refused rather than ignored: without it the import could not tell
    the translator's changes from newer ones made in duiyi, and would overwrite those."""
    bases: dict[str, XBasis] = {}
    for group in unit.iterfind(f"{_M}metadata/{_M}metaGroup"):
        if group.get("category") != BASIS_CATEGORY:
            continue
        meta: dict[str, str] = {}
        for element in group.iterfind(_M + "meta"):
            meta[element.get("type") or ""] = (element.text or "").strip()
        segment_id = meta.get("segment", "")
        where = f"the export record ({BASIS_CATEGORY}) of segment {_brief(segment_id or '?')} in unit {unit_id}"
        version, status, digest = meta.get("version", ""), meta.get("status", ""), meta.get("target-sha256", "")
        if not segment_id or not _VERSION.fullmatch(version) or status not in STATUSES or not _SHA256.fullmatch(digest):
            raise XliffError(
                f"{where} is damaged (it needs segment, version, status and target-sha256); export the "
                "article again, or remove the record to import the file without checking for newer edits"
            )
        if segment_id in bases:
            raise XliffError(f"{where} appears twice")
        bases[segment_id] = XBasis(int(version), status, digest)
    return bases


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


def _content(
    element: etree._Element,
    where: str,
    code_text: _CodeText,
    escape: Callable[[str], str] = _as_is,
    *,
    stored_text: bool = True,
) -> str:
    """The element's text with its codes as `code_text` gives them; text (not the codes' markup)
    through `escape`. `stored_text`: the text will be stored (a target, original data), so a <cp>
    may not be NUL either (see `_code_point`)."""
    parts: list[str] = []
    _walk(element, where, code_text, parts, escape, stored_text)
    return "".join(parts)


def _walk(
    element: etree._Element,
    where: str,
    code_text: _CodeText,
    parts: list[str],
    escape: Callable[[str], str],
    stored_text: bool,
) -> None:
    # Recursion is bounded: libxml2 refuses documents nested deeper than 256 levels without huge_tree.
    if element.text:
        parts.append(escape(element.text))
    for child in element:
        tag = child.tag
        if isinstance(tag, str):
            name = tag[len(_X) :] if tag.startswith(_X) else None
            if name == "cp":
                parts.append(escape(_code_point(child, where, stored_text=stored_text)))
            elif name == "pc":
                parts.append(code_text(child, "start"))
                _walk(child, where, code_text, parts, escape, stored_text)
                parts.append(code_text(child, "end"))
            elif name in ("sc", "ec", "ph"):
                parts.append(code_text(child, name))
            elif name == "mrk":
                _walk(child, where, code_text, parts, escape, stored_text)
            elif name not in ("sm", "em"):  # annotation boundaries carry no text
                shown = etree.QName(tag)
                raise XliffError(
                    f"{where}: unexpected element <{_brief(shown.localname)}> ({_brief(shown.namespace or '')})"
                )
        if child.tail:
            parts.append(escape(child.tail))


def _code_point(element: etree._Element, where: str, *, stored_text: bool) -> str:
    """The character of a <cp hex="…"/>. It carries what XML cannot (a control character, U+FFFE),
    but only a Unicode character: a UTF-16 surrogate (U+D800 to U+DFFF) is half of one, which UTF-8,
    the database and JSON cannot carry, and NUL (U+0000) is not text and cannot be stored (PostgreSQL
    refuses it) unless `stored_text` is False. Refused with the segment's name, before anything is
    applied."""
    value = element.get("hex") or ""
    shown = f"<cp hex={_brief(value)!r}/>"
    try:
        code = int(value, 16)
        char = chr(code)
    except (ValueError, OverflowError):
        raise XliffError(f"{where}: {shown} is not a character") from None
    if 0xD800 <= code <= 0xDFFF:
        raise XliffError(
            f"{where}: {shown} is a UTF-16 surrogate (U+{code:04X}), half of a character, not a character; "
            "write the character itself, or one <cp> with its full code point (such as hex='1F600')"
        )
    if code == 0 and stored_text:
        raise XliffError(f"{where}: {shown} is NUL (U+0000), which is not text and cannot be stored; remove it")
    return char


def _difference(got: str, want: str) -> str:
    """Both texts around their first difference, briefly."""
    at = next((index for index, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    start = max(0, at - 20)

    def excerpt(text: str) -> str:
        piece = text[start : at + 30]
        return ("…" if start else "") + piece + ("…" if at + 30 < len(text) else "")

    return f"the file has {excerpt(got)!r} where the article has {excerpt(want)!r}"
