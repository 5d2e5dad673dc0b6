from __future__ import annotations

import random

import pytest

from service.documents import Article, BlockKind, SourceFormat, markdown_escape, markdown_reader, plain_text
from service.formats import parse_blocks, render

MARKDOWN = """# The *Futenma* base

A [link to **Abe**](http://x "t") and `code`. Second.

> Quoted. Two.

- item one
- item two
"""


def test_markdown_blocks_and_inlines() -> None:
    blocks, _, _ = parse_blocks(Article(body=MARKDOWN, format=SourceFormat.MARKDOWN, title="Title"))
    assert [b.kind for b in blocks] == [
        BlockKind.TITLE,
        BlockKind.HEADING,
        BlockKind.PARAGRAPH,
        BlockKind.LABEL,  # the link's title
        BlockKind.QUOTE,
        BlockKind.LIST_ITEM,
        BlockKind.LIST_ITEM,
    ]
    para = blocks[2]
    assert para.text == "A link to Abe and code. Second."
    link, strong, code = para.inlines
    assert para.text[link.start : link.end] == "link to Abe"
    assert (link.open, link.close) == ("[", '](http://x "t")')
    assert para.text[strong.start : strong.end] == "Abe" and strong.open == "**"
    assert code.verbatim and para.text[code.start : code.end] == "code"


def test_markdown_render_keeps_structure() -> None:
    blocks, _, _ = parse_blocks(Article(body=MARKDOWN, format=SourceFormat.MARKDOWN))
    inner = {b.id: f"<{b.id}>" for b in blocks}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner)
    assert out == "# <b0>\n\n<b1>\n\n> <b3>\n\n- <b4>\n- <b5>\n"


def test_html_keeps_the_page_and_replaces_block_contents() -> None:
    page = (
        '<html><body><h1 class="x">Hello <em>Abe</em></h1><p>First.<br>Second.</p>'
        '<ul><li>One</li></ul><script>var x = "<p>no</p>";</script></body></html>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [b.text for b in blocks] == ["Hello Abe", "First.\nSecond.", "One"]
    assert [b.kind for b in blocks] == [BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST_ITEM]
    out = render(SourceFormat.HTML, tuple(blocks), {b.id: f"<b>{b.id}</b>" for b in blocks}, page=kept)
    assert '<h1 class="x"><b>b0</b></h1>' in out
    assert "<li><b>b2</b></li>" in out
    assert 'var x = "<p>no</p>";' in out


def test_plain_text_paragraphs_keep_their_separators() -> None:
    text = "\n\nFirst para\nline two.  \n\n\n  Second.\n"
    blocks, tail, _ = parse_blocks(Article(body=text))
    assert [b.text for b in blocks] == ["First para\nline two.", "Second."]
    assert render(SourceFormat.TEXT, tuple(blocks), {b.id: b.text for b in blocks}, tail=tail) == text


def test_plain_text_fields_are_paragraphs_of_their_own() -> None:
    """Title, dek, byline and date before a text body: each its own paragraph, the body as sent."""
    text = "First para.\n\n\nSecond."
    article = Article(body=text, title="A title", subtitle="A dek", byline="By Someone", date="Nov 07, 2013")
    blocks, tail, _ = parse_blocks(article)
    out = render(SourceFormat.TEXT, tuple(blocks), {b.id: b.text for b in blocks}, tail=tail)
    assert out == "A title\n\nA dek\n\nBy Someone\n\nNov 07, 2013\n\n" + text
    blocks, tail, _ = parse_blocks(Article(body="\n  Body.", title="T"))
    assert render(SourceFormat.TEXT, tuple(blocks), {b.id: b.text for b in blocks}, tail=tail) == "T\n\n\n  Body."


def test_html_structured_fields_open_the_body() -> None:
    page = "<html><body><p>Text.</p></body></html>"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML, title="Title", byline="By me"))
    out = render(SourceFormat.HTML, tuple(blocks), {b.id: b.text for b in blocks}, page=kept)
    assert out.startswith('<html><body><h1 class="duiyi-title">Title</h1>\n<p class="duiyi-byline">By me</p>')
    fragment = render(
        SourceFormat.HTML,
        tuple(parse_blocks(Article(body="<p>x</p>", format=SourceFormat.HTML, title="T"))[0]),
        {"b0": "T", "b1": "x"},
        page="<p>x</p>",
    )
    assert fragment == '<h1 class="duiyi-title">T</h1>\n<p>x</p>'


