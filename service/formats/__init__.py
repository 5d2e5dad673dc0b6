"""Source formats: plain text, Markdown and HTML in; blocks with inline markup out; and back.

Parsing keeps each block's plain text and records inline markup as `Inline` spans so the sentence
splitter and the glossary see clean English. Rendering puts a translated block back into the
source's own syntax: Markdown prefixes, or the very HTML element it came from.

Where each format is handled (this module only dispatches to them):

- `text`: plain text, paragraphs separated by blank lines, and writing it back.
- `markdown`: Markdown pages read with markdown-it-py (front matter, quotes, lists, headings,
  tables cell by cell, footnote markers, strikethrough, links and images as written, their titles
  and reference definitions' as labels), and written back in place.
- `html`: HTML pages and fragments read with BeautifulSoup (block elements, loose text, <title>,
  <noscript> fallbacks, images' texts, <meta> texts, labels and tooltips, social media embeds),
  and written back in place, with the page's declared language.
- `structured`: an HTML page's structured data (`<script type="application/ld+json">`): which
  texts are translated, and writing them back as written.
- `common`: what several formats share (the article's fields, image texts as blocks, trimming
  inline markup, the HTML elements whose content is carried as sent, the English language tag, how
  deep markup may nest).
"""

from __future__ import annotations

from collections.abc import Mapping

from service.documents import Article, Block, SourceFormat
from service.formats.common import _FIELDS, IMAGE_TEXTS, MAX_ELEMENT_DEPTH, MAX_INLINE_DEPTH, FormatError, MarkupTooDeep
from service.formats.html import _html_blocks, _render_html
from service.formats.markdown import _markdown_blocks, _render_markdown
from service.formats.text import _render_text, _text_blocks

__all__ = [
    "FORMAT_BY_SUFFIX",
    "IMAGE_TEXTS",
    "MAX_ELEMENT_DEPTH",
    "MAX_INLINE_DEPTH",
    "FormatError",
    "MarkupTooDeep",
    "parse_blocks",
    "render",
]

# The input format an uploaded or named file has, by its suffix; anything else is plain text.
FORMAT_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def parse_blocks(article: Article) -> tuple[list[Block], str, str]:
    """Blocks of the article (structured fields first), the text tail, and the HTML or Markdown page
    if any, whose blocks' translations `render` puts in their places. Raises MarkupTooDeep for a
    page whose markup nests deeper than the parsers read."""
    blocks: list[Block] = []
    for kind, value in zip(_FIELDS, (article.title, article.subtitle, article.byline, article.date), strict=True):
        if value.strip():
            blocks.append(Block(id=f"b{len(blocks)}", kind=kind, text=" ".join(value.split())))
    tail = ""
    if article.format is SourceFormat.TEXT:
        body, tail = _text_blocks(article.body, len(blocks))
    elif article.format is SourceFormat.MARKDOWN:
        body = _markdown_blocks(article.body, len(blocks))
    else:
        body = _html_blocks(article.body, len(blocks))
    return blocks + body, tail, "" if article.format is SourceFormat.TEXT else article.body


def render(
    fmt: SourceFormat,
    blocks: tuple[Block, ...],
    inner: Mapping[str, str],
    *,
    tail: str = "",
    page: str = "",
    lang: str | None = None,
) -> str:
    """One variant's full text: `inner` maps block id → the block's translated text, already in the
    format's inline syntax (escaped for HTML). An image text's block has no place of its own: its
    translation goes into its image's attribute, in the block that holds the image or in the page
    (so do a label's and a meta block's). `page`: the HTML or Markdown page as sent (`parse_blocks`),
    whose places the blocks' translations take; a Markdown document stored without one is written
    anew from its blocks. `lang`: the variant's language tag, which an HTML page then declares (see
    `_declare_language`)."""
    if fmt is SourceFormat.TEXT:
        return _render_text(blocks, inner, tail)
    if fmt is SourceFormat.MARKDOWN:
        return _render_markdown(blocks, inner, page)
    return _render_html(blocks, inner, page, lang)
