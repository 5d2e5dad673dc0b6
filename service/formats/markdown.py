"""Markdown (read with markdown-it-py): a page's places (paragraphs, headings, list items, quotes,
table cells; code and raw HTML carried as sent), each text's inline markup, an image's texts, the
titles of links and reference definitions (labels); and the translation written back into the page
as sent, or anew from the blocks for documents stored without their page."""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple

from markdown_it import MarkdownIt
from markdown_it.helpers import parseLinkDestination, parseLinkTitle
from markdown_it.parser_block import RuleFuncBlockType
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from service.documents import Block, BlockKind, Inline, SourceFormat, markdown_escape, markdown_reader, plain_text
from service.formats.common import IMAGE_TEXTS, MAX_INLINE_DEPTH, MarkupTooDeep, _image_blocks, _image_texts, _trimmed

# Blocks whose translation goes into markup (an image's, a link's, a reference definition's), not
# into a place of the page.
_ATTRIBUTE_TEXTS = frozenset((*IMAGE_TEXTS, BlockKind.LABEL))


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


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n":
        pos += 1
    return pos


def _title_span(written: str, pos: int) -> tuple[int, int] | None:
    """Where the title stands in `written`, a link's or a definition's destination and title as
    written from `pos` (where its destination starts): (start, end), quotes included; None for none."""
    destination = parseLinkDestination(written, pos, len(written))
    if not destination.ok:
        return None
    start = _skip_space(written, destination.pos)
    if start == destination.pos:
        return None  # a title is set off from its destination by white space
    title = parseLinkTitle(written, start, len(written))
    return (start, title.pos) if title.ok else None