def test_windows_line_endings_separate_paragraphs_too() -> None:
    text = "First para.\r\n\r\nSecond para.\r\n"
    blocks, tail, _ = parse_blocks(Article(body=text))
    assert [b.text for b in blocks] == ["First para.", "Second para."]
    assert render(SourceFormat.TEXT, tuple(blocks), {b.id: b.text for b in blocks}, tail=tail) == text


@pytest.mark.parametrize(
    ("body", "fmt", "marked"),
    [
        ('<p>First sentence here.<a href="/x"> Read more.</a></p>', "html", [('<a href="/x">', "Read more.")]),
        ("<p>One. <b>Two. </b>Three.</p>", "html", [("<b>", "Two.")]),
        ("<p>Line one.<b><br>Line two.</b></p>", "html", [("<b>", "Line two.")]),
        # Nested markup that trimming gives one range keeps its nesting: the link stays outside.
        (
            '<p>Keep <a href="/x"><b>bold link</b> </a>now.</p>',
            "html",
            [('<a href="/x">', "bold link"), ("<b>", "bold link")],
        ),
        ("First sentence here.[ Read more.](/x)\n", "markdown", [("[", "Read more.")]),
    ],
)
def test_markup_leaves_out_the_white_space_at_its_edges(body: str, fmt: str, marked: list[tuple[str, str]]) -> None:
    # The white space between sentences belongs to no sentence: markup reaching into it was lost.
    (block,), _, _ = parse_blocks(Article(body=body, format=SourceFormat(fmt)))
    assert [(i.open, block.text[i.start : i.end]) for i in block.inlines] == marked


@pytest.mark.parametrize(
    ("page", "texts", "rendered"),
    [
        ("<div>Loose text.</div>", ["Loose text."], "<div><b>b0</b></div>"),
        ("Just text.", ["Just text."], "<b>b0</b>"),
        (
            "Text one.<p>Para.</p>Text <i>two</i>.",
            ["Text one.", "Para.", "Text two."],
            "<b>b0</b><p><b>b1</b></p><b>b2</b>",
        ),
        (
            "<ul><li>Parent<ul><li>Child</li></ul></li></ul>",
            ["Parent", "Child"],
            "<ul><li><b>b0</b><ul><li><b>b1</b></li></ul></li></ul>",
        ),
        (
            '<body>\n<div class="x">\n  Intro <i>text</i>.\n  <p>Para.</p>\n<!-- c --></div>\n</body>',
            ["Intro text.", "Para."],
            '<body>\n<div class="x">\n  <b>b0</b>\n  <p><b>b1</b></p>\n<!-- c --></div>\n</body>',
        ),
    ],
)
def test_html_text_outside_block_elements_is_translated_in_its_place(
    page: str, texts: list[str], rendered: str
) -> None:
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [b.text for b in blocks] == texts
    assert render(SourceFormat.HTML, tuple(blocks), {b.id: f"<b>{b.id}</b>" for b in blocks}, page=kept) == rendered


def test_html_loose_text_takes_its_kind_from_where_it_stands() -> None:
    page = (
        "<ul><li>Parent<ul><li>Child</li></ul></li></ul>"
        "<blockquote>Said<p>Quoted.</p></blockquote><h2>Head<p>x</p></h2>"
    )
    blocks, _, _ = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.text, b.kind) for b in blocks] == [
        ("Parent", BlockKind.LIST_ITEM),
        ("Child", BlockKind.LIST_ITEM),
        ("Said", BlockKind.QUOTE),
        ("Quoted.", BlockKind.QUOTE),
        ("Head", BlockKind.HEADING),
        ("x", BlockKind.PARAGRAPH),
    ]


