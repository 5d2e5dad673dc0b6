"""Markup newsrooms use that used to stay English or lose its form: an HTML page's <noscript>
fallbacks (a lazy-loaded image's, a chart's paragraph), Markdown strikethrough (`~~text~~`, a
correction shown as struck), and a Markdown footnote's definition, which keeps its space."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from glossary.terms import Glossary
from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, BlockKind, SourceFormat, markdown_reader, plain_text
from service.formats import parse_blocks, render
from service.pipeline import Pipeline
from tests.test_newsroom_markup import with_markup


@pytest.fixture(scope="module")
def marian(engines: dict[str, Engine]) -> Pipeline:
    return build_pipeline(Settings(device="cpu"), engines["marian"])


# --- HTML: <noscript> --------------------------------------------------------------------------

NOSCRIPT_PAGE = (
    '<html lang="en"><body><article><p>Abe visited the base.</p>'
    '<figure><img class="lazy" data-src="a.jpg" alt="Abe at the base">'
    '<noscript><img src="a.jpg" alt="Abe at the base"></noscript><figcaption>Abe.</figcaption></figure>'
    '<div class="chart"><noscript><p lang="en">Turn on JavaScript to see the chart.</p></noscript></div>'
    '<div><noscript>Scripts are off: <a href="/t" title="The table">read the table</a>.</noscript></div>'
    '<p>He left.<noscript><img src="//px.example/t.gif" width="1" height="1"></noscript></p>'
    '<noscript><iframe src="https://tags.example/ns" height="0" width="0"></iframe></noscript>'
    "</article></body></html>"
)


def test_noscript_prose_is_translated_and_a_tracking_pixel_left_alone() -> None:
    blocks, _, kept = parse_blocks(Article(body=NOSCRIPT_PAGE, format=SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.PARAGRAPH, "Abe visited the base."),
        (BlockKind.IMAGE_ALT, "Abe at the base"),
        (BlockKind.IMAGE_ALT, "Abe at the base"),  # the fallback image's
        (BlockKind.PARAGRAPH, "Abe."),
        (BlockKind.PARAGRAPH, "Turn on JavaScript to see the chart."),
        (BlockKind.PARAGRAPH, "Scripts are off: read the table."),
        (BlockKind.LABEL, "The table"),
        (BlockKind.PARAGRAPH, "He left."),
    ]
    # A <noscript> inside a paragraph's text stays markup, carried as sent (a pixel has no text).
    assert blocks[-1].inlines[0].open.startswith("<noscript><img")
    inner = {b.id: f"译{b.id}" if not b.inlines else with_markup(b).replace(b.text, f"译{b.id}") for b in blocks}
    inner[blocks[5].id] = f"脚本已关闭：{blocks[5].inlines[0].open}阅读表格{blocks[5].inlines[0].close}。"
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang="zh-Hans")
    soup = BeautifulSoup(out, "html.parser")
    assert [img.get("alt") for img in soup.find_all("img")] == ["译b1", "译b2", None]
    assert soup.find("div", class_="chart").noscript.p.get_text() == "译b4"
    assert soup.find("div", class_="chart").noscript.p["lang"] == "zh-Hans"  # it said English: now Chinese
    assert soup.find("a", href="/t").get_text() == "阅读表格" and soup.find("a", href="/t")["title"] == "译b6"
    assert '<noscript><img height="1" src="//px.example/t.gif" width="1"/></noscript>' in out
    assert '<noscript><iframe src="https://tags.example/ns" height="0" width="0"></iframe></noscript>' in out
    assert "Turn on JavaScript" not in out and "Abe at the base" not in out


def test_noscript_content_is_numbered_after_what_stored_pages_name() -> None:
    """Pages stored before <noscript> prose was translated name their blocks, images and labels by
    number: what a <noscript> holds comes after, so their translations stay in their places."""
    page = (
        "<html><head><title>Page</title></head><body>"
        "<div><noscript><p>Fallback.</p><img src='f.png' alt='Fallback chart'></noscript></div>"
        "<p>Body <img src='b.png' alt='Body chart'>.</p><div>Loose text.</div></body></html>"
    )
    blocks, _, _ = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text, b.element) for b in blocks] == [
        (BlockKind.TITLE, "Page", 2),
        (BlockKind.PARAGRAPH, "Fallback.", 3),  # after the paragraph (0), the loose text (1) and <title> (2)
        (BlockKind.IMAGE_ALT, "Fallback chart", 1),  # after the body's image (0)
        (BlockKind.PARAGRAPH, "Body .", 0),
        (BlockKind.IMAGE_ALT, "Body chart", 0),
        (BlockKind.PARAGRAPH, "Loose text.", 1),
    ]


def test_noscript_prose_through_the_pipeline(marian: Pipeline, news: Glossary) -> None:
    doc = marian.translate(Article(NOSCRIPT_PAGE, SourceFormat.HTML), targets=("zh-Hans",), glossary=news)
    out = doc.full_text["zh-Hans"]
    soup = BeautifulSoup(out, "html.parser")
    assert [t.name for t in soup.find_all(True)] == [
        t.name for t in BeautifulSoup(NOSCRIPT_PAGE, "html.parser").find_all(True)
    ]
    assert "Turn on JavaScript" not in out and "Scripts are off" not in out and "The table" not in out
    assert '<noscript><img height="1" src="//px.example/t.gif" width="1"/></noscript>' in out


# --- Markdown: strikethrough -------------------------------------------------------------------


def test_markdown_strikethrough_is_markup_around_translated_text() -> None:
    page = "The ~~minister~~ deputy minister said ~~no~~.\n\n- ~~Item~~ gone\n"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN))
    para, item = blocks
    assert para.text == "The minister deputy minister said no." and item.text == "Item gone"
    assert [(para.text[i.start : i.end], i.open, i.close, i.verbatim) for i in para.inlines] == [
        ("minister", "~~", "~~", False),
        ("no", "~~", "~~", False),
    ]
    assert render(SourceFormat.MARKDOWN, tuple(blocks), {b.id: with_markup(b) for b in blocks}, page=kept) == page
    out = render(
        SourceFormat.MARKDOWN, tuple(blocks), {para.id: "~~部长~~副部长说~~不~~。", item.id: "~~项~~没了"}, page=kept
    )
    html = BeautifulSoup(markdown_reader().render(out), "html.parser")
    assert [s.get_text() for s in html.find_all("s")] == ["部长", "不", "项"]
    assert plain_text("~~部长~~副部长", SourceFormat.MARKDOWN) == "部长副部长"


def test_markdown_strikethrough_through_the_pipeline(marian: Pipeline, news: Glossary) -> None:
    page = "Abe ~~resigned~~ stayed in Okinawa on Thursday.\n"
    doc = marian.translate(Article(page, SourceFormat.MARKDOWN), targets=("zh-Hans", "zh-TW"), glossary=news)
    for variant in ("zh-Hans", "zh-TW"):
        out = doc.full_text[variant]
        struck = BeautifulSoup(markdown_reader().render(out), "html.parser").find_all("s")
        assert len(struck) == 1 and "resigned" not in out and "~~" in out, out


# --- Markdown: a footnote's definition ---------------------------------------------------------


def test_a_footnote_definition_keeps_the_space_after_its_marker() -> None:
    page = "A note.[^1]\n\n[^1]: The footnote.\n\n> [^q]:\tIn a quote.\n"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN))
    assert [b.text for b in blocks] == ["A note.[^1]", "[^1]: The footnote.", "[^q]:\tIn a quote."]
    # The model writes the Chinese against the marker; the page has the source's space back.
    inner = {blocks[0].id: "注。[^1]", blocks[1].id: "[^1]:脚注。", blocks[2].id: "[^q]:引文。"}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)
    assert out == "注。[^1]\n\n[^1]: 脚注。\n\n> [^q]:\t引文。\n"
    # As it is where the translation has it already, and in a document stored without its page.
    inner[blocks[1].id] = "[^1]: 脚注。"
    assert "\n[^1]: 脚注。\n" in render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)
    inner[blocks[1].id] = "[^1]:脚注。"
    assert render(SourceFormat.MARKDOWN, tuple(blocks), inner).startswith("注。[^1]\n\n[^1]: 脚注。\n\n")


def test_a_footnote_definition_through_the_pipeline(marian: Pipeline, news: Glossary) -> None:
    page = "Abe spoke.[^1]\n\n[^1]: Abe said so on Thursday.\n"
    doc = marian.translate(Article(page, SourceFormat.MARKDOWN), targets=("zh-Hans",), glossary=news)
    lines = doc.full_text["zh-Hans"].split("\n")
    (definition,) = [line for line in lines if line.startswith("[^1]:")]
    assert definition.startswith("[^1]: ") and not definition.startswith("[^1]:  "), definition
