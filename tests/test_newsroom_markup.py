"""Pages as newsrooms write them: a Markdown CMS's front matter, reference links, rules, tables and
footnotes; an HTML page's social media embeds, structured data and labels. Each comes back in every
variant with its structure, and with its reader-visible texts translated unless left as sent."""

from __future__ import annotations

import json
import re

import pytest
from bs4 import BeautifulSoup, Tag
from markdown_it import MarkdownIt

from glossary.terms import Glossary, Term
from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, Block, BlockKind, SourceFormat, plain_text
from service.formats import parse_blocks, render
from service.pipeline import Pipeline
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def marian(engines: dict[str, Engine]) -> Pipeline:
    return build_pipeline(Settings(device="cpu"), engines["marian"])


def with_markup(block: Block) -> str:
    """The block's text with its inline markup put back: its source, untranslated."""
    events = sorted(
        [(i.end, 0, -n, i.close) for n, i in enumerate(block.inlines)]
        + [(i.start, 1, n, i.open) for n, i in enumerate(block.inlines)]
    )
    out, at = [], 0
    for pos, _, _, markup in events:
        out += [block.text[at:pos], markup]
        at = pos
    return "".join([*out, block.text[at:]])


def gfm(markdown: str) -> str:
    """A Markdown text as a CMS with tables and strikethrough renders it."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


# --- Markdown ----------------------------------------------------------------------------------

MD_PAGE = """---
title: "Abe visits Okinawa"
tags: [japan, us]
---

Abe in Okinawa
==============

See [the report][rep] and ![Abe at the base][img] today.

* * *

> Abe said:
>
> - Futenma will move.
>
> - Okinawa waits.

| Party | Share |
|:--|--:|
| Liberal Democrats | 45.2% |
| Others `a\\|b` |  |

A note.[^1]

<!-- editor: check the figures -->

[^1]: The footnote.

