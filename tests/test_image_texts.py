"""Images' alternative texts and titles: translated as segments of their own, glossary and Traditional
variants included, and written back into the very image (an HTML attribute, a Markdown label and
title), so that the translated page parses as the source's structure with only its texts replaced."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup, Tag
from lxml import etree
from markdown_it import MarkdownIt

from glossary.terms import Glossary, Term
from models.engine import Engine
from service.api.app import build_pipeline
from service.auth import Role
from service.config import Settings
from service.documents import AlignedDocument, Article, BlockKind, SourceFormat, plain_text
from service.jobs.codec import document_from_json, document_to_json
from service.pipeline import Pipeline, assemble_text
from tests.conftest import LiveServer, keyed_settings, make_keys, serve, shared_file

ALL = ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")
PAGE = (
    "<!doctype html><html><body>"
    '<p>Abe spoke in Tokyo. <img src="abe.jpg" alt="Prime Minister Shinzo Abe speaks in Tokyo"> He left.</p>'
    '<figure><img src="putin.jpg" alt="Vladimir Putin" title="Shinzo Abe"><figcaption>Futenma</figcaption></figure>'
    '<p>A rule <img src="rule.png" alt=""> and <img src="x.png"> and <img src="s.png" alt="  "> here.</p>'
    "</body></html>"
)
# A glossary term whose every form is written as it must be (rule origin, no model): a translation
# full of what HTML attributes and Markdown labels must escape.
AWKWARD = 'A&B "引" <i>x</i> ]\\ *y* [z](w) `c` &amp;'
AWKWARD_GLOSSARY = Glossary("awkward", (Term("acme", ("Acme Corp",), {"zh-Hans": AWKWARD}),))


@pytest.fixture(scope="module")
def marian(engines: dict[str, Engine]) -> Pipeline:
    """One pipeline, for the tests that need no more than one engine."""
    return build_pipeline(Settings(device="cpu"), engines["marian"])


def image(soup: BeautifulSoup, src: str) -> Tag:
    found = soup.find("img", src=src)
    assert isinstance(found, Tag), src
    return found


def structure(page: str) -> list[tuple[str, dict[str, object]]]:
    """Every element of a page with its attributes, an image's texts (and the language the page
    declares) left out."""
    soup = BeautifulSoup(page, "html.parser")
    left_out = {"img": ("alt", "title"), "html": ("lang",)}
    return [
        (el.name, {k: v for k, v in el.attrs.items() if k not in left_out.get(el.name, ())})
        for el in soup.find_all(True)
    ]


def block_of(doc: AlignedDocument, kind: BlockKind, text: str) -> str:
    return next(b.id for b in doc.blocks if b.kind is kind and b.text == text)


def joined(doc: AlignedDocument, block_id: str, variant: str) -> str:
    return "".join(s.targets[variant] for s in doc.segments if s.block_id == block_id)


def test_html_image_alt_and_title_are_translated_with_the_glossary(pipeline: Pipeline, news: Glossary) -> None:
    doc = pipeline.translate(Article(PAGE, SourceFormat.HTML), targets=ALL, glossary=news)
    # Each image text follows the block holding its image, or stands where its image does.
    assert [(b.kind, b.text) for b in doc.blocks] == [
        (BlockKind.PARAGRAPH, "Abe spoke in Tokyo. He left."),
        (BlockKind.IMAGE_ALT, "Prime Minister Shinzo Abe speaks in Tokyo"),
        (BlockKind.IMAGE_ALT, "Vladimir Putin"),
        (BlockKind.IMAGE_TITLE, "Shinzo Abe"),
        (BlockKind.PARAGRAPH, "Futenma"),
        (BlockKind.PARAGRAPH, "A rule and and here."),
    ]
    abe = block_of(doc, BlockKind.IMAGE_ALT, "Prime Minister Shinzo Abe speaks in Tokyo")
    (alt_segment,) = [s for s in doc.segments if s.block_id == abe]
    (term,) = alt_segment.terms
    assert term.term_id == "abe-shinzo" and term.source_text == "Shinzo Abe"
    regional = {"zh-Hans": ("弗拉基米尔·普京", "安倍晋三"), "zh-TW": ("弗拉基米爾·普丁", "安倍晉三")}
    for variant in ALL:
        out = doc.full_text[variant]
        soup = BeautifulSoup(out, "html.parser")
        assert structure(out) == structure(PAGE)
        alt = image(soup, "abe.jpg")["alt"]
        assert alt == plain_text(joined(doc, abe, variant), SourceFormat.HTML) != alt_segment.source
        assert "Prime Minister Shinzo Abe speaks in Tokyo" not in out and '"Vladimir Putin"' not in out
        # The glossary's form is in the alt text, or the segment says it is missing.
        span = term.targets[variant]
        if span is None:
            assert any(f.code == "term_missing" and f.variant == variant for f in alt_segment.flags)
        else:
            assert alt_segment.targets[variant][span.start : span.end] == term.expected[variant]
            assert term.expected[variant] in alt
        if variant in regional:
            putin, shinzo = regional[variant]
            assert term.expected[variant] == shinzo
            assert (image(soup, "putin.jpg")["alt"], image(soup, "putin.jpg")["title"]) == (putin, shinzo)
        # Decorative images (empty or blank alt) and images without one stay exactly as they were.
        assert '<img alt="" src="rule.png"/>' in out and '<img src="x.png"/>' in out
        assert '<img alt="  " src="s.png"/>' in out


def test_html_image_texts_are_escaped_as_attributes(marian: Pipeline) -> None:
    """A translation holding quotes, ampersands and tags gives a well-formed tag whose alt reads
    back as that translation, inside a block and outside one."""
    page = '<p>Hello there. <img src="a.jpg" alt="Acme Corp"></p><figure><img src="b.jpg" title="Acme Corp"></figure>'
    doc = marian.translate(Article(page, SourceFormat.HTML), targets=("zh-Hans", "zh-TW"), glossary=AWKWARD_GLOSSARY)
    out = doc.full_text["zh-Hans"]
    soup = BeautifulSoup(out, "html.parser")
    assert image(soup, "a.jpg")["alt"] == AWKWARD and image(soup, "b.jpg")["title"] == AWKWARD
    assert soup.find("i") is None and len(soup.find_all("img")) == 2
    assert structure(out) == structure(page)
    for tag in re.findall(r"<img[^>]*>", out):
        assert "&amp;" in tag and "&lt;i&gt;" in tag, tag
    tw = BeautifulSoup(doc.full_text["zh-TW"], "html.parser")
    alt_block = block_of(doc, BlockKind.IMAGE_ALT, "Acme Corp")
    assert image(tw, "a.jpg")["alt"] == plain_text(joined(doc, alt_block, "zh-TW"), SourceFormat.HTML)


def rendered_images(markdown: str) -> list[Tag]:
    """The images of a Markdown text, as markdown-it renders them."""
    return BeautifulSoup(MarkdownIt("commonmark").render(markdown), "html.parser").find_all("img")


def markdown_structure(markdown: str) -> list[tuple[str, dict[str, object]]]:
    return structure(MarkdownIt("commonmark").render(markdown))


def test_markdown_image_alt_and_title_are_translated(pipeline: Pipeline, news: Glossary) -> None:
    md = (
        'Abe spoke. ![Shinzo Abe speaks in *Tokyo*](abe.jpg "Vladimir Putin") Then more.\n\n'
        "- one ![](rule.png)\n- two ![Futenma](f.png)\n"
    )
    doc = pipeline.translate(Article(md, SourceFormat.MARKDOWN), targets=ALL, glossary=news)
    assert [(b.kind, b.text) for b in doc.blocks][1:3] == [
        (BlockKind.IMAGE_ALT, "Shinzo Abe speaks in Tokyo"),
        (BlockKind.IMAGE_TITLE, "Vladimir Putin"),
    ]
    assert [b.kind for b in doc.blocks][3:] == [BlockKind.LIST_ITEM, BlockKind.LIST_ITEM, BlockKind.IMAGE_ALT]
    alt_block = doc.blocks[1].id
    for variant in ALL:
        out = doc.full_text[variant]
        abe, rule, futenma = rendered_images(out)
        assert abe["src"] == "abe.jpg" and abe["alt"] == plain_text(
            joined(doc, alt_block, variant), SourceFormat.MARKDOWN
        )
        assert "](abe.jpg" in out and "Shinzo Abe speaks" not in out and '"Vladimir Putin"' not in out
        assert abe["title"] == plain_text(joined(doc, doc.blocks[2].id, variant), SourceFormat.MARKDOWN)
        if variant in ("zh-Hans", "zh-TW"):
            assert abe["title"] == {"zh-Hans": "弗拉基米尔·普京", "zh-TW": "弗拉基米爾·普丁"}[variant]
        assert "![](rule.png)" in out and rule["alt"] == ""
        assert futenma["alt"] == ("普天间" if variant == "zh-Hans" else "普天間")
        assert markdown_structure(out) == markdown_structure(md)


def test_markdown_image_texts_are_escaped_so_the_image_still_parses(marian: Pipeline) -> None:
    md = 'Hello there. ![Acme Corp](a.jpg "Acme Corp") And [a link](l.html).\n'
    doc = marian.translate(Article(md, SourceFormat.MARKDOWN), targets=("zh-Hans",), glossary=AWKWARD_GLOSSARY)
    out = doc.full_text["zh-Hans"]
    (img,) = rendered_images(out)
    assert (img["src"], img["alt"], img["title"]) == ("a.jpg", AWKWARD, AWKWARD)
    assert "](l.html)" in out and markdown_structure(out) == markdown_structure(md)


def test_image_blocks_round_trip_through_the_job_codec(marian: Pipeline, news: Glossary) -> None:
    doc = marian.translate(Article(PAGE, SourceFormat.HTML), targets=("zh-Hans", "zh-TW"), glossary=news)
    prepared = marian.prepare(Article(PAGE, SourceFormat.HTML), targets=("zh-Hans", "zh-TW"), glossary=news)
    stored = json.loads(json.dumps(document_to_json(prepared.doc)))
    assert [b["kind"] for b in stored["blocks"]].count("image_alt") == 2
    loaded = document_from_json(stored)
    assert loaded.blocks == prepared.doc.blocks
    for variant in ("zh-Hans", "zh-TW"):
        assert assemble_text(loaded, doc.segments, variant) == doc.full_text[variant]


def test_documents_stored_before_image_texts_still_load_and_render(marian: Pipeline) -> None:
    """A job stored before images' texts were blocks has none: its image keeps its alt as it was."""
    stored = {
        "format": "html",
        "tail": "",
        "html": '<p>Hello. <img src="a.jpg" alt="Abe"></p>',
        "blocks": [
            {
                "id": "b0",
                "kind": "paragraph",
                "text": "Hello.",
                "inlines": [[6, 6, '<img alt="Abe" src="a.jpg"/>', "", True]],
                "level": 0,
                "sep_before": "",
                "prefix": "",
                "element": 0,
            }
        ],
    }
    doc = document_from_json(stored)
    segments = marian.translate(Article("Hello."), targets=("zh-Hans",), glossary=AWKWARD_GLOSSARY).segments
    (segment,) = segments
    target = segment.targets["zh-Hans"] + '<img alt="Abe" src="a.jpg"/>'
    out = assemble_text(doc, [replace(segment, targets={"zh-Hans": target})], "zh-Hans")
    assert out == f"<p>{target}</p>"


