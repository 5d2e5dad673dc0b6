"""What reading an article costs: a synchronous translation parses it once (the pipeline takes the
parse made to check it, and every variant's rendering shares one reading of a Markdown page), off
the event loop; and markdown-it reads a page of brackets without walking the text after every `[`
again. Work is counted (parses, markdown-it's token skips), never timed: the timings are in
bench/markdown_cost.py."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import markdown_it.helpers
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

import service.formats
import service.formats.markdown as markdown_format
import service.pipeline
import service.translate
from glossary.terms import Glossary
from models.engine import Engine, load_engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, BlockKind, SourceFormat
from service.formats import MarkupTooDeep, parse_blocks, render
from tests.conftest import LiveServer, serve
from tests.test_bench import run_bench

TARGETS = ["zh-Hans", "zh-Hant", "zh-TW", "zh-HK"]
MARKDOWN = """---
title: Alliance
---

# Abe and the alliance

Prime Minister [Abe](https://example.com/abe "Abe Shinzo's page") met *Kerry* in Tokyo. It was
the first **2+2** meeting with Russia.[^1]

![The meeting in Tokyo](https://example.com/tokyo.jpg "Tokyo, November 2")

> The [SCC][scc] has long been the core of the relationship.

- The Pentagon sets the agenda.
- The State Department plays a ceremonial role.

| Who | Where |
| --- | ----- |
| Kerry | [Tokyo](https://example.com/tokyo "the capital") |

[scc]: https://example.com/scc "Security Consultative Committee"
[^1]: Held on November 2.
"""
HTML = (
    "<article><h1>Abe and the alliance</h1><p>Prime Minister <a href='https://example.com/abe' "
    "title='His page'>Abe</a> met <em>Kerry</em> in Tokyo.</p><p><img src='t.jpg' alt='The meeting'>"
    " It was the first meeting.</p></article>"
)


@pytest.fixture(scope="module")
def marian(tiny_dirs: dict[str, Path]) -> Engine:
    return load_engine(str(tiny_dirs["marian"]), engine="transformers", device="cpu")


@pytest.fixture(scope="module")
def live(marian: Engine, tiny_dirs: dict[str, Path]) -> Iterator[LiveServer]:
    # Short outputs: these tests count how the article is read, not what the model writes.
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", max_length_ratio=0.5, redecode_loops=False)
    with serve(settings, marian) as server:
        yield server


def counting(calls: list[Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, noting in `calls` whether each call ran on an event loop (as the HTTP layer's own code does)."""

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            calls.append("on the event loop")
        except RuntimeError:
            calls.append("in a worker thread")
        return fn(*args, **kwargs)

    return counted


def translate(live: LiveServer, body: str, fmt: str) -> dict[str, Any]:
    response = live.client.post("/v1/translate", json={"article": {"body": body}, "format": fmt, "targets": TARGETS})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_markdown_translation_reads_its_page_once(
    live: LiveServer, marian: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # To check it, to parse it, and for each variant's rendering (its places, its labels): once.
    reads: list[str] = []
    parses: list[str] = []
    monkeypatch.setattr(markdown_format._MD, "parse", counting(reads, markdown_format._MD.parse))
    for module in (service.translate, service.pipeline):
        monkeypatch.setattr(module, "parse_blocks", counting(parses, parse_blocks))
    page = f"{MARKDOWN}\nA page of its own ({uuid.uuid4().hex}), never read before.\n"
    out = translate(live, page, "markdown")
    assert parses == ["in a worker thread"]
    assert reads == ["in a worker thread"]
    for variant in TARGETS:
        text = out["full_text"][variant]
        # Written back into the page as sent: the front matter, the definition, the table's borders.
        assert text.startswith("---\ntitle: Alliance\n---\n"), text
        assert "(https://example.com/abe " in text and "[scc]: https://example.com/scc " in text
        assert "| --- | ----- |" in text
    # The same document as parsing the article afresh gives.
    pipeline = build_pipeline(live.settings, marian)
    article = Article(page, SourceFormat.MARKDOWN)
    parsed = service.translate.check_article(article, live.settings)
    fresh = pipeline.prepare(article, targets=TARGETS, glossary=Glossary(name="none"))
    assert pipeline.prepare(article, targets=TARGETS, glossary=Glossary(name="none"), parsed=parsed).doc == fresh.doc
    assert [(s["id"], s["source"]) for b in out["blocks"] for s in b["segments"]] == [
        (s.id, s.text) for s in fresh.doc.segments
    ]


def test_a_page_read_before_is_still_refused_when_too_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    # The reading is kept for whoever asks next; a page nested too deep is refused every time it is
    # parsed whole, and read (without what markdown-it drops) where a stored one is rendered.
    deep = "".join("> " * n + f"text {uuid.uuid4().hex}\n" for n in range(1, markdown_format._MD_DEPTH + 3))
    reads: list[str] = []
    monkeypatch.setattr(markdown_format._MD, "parse", counting(reads, markdown_format._MD.parse))
    for _ in range(2):
        with pytest.raises(MarkupTooDeep):
            parse_blocks(Article(deep, SourceFormat.MARKDOWN))
    assert markdown_format._md_places(deep)
    assert len(reads) == 1


def test_an_html_translation_parses_its_page_once(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    monkeypatch.setattr(service.formats, "_html_blocks", counting(parses, service.formats._html_blocks))
    out = translate(live, HTML, "html")
    assert parses == ["in a worker thread"]
    assert all('href="https://example.com/abe"' in out["full_text"][v] for v in TARGETS)


# --- markdown-it's link labels ---------------------------------------------------------------------

# Pages of brackets as large as a test should read: each `[` asks where its label ends.
BRACKETS = {
    "[": "[" * 3000,
    "![": "![" * 1500,
    "[a": "[a" * 1500,
    "[a][": "[a][" * 750,
    "[[…]]": "[" * 1500 + "]" * 1500,
    "[](": "[](" * 1000,
    "> [": "> " + "[" * 3000,
    "[\\n": "[\n" * 1500,
}


def dump(tokens: list[Token]) -> list[Any]:
    return [
        (t.type, t.tag, t.content, t.markup, t.info, t.level, t.map, sorted(t.attrs.items()), dict(t.meta))
        + ((dump(t.children),) if t.children else ())
        for t in tokens
    ]


def skips(md: MarkdownIt, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Counts markdown-it's skipping of a token (every inline rule tried at a place) on `md`."""
    calls: list[Any] = []
    skip = md.inline.skipToken

    def counted(state: Any) -> None:
        calls.append(None)
        skip(state)

    monkeypatch.setattr(md.inline, "skipToken", counted)
    return calls


def random_pages(count: int) -> list[str]:
    """Small pages of link and image syntax, brackets nested past markdown-it's limit among them."""
    rng = random.Random(20261201)
    parts = ["[", "[", "]", "]", "(", ")", "!", "a", " ", "`", "<", ">", "*", "\\", "\n", '"', "](", "![", "x:"]
    parts += ["<a>", "http://x", "[x]: /u\n", "> ", "- ", "|", "\n\n", "[^1]", "&amp;"]
    pages = []
    for _ in range(count):
        page = "".join(rng.choice(parts) for _ in range(rng.choice((10, 40, 120))))
        if rng.random() < 0.3:  # past maxNesting, where markdown-it gives up on a label
            page = "[" * rng.randint(15, 30) + page + "]" * rng.randint(0, 30)
        if rng.random() < 0.2:
            page = '[x]: /u "t"\n\n' + page
        pages.append(page)
    return pages


def test_link_labels_read_as_markdown_it_reads_them_without_walking_every_bracket_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = markdown_format._markdown_parser()
    theirs = markdown_format._markdown_parser()
    theirs.helpers = markdown_it.helpers  # type: ignore[assignment]  # markdown-it's own parseLinkLabel
    ours_skips, theirs_skips = skips(ours, monkeypatch), skips(theirs, monkeypatch)
    for name, page in BRACKETS.items():
        ours_skips.clear()
        theirs_skips.clear()
        ours_env: dict[str, Any] = {}
        theirs_env: dict[str, Any] = {}
        assert dump(ours.parse(page, ours_env)) == dump(theirs.parse(page, theirs_env)), name
        assert ours_env == theirs_env, name
        # markdown-it walks the text after each `[` up to maxNesting (20) brackets deep: about 20
        # skips a character (40 for `![`); at most one here (each place skipped once, then looked up).
        assert len(ours_skips) <= len(page), (name, len(ours_skips), len(theirs_skips))
    for page in [MARKDOWN, *random_pages(1500)]:
        ours_env, theirs_env = {}, {}
        assert dump(ours.parse(page, ours_env)) == dump(theirs.parse(page, theirs_env)), page
        assert ours_env == theirs_env, page


# --- writing a variant back --------------------------------------------------------------------------


def test_an_image_text_goes_into_its_own_image_among_images_written_alike() -> None:
    # Each image's translated texts are put in from where the image before it was (not into the
    # first image written alike, which the image before may have left as written).
    page = "Logos: ![CNN](cnn.png) and ![CNN](cnn.png).\n"
    blocks, _, written = parse_blocks(Article(page, SourceFormat.MARKDOWN))
    alts = [b for b in blocks if b.kind is BlockKind.IMAGE_ALT]
    assert len(alts) == 2
    inner = {b.id: b.text for b in blocks if b.kind is not BlockKind.IMAGE_ALT}
    inner |= {alts[0].id: "CNN", alts[1].id: "美国有线电视新闻网"}
    out = render(SourceFormat.MARKDOWN, tuple(blocks), inner, page=written)
    assert out == "Logos: ![CNN](cnn.png) and ![美国有线电视新闻网](cnn.png).\n"


def test_markdown_cost_bench_small_runs_and_both_walks_agree() -> None:
    """`python -m bench.markdown_cost`: markdown-it's label walk and duiyi's read every page alike."""
    report = run_bench("bench.markdown_cost", "--chars", "2000", "--repeats", "1", "--json")
    assert report["chars"] == 2000 and len(report["pages"]) >= 10
    for name, figures in report["pages"].items():
        assert figures["same_tokens"] is True, name
        assert figures["parse_blocks_s"] >= 0 and 1000 <= figures["chars"] <= 2000, name