[rep]: https://example.com/r "The Report"
[img]: abe.png "Abe"
"""


def test_an_untranslated_markdown_page_comes_back_as_sent() -> None:
    """Front matter, a setext heading, a rule, a loose list, a table, a comment and reference
    definitions are the page's own: with every block's text as it was, the page is the page."""
    blocks, _, page = parse_blocks(Article(body=MD_PAGE, format=SourceFormat.MARKDOWN))
    inner = {b.id: with_markup(b) for b in blocks}
    assert render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=page) == MD_PAGE
    crlf = MD_PAGE.replace("\n", "\r\n")
    blocks, _, page = parse_blocks(Article(body=crlf, format=SourceFormat.MARKDOWN))
    assert render(SourceFormat.MARKDOWN, tuple(blocks), {b.id: with_markup(b) for b in blocks}, page=page) == crlf


def test_a_translated_markdown_page_keeps_everything_but_its_texts() -> None:
    blocks, _, page = parse_blocks(Article(body=MD_PAGE, format=SourceFormat.MARKDOWN, title="Abe"))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.TITLE, "Abe"),
        (BlockKind.HEADING, "Abe in Okinawa"),
        (BlockKind.PARAGRAPH, "See the report and ![Abe at the base][img] today."),
        (BlockKind.IMAGE_ALT, "Abe at the base"),  # its title is its definition's, translated there
        (BlockKind.QUOTE, "Abe said:"),
        (BlockKind.LIST_ITEM, "Futenma will move."),
        (BlockKind.LIST_ITEM, "Okinawa waits."),
        (BlockKind.PARAGRAPH, "Party"),
        (BlockKind.PARAGRAPH, "Share"),
        (BlockKind.PARAGRAPH, "Liberal Democrats"),
        (BlockKind.PARAGRAPH, "45.2%"),
        (BlockKind.PARAGRAPH, "Others a\\|b"),
        (BlockKind.PARAGRAPH, "A note.[^1]"),
        (BlockKind.PARAGRAPH, "<!-- editor: check the figures -->"),
        (BlockKind.PARAGRAPH, "[^1]: The footnote."),
        (BlockKind.LABEL, "The Report"),  # the definitions' titles, a reference link's and image's
        (BlockKind.LABEL, "Abe"),
    ]
    link = blocks[2].inlines[0]
    assert (link.open, link.close) == ("[", "][rep]")
    # A footnote's reference and definition marker are markup, as written.
    assert [(i.verbatim, blocks[12].text[i.start : i.end]) for i in blocks[12].inlines] == [(True, "[^1]")]
    assert [(i.verbatim, blocks[14].text[i.start : i.end]) for i in blocks[14].inlines] == [(True, "[^1]:")]
    inner = {b.id: f"译{b.id}" for b in blocks}
    inner[blocks[2].id] = "今天见[报告][rep]和![Abe at the base][img]。"
    inner[blocks[11].id] = "其他`a\\|b`"
    inner[blocks[12].id] = "注。[^1]"
    inner[blocks[13].id] = blocks[13].text
    inner[blocks[14].id] = "[^1]:脚注 a\\|b"
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=page)
    assert out == (
        '---\ntitle: "Abe visits Okinawa"\ntags: [japan, us]\n---\n# 译b0\n\n'
        "译b1\n==============\n\n"
        "今天见[报告][rep]和![译b3][img]。\n\n"
        "* * *\n\n"
        "> 译b4\n>\n> - 译b5\n>\n> - 译b6\n\n"
        "| 译b7 | 译b8 |\n|:--|--:|\n| 译b9 | 译b10 |\n| 其他`a\\|b` |  |\n\n"
        "注。[^1]\n\n<!-- editor: check the figures -->\n\n[^1]: 脚注 a\\|b\n\n"
        '[rep]: https://example.com/r "译b15"\n[img]: abe.png "译b16"\n'
    )
    html = BeautifulSoup(gfm(out), "html.parser")
    link_tag, image = html.find("a", href="https://example.com/r"), html.find("img", src="abe.png")
    assert isinstance(link_tag, Tag) and link_tag.get_text() == "报告" and link_tag["title"] == "译b15"
    assert isinstance(image, Tag) and (image["alt"], image["title"]) == ("译b3", "译b16")
    assert [c.get_text() for c in html.find_all("td")] == ["译b9", "译b10", "其他a|b", ""]


def test_markdown_shortcut_and_collapsed_references_name_their_definition() -> None:
    """`[Okinawa]` and `[Futenma][]` name their definition by their text, which is translated: they
    come back as `[冲绳][Okinawa]`, and the page renders as it did."""
    page = "On [Okinawa] and [Futenma][], see [the map][my\nmap].\n\n[okinawa]: /o\n[Futenma]: </f> 'F'\n[My Map]: /m\n"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN))
    block, title = blocks
    assert [i.close for i in block.inlines] == ["][Okinawa]", "][Futenma]", "][my map]"]
    assert (title.kind, title.text) == (BlockKind.LABEL, "F")
    inner = {block.id: with_markup(block), title.id: title.text}
    assert gfm(render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)) == gfm(page)
    inner = {block.id: "在[冲绳][Okinawa]和[普天间][Futenma]。", title.id: "福"}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)
    links = BeautifulSoup(gfm(out), "html.parser").find_all("a")
    assert [(a["href"], a.get_text(), a.get("title")) for a in links] == [("/o", "冲绳", None), ("/f", "普天间", "福")]
    # A target's reference link is a link: its text is what the translation memory keeps.
    assert (
        plain_text("在[冲绳][Okinawa]和[普天间][Futenma]，[sic]。", SourceFormat.MARKDOWN) == "在冲绳和普天间，[sic]。"
    )


def test_markdown_inline_links_keep_their_address_and_title_as_written() -> None:
    page = "Read [the memo](https://例え.jp/a%20b 'He said \"no\"') now.\n"
    (block, title), _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN))
    assert block.inlines[0].close == "](https://例え.jp/a%20b 'He said \"no\"')"
    assert (title.kind, title.text) == (BlockKind.LABEL, 'He said "no"')  # translated, see test_formats_titles
    out = render(SourceFormat.MARKDOWN, (block, title), {block.id: with_markup(block), title.id: title.text}, page=kept)
    assert out == page


def test_front_matter_is_left_as_sent_and_the_fields_follow_it() -> None:
    page = "---\ntitle: Abe\n---\nBody text.\n"
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN, byline="By Abe"))
    assert [(b.kind, b.text) for b in blocks] == [(BlockKind.BYLINE, "By Abe"), (BlockKind.PARAGRAPH, "Body text.")]
    out = render(SourceFormat.MARKDOWN, tuple(blocks), {b.id: f"译{b.id}" for b in blocks}, page=kept)
    assert out == "---\ntitle: Abe\n---\n译b0\n\n译b1\n"


def test_a_markdown_page_through_the_pipeline_keeps_its_structure(marian: Pipeline, news: Glossary) -> None:
    doc = marian.translate(Article(MD_PAGE, SourceFormat.MARKDOWN), targets=("zh-Hans", "zh-TW"), glossary=news)
    source = BeautifulSoup(gfm(MD_PAGE), "html.parser")
    for variant in ("zh-Hans", "zh-TW"):
        out = doc.full_text[variant]
        assert out.startswith('---\ntitle: "Abe visits Okinawa"\ntags: [japan, us]\n---\n\n')
        # The definitions stay where they are, their titles translated (the link's and the image's).
        assert re.search(r'\n\[rep\]: https://example\.com/r "[^"\n]+"\n\[img\]: abe\.png "[^"\n]+"\n\Z', out)
        assert "The Report" not in out
        translated = BeautifulSoup(gfm(out), "html.parser")
        assert [t.name for t in translated.find_all(True)] == [t.name for t in source.find_all(True)]
        assert "Futenma" not in out and "Okinawa waits" not in out and "Liberal Democrats" not in out
        assert "][rep]" in out and "](https://example.com/r" not in out


def test_a_translated_table_cell_stays_one_cell(marian: Pipeline) -> None:
    """A `|` in a translation is text, not a cell's border."""
    pipes = Glossary("pipes", (Term("acme", ("Acme Corp",), {"zh-Hans": "甲|乙"}),))
    page = "| Company | Note |\n|---|---|\n| Acme Corp | `x\\|y` |\n"
    out = marian.translate(Article(page, SourceFormat.MARKDOWN), targets=("zh-Hans",), glossary=pipes)
    cells = BeautifulSoup(gfm(out.full_text["zh-Hans"]), "html.parser").find_all("td")
    assert [c.get_text() for c in cells] == ["甲|乙", "x|y"]


