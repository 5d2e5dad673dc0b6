"""An HTML article comes back as the CMS sent it but for its translated texts (and the language it
declares): entities, attribute quoting and order, `<br>` against `<br/>`, boolean attributes,
upper-case tags, comments and indentation stay as written, so that a CMS diffing revisions, or an
editor reading the source, sees no change nobody made."""

from __future__ import annotations

import html

import pytest
from bs4 import BeautifulSoup

from glossary.terms import Glossary
from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import AlignedSegment, Article, Block, BlockKind, SourceFormat
from service.formats import parse_blocks, render
from service.jobs.codec import document_from_json, document_to_json
from service.pipeline import Pipeline, PipelineSettings, assemble_text, parse

ARTICLE = """<!DOCTYPE html>
<HTML lang="en">
<head>
  <meta charset="utf-8">
  <title>Abe visits Okinawa &mdash; The Daily</title>
  <meta name="description" content="Abe &amp; Obama met in Okinawa.">
  <script type="application/ld+json">
  {"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Abe visits Okinawa", "inLanguage": "en"}
  </script>
</head>
<BODY>
<!-- cms:article id=4711 -->
<article class='story' data-id=4711>
  <H1>Abe visits Okinawa</H1>
  <p class="lede">
    The prime minister&#8217;s visit&nbsp;&mdash; his first &amp; last &#x2014; was brief.<br>
    Read <a href="https://example.com/r?a=1&amp;b=2" title='The report'>the report</a>.
  </p>
  <figure>
    <img src="abe.jpg" alt="Abe at the base" width=640>
    <figcaption>Abe at Futenma.<BR>Photo: AP</figcaption>
  </figure>
  <video controls autoplay muted src="clip.mp4"></video>
  <table>
    <tr><th>Party</th><th>Share</th></tr>
    <tr><td>LDP</td><td>45.2%</td></tr>
  </table>
  <input type="checkbox" checked disabled>
  <blockquote class="twitter-tweet"><p lang="en">A tweet&nbsp;&mdash; here</p>&mdash; Someone (@someone)</blockquote>
  <div>Loose text&hellip; in a div</div>
  <p>Quoting &lt;tags&gt; &quot;as written&quot; &copy; 2026</p>
  <hr>
</article>
</BODY>
</HTML>
"""

PAGES = {
    "article": ARTICLE,
    "crlf": ARTICLE.replace("\n", "\r\n"),
    "fragment": "Loose&nbsp;text <b>bold</b>.<br>\n<p class=x>A para&mdash;graph</p>\n<!-- end -->",
    # End tags a CMS left out: a list item closed by the list's end tag, a paragraph by the page's end.
    "unclosed": "<ul>\n  <li>One &amp; two\n  <li>Three</ul>\n<p>Open paragraph<br/>\n",
    "self-closed": "<p>A<br />B <img src=a.png alt=\"A\" /></p><hr/><input value='x' disabled/>",
}


def with_markup(block: Block) -> str:
    """The block's text with its inline markup put back, as the pipeline writes a target: its text
    escaped, a line break as <br>. Its source, untranslated."""
    events = sorted(
        [(i.end, 0, -n, i.close) for n, i in enumerate(block.inlines)]
        + [(i.start, 1, n, i.open) for n, i in enumerate(block.inlines)]
    )

    def text(start: int, end: int) -> str:
        return html.escape(block.text[start:end]).replace("\n", "<br>")

    out, at = [], 0
    for pos, _, _, markup in events:
        out += [text(at, pos), markup]
        at = pos
    return "".join([*out, text(at, len(block.text))])


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("lang", [None, "en"])
def test_a_page_whose_texts_are_left_as_they_were_comes_back_byte_for_byte(name: str, lang: str | None) -> None:
    page = PAGES[name]
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert kept == page
    inner = {b.id: with_markup(b) for b in blocks}
    assert render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang=lang) == page


