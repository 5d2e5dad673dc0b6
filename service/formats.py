"""Source formats: plain text, Markdown and HTML in; blocks with inline markup out; and back.

Parsing keeps each block's plain text and records inline markup as `Inline` spans so the sentence
splitter and the glossary see clean English. Rendering puts a translated block back into the
source's own syntax: Markdown prefixes, or the very HTML element it came from.
"""

from __future__ import annotations

import bisect
import html
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping

from bs4 import BeautifulSoup, Comment, NavigableString, PageElement, Tag
from markdown_it import MarkdownIt
from markdown_it.parser_block import RuleFuncBlockType
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token

from service.documents import (
    Article,
    Block,
    BlockKind,
    Inline,
    SourceFormat,
    markdown_escape,
    markdown_reader,
    plain_text,
)

# The input format an uploaded or named file has, by its suffix; anything else is plain text.
FORMAT_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}

_PARAGRAPH_BREAK = re.compile(r"\r?\n[ \t]*\r?\n\s*")


class FormatError(ValueError):
    """Input that cannot be read in the format it claims."""


_FIELDS = (BlockKind.TITLE, BlockKind.SUBTITLE, BlockKind.BYLINE, BlockKind.DATE)
# An image's texts that are translated, each as a block of its own, and the attribute each one is.
IMAGE_TEXTS = {BlockKind.IMAGE_ALT: "alt", BlockKind.IMAGE_TITLE: "title"}
# Blocks whose translation goes into an attribute (an image's, a <meta>'s), not into a place of the page.
_ATTRIBUTE_TEXTS = frozenset((*IMAGE_TEXTS, BlockKind.META, BlockKind.LABEL))
# <meta> elements whose content is text a reader sees (search results, shared links), by name or property.
_META_TEXTS = frozenset(
    (
        "description",
        "og:title",
        "og:description",
        "og:image:alt",
        "twitter:title",
        "twitter:description",
        "twitter:image:alt",
    )
)


def parse_blocks(article: Article) -> tuple[list[Block], str, str]:
    """Blocks of the article (structured fields first), the text tail, and the HTML or Markdown page
    if any, whose blocks' translations `render` puts in their places."""
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


# --- plain text ---------------------------------------------------------------------------------


def _text_blocks(text: str, first: int) -> tuple[list[Block], str]:
    """Paragraphs separated by blank lines. Each block's text is stripped; the white space around it
    is kept as the next block's separator (or the tail), so the input is exactly reproducible."""
    blocks: list[Block] = []
    pos = 0
    sep = ""
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[pos:end]
        body = chunk.strip()
        if body:
            lead = len(chunk) - len(chunk.lstrip())
            sep += chunk[:lead]
            blocks.append(Block(f"b{first + len(blocks)}", BlockKind.PARAGRAPH, body, sep_before=sep))
            sep = chunk[lead + len(body) :]
        else:
            sep += chunk
        if match:
            sep += match.group(0)
            pos = match.end()
    return blocks, sep


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


# --- Markdown -----------------------------------------------------------------------------------


def _cells(row: str, at: int) -> list[tuple[int, int]]:
    """Where the cells of a table's row (`row`, at `at` in the source) stand, between the borders
    (an escaped `\\|` is text), without the white space around their text: as markdown-it splits it."""
    borders = [-1]
    escaped = False
    for pos, ch in enumerate(row):
        if ch == "|" and not escaped:
            borders.append(pos)
        escaped = ch == "\\"
    borders.append(len(row))
    cells = [(start + 1, end) for start, end in itertools.pairwise(borders)]
    if cells and cells[0][0] == cells[0][1]:
        cells.pop(0)
    if cells and cells[-1][0] == cells[-1][1]:
        cells.pop()
    spans = []
    for start, end in cells:
        text = row[start:end]
        lead = len(text) - len(text.lstrip())
        spans.append((at + start + lead, at + start + lead + len(text.strip())))
    return spans