# --- HTML: comments and embeds -----------------------------------------------------------------


def test_a_comment_inside_a_paragraph_is_kept_as_markup(marian: Pipeline, news: Glossary) -> None:
    page = "<p>Abe met Obama.<!-- legal: check --> They talked.</p><!-- end -->"
    (block,), _, _ = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(i.open, i.verbatim) for i in block.inlines] == [("<!-- legal: check -->", True)]
    doc = marian.translate(Article(page, SourceFormat.HTML), targets=("zh-Hans", "zh-TW"), glossary=news)
    for out in doc.full_text.values():
        assert "<!-- legal: check -->" in out and out.endswith("</p><!-- end -->")


TWEET = (
    '<blockquote class="twitter-tweet"><p dir="ltr" lang="en">Great day in Okinawa! '
    '<img alt="Abe waves" src="e.png"/></p>— Shinzo Abe (@AbeShinzo) '
    '<a href="https://twitter.com/AbeShinzo/status/1">November 7, 2013</a></blockquote>'
)


def test_social_media_embeds_are_left_as_sent() -> None:
    """A quoted post is a quote in its own language, which the platform's script replaces: its text,
    images and language stay; the page around it is translated as ever."""
    post = '<div class="instagram-media"><p>Post.</p></div>'
    page = f'<html lang="en"><body><p>Abe wrote:</p>{TWEET}{post}</body></html>'
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [b.text for b in blocks] == ["Abe wrote:"]
    out = render(SourceFormat.HTML, tuple(blocks), {blocks[0].id: "安倍写道："}, page=kept, lang="zh-TW")
    assert out == f'<html lang="zh-TW"><body><p>安倍写道：</p>{TWEET}{post}</body></html>'


# --- HTML: structured data ---------------------------------------------------------------------

