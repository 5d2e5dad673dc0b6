"""HTML (read with BeautifulSoup's html.parser): a page's or fragment's units (block elements, runs
of loose text, its <title>, a <noscript>'s fallback), each text's inline markup, its images' texts,
<meta> texts and labels (`aria-label`, `<abbr title>`, a link's or other element's tooltip `title`),
social media embeds left as sent; and the translation written back into the page in place, with the
variant's language declared, the rest of the page copied as sent, byte for byte (see `_Span`).
Structured data scripts are handled in service.formats.structured."""

from __future__ import annotations

import bisect
import html
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser

from bs4 import BeautifulSoup, Comment, NavigableString, PageElement, Tag

from service.documents import Block, BlockKind, Inline, SourceFormat, plain_text
from service.formats.common import (
    _ENGLISH,
    _OPAQUE_TAGS,
    _SKIP_TAGS,
    IMAGE_TEXTS,
    MAX_ELEMENT_DEPTH,
    MAX_INLINE_DEPTH,
    MarkupTooDeep,
    _image_blocks,
    _image_texts,
    _inside,
    _trimmed,
)
from service.formats.structured import _ld_scripts, _ld_texts, _rewrite_ld

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
# A place in the page that one block's translation replaces: a block element's content, or a run
# of text and inline elements that stands directly in some other element (or in a bare fragment).
_HtmlUnit = Tag | list[PageElement]


# What a page's <noscript> holds is shown when scripts do not run: a lazy-loaded image's fallback
# (`<img alt>`), a chart's or an embed's fallback paragraph, and a tracking pixel. Unlike the other
# elements left as sent, its prose is the article's: its images' texts and labels are translated, as
# is its text where the <noscript> stands on its own (see `_html_units`); inside a paragraph's text it
# stays markup, as sent. `_CARRIED` are the elements whose content is never translated.
_FALLBACK = "noscript"
_CARRIED = tuple(t for t in _OPAQUE_TAGS if t != _FALLBACK)
# What holds no images or labels to translate: what is carried as sent, and the page's chrome.
_UNREAD = (*_CARRIED, *_CHROME_TAGS)


def _late_last(elements: Iterable[Tag]) -> list[Tag]:
    """`elements` (in document order) with those in a <noscript> after the others: translated since
    a later version, they are numbered after what stored documents already name by number."""
    found = list(elements)
    return [el for el in found if not _inside(el, (_FALLBACK,))] + [el for el in found if _inside(el, (_FALLBACK,))]


def _html_images(soup: BeautifulSoup) -> list[Tag]:
    """The page's images whose texts are translated: not those in script, code and the like, whose
    content is carried through as sent, nor those of the page's chrome (a site's logo in its <nav>).
    Stored documents name images by their number in this list, so what counts as one changes only
    with a migration of their image blocks: in document order, those in a <noscript> after the rest."""
    return _late_last(img for img in soup.find_all("img") if not _inside(img, _UNREAD))


# Elements whose `title` is not a tooltip a reader sees (or is not this module's to translate): those
# of the document's head and of what is never shown (a stylesheet's or a feed's name, <link title>),
# an image's (an image text, see IMAGE_TEXTS) and the page's root. Every other element's title is a
# label: an abbreviation's expansion, an embedded frame's name (what a screen reader announces for a
# video player or a map; WCAG asks every frame for one), the tooltip of a link, a term or a note.
_UNTITLED = frozenset(("html", "head", "title", "base", "link", "meta", "style", "script", "template", "img"))


def _html_labels(soup: BeautifulSoup) -> list[tuple[Tag, str]]:
    """The page's labels whose texts are translated, each an element and its attribute, in document
    order: what a screen reader says for an element (`aria-label`, an `<iframe title>`), an
    abbreviation's expansion (`<abbr title>`) and the tooltip of an element of the text (`<a title>`,
    `<span title>`, shown on hover); not those of the page's chrome, of what is left as sent, of an
    image (its alt text and title are image texts) or of an embed. Stored documents name them by
    their number here."""
    found: list[tuple[Tag, str]] = []
    for el in soup.find_all(True):
        attrs = ["aria-label", *(["title"] if el.name not in _UNTITLED else [])]
        if not any(str(el.get(a) or "").strip() for a in attrs) or el.name in (*_SKIP_TAGS, *_CHROME_TAGS, "img"):
            continue
        if not _inside(el, _UNREAD) and not _in_embed(el):
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
        and not _inside(meta, _OPAQUE_TAGS)
    ]


