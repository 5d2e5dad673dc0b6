from __future__ import annotations

from service.documents import Article, BlockKind, SourceFormat
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
    assert out == "# <b0>\n\n<b1>\n\n> <b2>\n\n- <b3>\n- <b4>\n"


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