LD = """{
  "@context": "https://schema.org",
  "@type": "NewsArticle",
  "headline": "Abe visits \\u00c9lys\\u00e9e",
  "alternativeHeadline": "A \\"short\\" visit",
  "description": "Abe met Obama.",
  "inLanguage": "en-US",
  "author": {"@type": "Person", "name": "Stephen Harner", "description": "Reporter"},
  "image": ["a.jpg"]
}"""
LD_PAGE = (
    '<html><head><meta name="description" content="Abe met.">'
    f'<script type="application/ld+json">{LD}</script>'
    '<script type="application/ld+json">{"@graph": [{"@type": ["WebPage"], "description": "Page"}]}</script>'
    '<script type="application/ld+json">{"headline": "Broken",</script>'
    "</head><body><p>Para.</p></body></html>"
)


def test_structured_data_texts_are_meta_blocks_written_back_into_valid_json() -> None:
    blocks, _, kept = parse_blocks(Article(body=LD_PAGE, format=SourceFormat.HTML))
    # Numbered after the <meta>s, where their script stands; an author's description is no article's.
    assert [(b.kind, b.text, b.element) for b in blocks] == [
        (BlockKind.META, "Abe met.", 0),
        (BlockKind.META, "Abe visits Élysée", 1),
        (BlockKind.META, 'A "short" visit', 2),
        (BlockKind.META, "Abe met Obama.", 3),
        (BlockKind.META, "Page", 4),
        (BlockKind.PARAGRAPH, "Para.", 0),
    ]
    inner = {b.id: f"译&lt;/script&gt;{b.id}" for b in blocks}
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang="zh-TW")
    scripts = [s.string for s in BeautifulSoup(out, "html.parser").find_all("script")]
    assert scripts[0] == (
        LD.replace("Abe visits \\u00c9lys\\u00e9e", "译\\u003c/script>b1")
        .replace('A \\"short\\" visit', "译\\u003c/script>b2")
        .replace("Abe met Obama.", "译\\u003c/script>b3")
        .replace("en-US", "zh-TW")
    )
    assert json.loads(scripts[0])["headline"] == "译</script>b1"
    assert json.loads(scripts[1]) == {"@graph": [{"@type": ["WebPage"], "description": "译</script>b4"}]}
    assert scripts[2] == '{"headline": "Broken",'  # not JSON: left as sent
    # Stored before: no blocks for the structured data, which keeps its texts (and gets the language).
    stored = tuple(b for b in blocks if b.element == 0)
    kept_ld = json.loads(
        BeautifulSoup(render(SourceFormat.HTML, stored, inner, page=kept), "html.parser").script.string
    )
    assert (kept_ld["headline"], kept_ld["inLanguage"]) == ("Abe visits Élysée", "en-US")


# --- HTML: labels ------------------------------------------------------------------------------


def test_labels_and_abbreviations_are_translated_into_their_attributes() -> None:
    """An `aria-label` is what a screen reader says, an <abbr>'s title what a reader sees on hover:
    label blocks after the block that holds (or is) their element, written back into the attribute,
    in the page or in that block's translation; a <nav>'s are the site's, left as sent."""
    page = (
        '<nav aria-label="Main"><a href="/" aria-label="Home">H</a></nav>'
        '<p>The <abbr title="Security Consultative Committee">SCC</abbr> met. '
        '<a href="/share" aria-label="Share on X">Share</a></p>'
        '<figure><button aria-label="Close">x</button></figure><section aria-label="Related"><p>More.</p></section>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text, b.element) for b in blocks] == [
        (BlockKind.PARAGRAPH, "The SCC met. Share", 0),
        (BlockKind.LABEL, "Security Consultative Committee", 0),
        (BlockKind.LABEL, "Share on X", 1),
        (BlockKind.PARAGRAPH, "x", 2),
        (BlockKind.LABEL, "Close", 2),
        (BlockKind.LABEL, "Related", 3),
        (BlockKind.PARAGRAPH, "More.", 1),
    ]
    abbr, link = blocks[0].inlines
    inner = {b.id: f"译{b.id}&amp;" for b in blocks}
    inner[blocks[0].id] = f"{abbr.open}委员会{abbr.close}开会。{link.open}分享{link.close}"
    (button,) = blocks[3].inlines  # loose text: its translation carries the <button>
    inner[blocks[3].id] = f"{button.open}关{button.close}"
    out = render(SourceFormat.HTML, tuple(blocks), inner, page=kept)
    assert out == (
        '<nav aria-label="Main"><a href="/" aria-label="Home">H</a></nav>'
        '<p><abbr title="译b1&amp;">委员会</abbr>开会。<a aria-label="译b2&amp;" href="/share">分享</a></p>'
        '<figure><button aria-label="译b4&amp;">关</button></figure>'
        '<section aria-label="译b5&amp;"><p>译b6&amp;</p></section>'
    )