def test_html_block_elements_keep_their_numbers_beside_loose_text() -> None:
    # Stored articles name the element each block replaces by this number, so loose text is
    # numbered after the block elements and an article stored before it was found renders as then.
    blocks, _, kept = parse_blocks(Article(body="<div>Loose.</div><p>Para.</p>", format=SourceFormat.HTML))
    assert [(b.text, b.element) for b in blocks] == [("Loose.", 1), ("Para.", 0)]
    stored = (blocks[1],)
    assert render(SourceFormat.HTML, stored, {stored[0].id: "段"}, page=kept) == "<div>Loose.</div><p>段</p>"


def test_markdown_nested_lists_stay_nested_under_wide_markers() -> None:
    """A list under “10.” must be indented four spaces to stay inside that item; under “-”, two."""
    source = "9. Nine\n10. Ten\n    - Under ten\n        1. Deeper\n\n- Dash\n  - Under dash\n"
    blocks, _, _ = parse_blocks(Article(body=source, format=SourceFormat.MARKDOWN))
    out = render(SourceFormat.MARKDOWN, tuple(blocks), {b.id: b.text for b in blocks})
    again, _, _ = parse_blocks(Article(body=out, format=SourceFormat.MARKDOWN))
    assert [(b.text, b.level) for b in again] == [(b.text, b.level) for b in blocks]
    assert [b.level for b in blocks] == [1, 1, 2, 3, 1, 2]


def test_markdown_escape_makes_any_text_render_as_itself() -> None:
    """Whatever the model writes, a Markdown reader shows it as that text: one paragraph, no
    emphasis, links, headings, lists, quotes, fences or tables, and every character kept."""
    rng = random.Random(7)
    alphabet = [*"#>*_-+=~`[]()!<>&;\\.)| 1\n", "&amp;", "&#35;", "1.", "10)", "***", "---", "<b>", "中", "a"]
    cases = ["#MeToo运动", "1. 第一", "*星*", "a_b_c", "[1](x)", "<span>", "&copy;", "---", "===", "```", "> 引"]
    cases += ["甲|乙\n|-|-"]  # a table, were the `|` not escaped
    cases += ["~~删~~", "3~5天", "~~~", "a~~~b~~c"]  # strikethrough, were the `~~` not escaped
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(3000)]
    reader = markdown_reader()  # as articles are read
    for text in cases:
        text = "\n".join(line.strip() for line in text.strip().split("\n") if line.strip())
        if not text:
            continue
        tokens = reader.parse(markdown_escape(text))
        assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], text
        children = tokens[1].children or []
        shown = "".join("\n" if t.type == "softbreak" else t.content for t in children)
        assert {t.type for t in children} <= {"text", "softbreak"} and shown == text, text
        assert plain_text(markdown_escape(text), SourceFormat.MARKDOWN) == text


def test_markdown_raw_html_is_carried_as_markup_not_translated() -> None:
    blocks, _, _ = parse_blocks(Article(body="A <span class='x'>red</span> flag.<br>\n", format=SourceFormat.MARKDOWN))
    (block,) = blocks
    assert block.text == "A red flag."
    assert [(i.start, i.end, i.open, i.verbatim) for i in block.inlines] == [
        (2, 2, "<span class='x'>", True),
        (5, 5, "</span>", True),
        (11, 11, "<br>", True),
    ]


def test_markdown_targets_read_back_as_plain_text() -> None:
    target = "**强** [链接](http://x) ![图](s.png) `a*b` <span>红</span> \\*星\\* AT&T"
    assert plain_text(target, SourceFormat.MARKDOWN) == "强 链接  a*b 红 *星* AT&T"