# What each block of ARTICLE says in the source, as written there, and its translation.
TRANSLATED = {
    BlockKind.TITLE: ("Abe visits Okinawa &mdash; The Daily", "安倍访问冲绳 — 每日"),
    BlockKind.HEADING: ("Abe visits Okinawa", "安倍访问冲绳"),
    BlockKind.IMAGE_ALT: ("Abe at the base", "安倍在基地"),
    BlockKind.LABEL: ("The report", "报告"),
}
PARAGRAPHS = [
    (
        """The prime minister&#8217;s visit&nbsp;&mdash; his first &amp; last &#x2014; was brief.<br>
    Read <a href="https://example.com/r?a=1&amp;b=2" title='The report'>the report</a>.""",
        "首相的访问很短暂。<br>阅读{open}报告{close}。",
        # Its markup as a translated block has it: as BeautifulSoup writes it, the label translated.
        '首相的访问很短暂。<br/>阅读<a href="https://example.com/r?a=1&amp;b=2" title="报告">报告</a>。',
    ),
    ("Abe at Futenma.<BR>Photo: AP", "安倍在普天间。<br>图：美联社", "安倍在普天间。<br/>图：美联社"),
    ("<th>Party</th>", "政党", "<th>政党</th>"),
    ("<th>Share</th>", "份额", "<th>份额</th>"),
    ("<td>LDP</td>", "自民党", "<td>自民党</td>"),
    ("<td>45.2%</td>", "45.2%", "<td>45.2%</td>"),
    ("Loose text&hellip; in a div", "div 里的文字……", "div 里的文字……"),
    ("Quoting &lt;tags&gt; &quot;as written&quot; &copy; 2026", "引 &lt;b&gt; &amp; ©", "引 &lt;b&gt; &amp; ©"),
]


def test_a_translated_page_differs_from_the_source_only_in_its_texts_and_language() -> None:
    """The page with each text replaced by its translation and English declared as zh-TW is the
    page as rendered, byte for byte: nothing else changed."""
    blocks, _, kept = parse_blocks(Article(body=ARTICLE, format=SourceFormat.HTML))
    inner: dict[str, str] = {}
    expected = ARTICLE
    paragraphs = iter(PARAGRAPHS)
    for block in blocks:
        if block.kind is BlockKind.META:
            inner[block.id] = "安倍 &amp; 奥巴马" if block.element == 0 else "安倍访问冲绳"
        elif block.kind in TRANSLATED:
            source, target = TRANSLATED[block.kind]
            inner[block.id] = target
            expected = expected.replace(f">{source}<", f">{target}<").replace(f"'{source}'", f"'{target}'")
            expected = expected.replace(f'"{source}"', f'"{target}"')
        else:
            source, target, written = next(paragraphs)
            link = next((i for i in block.inlines if i.open.startswith("<a ")), None)
            inner[block.id] = target.format(open=link.open, close=link.close) if link else target
            assert expected.count(source) == 1, source
            expected = expected.replace(source, written)
    assert next(paragraphs, None) is None
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang="zh-TW")
    expected = (
        expected.replace('<HTML lang="en">', '<HTML lang="zh-TW">')
        .replace('content="Abe &amp; Obama met in Okinawa."', 'content="安倍 &amp; 奥巴马"')
        .replace('"headline": "安倍访问冲绳", "inLanguage": "en"', '"headline": "安倍访问冲绳", "inLanguage": "zh-TW"')
    )
    assert out == expected


def test_text_in_translations_is_escaped_where_it_lands() -> None:
    """`&` and `<` in a translation are text, in an element's content and in an attribute (in the
    quotes the source has there), and read back as written."""
    page = "<p class='a'>Abe &amp; Obama</p>\n<img alt='Abe' src=a.png>\n<abbr title=SCC>SCC</abbr>"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH, BlockKind.IMAGE_ALT, BlockKind.PARAGRAPH, BlockKind.LABEL]
    said = "AT&T <3 \"quoted\" & 'single'"
    inner = {b.id: html.escape(said) for b in blocks}
    inner[blocks[2].id] = blocks[2].inlines[0].open + "委员会" + blocks[2].inlines[0].close
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept)
    assert out.startswith("<p class='a'>AT&amp;T &lt;3 \"quoted\" &amp; 'single'</p>\n<img alt='AT&amp;T &lt;3")
    soup = BeautifulSoup(out, "html.parser")
    assert soup.p is not None and soup.p.get_text() == said
    assert soup.img is not None and soup.img["alt"] == said and soup.img["src"] == "a.png"
    assert soup.abbr is not None and soup.abbr["title"] == said and soup.abbr.get_text() == "委员会"