def test_an_api_response_has_label_and_structured_data_blocks(server: LiveServer) -> None:
    page = (
        '<html><head><script type="application/ld+json">{"@type": "NewsArticle", "headline": "Futenma"}</script>'
        '</head><body><p>The <abbr title="Okinawa">OKI</abbr> base.</p></body></html>'
    )
    response = server.client.post("/v1/translate", json={"text": page, "format": "html", "targets": ["zh-TW"]})
    assert response.status_code == 200, response.text
    data = response.json()
    assert [b["kind"] for b in data["blocks"]] == ["meta", "paragraph", "label"]
    out = BeautifulSoup(data["full_text"]["zh-TW"], "html.parser")
    assert json.loads(out.script.string)["headline"] == "普天間"
    assert out.abbr["title"] == "沖繩"


def test_a_translator_may_keep_reference_images_and_footnote_markers(
    database_url: str, tiny_dirs: dict, engines: dict[str, Engine]
) -> None:
    # The review check refused what the page's own syntax now keeps: a footnote definition's `[^1]:`
    # at the start of its segment, and a reference image `![Abe][img]` taken over as written.
    from tests.conftest import serve
    from tests.test_jobs import wait_for

    body = (
        "See the [report][rep] and ![Abe][img] now.\n\n"
        "[^1]: The footnote text.\n\n"
        '[rep]: https://example.org/r "T"\n[img]: /a.jpg\n'
    )
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as live:
        job = live.client.post("/v1/articles", json={"body": body, "format": "markdown", "targets": ["zh-Hans"]})
        assert job.status_code == 202, job.text
        done = wait_for(live.client, job.json()["id"], "translated")
        segments = {s["source"]: s for b in done["document"]["blocks"] for s in b["segments"]}
        edits = {
            "See the report and ![Abe][img] now.": "见[报告][rep]和![Abe][img]。",
            "[^1]: The footnote text.": "[^1]: 脚注。",
        }
        for source, target in edits.items():
            seg = segments[source]
            r = live.client.patch(
                f"/v1/articles/{done['id']}/segments/{seg['id']}",
                json={"variant": "zh-Hans", "text": target, "version": seg["version"]},
            )
            assert r.status_code == 200, r.text
        # Still refused: a reference image or link the source does not have.
        seg = segments["See the report and ![Abe][img] now."]
        for text in ("见[报告][rep]和![Abe][other]。", "见[报告][elsewhere]和![Abe][img]。"):
            r = live.client.patch(
                f"/v1/articles/{done['id']}/segments/{seg['id']}",
                json={"variant": "zh-Hans", "text": text, "version": seg["version"] + 1},
            )
            assert r.status_code == 422 and r.json()["error"]["code"] == "markup_not_allowed", r.text


def test_an_embedded_frame_is_named_in_chinese_and_so_is_a_link_title() -> None:
    """An <iframe>'s title is what a screen reader announces for the video or map (WCAG asks every
    frame for one), a link's title the tooltip a reader sees: label blocks, written back."""
    page = (
        '<p>Watch the <a href="/b" title="Video page">briefing</a>.</p><figure><iframe src="https://example.org/v"'
        ' title="Briefing on the Futenma base"></iframe></figure>'
    )
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.PARAGRAPH, "Watch the briefing."),
        (BlockKind.LABEL, "Video page"),
        (BlockKind.LABEL, "Briefing on the Futenma base"),
    ]
    (link,) = blocks[0].inlines
    inner = {
        blocks[0].id: f"观看{link.open}简报{link.close}。",
        blocks[1].id: "视频页",
        blocks[2].id: "关于普天间基地的简报",
    }
    out = BeautifulSoup(render(SourceFormat.HTML, tuple(blocks), inner, page=kept), "html.parser")
    assert out.iframe["title"] == "关于普天间基地的简报"
    assert out.a["title"] == "视频页"
