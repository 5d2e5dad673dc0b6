"""The one data model that flows through the pipeline: Article → Document → Segments → AlignedDocument.

Plain frozen dataclasses; parsing lives in `service.formats`, splitting in `service.segmenter`,
translation in `service.pipeline`. Offsets are in characters of the block's plain text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from enum import StrEnum

from markdown_it import MarkdownIt, rules_inline
from markdown_it.parser_inline import RuleFuncInlineType
from markdown_it.rules_inline import StateInline


class SourceFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


_TAG = re.compile(r"<[^>]*>")


def _noting_written_form(rule: RuleFuncInlineType, label_at: int) -> RuleFuncInlineType:
    """Markdown's `link` or `image` rule (`label_at`: where its label starts, after `[` or `![`),
    also noting on the token it makes its label and what follows the label as written (`meta`:
    "label", "rest"): `(url "title")`, or a reference, `[ref]`, `[]` or nothing. markdown-it keeps
    only the address a reference stands for, and a page keeps its references as such."""

    def rule_noting(state: StateInline, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        if not rule(state, silent):
            return False
        if not silent:
            label_end = state.md.helpers.parseLinkLabel(state, start + label_at - 1, label_at == 1)
            made = next(t for t in state.tokens[count:] if t.type in ("link_open", "image"))
            made.meta["label"] = state.src[start + label_at : label_end]
            made.meta["rest"] = state.src[label_end + 1 : state.pos]
        return True

    return rule_noting


def markdown_reader() -> MarkdownIt:
    """The Markdown parser of articles: CommonMark with GFM tables and strikethrough (`~~text~~`),
    its links and images noting their written form (see `_noting_written_form`)."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.inline.ruler.at("link", _noting_written_form(rules_inline.link, 1))
    md.inline.ruler.at("image", _noting_written_form(rules_inline.image, 2))
    return md


class _AnyReference(dict[str, dict[str, str]]):
    """References that resolve every label: a target's `[text][ref]` is a link to its page's
    definition, which the target alone does not have."""

    def get(self, key: str, default: object = None) -> dict[str, str]:  # type: ignore[override]
        return {"href": "", "title": ""}


_MD = markdown_reader()

# Markdown: characters that would start inline syntax anywhere (emphasis, code, links, raw HTML, a
# character reference, a table's cell border, a strikethrough's `~~`: a lone `~`, as in 3~5, is
# text), and what would start a block at the beginning of a line (heading, quote, list item, setext
# underline, fence). A backslash makes each of them text (CommonMark, "Backslash escapes").
_MD_INLINE = re.compile(r"[\\`*_\[\]<|]|~(?=~)|&(?=#?\w+;)")
_MD_LINE_START = re.compile(r"(?m)^([ \t]*)(?:([#>+=~-])|(\d{1,9})([.)])(?=\s|$))")


def markdown_escape(text: str) -> str:
    """Plain text as Markdown that renders as that text: `*star*` stays two asterisks around a word,
    a leading `#` stays a character, not a heading."""
    text = _MD_INLINE.sub(lambda m: "\\" + m.group(), text)
    return _MD_LINE_START.sub(
        lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), text
    )


def plain_text(target: str, fmt: SourceFormat) -> str:
    """A segment's target as plain text (what the translation memory and TMX hold): an HTML
    article's targets are HTML, escaped and with the source's inline tags; a Markdown article's are
    Markdown, with backslash escapes and the source's inline syntax (links keep their text, images
    and raw HTML tags go, as an HTML article's do)."""
    if fmt is SourceFormat.HTML:
        return html.unescape(_TAG.sub("", target))
    if fmt is SourceFormat.MARKDOWN:
        return _markdown_text(target)
    return target


def in_format(text: str, fmt: SourceFormat) -> str:
    """Plain text as a target of an article in `fmt`: escaped for HTML and Markdown, as the
    pipeline's own targets are."""
    if fmt is SourceFormat.HTML:
        return html.escape(text)
    if fmt is SourceFormat.MARKDOWN:
        return markdown_escape(text)
    return text


def written_forms(text: str, fmt: SourceFormat) -> tuple[str, ...]:
    """The ways plain `text` may stand in a target of an article in `fmt`: as the pipeline writes it
    (`in_format`) first, then as a person may type it (`AT&T` for `AT&amp;T`, `'` for `&#x27;`)."""
    typed = (html.escape(text, quote=False), text) if fmt is SourceFormat.HTML else (text,)
    return tuple(dict.fromkeys((in_format(text, fmt), *typed)))