def _noting_definitions(rule: RuleFuncBlockType) -> RuleFuncBlockType:
    """Markdown's `reference` rule, also noting each definition that defines its reference (the first
    of its label) and has a title: where that title stands in markdown-it's source, quotes included,
    its text, and the number of tokens before it (`env["titles"]`; markdown-it makes none for it)."""

    def rule_noting(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        defined = dict(state.env.get("references", {}))
        if not rule(state, start_line, end_line, silent):
            return False
        if silent:
            return True
        # The definition as the rule reads it: its lines, each from its text (past quote markers).
        written = ""
        starts: list[tuple[int, int]] = []  # (where a line starts in `written`, and in the source)
        for line in range(start_line, state.line):
            begin = state.bMarks[line] + state.tShift[line]
            starts.append((len(written), begin))
            written += state.src[begin : state.eMarks[line] + 1]
        label_end = _label_end(written)
        new = [ref for key, ref in state.env.get("references", {}).items() if key not in defined]
        span = _title_span(written, _skip_space(written, label_end + 2)) if label_end > 0 and new else None
        if span is not None and str(new[0].get("title", "")).strip():

            def at(pos: int) -> int:
                line_at, begin = starts[bisect.bisect_right([w for w, _ in starts], pos) - 1]
                return begin + pos - line_at

            where = (at(span[0]), at(span[1] - 1) + 1)
            state.env.setdefault("titles", []).append((where, str(new[0]["title"]), len(state.tokens)))
        return True

    return rule_noting


def _label_end(written: str) -> int:
    """Where a reference definition's label ends (its `]`), as markdown-it's `reference` rule reads it."""
    pos = 1
    while pos < len(written):
        if written[pos] == "]":
            return pos
        pos += 2 if written[pos] == "\\" else 1
    return -1


class _LabelWalks:
    """What one inline text's walks over link labels found (see `_link_label_end`): the first `]` at
    or after `since` (`close`, -1 for none), and each walk's end by where it started, whether it
    stopped at a nested link, and where the text it walked ended."""

    def __init__(self) -> None:
        self.since = 0
        self.close: int | None = None
        self.ends: dict[tuple[int, bool, int], int] = {}


def _link_label_end(state: StateInline, start: int, disable_nested: bool = False) -> int:
    """markdown-it's `parseLinkLabel` (where the label of a link or image opening at `start` ends,
    or -1), with the same result and the same tokens skipped, at a fraction of its cost where a page
    holds many `[`: each of them asks where its label ends, and each asking walks the text after it,
    token by token, up to `maxNesting` brackets deep. Three shortcuts: a label with no `]` after it
    ends nowhere (the walk could only fail); a walk asked again (a link's rule, then its noting; a
    bracket skipped in a walk, then read) is answered as first walked, since the tokens it skipped
    are skipped alike ever after (markdown-it caches each); and a token already skipped is looked up,
    not skipped through markdown-it's every rule again."""
    src, end, skipped = state.src, state.posMax, state.cache
    walks: _LabelWalks | None = state.__dict__.get("_duiyi_label_walks")
    if walks is None:
        walks = state.__dict__["_duiyi_label_walks"] = _LabelWalks()
    close = walks.close
    if close is None or not walks.since <= start + 1 <= (close if close >= 0 else start + 1):
        walks.since, walks.close = start + 1, src.find("]", start + 1)
        close = walks.close
    if close < 0 or close >= end:
        return -1
    key = (start, disable_nested, end)
    known = walks.ends.get(key)
    if known is not None:
        return known
    before = state.pos
    pos, level, found = start + 1, 1, -1
    while pos < end:
        marker = src[pos]
        if marker == "]":
            level -= 1
            if level == 0:
                found = pos
                break
        after = skipped.get(pos)
        if after is None:
            state.pos = pos
            state.md.inline.skipToken(state)
            after = state.pos
        if marker == "[":
            if after == pos + 1:
                level += 1  # a `[` that is text, not part of a token
            elif disable_nested:
                break
        pos = after
    state.pos = before
    walks.ends[key] = found
    return found


# What markdown-it's rules reach through `md.helpers`: its own, but for reading a link's label.
_HELPERS = SimpleNamespace(
    parseLinkLabel=_link_label_end, parseLinkDestination=parseLinkDestination, parseLinkTitle=parseLinkTitle
)


def _markdown_parser() -> MarkdownIt:
    md = markdown_reader()
    md.helpers = _HELPERS  # type: ignore[assignment]
    for name in ("table", "heading", "lheading", "paragraph"):
        rule = md.block.ruler.__rules__[md.block.ruler.__find__(name)]
        md.block.ruler.at(name, _noting_spans(name, rule.fn), {"alt": rule.alt})
    rule = md.block.ruler.__rules__[md.block.ruler.__find__("reference")]
    md.block.ruler.at("reference", _noting_definitions(rule.fn), {"alt": rule.alt})
    return md


_MD = _markdown_parser()
# How deep markdown-it reads quotes and lists in one another (below its `maxNesting`, which also
# bounds how deep it looks for links in links, and so what `[[[[…` costs to read): what a quote or
# list item deeper holds, it drops without a word. A list counts two levels (the list, and its item).
_MD_DEPTH = _MD.options.maxNesting - 1
# YAML (or TOML) front matter, which a Markdown CMS puts at the very top: data, left as sent.
_FRONT_MATTER = re.compile(r"\A(-{3}|\+{3})[ \t]*\r?\n(?:.*\r?\n)*?(?:\1|\.{3})[ \t]*(?:\r?\n|\Z)")
_NEWLINE = re.compile(r"\r\n?|\n")
# A footnote's reference or, at the start of a paragraph, its definition (`[^1]`, `[^note]:`), which
# CMSs with footnotes read: markup, kept as written.
_FOOTNOTE = re.compile(r"(\[\^[^\]\s]+\]:?)")
# A footnote's definition at its block's start, and the white space after its marker.
_FOOTNOTE_DEFINITION = re.compile(r"(\[\^[^\]\s]+\]:)[ \t]+")
# The reference a reference image ends with: `[ref]`, which holds no unescaped brackets.
_MD_REFERENCE = re.compile(r"\[(?:[^\[\]\\]|\\.)*\]\Z", re.DOTALL)
# What a backslash keeps from ending or escaping a link title ("…"): CommonMark, "Link title".
_MD_TITLE_SYNTAX = re.compile(r'[\\"]|&(?=#?\w+;)')

# A place of a Markdown page: a text (an inline token) or what is carried as sent (code, raw HTML),
# with the quotes, list items, heading or table cell around it, and where its text stands in the
# page (None for what is carried as sent).
_MdPlace = tuple[Token, tuple[Token, ...], tuple[int, int] | None]


class _MdDefinition(NamedTuple):
    """A reference definition's title (`[id]: url "title"`): the number of the place it comes before,
    where the title stands in the page (quotes included), and its text."""

    before: int
    span: tuple[int, int]
    title: str


class _MdLabel(NamedTuple):
    """A label of a Markdown page, translated as a block of its own: a link's title, in the link's
    `](url "title")` as its place's block writes it (`close`), or a reference definition's, where it
    stands in the page (`span`). `place`: the place that holds it, or that it comes before."""

    place: int
    close: str
    title: str
    span: tuple[int, int] | None


def _front_matter(source: str) -> str:
    match = _FRONT_MATTER.match(source)
    return match.group() if match else ""


class _MdPage(NamedTuple):
    """A Markdown page as read (see `_md_page`): its places, its labels, and why it may not be read
    whole ("" where it may)."""

    places: tuple[_MdPlace, ...]
    labels: tuple[_MdLabel, ...]
    too_deep: str


def _md_places(source: str) -> tuple[_MdPlace, ...]:
    """The places of a Markdown page, in order. Stored documents name a block's place by its number
    in this list (`Block.element`), so what counts as one changes only with a migration."""
    return _md_page(source).places


def _md_labels(source: str, *, whole: bool = False) -> tuple[tuple[_MdPlace, ...], tuple[_MdLabel, ...]]:
    """The places of a Markdown page, and its labels in document order: the titles of its inline
    links, each in the place that holds it, and of its reference definitions (which reference links'
    and images' titles are). Stored documents name a label by its number in this list. `whole`: raise
    MarkupTooDeep for a page that nests quotes and lists deeper than markdown-it reads, rather than
    read it without what it drops there (as a page stored before such pages were refused is)."""
    page = _md_page(source)
    if whole and page.too_deep:
        raise MarkupTooDeep(page.too_deep)
    return page.places, page.labels


@functools.lru_cache(maxsize=4)
def _md_page(source: str) -> _MdPage:
    """The page read once for the several times it is asked for: an article is read when it is
    parsed, and twice more for each variant written (its places, its labels), which for a large page
    of brackets (seconds to read) was most of a request's time. Only read, never changed, by those
    who ask (markdown-it's tokens among them), so they may share it. The last few pages read are
    kept: about 1 MB for an article of 100,000 characters, 30 MB for as many of `*a*a…`."""
    places, definitions, too_deep = _md_read(source)
    labels: list[_MdLabel] = []
    before = iter(definitions)
    definition = next(before, None)
    for number, (tok, around, _) in enumerate(places):
        while definition is not None and definition.before <= number:
            labels.append(_MdLabel(number, "", definition.title, definition.span))
            definition = next(before, None)
        if tok.type != "inline":
            continue
        cell = bool(around) and around[-1].type in ("th_open", "td_open")
        for child in tok.children or ():
            title = _md_link_title(child)
            if title:
                labels.append(_MdLabel(number, _md_link_close(child, cell), title, None))
    while definition is not None:
        labels.append(_MdLabel(len(places), "", definition.title, definition.span))
        definition = next(before, None)
    return _MdPage(tuple(places), tuple(labels), too_deep)


def _md_read(source: str) -> tuple[list[_MdPlace], list[_MdDefinition], str]:
    """The places of a Markdown page (see `_md_places`), its definitions' titles, and why it may
    not be read whole: "" where it may, else what to tell of its quotes and lists nested deeper than
    markdown-it reads (what it drops there is not among its places)."""
    front = _front_matter(source)
    # The front matter's lines stay, as empty ones, so that markdown-it's line numbers are the page's.
    read = "\n" * len(_NEWLINE.findall(front)) + source[len(front) :]
    env: dict[str, Any] = {}
    tokens = _MD.parse(read, env)
    # Where each line begins in the page, and in what markdown-it read (every line ending a "\n").
    page_lines = [0, *(m.end() for m in _NEWLINE.finditer(source))]
    read_lines = [0, *(m.end() for m in re.finditer("\n", _NEWLINE.sub("\n", read)))]

    def in_page(pos: int) -> int:
        line = bisect.bisect_right(read_lines, pos) - 1
        return page_lines[line] + pos - read_lines[line]

    too_deep = ""
    for tok in tokens:
        if tok.type in ("blockquote_open", "list_item_open") and tok.level >= _MD_DEPTH:
            line = f" (line {tok.map[0] + 1})" if tok.map else ""
            too_deep = (
                f"the Markdown nests quotes and lists more than {_MD_DEPTH} levels deep{line}, deeper than "
                "its parser reads (a list counts two: the list and its item)"
            )
            break
    places: list[_MdPlace] = []
    around: list[Token] = []
    # Each definition's title comes before the places of the tokens made after it.
    titles = iter(env.get("titles", []))
    title = next(titles, None)
    definitions: list[_MdDefinition] = []
    for count, tok in enumerate(tokens):
        while title is not None and title[2] <= count:
            (start, end), text, _ = title
            definitions.append(_MdDefinition(len(places), (in_page(start), in_page(end)), text))
            title = next(titles, None)
        if tok.type in ("blockquote_open", "list_item_open", "heading_open", "th_open", "td_open"):
            around.append(tok)
        elif tok.type in ("blockquote_close", "list_item_close", "heading_close", "th_close", "td_close"):
            around.pop()
        elif tok.type in ("fence", "code_block", "html_block"):
            places.append((tok, tuple(around), None))
        elif tok.type == "inline":
            span = tok.meta.get("span")
            places.append((tok, tuple(around), (in_page(span[0]), in_page(span[1])) if span else None))
    while title is not None:
        (start, end), text, _ = title
        definitions.append(_MdDefinition(len(places), (in_page(start), in_page(end)), text))
        title = next(titles, None)
    return places, definitions, too_deep


def _md_image(label: str, src: str, title: str | None) -> str:
    """An image in Markdown syntax, `label` as written; its title quoted so that it reads back as itself."""
    quoted = " " + _md_title(title) if title else ""
    return f"![{label}]({src}{quoted})"


def _md_reference(tok: Token) -> str | None:
    """What follows the label of a reference link or image, `[ref]`, as written (a shortcut `[ref]`
    or collapsed `[ref][]` one names its reference by its text, which is translated); None for an
    inline one, `(url "title")`."""
    rest = str(tok.meta.get("rest", "("))
    if rest.startswith("("):
        return None
    return "[" + " ".join(str(tok.meta["label"]).split()) + "]" if rest in ("", "[]") else " ".join(rest.split())


def _md_link_close(tok: Token, cell: bool) -> str:
    """What closes a link's text as written (`][ref]` or `](url "title")`, its lines joined): a
    reference stays one (its definition stays where it is), an address as typed. In a table's
    `cell`, its `|` as `\\|` (see `_md_inline`)."""
    reference = _md_reference(tok)
    close = "]" + (reference if reference is not None else str(tok.meta["rest"]).replace("\n", " "))
    return close.replace("|", "\\|") if cell else close


def _md_link_title(tok: Token) -> str:
    """The title of an inline link (`[text](url "title")`), if `tok` opens one; "" for any other
    token, and for a reference link (whose title is its definition's)."""
    if tok.type != "link_open" or _md_reference(tok) is not None:
        return ""
    title = str(tok.attrs.get("title") or "")
    return title if title.strip() else ""


def _md_title(title: str) -> str:
    """A link's, an image's or a definition's title, quoted so that it reads back as itself."""
    return '"' + _MD_TITLE_SYNTAX.sub(lambda m: "\\" + m.group(), title) + '"'


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
    `\\|` (a table's source must, to keep it in its cell; markdown-it gives it without the `\\`).
    Raises MarkupTooDeep for markup nested deeper than MAX_INLINE_DEPTH (markdown-it nests emphasis
    as deep as delimiters run: `**` a level)."""

    def written(markup: str) -> str:
        return markup.replace("|", "\\|") if cell else markup

    text: list[str] = []
    inlines: list[Inline] = []
    stack: list[tuple[int, str, str, bool]] = []
    length = 0
    for tok in children:
        if len(stack) > MAX_INLINE_DEPTH:
            raise MarkupTooDeep(
                f"a paragraph's emphasis, links and strikethrough nest more than {MAX_INLINE_DEPTH} levels deep"
            )
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
            stack.append((length, "[", _md_link_close(tok, cell), False))
        elif tok.type in ("em_open", "strong_open", "s_open"):
            stack.append((length, tok.markup, tok.markup, False))
        elif tok.type in ("link_close", "em_close", "strong_close", "s_close") and stack:
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
    """Blocks in document order: an image's alt text and title and a link's title follow the block
    that holds them, a reference definition's title stands where the definition does."""
    blocks: list[Block] = []
    images = itertools.count()
    places, labels = _md_labels(source, whole=True)
    links: dict[int, list[int]] = {}  # place → the numbers of its links' titles
    definitions: dict[int, list[int]] = {}  # place → the numbers of the definitions' titles before it
    for n, label in enumerate(labels):
        (links if label.span is None else definitions).setdefault(label.place, []).append(n)

    def label_blocks(numbers: Iterable[int]) -> list[Block]:
        return [
            Block(f"b{first + len(blocks) + i}", BlockKind.LABEL, " ".join(labels[n].title.split()), element=n)
            for i, n in enumerate(numbers)
        ]

    for number, (tok, around, _) in enumerate(places):
        blocks += label_blocks(definitions.get(number, ()))
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
        titled = iter(links.get(number, ()))
        for child in tok.children or ():
            if child.type == "image":
                # A reference image's title is its definition's, translated where the definition stands.
                title = child.attrs.get("title") if _md_reference(child) is None else None
                texts = (("alt", _md_alt(child.children or ())), ("title", title))
                blocks += _image_blocks(first + len(blocks), next(images), texts)
            elif _md_link_title(child):
                blocks += label_blocks([next(titled)])
    return blocks + label_blocks(definitions.get(len(places), ()))


def _continuation(prefix: str) -> str:
    """What a Markdown block's second and later lines start with: its quote markers, and an
    indent as wide as its list marker."""
    quotes = 0
    while prefix.startswith("> ", 2 * quotes):
        quotes += 1
    rest = prefix[2 * quotes :]
    return "> " * quotes + ("" if rest.startswith("#") else " " * len(rest))


def _footnote_spaced(block: Block, text: str) -> str:
    """A footnote definition's translation with the white space after its `[^1]:` that its source
    has. The model seldom writes a space before Chinese, and a marker it drops is put back at the
    start with none (see service.protect): the translation comes right against the marker."""
    marker = _FOOTNOTE_DEFINITION.match(block.text)
    if marker is None or not text.startswith(marker.group(1)) or text[len(marker.group(1)) :][:1] in ("", " ", "\t"):
        return text
    return marker.group() + text[len(marker.group(1)) :]


def _markdown_page(
    page: str, blocks: tuple[Block, ...], inner: Mapping[str, str], titles: Iterable[tuple[tuple[int, int], str]] = ()
) -> str:
    """The Markdown page as sent, each block's text replaced by its translation, and each of
    `titles` (where a reference definition's title stands → the new one, quoted) put in its place:
    everything else (front matter, blank lines, rules, reference definitions, tables' borders, a
    heading's own syntax) stays as written. The article's fields (title, dek, …) open it, after its
    front matter."""
    spans = [span for _, _, span in _md_places(page)]
    newline = "\r\n" if "\r\n" in page else "\n"
    edits: list[tuple[tuple[int, int], str]] = list(titles)
    for b in blocks:
        span = spans[b.element] if 0 <= b.element < len(spans) else None
        if span is not None:
            edits.append((span, _footnote_spaced(b, inner[b.id]).replace("\n", newline + _continuation(b.prefix))))
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


def _is_md_image(block: Block, inline: Inline) -> bool:
    """Whether `inline` is one of the block's images (kept as written, see _md_inline)."""
    return inline.verbatim and not (inline.open or inline.close) and block.text.startswith("![", inline.start)


class _Spliced:
    """A block's translation with some of its markup replaced, one piece after another, and put
    together once at the end (not copied whole at each replacement: a paragraph of thousands of
    images or titled links made that take seconds). Each replacement takes the first occurrence from
    where the one before it ended, the markup's order in the translation being the source's; else,
    where a person's edit moved it, the first anywhere."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[str] = []
        self.at = 0  # where the text not yet copied into `parts` starts

    def replace(self, old: str, new: str) -> None:
        found = self.text.find(old, self.at)
        if found < 0:
            whole = self.joined()
            found = whole.find(old)
            if found < 0:
                return  # not in it (a person's edit may have dropped it)
            self.text, self.parts, self.at = whole, [], 0
        self.parts += [self.text[self.at : found], new]
        self.at = found + len(old)

    def joined(self) -> str:
        return "".join(self.parts) + self.text[self.at :]


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
    spliced: dict[str, _Spliced] = {}
    for number, attrs in sorted(texts.items()):
        if number >= len(written):
            continue
        holder, source = written[number]
        reference = _MD_REFERENCE.search(source) if source.endswith("]") else None
        if reference is not None:  # ![label][ref]: its title is its definition's
            label = markdown_escape(attrs["alt"]) if "alt" in attrs else source[2 : reference.start() - 1]
            spliced.setdefault(holder, _Spliced(out[holder])).replace(source, f"![{label}]{reference.group()}")
            continue
        children = _MD.parseInline(source)[0].children or []
        if len(children) != 1 or children[0].type != "image":
            continue  # not markup this module wrote
        image = children[0]
        label = markdown_escape(attrs["alt"]) if "alt" in attrs else image.content
        title = attrs.get("title", str(image.attrs.get("title") or ""))
        markup = _md_image(label, str(image.attrs.get("src", "")), title or None)
        spliced.setdefault(holder, _Spliced(out[holder])).replace(source, markup)
    out.update((holder, into.joined()) for holder, into in spliced.items())
    return out


def _retitled(close: str, title: str, cell: bool) -> str:
    """A link's `](url "title")` as written (`close`) with `title` in place of its title, quoted so
    that it reads back as itself (in a table's `cell`, its `|` as `\\|`)."""
    span = _title_span(close, _skip_space(close, 2)) if close.startswith("](") else None
    if span is None:
        return close
    quoted = _md_title(title)
    return close[: span[0]] + (quoted.replace("|", "\\|") if cell else quoted) + close[span[1] :]


def _with_markdown_labels(
    blocks: tuple[Block, ...], inner: Mapping[str, str], page: str
) -> tuple[dict[str, str], list[tuple[tuple[int, int], str]]]:
    """`inner` with each translated link title in its link, in the translation of the block that
    holds it (which carries the link's `](url "title")` as the source has it: a person's edit may
    keep only that, see service.jobs.review); and where each translated reference definition's title
    stands in the page, with the new one, quoted."""
    out = dict(inner)
    texts = {
        b.element: " ".join(plain_text(inner[b.id], SourceFormat.MARKDOWN).split())
        for b in blocks
        if b.kind is BlockKind.LABEL and b.id in inner
    }
    if not texts or not page:
        return out, []
    places, labels = _md_labels(page)
    holders = {b.element: b.id for b in blocks if b.element >= 0 and b.kind not in _ATTRIBUTE_TEXTS}
    spliced: dict[str, _Spliced] = {}  # links with the same close are retitled in order
    titles: list[tuple[tuple[int, int], str]] = []
    for number, text in sorted(texts.items()):
        label = labels[number] if number < len(labels) and text else None
        if label is None or text == " ".join(label.title.split()):
            continue  # untranslated: as written
        if label.span is not None:
            titles.append((label.span, _md_title(text)))
            continue
        holder = holders.get(label.place)
        if holder is None:
            continue
        around = places[label.place][1]
        retitled = _retitled(label.close, text, bool(around) and around[-1].type in ("th_open", "td_open"))
        spliced.setdefault(holder, _Spliced(out[holder])).replace(label.close, retitled)
    out.update((holder, into.joined()) for holder, into in spliced.items())
    return out, titles


def _render_markdown(blocks: tuple[Block, ...], inner: Mapping[str, str], page: str) -> str:
    """The Markdown variant (see `service.formats.render`)."""
    inner = _with_markdown_image_texts(blocks, inner)
    inner, titles = _with_markdown_labels(blocks, inner, page)
    blocks = tuple(b for b in blocks if b.kind not in _ATTRIBUTE_TEXTS)
    if page:
        return _markdown_page(page, blocks, inner, titles)
    # Stored before Markdown pages were kept: each block written anew from its prefix.
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            both_items = block.kind is BlockKind.LIST_ITEM and blocks[i - 1].kind is BlockKind.LIST_ITEM
            out.append("\n" if both_items else "\n\n")
        if block.kind in (BlockKind.TITLE, BlockKind.SUBTITLE):
            out.append(("# " if block.kind is BlockKind.TITLE else "## ") + inner[block.id])
        else:
            text = _footnote_spaced(block, inner[block.id])
            out.append(block.prefix + text.replace("\n", "\n" + _continuation(block.prefix)))
    return "".join(out) + "\n"
