"""Source formats: plain text, Markdown and HTML in; blocks with inline markup out; and back.

Parsing keeps each block's plain text and records inline markup as `Inline` spans so the sentence
splitter and the glossary see clean English. Rendering puts a translated block back into the
source's own syntax: Markdown prefixes, or the very HTML element it came from.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag
from markdown_it import MarkdownIt
from markdown_it.token import Token

from service.documents import Article, Block, BlockKind, Inline, SourceFormat, markdown_escape, plain_text

# The input format an uploaded or named file has, by its suffix; anything else is plain text.
FORMAT_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}

_PARAGRAPH_BREAK = re.compile(r"\r?\n[ \t]*\r?\n\s*")


class FormatError(ValueError):
    """Input that cannot be read in the format it claims."""


_FIELDS = (BlockKind.TITLE, BlockKind.SUBTITLE, BlockKind.BYLINE, BlockKind.DATE)
# An image's texts that are translated, each as a block of its own, and the attribute each one is.
IMAGE_TEXTS = {BlockKind.IMAGE_ALT: "alt", BlockKind.IMAGE_TITLE: "title"}
# Blocks whose translation goes into an attribute (an image's, a <meta>'s), not into a place of the page.
_ATTRIBUTE_TEXTS = frozenset((*IMAGE_TEXTS, BlockKind.META))
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
    """Blocks of the article (structured fields first), the text tail, and the HTML page if any."""
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
    return blocks + body, tail, article.body if article.format is SourceFormat.HTML else ""


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

_MD = MarkdownIt("commonmark")
# What a backslash keeps from ending or escaping a link title ("…"): CommonMark, "Link title".
_MD_TITLE_SYNTAX = re.compile(r'[\\"]|&(?=#?\w+;)')


def _md_image(label: str, src: str, title: str | None) -> str:
    """An image in Markdown syntax, `label` as written; its title quoted so that it reads back as itself."""
    quoted = (' "' + _MD_TITLE_SYNTAX.sub(lambda m: "\\" + m.group(), title) + '"') if title else ""
    return f"![{label}]({src}{quoted})"


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


def _md_inline(children: list[Token]) -> tuple[str, tuple[Inline, ...]]:
    text: list[str] = []
    inlines: list[Inline] = []
    stack: list[tuple[int, str, str, bool]] = []
    length = 0
    for tok in children:
        if tok.type == "text":
            text.append(tok.content)
            length += len(tok.content)
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
            inlines.append(Inline(length, length + len(tok.content), tok.markup, tok.markup, verbatim=True))
            text.append(tok.content)
            length += len(tok.content)
        elif tok.type == "link_open" and tok.markup == "autolink":
            # <https://…>: the address is its text, kept as written.
            stack.append((length, "<", ">", True))
        elif tok.type == "link_open":
            title = tok.attrs.get("title")
            close = f"]({tok.attrs.get('href', '')}" + (f' "{title}"' if title else "") + ")"
            stack.append((length, "[", close, False))
        elif tok.type in ("em_open", "strong_open"):
            stack.append((length, tok.markup, tok.markup, False))
        elif tok.type in ("link_close", "em_close", "strong_close") and stack:
            start, open_, close_, verbatim = stack.pop()
            inlines.append(Inline(start, length, open_, close_, verbatim))
        elif tok.type == "image":
            title = tok.attrs.get("title")
            markup = _md_image(tok.content, str(tok.attrs.get("src", "")), str(title) if title else None)
            inlines.append(Inline(length, length + len(markup), "", "", verbatim=True))
            text.append(markup)
            length += len(markup)
    joined = "".join(text)
    return joined, _trimmed(joined, inlines)


def _markdown_blocks(source: str, first: int) -> list[Block]:
    """Blocks in document order; an image's alt text and title follow the block that holds it."""
    blocks: list[Block] = []
    containers: list[Token] = []
    heading_level = 0
    images = itertools.count()
    for tok in _MD.parse(source):
        if tok.type in ("blockquote_open", "list_item_open", "bullet_list_open", "ordered_list_open"):
            containers.append(tok)
        elif tok.type in ("blockquote_close", "list_item_close", "bullet_list_close", "ordered_list_close"):
            containers.pop()
        elif tok.type == "heading_open":
            heading_level = int(tok.tag[1])
        elif tok.type == "inline":
            text, inlines = _md_inline(tok.children or [])
            quotes = sum(1 for c in containers if c.type == "blockquote_open")
            items = [c for c in containers if c.type == "list_item_open"]
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
            blocks.append(
                Block(f"b{first + len(blocks)}", kind, text, inlines, level=heading_level or len(items), prefix=prefix)
            )
            heading_level = 0
            for image in (t for t in tok.children or () if t.type == "image"):
                texts = (("alt", _md_alt(image.children or ())), ("title", image.attrs.get("title")))
                blocks += _image_blocks(first + len(blocks), next(images), texts)
        elif tok.type in ("fence", "code_block", "html_block"):
            # Code and raw HTML blocks are carried through untranslated.
            raw = tok.content if tok.type == "html_block" else f"{tok.markup}{tok.info}\n{tok.content}{tok.markup}"
            if tok.type == "code_block":
                raw = "\n".join("    " + line for line in tok.content.rstrip("\n").split("\n"))
            blocks.append(
                Block(
                    f"b{first + len(blocks)}",
                    BlockKind.PARAGRAPH,
                    raw.rstrip("\n"),
                    (Inline(0, len(raw.rstrip("\n")), "", "", verbatim=True),),
                )
            )
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