def test_a_stored_document_renders_with_the_page_as_sent(engines: dict[str, Engine]) -> None:
    """A document stored by an earlier version (its blocks through the database's JSON, and without
    the blocks later versions added: title, meta, label and image blocks) renders: its paragraphs
    translated, everything else as sent."""
    blocks, _, _ = parse_blocks(Article(body=ARTICLE, format=SourceFormat.HTML))
    old = [b for b in blocks if b.kind in (BlockKind.PARAGRAPH, BlockKind.HEADING)]
    doc = parse(Article(body=ARTICLE, format=SourceFormat.HTML), engines["marian"], PipelineSettings())
    stored = document_from_json(document_to_json(doc))  # its segments are rows of their own
    stored = type(stored)(stored.format, tuple(old), stored.segments, tail=stored.tail, html=stored.html)
    segments = [
        AlignedSegment(s.id, s.block_id, s.text, s.ws_before, {"zh-TW": "译"}, (), ())
        for s in doc.segments
        if any(b.id == s.block_id for b in old)
    ]
    out = assemble_text(stored, segments, "zh-TW")
    assert "<H1>译</H1>" in out and "<th>译</th>" in out
    assert out.startswith('<!DOCTYPE html>\n<HTML lang="zh-TW">\n<head>\n  <meta charset="utf-8">\n')
    assert "<title>Abe visits Okinawa &mdash; The Daily</title>" in out  # no title block then
    assert '<img src="abe.jpg" alt="Abe at the base" width=640>' in out
    assert '<blockquote class="twitter-tweet"><p lang="en">A tweet&nbsp;&mdash; here</p>&mdash;' in out


@pytest.fixture(scope="module")
def marian(engines: dict[str, Engine]) -> Pipeline:
    return build_pipeline(Settings(device="cpu"), engines["marian"])


def test_through_the_pipeline_what_is_not_text_comes_back_as_written(marian: Pipeline, news: Glossary) -> None:
    """The real pipeline on the tiny model: whatever it writes for the texts, the rest of the page is
    the page as sent."""
    doc = marian.translate(Article(ARTICLE, SourceFormat.HTML), targets=("zh-TW",), glossary=news)
    out = doc.full_text["zh-TW"]
    assert out.startswith('<!DOCTYPE html>\n<HTML lang="zh-TW">\n<head>\n  <meta charset="utf-8">\n  <title>')
    for kept in (
        "<BODY>\n<!-- cms:article id=4711 -->\n<article class='story' data-id=4711>\n  <H1>",
        '<p class="lede">\n    ',
        '</figcaption>\n  </figure>\n  <video controls autoplay muted src="clip.mp4"></video>\n  <table>\n    <tr><th>',
        '</td></tr>\n  </table>\n  <input type="checkbox" checked disabled>\n'
        '  <blockquote class="twitter-tweet"><p lang="en">A tweet&nbsp;&mdash; here</p>&mdash; Someone (@someone)'
        "</blockquote>\n  <div>",
        "</p>\n  <hr>\n</article>\n</BODY>\n</HTML>\n",
    ):
        assert kept in out


def test_a_tree_the_tokens_do_not_match_has_no_spans() -> None:
    """Where BeautifulSoup's tree and the page's tokens disagree, the page is written anew from the
    tree (as before) rather than spliced wrongly."""
    from service.formats.html import _spans  # here: the other tests run on code without it

    assert _spans(BeautifulSoup("<p>a</p>", "html.parser"), "<div>a</div>") is None
    assert _spans(BeautifulSoup("<p>a</p>", "html.parser"), "<p>a</p>") is not None


def test_units_inside_one_another_are_written_anew_from_the_tree() -> None:
    """A stray <title> inside a paragraph is a unit inside another's place: such a page is written
    from BeautifulSoup's tree, as before (the paragraph's translation, which carries the <title>,
    takes its place), not spliced into itself."""
    page = "<p class='a'>Text <title>Tab</title> more.</p><hr>"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH, BlockKind.TITLE]
    inner = {blocks[0].id: "文<title>Tab</title>字", blocks[1].id: "标签"}
    assert render(SourceFormat.HTML, tuple(blocks), inner, page=kept) == '<p class="a">文<title>Tab</title>字</p><hr/>'