def test_markdown_autolinks_and_image_titles_are_kept_as_written() -> None:
    """An autolink's address is its text: kept as written, not given to the model; an image keeps
    its title (its alt text and title are translated as blocks of their own, after this one)."""
    body = 'See <https://example.com/a?b=1> or <desk@example.org>. An ![map](m.png "The map") here.\n'
    blocks, _, _ = parse_blocks(Article(body=body, format=SourceFormat.MARKDOWN))
    block, alt, title = blocks
    assert [(alt.kind, alt.text), (title.kind, title.text)] == [
        (BlockKind.IMAGE_ALT, "map"),
        (BlockKind.IMAGE_TITLE, "The map"),
    ]
    kept = [block.text[i.start : i.end] for i in block.inlines]
    assert kept == ["https://example.com/a?b=1", "desk@example.org", '![map](m.png "The map")']
    assert all(i.verbatim for i in block.inlines)
    assert [(i.open, i.close) for i in block.inlines[:2]] == [("<", ">"), ("<", ">")]


def test_html_image_texts_are_blocks_where_their_images_stand() -> None:
    """An image's alt and title follow the block that holds the image, or stand where it does; the
    rendered page has them in that very image. Images in the page's chrome, in code or in scripts
    keep their texts, and so do decorative ones (alt="")."""
    page = (
        '<nav><img src="logo.png" alt="Home"></nav>'
        '<figure><img src="a.jpg" alt="First  photo" title="Its title"><figcaption>Cap.</figcaption></figure>'
        '<p>Text <img src="b.jpg" alt="Second"> on. <img src="d.png" alt=""></p>'
        '<pre><img src="c.jpg" alt="Code"></pre><script>var s = "<img alt=\'no\'>";</script>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text, b.element) for b in blocks] == [
        (BlockKind.IMAGE_ALT, "First photo", 0),
        (BlockKind.IMAGE_TITLE, "Its title", 0),
        (BlockKind.PARAGRAPH, "Cap.", 0),
        (BlockKind.PARAGRAPH, "Text on.", 1),
        (BlockKind.IMAGE_ALT, "Second", 1),
    ]
    holder = blocks[3]
    inner = {b.id: f"译{b.id}&amp;" for b in blocks}
    inner[holder.id] = "文" + "".join(i.open for i in holder.inlines) + "字"
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept)
    assert out.startswith('<nav><img src="logo.png" alt="Home"></nav>')
    assert '<img src="a.jpg" alt="译b0&amp;" title="译b1&amp;"><figcaption>译b2&amp;</figcaption>' in out
    # A translated block's markup is written as BeautifulSoup writes it; the rest of the page as sent.
    assert '<p>文<img alt="译b4&amp;" src="b.jpg"/><img alt="" src="d.png"/>字</p>' in out
    assert '<pre><img src="c.jpg" alt="Code"></pre>' in out and "var s = \"<img alt='no'>\";" in out


def test_markdown_image_texts_follow_their_block_and_code_keeps_its_images() -> None:
    body = '```\n![Code](c.png)\n```\n\n<div><img alt="Raw"></div>\n\n# A ![Head](h.png "Tip") b\n\n- ![Item](i.png)\n'
    blocks, _, _ = parse_blocks(Article(body=body, format=SourceFormat.MARKDOWN))
    assert [(b.kind, b.text) for b in blocks][2:] == [
        (BlockKind.HEADING, 'A ![Head](h.png "Tip") b'),
        (BlockKind.IMAGE_ALT, "Head"),
        (BlockKind.IMAGE_TITLE, "Tip"),
        (BlockKind.LIST_ITEM, "![Item](i.png)"),
        (BlockKind.IMAGE_ALT, "Item"),
    ]
    inner = {b.id: b.text for b in blocks}
    inner.update({b.id: f"译\\]{b.id}" for b in blocks if b.kind in (BlockKind.IMAGE_ALT, BlockKind.IMAGE_TITLE)})
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner)
    assert out == (
        '```\n![Code](c.png)\n```\n\n<div><img alt="Raw"></div>\n\n'
        '# A ![译\\]b3](h.png "译]b4") b\n\n- ![译\\]b6](i.png)\n'
    )