def _in_embed(node: PageElement) -> bool:
    """Whether `node` is in a social media embed (see `_EMBED_CLASSES`), or is one."""
    for el in (node, *node.parents):
        # Most elements have no class: looking for the attribute first spares the list of classes.
        if not isinstance(el, Tag) or "class" not in el.attrs:
            continue
        if not _EMBED_CLASSES.isdisjoint(el.get_attribute_list("class")):
            return True
    return False


def _html_elements(soup: BeautifulSoup) -> Iterator[Tag]:
    """Block elements that hold text directly (a <li> holding <p>s yields the <p>s instead)."""
    for el in soup.find_all(_BLOCK_TAGS):
        if _inside(el, _SKIP_TAGS):
            continue
        if _holds(el, _BLOCK_TAGS):
            continue
        yield el


def _holds(node: Tag, names: tuple[str, ...]) -> bool:
    """Whether `node` holds an element named in `names`: `node.find(names)`, without BeautifulSoup's
    filter machinery (see `_inside`)."""
    return any(isinstance(el, Tag) and el.name in names for el in node.descendants)


def _has_text(node: PageElement) -> bool:
    """Whether `node` holds text a reader sees: not only markup, nor only what is carried as sent."""
    todo = [node]
    while todo:
        node = todo.pop()
        if isinstance(node, Tag):
            if node.name not in _OPAQUE_TAGS:
                todo.extend(node.contents)
        # Comments, doctypes and CDATA are strings of other types.
        elif type(node) is NavigableString and node.strip():
            return True
    return False


def _check_depth(soup: BeautifulSoup) -> None:
    """Refuse a page whose elements nest deeper than MAX_ELEMENT_DEPTH."""
    depth = {id(soup): 0}
    for node in soup.descendants:
        if isinstance(node, Tag):
            depth[id(node)] = depth[id(node.parent)] + 1
            if depth[id(node)] > MAX_ELEMENT_DEPTH:
                raise MarkupTooDeep(
                    f"the HTML nests elements more than {MAX_ELEMENT_DEPTH} deep (the <{node.name}> on line "
                    f"{node.sourceline} is inside {MAX_ELEMENT_DEPTH} others; an element never closed, such as "
                    "a legacy page's <p> or <li>, holds all that follows it)"
                )


@dataclass
class _Level:
    """An element `_html_units` is in: its children still to see, whether its loose text counts, and
    the run of loose text gathered so far."""

    children: Iterator[PageElement]
    loose_text: bool
    run: list[PageElement] = field(default_factory=list)


