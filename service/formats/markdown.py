"""Markdown (read with markdown-it-py): a page's places (paragraphs, headings, list items, quotes,
table cells; code and raw HTML carried as sent), each text's inline markup, an image's texts; and
the translation written back into the page as sent, or anew from the blocks for documents stored
without their page."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Mapping

from markdown_it import MarkdownIt
from markdown_it.parser_block import RuleFuncBlockType
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token

from service.documents import Block, BlockKind, Inline, SourceFormat, markdown_escape, markdown_reader
from service.formats.common import IMAGE_TEXTS, _image_blocks, _image_texts, _trimmed


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


def _continuation(prefix: str) -> str:
    """What a Markdown block's second and later lines start with: its quote markers, and an
    indent as wide as its list marker."""
    quotes = 0
    while prefix.startswith("> ", 2 * quotes):
        quotes += 1
    rest = prefix[2 * quotes :]
    return "> " * quotes + ("" if rest.startswith("#") else " " * len(rest))


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


def _render_markdown(blocks: tuple[Block, ...], inner: Mapping[str, str], page: str) -> str:
    """The Markdown variant (see `service.formats.render`)."""
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