def test_html_page_title_is_a_block_numbered_after_the_rest() -> None:
    """The <title> is translated (a title block), numbered after every other place in the page so that
    a page stored before it was renders as it did then; an <svg>'s title is part of the image."""
    page = (
        "<html><head><title>Abe &amp; Okinawa</title></head><body><div>Loose.</div><p>Para.</p>"
        "<svg><title>Chart</title></svg></body></html>"
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text, b.element) for b in blocks] == [
        (BlockKind.TITLE, "Abe & Okinawa", 2),
        (BlockKind.PARAGRAPH, "Loose.", 1),
        (BlockKind.PARAGRAPH, "Para.", 0),
    ]
    inner = {blocks[0].id: "安倍&amp;冲绳", blocks[1].id: "散", blocks[2].id: "段"}
    assert render(SourceFormat.HTML, tuple(blocks), inner, page=kept) == (
        "<html><head><title>安倍&amp;冲绳</title></head><body><div>散</div><p>段</p>"
        "<svg><title>Chart</title></svg></body></html>"
    )
    # Stored before: blocks without the title's; the title stays as it was.
    assert render(SourceFormat.HTML, tuple(blocks[1:]), inner, page=kept).startswith(
        "<html><head><title>Abe &amp; Okinawa</title>"
    )


def test_a_translated_html_page_declares_its_language() -> None:
    """<html lang> is the variant's tag (set where the page had none), as is every element that said
    English and a Content-Language <meta>; code left as sent keeps its own, and so does a fragment
    without <html>."""
    page = (
        '<html lang="en-US"><head><meta http-equiv="Content-Language" content="en"></head>'
        '<body><article lang="en"><p>Para.</p><pre lang="en">x = 1</pre></article><p lang="fr">Oui.</p></body></html>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    inner = {b.id: "段" for b in blocks}
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang="zh-HK")
    assert out == (
        '<html lang="zh-HK"><head><meta http-equiv="Content-Language" content="zh-HK"></head>'
        '<body><article lang="zh-HK"><p>段</p><pre lang="en">x = 1</pre></article><p lang="fr">段</p></body></html>'
    )
    bare, _, kept = parse_blocks(Article(body="<html><body><p>Para.</p></body></html>", format=SourceFormat.HTML))
    assert render(SourceFormat.HTML, tuple(bare), {bare[0].id: "段"}, page=kept, lang="zh-TW").startswith(
        '<html lang="zh-TW">'
    )
    fragment, _, kept = parse_blocks(Article(body="<p>Para.</p>", format=SourceFormat.HTML))
    assert render(SourceFormat.HTML, tuple(fragment), {fragment[0].id: "段"}, page=kept, lang="zh-TW") == "<p>段</p>"


def test_html_page_descriptions_are_blocks_written_back_into_their_meta() -> None:
    """<meta name="description"> and the sharing texts (og:, twitter:) are text a reader sees in
    search results and shared links: blocks of their own (kind meta), where they stand in the page,
    their translation written into the content attribute; other <meta>s and empty ones are left."""
    page = (
        '<html><head><meta charset="utf-8"><title>Abe</title>'
        '<meta name="description" content="Abe &amp; Obama met.">'
        '<meta property="og:title" content="Abe visits">'
        '<meta name="keywords" content="abe, japan"><meta property="og:description" content=" ">'
        '<meta property="og:image" content="a.png"></head><body><p>Para.</p></body></html>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.TITLE, "Abe"),
        (BlockKind.META, "Abe & Obama met."),
        (BlockKind.META, "Abe visits"),
        (BlockKind.PARAGRAPH, "Para."),
    ]
    inner = dict(zip([b.id for b in blocks], ["安倍", "安倍&amp;奥巴马会面。", '安倍"访问"', "段"], strict=True))
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept)
    assert out == (
        '<html><head><meta charset="utf-8"><title>安倍</title>'
        '<meta name="description" content="安倍&amp;奥巴马会面。">'
        '<meta property="og:title" content="安倍&quot;访问&quot;">'
        '<meta name="keywords" content="abe, japan"><meta property="og:description" content=" ">'
        '<meta property="og:image" content="a.png"></head><body><p>段</p></body></html>'
    )
    # A page stored before: no meta blocks, its <meta>s as they were.
    stored = tuple(b for b in blocks if b.kind is not BlockKind.META)
    assert 'content="Abe &amp; Obama met."' in render(SourceFormat.HTML, stored, inner, page=kept)