def _markdown_text(target: str) -> str:
    parts: list[str] = []
    closes: list[str] = []
    for token in _MD.parseInline(target, {"references": _AnyReference()})[0].children or ():
        written = token.meta.get("rest") if token.type in ("link_open", "image") else None
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif token.type == "link_open":
            # Text in brackets is a link only where it names a reference, `[text][ref]`.
            shortcut = written in ("", "[]")
            parts.append("[" if shortcut else "")
            closes.append("]" + str(written) if shortcut else "")
        elif token.type == "link_close" and closes:
            parts.append(closes.pop())
        elif token.type == "image" and written in ("", "[]"):
            parts.append(f"![{token.meta['label']}]{written}")
    return "".join(parts)


class BlockKind(StrEnum):
    TITLE = "title"
    SUBTITLE = "subtitle"
    BYLINE = "byline"
    DATE = "date"
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    QUOTE = "quote"
    LIST_ITEM = "list_item"
    # An image's text attributes, translated as blocks of their own and written back into the image
    # (HTML `<img alt title>`, Markdown `![alt](src "title")`), see service.formats.
    IMAGE_ALT = "image_alt"
    IMAGE_TITLE = "image_title"
    # An HTML page's description or sharing text (<meta name="description" content="…">, og:title…),
    # translated as a block and written back into the <meta>, see service.formats.
    META = "meta"
    # An element's label in an HTML page: what a screen reader says for it (`aria-label`), an
    # abbreviation's expansion (`<abbr title>`) or another element's tooltip (`<a title>`), written
    # back into that attribute; in a Markdown page, a link's or a reference definition's title,
    # written back into it; see service.formats.
    LABEL = "label"


@dataclass(frozen=True)
class Article:
    """What the client sent, kept verbatim."""

    body: str
    format: SourceFormat = SourceFormat.TEXT
    title: str = ""
    subtitle: str = ""
    byline: str = ""
    date: str = ""


@dataclass(frozen=True)
class Inline:
    """Inline markup around [start, end) of a block's text, as the source wrote it."""

    start: int
    end: int
    open: str  # e.g. '<a href="https://x">' or '[' (Markdown link)
    close: str  # e.g. '</a>' or '](https://x)'
    verbatim: bool = False  # code: kept as written, never translated


@dataclass(frozen=True)
class Block:
    id: str  # "b3"
    kind: BlockKind
    text: str  # plain text, inline markup removed
    inlines: tuple[Inline, ...] = ()
    level: int = 0  # heading level, list depth
    # Text format: the exact separator (blank lines, indentation) before this block in the input.
    sep_before: str = ""
    # Markdown: the line prefix ("## ", "> ", "- ", "1. "), and the number of the place in the page
    # (a paragraph, heading or table cell) whose text its translation replaces; HTML: the number of
    # the place in the page (an element, or a run of loose text) its translation replaces, see
    # service.formats. An image text's block (image_alt, image_title) in either format: the number of
    # its image in the document; a meta block: the number of its <meta> among the page's translated
    # ones, or after them, of its structured data text; a label block: the number of its label.
    prefix: str = ""
    element: int = -1


@dataclass(frozen=True)
class SourceSegment:
    id: str  # "b3.s2"
    block_id: str
    start: int  # in the block's text
    end: int
    text: str
    ws_before: str  # white space between the previous segment (or block start) and this one
    inlines: tuple[Inline, ...] = ()  # relative to this segment's text


@dataclass(frozen=True)
class Document:
    format: SourceFormat
    blocks: tuple[Block, ...]
    segments: tuple[SourceSegment, ...]
    # Text format: white space after the last block. HTML and Markdown: the page, to re-render (a
    # Markdown document stored before it was kept has none, and is written anew from its blocks).
    tail: str = ""
    html: str = ""


@dataclass(frozen=True)
class Flag:
    code: str  # term_missing, number_mismatch, untranslated, repetition, length_ratio, markup_moved
    reason: str
    variant: str | None = None


@dataclass(frozen=True)
class TargetSpan:
    start: int
    end: int


@dataclass(frozen=True)
class AlignedTerm:
    term_id: str
    source_text: str
    source_start: int  # in the segment's source
    source_end: int
    # Per variant: where the glossary target stands in that variant's text; None when missing.
    targets: dict[str, TargetSpan | None] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlignedSegment:
    id: str
    block_id: str
    source: str
    ws_before: str
    targets: dict[str, str]  # variant → text (inline markup restored in the source's syntax)
    terms: tuple[AlignedTerm, ...]
    flags: tuple[Flag, ...]
    origin: str = "mt"  # mt | rule (dates and other text handled without the model)
    status: str = "draft"


@dataclass(frozen=True)
class AlignedDocument:
    format: SourceFormat
    variants: tuple[str, ...]
    blocks: tuple[Block, ...]
    segments: tuple[AlignedSegment, ...]
    # Each variant's full text, reassembled with the source's structure and format.
    full_text: dict[str, str]
    model: str
    glossaries: tuple[str, ...]