# A place in the page that one block's translation replaces: a block element's content, or a run
# of text and inline elements that stands directly in some other element (or in a bare fragment).
_HtmlUnit = Tag | list[PageElement]


def _html_images(soup: BeautifulSoup) -> list[Tag]:
    """The page's images whose texts are translated, in document order: not those in script, code
    and the like, whose content is carried through as sent, nor those of the page's chrome (a
    site's logo in its <nav>). Stored documents name images by their number in this list, so what
    counts as one changes only with a migration of their image blocks."""
    return [img for img in soup.find_all("img") if img.find_parent((*_OPAQUE_TAGS, *_CHROME_TAGS)) is None]


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
            if isinstance(child, NavigableString):
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
    meta_at = {order[id(meta)]: (number, meta) for number, meta in enumerate(_html_metas(soup))}
    blocks: list[Block] = []
    for position in sorted([*unit_at, *image_at, *meta_at]):
        if position in image_at:
            number, img = image_at[position]
            blocks += _image_blocks(first + len(blocks), number, img.attrs.items())
            continue
        if position in meta_at:
            number, meta = meta_at[position]
            text = " ".join(str(meta["content"]).split())
            blocks.append(Block(f"b{first + len(blocks)}", BlockKind.META, text, element=number))
            continue
        index, unit = unit_at[position]
        el = unit if isinstance(unit, Tag) else unit[0].parent
        assert el is not None  # a run stands in an element, or in the document itself
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
    translation goes into its image's attribute, in the block that holds the image or in the page.
    `lang`: the variant's language tag, which an HTML page then declares (see `_declare_language`)."""
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
    if lang:
        _declare_language(soup, lang)
    units = dict(_html_units(soup))
    inner = _with_html_image_texts(soup, units, blocks, inner)
    metas = _html_metas(soup)
    head: list[str] = []
    for block in blocks:
        if block.kind is BlockKind.META and block.element < len(metas):
            metas[block.element]["content"] = " ".join(plain_text(inner[block.id], SourceFormat.HTML).split())
        if block.kind in _ATTRIBUTE_TEXTS:
            continue
        if block.element >= 0:
            _replace(units[block.element], inner[block.id])
        else:
            tag = {BlockKind.TITLE: "h1", BlockKind.SUBTITLE: "h2", BlockKind.BYLINE: "p", BlockKind.DATE: "p"}.get(
                block.kind, "p"
            )
            head.append(f'<{tag} class="duiyi-{block.kind.value}">{inner[block.id]}</{tag}>\n')
    # The structured fields (title, byline, …) open the page's body, or the fragment.
    if head and soup.body is not None:
        soup.body.insert(0, BeautifulSoup("".join(head), "html.parser"))
        return str(soup)
    return "".join(head) + str(soup)


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
        if el.find_parent(_OPAQUE_TAGS) is not None or el.name in _OPAQUE_TAGS:
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


def _with_html_image_texts(
    soup: BeautifulSoup, units: Mapping[int, _HtmlUnit], blocks: tuple[Block, ...], inner: Mapping[str, str]
) -> dict[str, str]:
    """`inner` with each translated image text in its image: an image outside the text blocks (in a
    <figure>, say) changes in the page; one inside a block changes in that block's translation, which
    carries the source's own tag (a person's edit may keep only that tag, see service.jobs.review)."""
    out = dict(inner)
    texts = _image_texts(blocks, inner, SourceFormat.HTML)
    if not texts:
        return out
    images = _html_images(soup)
    holders = {b.element: b.id for b in blocks if b.element >= 0 and b.kind not in _ATTRIBUTE_TEXTS}
    held: dict[int, str] = {}  # id(image) → the block whose translation holds it
    for index, unit in units.items():
        if index in holders:
            for node in [unit] if isinstance(unit, Tag) else unit:
                if isinstance(node, Tag):
                    found = [node] if node.name == "img" else node.find_all("img")
                    held.update((id(img), holders[index]) for img in found)
    for number, attrs in sorted(texts.items()):
        if number >= len(images):
            continue
        img = images[number]
        source = str(img)
        img.attrs.update(attrs)
        holder = held.get(id(img))
        if holder is not None:
            out[holder] = out[holder].replace(source, str(img), 1)
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
        children = _MD.parseInline(source)[0].children or []
        if len(children) != 1 or children[0].type != "image":
            continue  # not markup this module wrote
        image = children[0]
        label = markdown_escape(attrs["alt"]) if "alt" in attrs else image.content
        title = attrs.get("title", str(image.attrs.get("title") or ""))
        out[holder] = out[holder].replace(source, _md_image(label, str(image.attrs.get("src", "")), title or None), 1)
    return out