def _html_units(soup: BeautifulSoup) -> list[tuple[int, _HtmlUnit]]:
    """Every unit of the page that holds text, in document order, each with its number in the page.
    Block elements are numbered as they always were (stored articles keep their numbers); runs of
    loose text (`<div>Text</div>`, a bare fragment, a list item's text before its sublist) follow."""
    leaves = {id(el): n for n, el in enumerate(_html_elements(soup))}
    found: list[_HtmlUnit] = []
    # <noscript>s that stand on their own (not in a unit's text), and whether their loose text counts.
    fallbacks: list[tuple[Tag, bool]] = []

    def flush(run: list[PageElement], loose_text: bool) -> None:
        if not loose_text:
            return
        if not any(_has_text(node) for node in run):
            # Nothing but markup (a <noscript>'s content counts as none): a <noscript> in it stands on its own.
            fallbacks.extend((node, True) for node in run if isinstance(node, Tag) and node.name == _FALLBACK)
            return
        # What has no text at a run's edges (white space, comments, a <br> or an image) stays where
        # it is: the translation replaces only what lies between the first and the last text.
        while not _has_text(run[0]):
            run.pop(0)
        while not _has_text(run[-1]):
            run.pop()
        found.append(run)

    def walk(node: Tag, loose_text: bool, late: bool = False) -> None:
        # Depth first, in document order, without recursion (elements nest up to MAX_ELEMENT_DEPTH):
        # each element entered, with the run of loose text being gathered in it.
        levels = [_Level(iter(node.children), loose_text)]
        while levels:
            level = levels[-1]
            for child in level.children:
                if isinstance(child, Tag) and (child.name in _BREAK_TAGS or _holds(child, _BREAK_TAGS)):
                    flush(level.run, level.loose_text)
                    level.run = []
                    if id(child) in leaves or (late and child.name in _BLOCK_TAGS and not _holds(child, _BLOCK_TAGS)):
                        found.append(child)
                    elif child.name == _FALLBACK:
                        fallbacks.append((child, level.loose_text))
                    elif child.name not in _SKIP_TAGS:
                        levels.append(_Level(iter(child.children), level.loose_text and child.name not in _CHROME_TAGS))
                        break
                else:
                    level.run.append(child)
            else:
                flush(level.run, level.loose_text)
                levels.pop()

    walk(soup, True)
    runs = itertools.count(len(leaves))
    units = [(leaves[id(u)] if isinstance(u, Tag) else next(runs), u) for u in found]
    # The page's <title> (what a browser's tab and a search engine show) is translated too; numbered
    # after everything else, so that pages stored before it was keep their numbers (and its English).
    titles = [t for t in soup.find_all("title") if not _inside(t, _OPAQUE_TAGS) and _has_text(t)]
    units += [(next(runs), title) for title in titles]
    # Then what <noscript>s standing on their own hold (left as sent before): their block elements and
    # loose text, as the page's are; those inside them included (the list grows as they are walked).
    found = []
    for fallback, loose_text in fallbacks:
        walk(fallback, loose_text, late=True)
    return units + [(next(runs), unit) for unit in found]


# --- Where each node stands in the page as sent --------------------------------------------------
# A page is written back by splicing: its source is copied as sent but for the places translations
# take (a unit's content, an attribute's value, a structured data script's text), so that a CMS that
# diffs revisions sees no change nobody made (entities, attribute quoting and order, `<br>` against
# `<br/>`, indentation, upper-case tags stay as written). BeautifulSoup's html.parser builder gives
# where a tag starts (`sourceline`, `sourcepos`), not where it ends nor where its strings stand; so
# the page is read a second time with the same tokenizer, BeautifulSoup's tree followed alongside.

