"""Titles a reader sees as tooltips: an HTML element's `title` (a link's, a term's, a note's) and a
Markdown link's, image's or reference definition's title are label blocks, translated and written
back in their own syntax; titles no reader sees (a stylesheet's, a feed's) are left as sent."""

from __future__ import annotations

from bs4 import BeautifulSoup
from markdown_it.token import Token

from models.engine import Engine
from service.config import Settings
from service.documents import Article, Block, BlockKind, SourceFormat, markdown_escape, markdown_reader
from service.formats import parse_blocks, render
from tests.test_newsroom_markup import with_markup

# --- HTML --------------------------------------------------------------------------------------

HTML_PAGE = (
    '<html lang="en"><head><title>Futenma</title><link rel="alternate" type="application/rss+xml" title="News feed"'
    ' href="/feed"><style title="Compact">p { margin: 0 }</style><meta name="author" content="Desk"></head><body>'
    '<nav><a href="/" title="Front page">Home</a></nav>'
    '<p>Read <a href="/r" title="The full report">the report</a> on the '
    '<span title="Japan Self-Defense Forces">JSDF</span>.<sup title="Source: Kyodo">1</sup></p>'
    '<figure><img src="a.jpg" alt="Abe at the base" title="Photo: Kyodo"><figcaption>Abe.</figcaption></figure>'
    '<link rel="stylesheet" title="Print" href="/print.css"><pre><span title="A log line">x</span></pre>'
    "</body></html>"
)


def test_html_tooltips_are_translated_as_labels_and_other_titles_stay() -> None:
    blocks, _, kept = parse_blocks(Article(body=HTML_PAGE, format=SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.TITLE, "Futenma"),
        (BlockKind.PARAGRAPH, "Read the report on the JSDF.1"),
        (BlockKind.LABEL, "The full report"),
        (BlockKind.LABEL, "Japan Self-Defense Forces"),
        (BlockKind.LABEL, "Source: Kyodo"),
        (BlockKind.IMAGE_ALT, "Abe at the base"),  # an image's title is an image text, as before
        (BlockKind.IMAGE_TITLE, "Photo: Kyodo"),
        (BlockKind.PARAGRAPH, "Abe."),
    ]
    inner = {b.id: f"译{b.id}&amp;" for b in blocks}
    inner[blocks[1].id] = with_markup(blocks[1])  # the text's own tags, each carrying its English title
    out = BeautifulSoup(render(SourceFormat.HTML, tuple(blocks), inner, page=kept, lang="zh-Hans"), "html.parser")
    assert out.find("a", href="/r")["title"] == "译b2&"
    assert out.find("span", string="JSDF")["title"] == "译b3&"
    assert out.sup["title"] == "译b4&"
    assert (out.img["alt"], out.img["title"]) == ("译b5&", "译b6&")
    # What no reader of the article sees as a tooltip, and the site's chrome, stay as sent.
    assert [link["title"] for link in out.find_all("link")] == ["News feed", "Print"]
    assert out.style["title"] == "Compact"
    assert out.nav.a["title"] == "Front page"
    assert out.pre.span["title"] == "A log line"


def test_html_two_links_with_the_same_tag_get_their_own_titles() -> None:
    page = '<p><a href="/x" title="More">One</a> and <a href="/x" title="More">two</a>.</p>'
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.PARAGRAPH, "One and two."),
        (BlockKind.LABEL, "More"),
        (BlockKind.LABEL, "More"),
    ]
    inner = {blocks[0].id: with_markup(blocks[0]), blocks[1].id: "更多一", blocks[2].id: "更多二"}
    out = BeautifulSoup(render(SourceFormat.HTML, tuple(blocks), inner, page=kept), "html.parser")
    assert [a["title"] for a in out.find_all("a")] == ["更多一", "更多二"]


# --- Markdown ----------------------------------------------------------------------------------

MD_PAGE = """Read [the memo](https://example.org/m "The memo, in full") and [the report][rep].

![Abe][photo] at the base.

| Party | Link |
|--|--|
| LDP | [site](https://ldp.jp 'Party a\\|b site') |

> [quoted]: /q
> (A quoted
> definition)

[rep]: https://example.org/r "The report"
[photo]: abe.jpg 'Photo by Kyodo'
[rep]: https://example.org/other "Never shown"
"""


def titles(markdown: str) -> list[tuple[str, str]]:
    """Each link's and image's address and title, as the articles' Markdown reader reads the page."""
    found: list[tuple[str, str]] = []

    def walk(tokens: list[Token]) -> None:
        for tok in tokens:
            if tok.type in ("link_open", "image"):
                found.append((str(tok.attrs.get("href") or tok.attrs.get("src")), str(tok.attrs.get("title", ""))))
            walk(tok.children or [])

    walk(markdown_reader().parse(markdown))
    return found


def labels(blocks: list[Block]) -> list[tuple[str, int]]:
    return [(b.text, b.element) for b in blocks if b.kind is BlockKind.LABEL]