def _noting_spans(name: str, rule: RuleFuncBlockType) -> RuleFuncBlockType:
    """Block rule `name` (a paragraph, heading or table), also noting on each inline token it makes
    where that text stands in markdown-it's source (`meta["span"]`, offsets in its source, where
    every line ends in "\\n"): past the markers of the quotes and list items around it, the heading's
    `#`s and the table's borders, so that a translation replaces that text and nothing else."""

    def rule_noting(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        count = len(state.tokens)
        if not rule(state, start_line, end_line, silent):
            return False
        if silent:
            return True
        src = state.src
        cell = 0
        for tok in state.tokens[count:]:
            if tok.type == "tr_open":
                cell = 0
            if tok.type != "inline" or not tok.map or not tok.content:
                continue
            first, last = tok.map[0], tok.map[1] - 1  # a setext heading's text: not its underline
            start, end = state.bMarks[first] + state.tShift[first], state.eMarks[last]
            if name == "table":
                row = _cells(src[start:end], start)
                tok.meta["span"] = row[cell] if cell < len(row) else None
                cell += 1
                continue
            if name == "heading":
                at = src.find(tok.content, start + len(tok.markup), end)  # after the #s, before closing ones
                tok.meta["span"] = (at, at + len(tok.content)) if at >= 0 else None
                continue
            while end > start and src[end - 1] in " \t":
                end -= 1
            tok.meta["span"] = (start, end)
        return True

    return rule_noting


def _markdown_parser() -> MarkdownIt:
    md = markdown_reader()
    for name in ("table", "heading", "lheading", "paragraph"):
        rule = md.block.ruler.__rules__[md.block.ruler.__find__(name)]
        md.block.ruler.at(name, _noting_spans(name, rule.fn), {"alt": rule.alt})
    return md


_MD = _markdown_parser()
# YAML (or TOML) front matter, which a Markdown CMS puts at the very top: data, left as sent.
_FRONT_MATTER = re.compile(r"\A(-{3}|\+{3})[ \t]*\r?\n(?:.*\r?\n)*?(?:\1|\.{3})[ \t]*(?:\r?\n|\Z)")
_NEWLINE = re.compile(r"\r\n?|\n")
# A footnote's reference or, at the start of a paragraph, its definition (`[^1]`, `[^note]:`), which
# CMSs with footnotes read: markup, kept as written.
_FOOTNOTE = re.compile(r"(\[\^[^\]\s]+\]:?)")
# The reference a reference image ends with: `[ref]`, which holds no unescaped brackets.
_MD_REFERENCE = re.compile(r"\[(?:[^\[\]\\]|\\.)*\]\Z", re.DOTALL)
# What a backslash keeps from ending or escaping a link title ("…"): CommonMark, "Link title".
_MD_TITLE_SYNTAX = re.compile(r'[\\"]|&(?=#?\w+;)')

# A place of a Markdown page: a text (an inline token) or what is carried as sent (code, raw HTML),
# with the quotes, list items, heading or table cell around it, and where its text stands in the
# page (None for what is carried as sent).
_MdPlace = tuple[Token, tuple[Token, ...], tuple[int, int] | None]


def _front_matter(source: str) -> str:
    match = _FRONT_MATTER.match(source)
    return match.group() if match else ""


def _md_places(source: str) -> list[_MdPlace]:
    """The places of a Markdown page, in order. Stored documents name a block's place by its number
    in this list (`Block.element`), so what counts as one changes only with a migration."""
    front = _front_matter(source)
    # The front matter's lines stay, as empty ones, so that markdown-it's line numbers are the page's.
    read = "\n" * len(_NEWLINE.findall(front)) + source[len(front) :]
    tokens = _MD.parse(read)
    # Where each line begins in the page, and in what markdown-it read (every line ending a "\n").
    page_lines = [0, *(m.end() for m in _NEWLINE.finditer(source))]
    read_lines = [0, *(m.end() for m in re.finditer("\n", _NEWLINE.sub("\n", read)))]

    def in_page(pos: int) -> int:
        line = bisect.bisect_right(read_lines, pos) - 1
        return page_lines[line] + pos - read_lines[line]

    places: list[_MdPlace] = []
    around: list[Token] = []
    for tok in tokens:
        if tok.type in ("blockquote_open", "list_item_open", "heading_open", "th_open", "td_open"):
            around.append(tok)
        elif tok.type in ("blockquote_close", "list_item_close", "heading_close", "th_close", "td_close"):
            around.pop()
        elif tok.type in ("fence", "code_block", "html_block"):
            places.append((tok, tuple(around), None))
        elif tok.type == "inline":
            span = tok.meta.get("span")
            places.append((tok, tuple(around), (in_page(span[0]), in_page(span[1])) if span else None))
    return places


def _md_image(label: str, src: str, title: str | None) -> str:
    """An image in Markdown syntax, `label` as written; its title quoted so that it reads back as itself."""
    quoted = (' "' + _MD_TITLE_SYNTAX.sub(lambda m: "\\" + m.group(), title) + '"') if title else ""
    return f"![{label}]({src}{quoted})"


def _md_reference(tok: Token) -> str | None:
    """What follows the label of a reference link or image, `[ref]`, as written (a shortcut `[ref]`
    or collapsed `[ref][]` one names its reference by its text, which is translated); None for an
    inline one, `(url "title")`."""
    rest = str(tok.meta.get("rest", "("))
    if rest.startswith("("):
        return None
    return "[" + " ".join(str(tok.meta["label"]).split()) + "]" if rest in ("", "[]") else " ".join(rest.split())


def _md_alt(children: Iterable[Token]) -> str:
    """An image's alternative text: its label's text without markup (as markdown-it renders `alt`)."""
    parts: list[str] = []
    for tok in children:
        if tok.type in ("text", "code_inline", "html_inline"):
            parts.append(tok.content)
        elif tok.type == "image":
            parts.append(_md_alt(tok.children or ()))
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _md_inline(children: list[Token], *, cell: bool = False) -> tuple[str, tuple[Inline, ...]]:
    """A block's text and inline markup. In a table's `cell`, markup kept as written has its `|` as
    `\\|` (a table's source must, to keep it in its cell; markdown-it gives it without the `\\`)."""

    def written(markup: str) -> str:
        return markup.replace("|", "\\|") if cell else markup

    text: list[str] = []
    inlines: list[Inline] = []
    stack: list[tuple[int, str, str, bool]] = []
    length = 0
    for tok in children:
        if tok.type == "text" and stack and stack[-1][3]:  # an autolink's address
            text.append(written(tok.content))
            length += len(text[-1])
        elif tok.type == "text":
            for n, part in enumerate(_FOOTNOTE.split(tok.content)):
                if n % 2:  # a footnote's reference, or at the block's start its definition, `[^1]:`
                    marker = part if length == 0 else part.removesuffix(":")
                    inlines.append(Inline(length, length + len(marker), "", "", verbatim=True))
                text.append(part)
                length += len(part)
        elif tok.type == "html_inline":
            # A raw tag (`<span>`, `<br>`) is carried through as markup, as an HTML page's image is.
            inlines.append(Inline(length, length, tok.content, "", verbatim=True))
        elif tok.type == "softbreak":
            # A line the writer wrapped: Markdown shows it as a space, and so it is one here, so that a
            # sentence wrapped over two lines is one sentence (the translation is not wrapped).
            text.append(" ")
            length += 1
        elif tok.type == "hardbreak":
            text.append("  \n")
            length += 3
        elif tok.type == "code_inline":
            code = written(tok.content)
            inlines.append(Inline(length, length + len(code), tok.markup, tok.markup, verbatim=True))
            text.append(code)
            length += len(code)
        elif tok.type == "link_open" and tok.markup == "autolink":
            # <https://…>: the address is its text, kept as written.
            stack.append((length, "<", ">", True))
        elif tok.type == "link_open":
            # As written: a reference stays one (its definition stays where it is), an address as typed.
            reference = _md_reference(tok)
            close = "]" + (reference if reference is not None else str(tok.meta["rest"]).replace("\n", " "))
            stack.append((length, "[", written(close), False))
        elif tok.type in ("em_open", "strong_open"):
            stack.append((length, tok.markup, tok.markup, False))
        elif tok.type in ("link_close", "em_close", "strong_close") and stack:
            start, open_, close_, verbatim = stack.pop()
            inlines.append(Inline(start, length, open_, close_, verbatim))
        elif tok.type == "image":
            reference = _md_reference(tok)
            if reference is None:
                title = tok.attrs.get("title")
                markup = _md_image(tok.content, str(tok.attrs.get("src", "")), str(title) if title else None)
            else:
                markup = f"![{' '.join(str(tok.meta['label']).split())}]{reference}"
            markup = written(markup)
            inlines.append(Inline(length, length + len(markup), "", "", verbatim=True))
            text.append(markup)
            length += len(markup)
    joined = "".join(text)
    return joined, _trimmed(joined, inlines)


def _markdown_blocks(source: str, first: int) -> list[Block]:
    """Blocks in document order; an image's alt text and title follow the block that holds it."""
    blocks: list[Block] = []
    images = itertools.count()
    for number, (tok, around, _) in enumerate(_md_places(source)):
        if tok.type != "inline":
            # Code and raw HTML blocks are carried through untranslated.
            raw = tok.content if tok.type == "html_block" else f"{tok.markup}{tok.info}\n{tok.content}{tok.markup}"
            if tok.type == "code_block":
                raw = "\n".join("    " + line for line in tok.content.rstrip("\n").split("\n"))
            raw = raw.rstrip("\n")
            verbatim = (Inline(0, len(raw), "", "", verbatim=True),)
            blocks.append(Block(f"b{first + len(blocks)}", BlockKind.PARAGRAPH, raw, verbatim, element=number))
            continue
        text, inlines = _md_inline(tok.children or [], cell=bool(around) and around[-1].type in ("th_open", "td_open"))
        if not text.strip():
            continue  # an empty table cell or heading: nothing to translate, and it stays as it is
        quotes = sum(1 for c in around if c.type == "blockquote_open")
        items = [c for c in around if c.type == "list_item_open"]
        heading_level = int(around[-1].tag[1]) if around and around[-1].type == "heading_open" else 0
        prefix = "> " * quotes
        if items:
            markers = [f"{i.info}{i.markup} " if i.info else f"{i.markup} " for i in items]
            # A nested item sits under its parents' text: as wide as their markers ("10. " is 4).
            prefix += "".join(" " * len(m) for m in markers[:-1]) + markers[-1]
            kind = BlockKind.LIST_ITEM
        elif heading_level:
            prefix += "#" * heading_level + " "
            kind = BlockKind.HEADING
        else:
            kind = BlockKind.QUOTE if quotes else BlockKind.PARAGRAPH
        level = heading_level or len(items)
        blocks.append(Block(f"b{first + len(blocks)}", kind, text, inlines, level=level, prefix=prefix, element=number))
        for image in (t for t in tok.children or () if t.type == "image"):
            # A reference image's title is its definition's, which stays as it is (as a link's title does).
            title = image.attrs.get("title") if _md_reference(image) is None else None
            texts = (("alt", _md_alt(image.children or ())), ("title", title))
            blocks += _image_blocks(first + len(blocks), next(images), texts)
    return blocks


# --- HTML ---------------------------------------------------------------------------------------

_BLOCK_TAGS = (
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "li",
    "blockquote",
    "figcaption",
    "dt",
    "dd",
    "td",
    "th",
    "caption",
)
_SKIP_TAGS = ("script", "style", "pre", "code", "template", "noscript")
# Carried through whole as markup: nothing in them is text to translate.
_OPAQUE_TAGS = (*_SKIP_TAGS, "img", "svg", "math")
# Elements a browser starts on a new line: text on either side of one never runs together.
_BREAK_TAGS = (
    *_BLOCK_TAGS,
    "address",
    "article",
    "aside",
    "body",
    "details",
    "dialog",
    "div",
    "dl",
    "fieldset",
    "figure",
    "footer",
    "form",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "legend",
    "main",
    "menu",
    "nav",
    "ol",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
)
# Page chrome whose loose text is left as sent: the document head, and a site's navigation.
_CHROME_TAGS = ("head", "nav")
_SPACE = re.compile(r"\s+")
# Social media embeds, by class: a post quoted as a <blockquote class="twitter-tweet"> (or a <div>),
# which the platform's script replaces with the post itself. A post is a quote in its own language:
# left as sent, its texts, images and language included.
_EMBED_CLASSES = frozenset(
    (
        "twitter-tweet",
        "twitter-video",
        "instagram-media",
        "tiktok-embed",
        "bluesky-embed",
        "mastodon-embed",
        "reddit-embed-bq",
        "text-post-media",
        "fb-post",
        "fb-video",
    )
)
# Structured data (<script type="application/ld+json">, schema.org): the types of an article's
# object, and its texts that search engines show; and a string in the script as written.
_LD_ARTICLE = re.compile(r"(?:Article|BlogPosting|WebPage)$")
_LD_TEXTS = frozenset(("headline", "alternativeHeadline", "description"))
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# A place in the page that one block's translation replaces: a block element's content, or a run
# of text and inline elements that stands directly in some other element (or in a bare fragment).
_HtmlUnit = Tag | list[PageElement]


def _html_images(soup: BeautifulSoup) -> list[Tag]:
    """The page's images whose texts are translated, in document order: not those in script, code
    and the like, whose content is carried through as sent, nor those of the page's chrome (a
    site's logo in its <nav>). Stored documents name images by their number in this list, so what
    counts as one changes only with a migration of their image blocks."""
    return [img for img in soup.find_all("img") if img.find_parent((*_OPAQUE_TAGS, *_CHROME_TAGS)) is None]


def _html_labels(soup: BeautifulSoup) -> list[tuple[Tag, str]]:
    """The page's labels whose texts are translated, each an element and its attribute, in document
    order: what a screen reader says for an element (`aria-label`) and an abbreviation's expansion
    (`<abbr title>`, shown on hover); not those of the page's chrome, of what is left as sent, of an
    image (its alt text says it) or of an embed. Stored documents name them by their number here."""
    found: list[tuple[Tag, str]] = []
    for el in soup.find_all(True):
        attrs = ["aria-label", *(["title"] if el.name in ("abbr", "acronym") else [])]
        if not any(str(el.get(a) or "").strip() for a in attrs) or el.name in (*_SKIP_TAGS, *_CHROME_TAGS, "img"):
            continue
        if el.find_parent((*_OPAQUE_TAGS, *_CHROME_TAGS)) is None and not _in_embed(el):
            found += [(el, a) for a in attrs if str(el.get(a) or "").strip()]
    return found


def _html_metas(soup: BeautifulSoup) -> list[Tag]:
    """The page's <meta> elements whose content is translated (`_META_TEXTS`), in document order.
    Stored documents name them by their number in this list, as images are (see `_html_images`)."""
    return [
        meta
        for meta in soup.find_all("meta")
        if str(meta.get("name") or meta.get("property") or "").lower() in _META_TEXTS
        and str(meta.get("content") or "").strip()
        and meta.find_parent(_OPAQUE_TAGS) is None
    ]


def _in_embed(node: PageElement) -> bool:
    """Whether `node` is in a social media embed (see `_EMBED_CLASSES`), or is one."""
    for el in (node, *node.parents):
        if isinstance(el, Tag) and not _EMBED_CLASSES.isdisjoint(el.get_attribute_list("class")):
            return True
    return False


class _JsonObject(list[tuple[str, object]]):
    """A JSON object as its members, in order (a list, not a dict: keys may repeat)."""


def _ld_scripts(soup: BeautifulSoup) -> list[Tag]:
    return [
        script
        for script in soup.find_all("script")
        if str(script.get("type", "")).strip().lower() == "application/ld+json"
        and script.find_parent(_OPAQUE_TAGS) is None
    ]


def _ld_strings(script: Tag) -> list[tuple[str, bool, str]]:
    """Each string value of a structured data script, in order: the property it is the value of,
    whether it is an article's, and the value; none where the script is not valid JSON."""
    try:
        data = json.loads(script.string or "", object_pairs_hook=_JsonObject)
    except ValueError:
        return []
    found: list[tuple[str, bool, str]] = []

    def walk(value: object, key: str, article: bool) -> None:
        if isinstance(value, _JsonObject):
            types = [t for k, v in value if k == "@type" for t in (v if isinstance(v, list) else [v])]
            article = any(_LD_ARTICLE.search(str(t)) for t in types)
            for member, item in value:
                found.append(("", False, member))  # its name, also a string in the source
                walk(item, member, article)
        elif isinstance(value, list):
            for item in value:
                walk(item, key, article)
        elif isinstance(value, str):
            found.append((key, article, value))

    walk(data, "", False)
    return found


def _ld_texts(soup: BeautifulSoup) -> list[tuple[Tag, int, str]]:
    """The page's structured data texts that are translated (an article's headline, alternative
    headline and description), in document order: the script, the number of the string in it (see
    `_ld_strings`), the text."""
    return [
        (script, n, " ".join(value.split()))
        for script in _ld_scripts(soup)
        for n, (key, article, value) in enumerate(_ld_strings(script))
        if article and key in _LD_TEXTS and value.strip()
    ]


def _rewrite_ld(script: Tag, values: Mapping[int, str], lang: str | None) -> None:
    """Put `values` (number of a string in the script → new value) in the script, and `lang` in
    every `inLanguage` that said English; everything else stays as written."""
    raw = script.string or ""
    if lang:
        strings = enumerate(_ld_strings(script))
        english = [n for n, (key, _, value) in strings if key == "inLanguage" and _ENGLISH.match(value)]
        values = {**dict.fromkeys(english, lang), **values}
    if not values:
        return
    spans = [m.span() for m in _JSON_STRING.finditer(raw)]
    out = raw
    for n in sorted((n for n in values if n < len(spans)), reverse=True):
        start, end = spans[n]
        # "<" escaped: a script's text must not hold "</script>" or "<!--".
        out = out[:start] + json.dumps(values[n], ensure_ascii=False).replace("<", "\\u003c") + out[end:]
    script.string = out


def _html_elements(soup: BeautifulSoup) -> Iterator[Tag]:
    """Block elements that hold text directly (a <li> holding <p>s yields the <p>s instead)."""
    for el in soup.find_all(_BLOCK_TAGS):
        if el.find_parent(_SKIP_TAGS):
            continue
        if el.find(_BLOCK_TAGS):
            continue
        yield el


def _has_text(node: PageElement) -> bool:
    if isinstance(node, Tag):
        return node.name not in _OPAQUE_TAGS and any(_has_text(child) for child in node.children)
    # Comments, doctypes and CDATA are strings of other types.
    return type(node) is NavigableString and bool(node.strip())


def _html_units(soup: BeautifulSoup) -> list[tuple[int, _HtmlUnit]]:
    """Every unit of the page that holds text, in document order, each with its number in the page.
    Block elements are numbered as they always were (stored articles keep their numbers); runs of
    loose text (`<div>Text</div>`, a bare fragment, a list item's text before its sublist) follow."""
    leaves = {id(el): n for n, el in enumerate(_html_elements(soup))}
    found: list[_HtmlUnit] = []

    def flush(run: list[PageElement]) -> None:
        # What has no text at a run's edges (white space, comments, a <br> or an image) stays where
        # it is: the translation replaces only what lies between the first and the last text.
        while run and not _has_text(run[0]):
            run.pop(0)
        while run and not _has_text(run[-1]):
            run.pop()
        if run:
            found.append(run)

    def walk(node: Tag, loose_text: bool) -> None:
        run: list[PageElement] = []
        for child in node.children:
            if isinstance(child, Tag) and (child.name in _BREAK_TAGS or child.find(_BREAK_TAGS) is not None):
                if loose_text:
                    flush(run)
                run = []
                if id(child) in leaves:
                    found.append(child)
                elif child.name not in _SKIP_TAGS:
                    walk(child, loose_text and child.name not in _CHROME_TAGS)
            else:
                run.append(child)
        if loose_text:
            flush(run)

    walk(soup, True)
    runs = itertools.count(len(leaves))
    units = [(leaves[id(u)] if isinstance(u, Tag) else next(runs), u) for u in found]
    # The page's <title> (what a browser's tab and a search engine show) is translated too; numbered
    # after everything else, so that pages stored before it was keep their numbers (and its English).
    titles = [t for t in soup.find_all("title") if t.find_parent(_OPAQUE_TAGS) is None and _has_text(t)]
    return units + [(next(runs), title) for title in titles]


def _start_tag(tag: Tag) -> str:
    attrs = "".join(
        f' {k}="{html.escape(" ".join(v) if isinstance(v, list) else str(v))}"' for k, v in tag.attrs.items()
    )
    return f"<{tag.name}{attrs}>"


def _html_inline(nodes: Iterable[PageElement]) -> tuple[str, tuple[Inline, ...]]:
    parts: list[str] = []
    inlines: list[Inline] = []
    breaks: list[Inline] = []

    def walk(children: Iterable[PageElement]) -> None:
        for child in children:
            if isinstance(child, Comment):
                # An editor's note or a CMS's marker inside the text: markup, kept where it stands.
                at = len("".join(parts))
                inlines.append(Inline(at, at, child.output_ready(), "", verbatim=True))
            elif isinstance(child, NavigableString):
                if type(child) is NavigableString:
                    parts.append(_SPACE.sub(" ", str(child)))
            elif isinstance(child, Tag):
                start = len("".join(parts))
                if child.name == "br":
                    parts.append("\n")  # rendered back as <br> (see service.pipeline)
                    # At the block's edge, where no sentence takes it as white space, it is markup.
                    breaks.append(Inline(start, start, str(child), "", verbatim=True))
                    inlines.append(breaks[-1])
                elif child.name in _OPAQUE_TAGS:
                    raw = child.get_text() if child.name == "code" else ""
                    parts.append(raw)
                    inlines.append(
                        Inline(
                            start,
                            start + len(raw),
                            _start_tag(child) if raw else str(child),
                            f"</{child.name}>" if raw else "",
                            verbatim=True,
                        )
                    )
                else:
                    walk(child.children)
                    inlines.append(Inline(start, len("".join(parts)), _start_tag(child), f"</{child.name}>"))

    walk(nodes)
    raw = "".join(parts)
    inside = range(len(raw) - len(raw.lstrip()), len(raw.rstrip()))
    inlines = [i for i in inlines if not (any(i is b for b in breaks) and i.start in inside)]
    # Trim and collapse white space, moving inline offsets with it.
    keep = [i for i, ch in enumerate(raw) if not (ch == " " and (i == 0 or raw[i - 1] in " \n"))]
    text = "".join(raw[i] for i in keep)
    offsets = {old: new for new, old in enumerate(keep)}

    def moved(pos: int) -> int:
        while pos < len(raw) and pos not in offsets:
            pos += 1
        return offsets.get(pos, len(text))

    stripped = text.strip()
    shift = len(text) - len(text.lstrip())
    moved_inlines = (
        Inline(
            max(0, min(len(stripped), moved(i.start) - shift)),
            max(0, min(len(stripped), moved(i.end) - shift)),
            i.open,
            i.close,
            i.verbatim,
        )
        for i in inlines
    )
    return stripped, _trimmed(stripped, moved_inlines)


def _html_blocks(source: str, first: int) -> list[Block]:
    """Blocks in document order: an image's alt text and title stand where the image does, after
    the block that holds it, or between the blocks around it (an image in a <figure>)."""
    soup = BeautifulSoup(source, "html.parser")
    order = {id(node): n for n, node in enumerate(soup.descendants)}
    # Where each unit and each image begins in the page (a run of loose text never begins with an image).
    unit_at = {order[id(u if isinstance(u, Tag) else u[0])]: (index, u) for index, u in _html_units(soup)}
    image_at = {order[id(img)]: (number, img) for number, img in enumerate(_html_images(soup))}
    metas = _html_metas(soup)
    meta_at = {order[id(meta)]: (number, meta) for number, meta in enumerate(metas)}
    # A structured data text is a meta block too, numbered after the <meta>s (pages stored before keep
    # their numbers), where its script stands.
    data_at: dict[int, list[tuple[int, str]]] = {}
    for number, (script, _, text) in enumerate(_ld_texts(soup), len(metas)):
        data_at.setdefault(order[id(script)], []).append((number, text))
    label_at: dict[int, list[tuple[int, str]]] = {}
    for number, (labelled, attr) in enumerate(_html_labels(soup)):
        label_at.setdefault(order[id(labelled)], []).append((number, " ".join(str(labelled[attr]).split())))
    blocks: list[Block] = []
    # A label follows the block that holds its element, or that its element is.
    places = [(p, 0) for p in [*unit_at, *image_at, *meta_at, *data_at]] + [(p, 1) for p in label_at]
    for position, is_label in sorted(places):
        if is_label:
            blocks += [
                Block(f"b{first + len(blocks) + i}", BlockKind.LABEL, text, element=number)
                for i, (number, text) in enumerate(label_at[position])
            ]
            continue
        if position in image_at:
            number, img = image_at[position]
            if not _in_embed(img):
                blocks += _image_blocks(first + len(blocks), number, img.attrs.items())
            continue
        if position in meta_at:
            number, meta = meta_at[position]
            text = " ".join(str(meta["content"]).split())
            blocks.append(Block(f"b{first + len(blocks)}", BlockKind.META, text, element=number))
            continue
        if position in data_at:
            blocks += [
                Block(f"b{first + len(blocks) + i}", BlockKind.META, text, element=number)
                for i, (number, text) in enumerate(data_at[position])
            ]
            continue
        index, unit = unit_at[position]
        el = unit if isinstance(unit, Tag) else unit[0].parent
        assert el is not None  # a run stands in an element, or in the document itself
        if _in_embed(el):
            continue  # numbered all the same: pages stored before keep their numbers
        text, inlines = _html_inline(unit.children if isinstance(unit, Tag) else unit)
        if not text.strip():
            continue
        name = el.name or "p"
        if name[0] == "h" and name[1:].isdigit():
            kind, level = BlockKind.HEADING, int(name[1:])
        elif name == "li":
            kind, level = BlockKind.LIST_ITEM, 0
        elif name == "title":
            kind, level = BlockKind.TITLE, 0
        elif name == "blockquote" or el.find_parent("blockquote"):
            kind, level = BlockKind.QUOTE, 0
        else:
            kind, level = BlockKind.PARAGRAPH, 0
        blocks.append(Block(f"b{first + len(blocks)}", kind, text, inlines, level=level, element=index))
    return blocks


def _continuation(prefix: str) -> str:
    """What a Markdown block's second and later lines start with: its quote markers, and an
    indent as wide as its list marker."""
    quotes = 0
    while prefix.startswith("> ", 2 * quotes):
        quotes += 1
    rest = prefix[2 * quotes :]
    return "> " * quotes + ("" if rest.startswith("#") else " " * len(rest))


def _replace(unit: _HtmlUnit, inner: str) -> None:
    """Put a block's translated HTML in the place of its unit's content."""
    if isinstance(unit, Tag):
        unit.clear()
        unit.append(BeautifulSoup(inner, "html.parser"))
        return
    first, last, parent = unit[0], unit[-1], unit[0].parent
    assert parent is not None
    # The page's own line breaks and indentation around loose text stay (as strings of their own:
    # the parser would collapse them).
    lead = first[: len(first) - len(first.lstrip())] if isinstance(first, NavigableString) else ""
    trail = last[len(last.rstrip()) :] if isinstance(last, NavigableString) else ""
    at = parent.index(first)
    for node in unit:
        node.extract()
    nodes: list[PageElement] = [node.extract() for node in list(BeautifulSoup(inner, "html.parser").contents)]
    if lead:
        nodes.insert(0, NavigableString(lead))
    if trail:
        nodes.append(NavigableString(trail))
    for offset, node in enumerate(nodes):
        parent.insert(at + offset, node)


# --- rendering ----------------------------------------------------------------------------------


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
        # The article's fields (title, dek, byline, date) are paragraphs of their own before the body,
        # whose own separators reproduce it exactly.
        return (
            "".join(
                ("\n\n" if i and blocks[i - 1].kind in _FIELDS else "") + b.sep_before + inner[b.id]
                for i, b in enumerate(blocks)
            )
            + tail
        )
    if fmt is SourceFormat.MARKDOWN:
        inner = _with_markdown_image_texts(blocks, inner)
        blocks = tuple(b for b in blocks if b.kind not in IMAGE_TEXTS)
        if page:
            return _markdown_page(page, blocks, inner)
        # Stored before Markdown pages were kept: each block written anew from its prefix.
        out: list[str] = []
        for i, block in enumerate(blocks):
            if i:
                both_items = block.kind is BlockKind.LIST_ITEM and blocks[i - 1].kind is BlockKind.LIST_ITEM
                out.append("\n" if both_items else "\n\n")
            if block.kind in (BlockKind.TITLE, BlockKind.SUBTITLE):
                out.append(("# " if block.kind is BlockKind.TITLE else "## ") + inner[block.id])
            else:
                out.append(block.prefix + inner[block.id].replace("\n", "\n" + _continuation(block.prefix)))
        return "".join(out) + "\n"
    soup = BeautifulSoup(page, "html.parser")
    units = dict(_html_units(soup))
    inner = _with_html_attribute_texts(soup, units, blocks, inner)
    if lang:  # after the attribute texts: they find their elements' tags as the translations have them
        _declare_language(soup, lang)
    metas = _html_metas(soup)
    data = _ld_texts(soup)
    data_values: dict[int, dict[int, str]] = {}  # id(script) → number of a string in it → its translation
    head: list[str] = []
    for block in blocks:
        if block.kind is BlockKind.META:
            text = " ".join(plain_text(inner[block.id], SourceFormat.HTML).split())
            if block.element < len(metas):
                metas[block.element]["content"] = text
            elif block.element - len(metas) < len(data):
                script, n, _ = data[block.element - len(metas)]
                data_values.setdefault(id(script), {})[n] = text
        if block.kind in _ATTRIBUTE_TEXTS:
            continue
        if block.element >= 0:
            _replace(units[block.element], inner[block.id])
        else:
            tag = {BlockKind.TITLE: "h1", BlockKind.SUBTITLE: "h2", BlockKind.BYLINE: "p", BlockKind.DATE: "p"}.get(
                block.kind, "p"
            )
            head.append(f'<{tag} class="duiyi-{block.kind.value}">{inner[block.id]}</{tag}>\n')
    for script in _ld_scripts(soup):
        _rewrite_ld(script, data_values.get(id(script), {}), lang)
    # The structured fields (title, byline, …) open the page's body, or the fragment.
    if head and soup.body is not None:
        soup.body.insert(0, BeautifulSoup("".join(head), "html.parser"))
        return str(soup)
    return "".join(head) + str(soup)


def _markdown_page(page: str, blocks: tuple[Block, ...], inner: Mapping[str, str]) -> str:
    """The Markdown page as sent, each block's text replaced by its translation: everything else
    (front matter, blank lines, rules, reference definitions, tables' borders, a heading's own
    syntax) stays as written. The article's fields (title, dek, …) open it, after its front matter."""
    spans = [span for _, _, span in _md_places(page)]
    newline = "\r\n" if "\r\n" in page else "\n"
    edits: list[tuple[tuple[int, int], str]] = []
    for b in blocks:
        span = spans[b.element] if 0 <= b.element < len(spans) else None
        if span is not None:
            edits.append((span, inner[b.id].replace("\n", newline + _continuation(b.prefix))))
    parts: list[str] = []
    at = 0
    for (start, end), text in sorted(edits):
        parts += [page[at:start], text]
        at = end
    body = "".join([*parts, page[at:]])
    marker = {BlockKind.TITLE: "# ", BlockKind.SUBTITLE: "## "}
    fields = [marker.get(b.kind, "") + inner[b.id] for b in blocks if b.element < 0]
    if fields:
        front = len(_front_matter(page))
        body = body[:front] + (newline * 2).join(fields) + newline * 2 + body[front:].lstrip("\r\n")
    return body if body.endswith(("\n", "\r")) else body + newline


_ENGLISH = re.compile(r"en(?:-|$)", re.IGNORECASE)


def _declare_language(soup: BeautifulSoup, lang: str) -> None:
    """The page says it is in `lang`: its <html> element (given the attribute if it had none), every
    element of the page that said English, and a Content-Language <meta>. Browsers choose the
    glyphs of Han characters by it (zh-TW and zh-HK forms differ from zh-Hans) and screen readers
    their voice. Markup inside translated text is the translation's, and keeps what it says; so does
    what is left as sent (<pre>, <code>, <script>…)."""
    root = soup.find("html")
    if isinstance(root, Tag):
        root["lang"] = lang
    for el in soup.find_all(True):
        if el.find_parent(_OPAQUE_TAGS) is not None or el.name in _OPAQUE_TAGS or _in_embed(el):
            continue
        for attr in ("lang", "xml:lang"):
            if _ENGLISH.match(str(el.get(attr, ""))):
                el[attr] = lang
        if el.name == "meta" and str(el.get("http-equiv", "")).lower() == "content-language":
            el["content"] = lang


def _image_texts(blocks: Iterable[Block], inner: Mapping[str, str], fmt: SourceFormat) -> dict[int, dict[str, str]]:
    """The translated texts of each image (by its number in the document), attribute → plain text."""
    texts: dict[int, dict[str, str]] = {}
    for block in blocks:
        attr = IMAGE_TEXTS.get(block.kind)
        if attr is not None and block.id in inner:
            texts.setdefault(block.element, {})[attr] = " ".join(plain_text(inner[block.id], fmt).split())
    return texts


def _with_html_attribute_texts(
    soup: BeautifulSoup, units: Mapping[int, _HtmlUnit], blocks: tuple[Block, ...], inner: Mapping[str, str]
) -> dict[str, str]:
    """`inner` with each translated image text and label in its element: an element outside the text
    blocks (an image in a <figure>, say) changes in the page; one inside a block changes in that
    block's translation, which carries the source's own tag (a person's edit may keep only that tag,
    see service.jobs.review)."""
    out = dict(inner)
    texts = _image_texts(blocks, inner, SourceFormat.HTML)
    labels = {
        b.element: " ".join(plain_text(inner[b.id], SourceFormat.HTML).split())
        for b in blocks
        if b.kind is BlockKind.LABEL and b.id in inner
    }
    if not texts and not labels:
        return out
    holders = {b.element: b.id for b in blocks if b.element >= 0 and b.kind not in _ATTRIBUTE_TEXTS}
    held: dict[int, str] = {}  # id(element) → the block whose translation holds its tag
    for index, unit in units.items():
        if index in holders:
            for node in unit.children if isinstance(unit, Tag) else unit:
                if isinstance(node, Tag):
                    held.update((id(el), holders[index]) for el in [node, *node.find_all(True)])

    def update(el: Tag, attrs: Mapping[str, str]) -> None:
        written = str(el) if el.name in _OPAQUE_TAGS else _start_tag(el)  # as _html_inline carries it
        el.attrs.update(attrs)
        holder = held.get(id(el))
        if holder is not None:
            out[holder] = out[holder].replace(written, str(el) if el.name in _OPAQUE_TAGS else _start_tag(el), 1)

    images = _html_images(soup)
    for number, attrs in sorted(texts.items()):
        if number < len(images):
            update(images[number], attrs)
    elements = _html_labels(soup)
    for number, text in sorted(labels.items()):
        if number < len(elements):
            el, attr = elements[number]
            update(el, {attr: text})
    return out


def _is_md_image(block: Block, inline: Inline) -> bool:
    """Whether `inline` is one of the block's images (kept as written, see _md_inline)."""
    return inline.verbatim and not (inline.open or inline.close) and block.text.startswith("![", inline.start)


def _with_markdown_image_texts(blocks: tuple[Block, ...], inner: Mapping[str, str]) -> dict[str, str]:
    """`inner` with each translated image text in its image, in the translation of the block that
    holds it: the label escaped so that it reads back as that text (`]` is `\\]`), the title quoted."""
    out = dict(inner)
    texts = _image_texts(blocks, inner, SourceFormat.MARKDOWN)
    if not texts:
        return out
    written: list[tuple[str, str]] = []  # each image in the document: its block, its markup
    for block in blocks:
        if block.kind not in IMAGE_TEXTS:
            written += [(block.id, block.text[i.start : i.end]) for i in block.inlines if _is_md_image(block, i)]
    for number, attrs in sorted(texts.items()):
        if number >= len(written):
            continue
        holder, source = written[number]
        reference = _MD_REFERENCE.search(source) if source.endswith("]") else None
        if reference is not None:  # ![label][ref]: its title is its definition's
            label = markdown_escape(attrs["alt"]) if "alt" in attrs else source[2 : reference.start() - 1]
            out[holder] = out[holder].replace(source, f"![{label}]{reference.group()}", 1)
            continue
        children = _MD.parseInline(source)[0].children or []
        if len(children) != 1 or children[0].type != "image":
            continue  # not markup this module wrote
        image = children[0]
        label = markdown_escape(attrs["alt"]) if "alt" in attrs else image.content
        title = attrs.get("title", str(image.attrs.get("title") or ""))
        out[holder] = out[holder].replace(source, _md_image(label, str(image.attrs.get("src", "")), title or None), 1)
    return out
