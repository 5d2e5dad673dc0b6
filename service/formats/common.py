"""What several source formats share: the article's structured fields, an image's texts as blocks
of their own (Markdown and HTML), trimming inline markup to its text (Markdown and HTML), what an
HTML page and its structured data both consult (the elements carried through as sent, the tag of
English), and how deep markup may nest (`MarkupTooDeep`)."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping

from bs4 import PageElement

from service.documents import Block, BlockKind, Inline, SourceFormat, plain_text

_FIELDS = (BlockKind.TITLE, BlockKind.SUBTITLE, BlockKind.BYLINE, BlockKind.DATE)
# An image's texts that are translated, each as a block of its own, and the attribute each one is.
IMAGE_TEXTS = {BlockKind.IMAGE_ALT: "alt", BlockKind.IMAGE_TITLE: "title"}
# Left as sent in an HTML page (see service.formats.html), the scripts of its structured data among them
# (see service.formats.structured); but for a <noscript>'s prose, which the HTML module translates.
_SKIP_TAGS = ("script", "style", "pre", "code", "template", "noscript")
# Carried through whole as markup: nothing in them is text to translate.
_OPAQUE_TAGS = (*_SKIP_TAGS, "img", "svg", "math")
# A language tag that says English (`en`, `en-GB`).
_ENGLISH = re.compile(r"en(?:-|$)", re.IGNORECASE)

# How deep markup may nest. An HTML page's elements: as deep as a browser's parser nests them (Blink
# and WebKit stop at 512), which legacy pages whose every `<p>` or `<li>` is left open (each then
# holds all that follows it) reach sooner than written structure does. Inline markup inside one
# text (HTML elements in a paragraph; Markdown emphasis, links and strikethrough): far deeper than
# any article's, and what each sentence's markup costs to protect and restore grows with its square.
MAX_ELEMENT_DEPTH = 512
MAX_INLINE_DEPTH = 100


class FormatError(ValueError):
    """Input that cannot be read in the format it claims."""


class MarkupTooDeep(FormatError):
    """Markup nested deeper than the service reads (`MAX_ELEMENT_DEPTH`, `MAX_INLINE_DEPTH`, and
    Markdown quotes and lists deeper than markdown-it reads): refused when an article is submitted,
    rather than accepted and never translated."""


def _inside(node: PageElement, names: Container[str]) -> bool:
    """Whether an element named in `names` holds `node`: BeautifulSoup's `find_parent(names)`, without
    its filter machinery, which costs more than the walk up itself (every element of a page is asked)."""
    return any(parent.name in names for parent in node.parents)


def _image_blocks(first: int, number: int, texts: Iterable[tuple[str, object]]) -> list[Block]:
    """The blocks of one image's texts (`texts`: attribute name → value as the source has it), in
    the order of IMAGE_TEXTS. An empty or blank text (`alt=""` marks a decorative image) is no block:
    there is nothing to translate, and the image stays exactly as it is."""
    given = dict(texts)
    blocks: list[Block] = []
    for kind, attr in IMAGE_TEXTS.items():
        value = given.get(attr)
        text = " ".join((" ".join(value) if isinstance(value, list) else str(value or "")).split())
        if text:
            blocks.append(Block(f"b{first + len(blocks)}", kind, text, element=number))
    return blocks


def _trimmed(text: str, inlines: Iterable[Inline]) -> tuple[Inline, ...]:
    """`inlines` without white space at their edges, outermost first. Sentence spans leave out the
    white space between sentences, so markup reaching into it (`First.<a> Read more.</a>`) would
    belong to no segment and be lost; the space moves just outside the markup instead. `inlines`
    lists inner elements before the elements around them, as both parsers close them."""
    trimmed: list[tuple[int, Inline]] = []
    for index, inline in enumerate(inlines):
        start, end = inline.start, inline.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        trimmed.append((index, Inline(start, end, inline.open, inline.close, inline.verbatim)))
    # Trimming can give nested elements the same range; the later one (the outer) stays first.
    # Elements with no content (images, breaks) at one place stay in the order they came.
    return tuple(
        i for _, i in sorted(trimmed, key=lambda t: (t[1].start, -t[1].end, t[0] if t[1].start == t[1].end else -t[0]))
    )


def _image_texts(blocks: Iterable[Block], inner: Mapping[str, str], fmt: SourceFormat) -> dict[int, dict[str, str]]:
    """The translated texts of each image (by its number in the document), attribute → plain text."""
    texts: dict[int, dict[str, str]] = {}
    for block in blocks:
        attr = IMAGE_TEXTS.get(block.kind)
        if attr is not None and block.id in inner:
            texts.setdefault(block.element, {})[attr] = " ".join(plain_text(inner[block.id], fmt).split())
    return texts