# A start tag's name, and each of its attributes (name, `=value`, the value as written), as
# html.parser finds them (its `tagfind_tolerant` and `attrfind_tolerant`).
_TAG_NAME = re.compile(r"<([a-zA-Z][^\t\n\r\f />\x00]*)(?:\s|/(?!>))*")
_ATTRIBUTE = re.compile(r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?(?:\s|/(?!>))*""")


@dataclass
class _Span:
    """Where a node stands in the page: a tag's start tag [start, open_end) and its end tag
    [close_start, end), where it has one; a string's (text, comment, doctype…) [start, end)."""

    start: int
    open_end: int
    close_start: int | None = None
    end: int | None = None


class _Tokens(HTMLParser):
    """The page's nodes as BeautifulSoup's html.parser builder makes them, in that order, each with
    its span: a tag per start tag; a string per run of text (character references included) and per
    comment, declaration or processing instruction. An end tag closes the latest open tag of its
    name, as in BeautifulSoup; a void element (`<br>`) is closed at once, and an end tag for one
    (`</br>`) then stands for nothing."""

    def __init__(self, source: str, void: Callable[[str], bool]) -> None:
        super().__init__(convert_charrefs=False)  # as BeautifulSoup has it read
        self.source = source
        self.void = void
        self.lines = [0, *(m.end() for m in re.finditer("\n", source))]
        self.nodes: list[tuple[str | None, tuple[int, int], _Span]] = []  # tag name or None, (line, column), span
        self.open: list[tuple[str, _Span]] = []
        self.closed_void: Counter[str] = Counter()  # void elements' names, each as often as still open to an end tag
        self.pending: _Span | None = None  # a string whose end is the next token's start
        self.in_text = False

    def at(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def token(self) -> _Span:
        """A token begins where the string before it, if any, ends."""
        at = self.at()
        if self.pending is not None:
            self.pending.end = at
        self.pending, self.in_text = None, False
        return _Span(at, at)

    def string(self) -> None:
        span = self.token()
        self.nodes.append((None, self.getpos(), span))
        self.pending = span

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        span = self.token()
        span.open_end = span.start + len(self.get_starttag_text() or "")
        self.nodes.append((tag, self.getpos(), span))
        if self.void(tag):
            self.closed_void[tag] += 1
        else:
            self.open.append((tag, span))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        span = self.token()
        span.open_end = span.start + len(self.get_starttag_text() or "")
        self.nodes.append((tag, self.getpos(), span))

    def handle_endtag(self, tag: str) -> None:
        if self.closed_void[tag] > 0:
            self.closed_void[tag] -= 1  # BeautifulSoup ignores it: the text around runs on across it
            return
        span = self.token()
        for n in range(len(self.open) - 1, -1, -1):
            if self.open[n][0] == tag:
                opened = self.open[n][1]
                opened.close_start, opened.end = span.start, self.source.index(">", span.start) + 1
                del self.open[n:]
                return

    def handle_data(self, data: str) -> None:
        if not self.in_text:
            self.string()
            self.in_text = True

    def handle_charref(self, name: str) -> None:
        self.handle_data(name)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(name)

    def handle_comment(self, data: str) -> None:
        self.string()

    def handle_decl(self, decl: str) -> None:
        self.string()

    def handle_pi(self, data: str) -> None:
        self.string()

    def unknown_decl(self, data: str) -> None:
        self.string()

    def close(self) -> None:
        super().close()
        if self.pending is not None:
            self.pending.end = len(self.source)


def _spans(soup: BeautifulSoup, source: str) -> dict[int, _Span] | None:
    """Each node of `soup` (read from `source`), by id, with where it stands in `source`; none where
    the tokens and the tree disagree (should BeautifulSoup read some markup otherwise), and the page
    is then written anew from the tree."""
    tokens = _Tokens(source, soup.builder.can_be_empty_element)
    tokens.feed(source)
    tokens.close()
    nodes = list(soup.descendants)
    if len(nodes) != len(tokens.nodes):
        return None
    for node, (name, (line, column), _) in zip(nodes, tokens.nodes, strict=True):
        if isinstance(node, Tag) != (name is not None):
            return None
        if isinstance(node, Tag) and (node.name, node.sourceline, node.sourcepos) != (name, line, column):
            return None
    return {id(node): span for node, (_, _, span) in zip(nodes, tokens.nodes, strict=True)}


def _end(node: PageElement, spans: Mapping[int, _Span]) -> int:
    """Where `node` ends in the page: after its end tag, or its last content where it has none."""
    while spans[id(node)].end is None and isinstance(node, Tag) and node.contents:
        node = node.contents[-1]
    span = spans[id(node)]
    return span.end if span.end is not None else span.open_end


def _content(unit: _HtmlUnit, spans: Mapping[int, _Span], source: str) -> tuple[int, int]:
    """Where a unit's content stands in the page, less the white space at its edges (a line break
    and indentation the page has there stay)."""
    if isinstance(unit, Tag):
        span = spans[id(unit)]
        start = span.open_end
        end = span.close_start if span.close_start is not None else _end(unit, spans)
    else:
        start, end = spans[id(unit[0])].start, _end(unit[-1], spans)
    raw = source[start:end]
    return start + len(raw) - len(raw.lstrip()), end - len(raw) + len(raw.rstrip())


def _with_attributes(start_tag: str, changed: Mapping[str, str]) -> str:
    """A start tag as written with `changed` attributes' values in it: a value in the quotes it had
    (double quotes where it had none), a new attribute right after the tag's name."""
    name = _TAG_NAME.match(start_tag)
    assert name is not None  # html.parser read it as a start tag
    found: dict[str, re.Match[str]] = {}
    at = name.end()
    while (attribute := _ATTRIBUTE.match(start_tag, at)) is not None and attribute.end() > at:
        found[attribute.group(1).lower()] = attribute  # the last one counts, as in BeautifulSoup
        at = attribute.end()
    edits: list[tuple[int, int, str]] = []
    for attr, value in changed.items():
        match = found.get(attr)
        if match is None:
            edits.append((name.end(1), name.end(1), f' {attr}="{html.escape(value)}"'))
        elif match.group(3) is None:
            edits.append((match.end(1), match.end(1), f'="{html.escape(value)}"'))
        else:
            quote = match.group(3)[0] if match.group(3)[:1] in ("'", '"') else '"'
            edits.append((match.start(3), match.end(3), f"{quote}{html.escape(value)}{quote}"))
    return _spliced(start_tag, edits)


def _spliced(source: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """`source` with each [start, end) replaced by its text; the edits do not overlap."""
    out: list[str] = []
    at = 0
    for start, end, text in sorted(edits, key=lambda e: e[:2]):
        out += [source[at:start], text]
        at = end
    return "".join([*out, source[at:]])


def _start_tag(tag: Tag) -> str:
    attrs = "".join(
        f' {k}="{html.escape(" ".join(v) if isinstance(v, list) else str(v))}"' for k, v in tag.attrs.items()
    )
    return f"<{tag.name}{attrs}>"


def _html_inline(nodes: Iterable[PageElement], *, deepest: int | None = None) -> tuple[str, tuple[Inline, ...]]:
    """A unit's text and inline markup. Raises MarkupTooDeep where elements in it nest deeper than
    `deepest` (MAX_INLINE_DEPTH as a page is read; a page stored before such pages were refused is
    written back all the same)."""
    parts: list[str] = []
    length = 0  # of the parts
    inlines: list[Inline] = []
    breaks: set[int] = set()  # the line breaks' inlines, by id

    def add(text: str) -> None:
        nonlocal length
        parts.append(text)
        length += len(text)

    def walk(children: Iterable[PageElement], depth: int) -> None:
        for child in children:
            if isinstance(child, Comment):
                # An editor's note or a CMS's marker inside the text: markup, kept where it stands.
                inlines.append(Inline(length, length, child.output_ready(), "", verbatim=True))
            elif isinstance(child, NavigableString):
                if type(child) is NavigableString:
                    add(_SPACE.sub(" ", str(child)))
            elif isinstance(child, Tag):
                start = length
                if child.name == "br":
                    add("\n")  # rendered back as <br> (see service.pipeline)
                    # At the block's edge, where no sentence takes it as white space, it is markup.
                    inlines.append(Inline(start, start, str(child), "", verbatim=True))
                    breaks.add(id(inlines[-1]))
                elif child.name in _OPAQUE_TAGS:
                    raw = child.get_text() if child.name == "code" else ""
                    add(raw)
                    inlines.append(
                        Inline(
                            start,
                            start + len(raw),
                            _start_tag(child) if raw else str(child),
                            f"</{child.name}>" if raw else "",
                            verbatim=True,
                        )
                    )
                elif deepest is not None and depth >= deepest:
                    raise MarkupTooDeep(
                        f"a paragraph's markup nests more than {deepest} elements deep (the <{child.name}> "
                        f"on line {child.sourceline} is inside {deepest} others)"
                    )
                else:
                    walk(child.children, depth + 1)
                    inlines.append(Inline(start, length, _start_tag(child), f"</{child.name}>"))

    walk(nodes, 0)
    raw = "".join(parts)
    inside = range(len(raw) - len(raw.lstrip()), len(raw.rstrip()))
    inlines = [i for i in inlines if not (id(i) in breaks and i.start in inside)]
    # Trim and collapse white space, moving inline offsets with it.
    keep = [i for i, ch in enumerate(raw) if not (ch == " " and (i == 0 or raw[i - 1] in " \n"))]
    text = "".join(raw[i] for i in keep)
    # Where each position of `raw` goes in `text`: where the first character kept from there on does.
    moves: list[int] = []
    for new, old in enumerate(keep):
        moves += [new] * (old + 1 - len(moves))
    moves += [len(text)] * (len(raw) + 1 - len(moves))

    def moved(pos: int) -> int:
        return moves[min(pos, len(raw))]

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
    _check_depth(soup)
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
        text, inlines = _html_inline(unit.children if isinstance(unit, Tag) else unit, deepest=MAX_INLINE_DEPTH)
        if not text.strip():
            continue
        name = el.name or "p"
        if name[0] == "h" and name[1:].isdigit():
            kind, level = BlockKind.HEADING, int(name[1:])
        elif name == "li":
            kind, level = BlockKind.LIST_ITEM, 0
        elif name == "title":
            kind, level = BlockKind.TITLE, 0
        elif name == "blockquote" or _inside(el, ("blockquote",)):
            kind, level = BlockKind.QUOTE, 0
        else:
            kind, level = BlockKind.PARAGRAPH, 0
        blocks.append(Block(f"b{first + len(blocks)}", kind, text, inlines, level=level, element=index))
    return blocks


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


def _render_html(blocks: tuple[Block, ...], inner: Mapping[str, str], page: str, lang: str | None) -> str:
    """The HTML variant (see `service.formats.render`): the page as sent, with each block's
    translation spliced into its place (see `_Span`). A unit whose translation reads as its content
    does (its text and markup as they were) keeps its content as written; one translated gets the
    translation as BeautifulSoup writes it."""
    soup = BeautifulSoup(page, "html.parser")
    spans = _spans(soup, page)
    units = dict(_html_units(soup))
    # What the page says as sent, before the translations change its tags: each unit's content as
    # read, each tag's attributes, each structured data script's text and where that text ends (the
    # page's end, for a script without its end tag).
    as_sent = {index: _html_inline(u.children if isinstance(u, Tag) else u) for index, u in units.items()}
    attributes = {id(el): dict(el.attrs) for el in soup.find_all(True)}
    scripts = {
        id(script): (script.string, _end(script, spans) if spans is not None and script.contents else -1)
        for script in _ld_scripts(soup)
    }
    # Where each text block's translation goes. Units inside one another (a stray <title> in a
    # paragraph) have no place of their own there: such a page is written anew from the tree.
    places = {
        b.element: _content(units[b.element], spans, page)
        for b in blocks
        if spans is not None and b.element >= 0 and b.kind not in _ATTRIBUTE_TEXTS
    }
    ordered = sorted(places.values())
    if any(end > start for (_, end), (start, _) in itertools.pairwise(ordered)):
        spans = None
    inner = _with_html_attribute_texts(soup, units, blocks, inner)
    if lang:  # after the attribute texts: they find their elements' tags as the translations have them
        _declare_language(soup, lang)
    metas = _html_metas(soup)
    data = _ld_texts(soup)
    data_values: dict[int, dict[int, str]] = {}  # id(script) → number of a string in it → its translation
    head: list[str] = []
    edits: list[tuple[int, int, str]] = []  # where in the page (start, end), and what goes there
    covered: list[tuple[int, int]] = []  # the units' contents, written as their blocks' translations say
    written: set[tuple[int, int]] = set()  # the same, to look up
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
        if block.element >= 0 and spans is None:
            _replace(units[block.element], inner[block.id])
        elif block.element >= 0:
            if places[block.element] in written:
                continue
            start, end = places[block.element]
            covered.append((start, end))
            written.add((start, end))
            translated = BeautifulSoup(inner[block.id], "html.parser")
            if _html_inline(translated.contents) != as_sent[block.element]:
                edits.append((start, end, str(translated)))
        else:
            tag = {BlockKind.TITLE: "h1", BlockKind.SUBTITLE: "h2", BlockKind.BYLINE: "p", BlockKind.DATE: "p"}.get(
                block.kind, "p"
            )
            head.append(f'<{tag} class="duiyi-{block.kind.value}">{inner[block.id]}</{tag}>\n')
    for script in _ld_scripts(soup):
        _rewrite_ld(script, data_values.get(id(script), {}), lang)
    if spans is None:
        # The structured fields (title, byline, …) open the page's body, or the fragment.
        if head and soup.body is not None:
            soup.body.insert(0, BeautifulSoup("".join(head), "html.parser"))
            return str(soup)
        return "".join(head) + str(soup)
    return _written_back(soup, page, spans, edits, covered, attributes, scripts, head)


def _written_back(
    soup: BeautifulSoup,
    page: str,
    spans: Mapping[int, _Span],
    edits: list[tuple[int, int, str]],
    covered: list[tuple[int, int]],
    attributes: Mapping[int, Mapping[str, object]],
    scripts: Mapping[int, tuple[str | None, int]],
    head: list[str],
) -> str:
    """`page` with the units' translations (`edits`) and what the translations changed in `soup`
    outside the units' contents: tags' attributes (image texts, labels, <meta>s, the language) and
    structured data scripts' texts. A tag in a unit's content is the translation's, which carries
    what changed in it (see `_with_html_attribute_texts`)."""

    # Whether a tag lies in a unit's content: the furthest end of the contents that start before it
    # is past it. The contents by where they start, and the furthest end of each one and those before.
    ordered = sorted(covered)
    starts = [start for start, _ in ordered]
    furthest = list(itertools.accumulate((end for _, end in ordered), max))

    def inside(span: _Span) -> bool:
        before = bisect.bisect_right(starts, span.start)
        return before > 0 and span.open_end <= furthest[before - 1]

    def value(v: object) -> str:
        return " ".join(v) if isinstance(v, list) else str(v)

    for el in soup.find_all(True):
        before, span = attributes[id(el)], spans[id(el)]
        changed = {k: value(v) for k, v in el.attrs.items() if k not in before or value(before[k]) != value(v)}
        gone = before.keys() - el.attrs.keys()  # (nothing removes one today: then the tag is written anew)
        if (changed or gone) and not inside(span):
            written = page[span.start : span.open_end]
            edits.append((span.start, span.open_end, _start_tag(el) if gone else _with_attributes(written, changed)))
    for script in _ld_scripts(soup):
        span = spans[id(script)]
        text, text_end = scripts[id(script)]
        if script.string != text and not inside(span):
            end = span.close_start if span.close_start is not None else max(text_end, span.open_end)
            edits.append((span.open_end, end, script.string or ""))
    # The structured fields (title, byline, …) open the page's body, or the fragment.
    if head and soup.body is not None:
        at = spans[id(soup.body)].open_end
        edits.append((at, at, str(BeautifulSoup("".join(head), "html.parser"))))
        head = []
    return "".join(head) + _spliced(page, edits)


def _declare_language(soup: BeautifulSoup, lang: str) -> None:
    """The page says it is in `lang`: its <html> element (given the attribute if it had none), every
    element of the page that said English, and a Content-Language <meta>. Browsers choose the
    glyphs of Han characters by it (zh-TW and zh-HK forms differ from zh-Hans) and screen readers
    their voice. Markup inside translated text is the translation's, and keeps what it says; so does
    what is left as sent (<pre>, <code>, <script>…), not a <noscript>, whose prose is translated."""
    root = soup.find("html")
    if isinstance(root, Tag):
        root["lang"] = lang
    for el in soup.find_all(True):
        english = [attr for attr in ("lang", "xml:lang") if _ENGLISH.match(str(el.get(attr, "")))]
        content_language = el.name == "meta" and str(el.get("http-equiv", "")).lower() == "content-language"
        if not (english or content_language) or _inside(el, _CARRIED) or el.name in _CARRIED or _in_embed(el):
            continue
        for attr in english:
            el[attr] = lang
        if content_language:
            el["content"] = lang


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
    # id(element) → the block whose translation holds its tag, and the element carried whole there
    # that holds it (an image, a <noscript> and what it holds: see _html_inline), if any.
    held: dict[int, tuple[str, Tag | None]] = {}

    def hold(top: Tag, holder: str) -> None:
        todo: list[tuple[Tag, Tag | None]] = [(top, None)]
        while todo:
            el, carrier = todo.pop()
            carrier = carrier or (el if el.name in _OPAQUE_TAGS else None)
            held[id(el)] = (holder, carrier)
            todo += ((child, carrier) for child in el.find_all(True, recursive=False))

    for index, unit in units.items():
        if index in holders:
            for node in unit.children if isinstance(unit, Tag) else unit:
                if isinstance(node, Tag):
                    hold(node, holders[index])

    def update(el: Tag, attrs: Mapping[str, str]) -> None:
        holder, carrier = held.get(id(el), (None, None))
        written = str(carrier) if carrier is not None else _start_tag(el)  # as _html_inline carries it
        el.attrs.update(attrs)
        if holder is not None:
            out[holder] = out[holder].replace(written, str(carrier) if carrier is not None else _start_tag(el), 1)

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