# --- through the service: review, edits, files ---------------------------------------------------


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('alt') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-alt").items()}
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, keys


def test_an_alt_text_is_reviewed_edited_and_exported_like_other_text(site: tuple[LiveServer, dict[str, str]]) -> None:
    live, keys = site
    cms = {"Authorization": f"Bearer {keys['cms']}"}
    tr = {"Authorization": f"Bearer {keys['translator']}"}
    body = '<p>Abe spoke. <img src="abe.jpg" alt="Shinzo Abe speaks in Tokyo"></p>'
    job_id = live.client.post(
        "/v1/articles", json={"body": body, "format": "html", "targets": ["zh-Hans", "zh-TW"]}, headers=cms
    ).json()["id"]
    deadline = time.monotonic() + 60
    while (job := live.client.get(f"/v1/articles/{job_id}", headers=tr).json())["status"] != "translated":
        assert job["status"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.05)
    _, alt_block = job["document"]["blocks"]
    assert alt_block["kind"] == "image_alt"
    (alt,) = alt_block["segments"]
    assert alt["source"] == "Shinzo Abe speaks in Tokyo"

    # The review page shows it as a block of its own, editable.
    with httpx.Client(base_url=live.url, follow_redirects=False) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
        assert token
        client.post("/review/login", data={"key": keys["translator"], "csrf_token": token.group(1)})
        page = client.get(f"/review/articles/{job_id}").text
    assert 'class="block block-image_alt"' in page
    assert '<div class="block-kind">image description (alt text)</div>' in page
    assert f'aria-label="Translation of {alt["id"]} (zh-Hans)"' in page
    assert html.escape("Shinzo Abe speaks in Tokyo") in page

    # An alt text takes no markup, but any text: quotes, ampersands, angle brackets.
    url = f"/v1/articles/{job_id}/segments/{alt['id']}"
    refused = live.client.patch(url, json={"text": "<b>安倍</b>", "version": alt["version"]}, headers=tr)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "markup_not_allowed"
    edit = '安倍晋三说“好”&amp;&lt;东京&gt; "x"'
    saved = live.client.patch(url, json={"text": edit, "version": alt["version"]}, headers=tr)
    assert saved.status_code == 200, saved.text
    full = live.client.get(f"/v1/articles/{job_id}", headers=tr).json()["document"]["full_text"]
    assert image(BeautifulSoup(full["zh-Hans"], "html.parser"), "abe.jpg")["alt"] == '安倍晋三说“好”&<东京> "x"'
    assert image(BeautifulSoup(full["zh-TW"], "html.parser"), "abe.jpg")["alt"].startswith("安倍晉三")

    # XLIFF: a unit of its own, named by its kind, valid, and it imports back unchanged.
    exported = live.client.get(f"/v1/articles/{job_id}/export", params={"format": "xliff"}, headers=tr).content
    xliff = etree.fromstring(exported)
    core = etree.XMLSchema(etree.parse(str(shared_file("xliff", "xliff_core_2.0.xsd"))))
    assert core.validate(xliff), core.error_log
    ns = {"x": "urn:oasis:names:tc:xliff:document:2.0"}
    unit = xliff.find(f".//x:unit[@id='{alt_block['id']}']", ns)
    assert unit is not None and unit.get("name") == "image_alt"
    assert "".join(unit.find(".//x:source", ns).itertext()) == "Shinzo Abe speaks in Tokyo"
    imported = live.client.post(f"/v1/articles/{job_id}/import", content=exported, headers=tr)
    assert imported.status_code == 200 and imported.json()["edited"] == [], imported.text