def test_markdown_link_image_and_definition_titles_are_labels() -> None:
    blocks, _, kept = parse_blocks(Article(body=MD_PAGE, format=SourceFormat.MARKDOWN))
    # An inline link's title follows its block; a definition's stands where the definition does (a
    # reference link's and a reference image's title is theirs); a second definition of a reference
    # defines nothing, and its title is never shown.
    assert [(b.kind, b.text) for b in blocks] == [
        (BlockKind.PARAGRAPH, "Read the memo and the report."),
        (BlockKind.LABEL, "The memo, in full"),
        (BlockKind.PARAGRAPH, "![Abe][photo] at the base."),
        (BlockKind.IMAGE_ALT, "Abe"),
        (BlockKind.PARAGRAPH, "Party"),
        (BlockKind.PARAGRAPH, "Link"),
        (BlockKind.PARAGRAPH, "LDP"),
        (BlockKind.PARAGRAPH, "site"),
        (BlockKind.LABEL, "Party a|b site"),
        (BlockKind.LABEL, "A quoted definition"),
        (BlockKind.LABEL, "The report"),
        (BlockKind.LABEL, "Photo by Kyodo"),
    ]
    # Untranslated, the page comes back as sent, each title quoted as it was.
    same = {b.id: with_markup(b) for b in blocks}
    assert render(SourceFormat.MARKDOWN, tuple(blocks), same, page=kept) == MD_PAGE
    # Translated, each title is in its place, quoted so that quotes, backslashes, parentheses, a
    # character reference and a table's `|` in it read back as the translation wrote them.
    tricky = '说“是”的"备忘录" \\ (全文) &amp; a|b'
    inner = {b.id: markdown_escape(f"{tricky}{b.id}") if b.kind is BlockKind.LABEL else with_markup(b) for b in blocks}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)
    assert titles(out) == [
        ("https://example.org/m", f"{tricky}b1"),
        ("https://example.org/r", f"{tricky}b10"),
        ("abe.jpg", f"{tricky}b11"),
        ("https://ldp.jp", f"{tricky}b8"),
    ]
    assert '[rep]: https://example.org/other "Never shown"' in out
    quoted = tricky.replace("\\", "\\\\").replace('"', '\\"').replace("&amp;", "\\&amp;")
    assert f'> [quoted]: /q\n> "{quoted}b9"\n' in out  # its lines joined, where it stood
    cells = BeautifulSoup(markdown_reader().render(out), "html.parser").find_all("td")
    assert [c.get_text() for c in cells] == ["LDP", "site"]
    # A title stands in its own block's syntax: the holder's translation keeps the link as the source
    # wrote it, and the title goes in at rendering.
    assert '(https://example.org/m "The memo, in full")' in inner[blocks[0].id]


def test_markdown_links_with_the_same_address_and_title_get_their_own_titles() -> None:
    page = 'See [one](/x "More") and [two](/x "More").\n'
    blocks, _, kept = parse_blocks(Article(body=page, format=SourceFormat.MARKDOWN))
    assert labels(blocks) == [("More", 0), ("More", 1)]
    inner = {blocks[0].id: '见[二](/x "More")和[一](/x "More")。', blocks[1].id: "更多一", blocks[2].id: "更多二"}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=kept)
    assert titles(out) == [("/x", "更多一"), ("/x", "更多二")]


# --- Review: a person keeps the link as written and translates its title -----------------------


def test_a_translator_edits_a_link_and_its_title(
    database_url: str, tiny_dirs: dict, engines: dict[str, Engine]
) -> None:
    from tests.conftest import serve
    from tests.test_jobs import wait_for

    body = 'Read [the memo](https://example.org/m "The memo, in full") today.\n\n[r]: /r "Report"\n'
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as live:
        job = live.client.post("/v1/articles", json={"body": body, "format": "markdown", "targets": ["zh-Hans"]})
        assert job.status_code == 202, job.text
        done = wait_for(live.client, job.json()["id"], "translated")
        blocks = done["document"]["blocks"]
        assert [b["kind"] for b in blocks] == ["paragraph", "label", "label"]
        edits = [
            (blocks[0], '今天读[备忘录](https://example.org/m "The memo, in full")。'),
            (blocks[1], '备忘录"全文"'),
            (blocks[2], "报告"),
        ]
        for block, text in edits:
            (seg,) = block["segments"]
            r = live.client.patch(
                f"/v1/articles/{done['id']}/segments/{seg['id']}",
                json={"variant": "zh-Hans", "text": text, "version": seg["version"]},
            )
            assert r.status_code == 200, r.text
        # A link the source does not have is still refused.
        (seg,) = blocks[0]["segments"]
        r = live.client.patch(
            f"/v1/articles/{done['id']}/segments/{seg['id']}",
            json={
                "variant": "zh-Hans",
                "text": '读[备忘录](https://evil.example "x")。',
                "version": seg["version"] + 1,
            },
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "markup_not_allowed", r.text
        out = live.client.get(f"/v1/articles/{done['id']}").json()["document"]["full_text"]["zh-Hans"]
        assert out == '今天读[备忘录](https://example.org/m "备忘录\\"全文\\"")。\n\n[r]: /r "报告"\n'
        assert titles(out) == [("https://example.org/m", '备忘录"全文"')]
