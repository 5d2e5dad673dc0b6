"""Markup nested deeper than the formats read (an API fuzz audit's finding): refused with 422
`markup_too_deep` when it is sent (POST /v1/translate, POST /v1/articles, the review app's new
article form), never a 500 or a job accepted that can only fail; an article at the limits is
accepted and translated; structured data nested too deep is left as sent, like invalid JSON; a
Markdown quote deeper than markdown-it reads is refused, not silently dropped; and a job stored
before submission refused such markup fails at once, not after three attempts as an engine error.

The limits: an HTML page's elements 512 deep, inline markup in one text 100 deep, Markdown quotes
and lists 19 levels (a list counts two). Written out here, so that these tests also run (and fail)
on code from before the limits; `test_the_limits_are_the_codes` ties them to it."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup

from models.engine import Engine
from service.api.app import build_pipeline
from service.auth import Role
from service.config import Settings
from service.documents import Article, Block, BlockKind, SourceFormat
from service.formats import parse_blocks, render
from service.glossaries import DatabaseGlossaries, GlossaryStore
from service.jobs.articles import Principal, Submission, submit
from service.jobs.runner import JobRunner
from service.storage.db import Database
from service.storage.tables import Job, StoredArticle
from service.translate import InputError
from tests.conftest import LiveServer, serve

ELEMENTS, INLINE, MD_LEVELS = 512, 100, 19

# What the audit sent (finding 1), each over a limit.
TOO_DEEP = {
    "markdown asterisks": ("*" * 1000 + "Hello" + "*" * 1000, "markdown"),
    "markdown underscores": ("_" * 1000 + "Hello" + "_" * 1000, "markdown"),
    "markdown quotes": (">" * 40000 + " Hello world.", "markdown"),
    "bold in a paragraph": ("<p>" + "<b>" * 500 + "Hello" + "</b>" * 500 + "</p>", "html"),
    "divs": ("<div>" * 8000 + "Hello world." + "</div>" * 8000, "html"),
    "divs, a thousand": ("<div>" * 1000 + "Hello world." + "</div>" * 1000, "html"),
}


def html_at_the_limits() -> str:
    """A page whose innermost element is ELEMENTS deep, its paragraph's markup INLINE deep."""
    divs = ELEMENTS - INLINE - 1
    return "<div>" * divs + "<p>" + "<b>" * INLINE + "Hello world." + "</b>" * INLINE + "</p>" + "</div>" * divs


def markdown_at_the_limits() -> str:
    """Quotes MD_LEVELS deep around a paragraph whose emphasis is INLINE deep (`**` a level)."""
    return ">" * MD_LEVELS + " " + "*" * (2 * INLINE) + "Hello world." + "*" * (2 * INLINE) + "\n"


def ld_json_page(script: str) -> str:
    return (
        '<html><head><script type="application/ld+json">'
        + script
        + "</script></head><body><p>The harbour reopened on Monday.</p></body></html>"
    )


DEEP_JSON = '{"@type": "NewsArticle", "headline": "Harbour reopens", "a": ' + "[" * 5000 + "]" * 5000 + "}"


def test_the_limits_are_the_codes() -> None:
    from service.formats import MAX_ELEMENT_DEPTH, MAX_INLINE_DEPTH
    from service.formats.markdown import _MD_DEPTH

    assert (MAX_ELEMENT_DEPTH, MAX_INLINE_DEPTH, _MD_DEPTH) == (ELEMENTS, INLINE, MD_LEVELS)


# --- the parsers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TOO_DEEP)
def test_the_parsers_refuse_what_they_cannot_read(case: str) -> None:
    from service.formats import MarkupTooDeep

    text, fmt = TOO_DEEP[case]
    started = time.process_time()
    with pytest.raises(MarkupTooDeep, match=r"nest.* more than \d+"):
        parse_blocks(Article(text, SourceFormat(fmt)))
    assert time.process_time() - started < 2


@pytest.mark.parametrize(
    ("fmt", "deep", "deeper"),
    [
        # Elements in elements, up to the limit and one more.
        ("html", "<div>" * (ELEMENTS - 1) + "<p>Hello.</p>", "<div>" * ELEMENTS + "<p>Hello.</p>"),
        # Inline markup in one paragraph.
        ("html", "<p>" + "<i>" * INLINE + "Hello.", "<p>" + "<i>" * (INLINE + 1) + "Hello."),
        (
            "markdown",
            "*" * (2 * INLINE) + "Hello." + "*" * (2 * INLINE),
            "**" * (INLINE + 1) + "Hello." + "**" * (INLINE + 1),
        ),
        # Quotes, and lists (two levels each).
        ("markdown", ">" * MD_LEVELS + " Hello.", ">" * (MD_LEVELS + 1) + " Hello."),
        (
            "markdown",
            "".join("  " * i + "- Hello.\n" for i in range(MD_LEVELS // 2)),
            "".join("  " * i + "- Hello.\n" for i in range(MD_LEVELS // 2 + 1)),
        ),
    ],
)
def test_markup_at_a_limit_is_read_and_one_level_more_refused(fmt: str, deep: str, deeper: str) -> None:
    from service.formats import MarkupTooDeep

    blocks, _, _ = parse_blocks(Article(deep, SourceFormat(fmt)))
    assert blocks and all(b.text.endswith("Hello.") for b in blocks), blocks
    with pytest.raises(MarkupTooDeep):
        parse_blocks(Article(deeper, SourceFormat(fmt)))


def test_markdown_quotes_as_deep_as_markdown_it_reads_lose_nothing() -> None:
    """markdown-it drops what a quote deeper than it reads holds: at the limit, the sentence is there."""
    (block,) = parse_blocks(Article(">" * MD_LEVELS + " Hello world.", SourceFormat.MARKDOWN))[0]
    assert (block.kind, block.text, block.prefix) == (BlockKind.QUOTE, "Hello world.", "> " * MD_LEVELS)


def test_a_page_stored_before_the_limits_is_written_back_all_the_same() -> None:
    """Pages translated before they were refused are read back (GET /v1/articles/{id} renders them):
    the limits refuse a page as it is read, not as it is written back."""
    from service.formats.html import _html_inline

    page = "<p>" + "<b>" * (INLINE + 50) + "Hello world." + "</b>" * (INLINE + 50) + "</p>"
    paragraph = BeautifulSoup(page, "html.parser").p
    assert paragraph is not None
    text, inlines = _html_inline(paragraph.children)
    block = Block("b0", BlockKind.PARAGRAPH, text, inlines, element=0)
    translated = "<b>" * (INLINE + 50) + "港口重开。" + "</b>" * (INLINE + 50)
    assert render(SourceFormat.HTML, (block,), {"b0": translated}, page=page) == f"<p>{translated}</p>"
    # A quote deeper than markdown-it reads: stored with no blocks (what it held was dropped).
    quoted = ">" * (MD_LEVELS + 5) + " Hello world.\n"
    assert render(SourceFormat.MARKDOWN, (), {}, page=quoted) == quoted


def test_structured_data_nested_too_deep_is_left_as_sent() -> None:
    page = ld_json_page(DEEP_JSON)
    blocks, _, kept = parse_blocks(Article(page, SourceFormat.HTML))
    assert [(b.kind, b.text) for b in blocks] == [(BlockKind.PARAGRAPH, "The harbour reopened on Monday.")]
    out = render(SourceFormat.HTML, tuple(blocks), {blocks[0].id: "港口周一重新开放。"}, page=kept, lang="zh-Hans")
    assert DEEP_JSON in out and "<p>港口周一重新开放。</p>" in out
    # Nested as deep as the JSON parser reads, its article's headline is translated like any other.
    nested = '{"@type": "NewsArticle", "headline": "Harbour reopens", "a": ' + "[" * 400 + "]" * 400 + "}"
    blocks = parse_blocks(Article(ld_json_page(nested), SourceFormat.HTML))[0]
    assert [(b.kind, b.text) for b in blocks][:1] == [(BlockKind.META, "Harbour reopens")]


# --- through the service -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('deep') / 'duiyi.db'}"
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as server:
        yield server


def refused(r: httpx.Response, what: str) -> str:
    assert r.status_code == 422, (what, r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["code"] == "markup_too_deep", (what, error)
    assert re.search(r"nest.* more than \d+", error["message"]), (what, error)
    return str(error["message"])


def wait_for(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/v1/articles/{job_id}").json())["status"] not in ("translated", "failed"):
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.05)
    return job


@pytest.mark.parametrize("case", TOO_DEEP)
def test_an_article_nested_too_deep_is_refused_when_submitted(live: LiveServer, case: str) -> None:
    text, fmt = TOO_DEEP[case]
    before = live.client.get("/v1/articles", params={"limit": 500}).json()["items"]
    refused(live.client.post("/v1/articles", json={"body": text, "format": fmt}), case)
    assert live.client.get("/v1/articles", params={"limit": 500}).json()["items"] == before  # nothing stored


@pytest.mark.parametrize("case", TOO_DEEP)
def test_a_text_nested_too_deep_is_refused_by_the_synchronous_api(live: LiveServer, case: str) -> None:
    text, fmt = TOO_DEEP[case]
    refused(live.client.post("/v1/translate", json={"text": text, "format": fmt, "targets": ["zh-Hans"]}), case)


def test_the_review_apps_new_article_form_refuses_markup_nested_too_deep(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/new").text)
        assert token
        text, _ = TOO_DEEP["bold in a paragraph"]
        r = client.post("/review/new", data={"csrf_token": token.group(1), "format": "html", "body": text})
        assert r.status_code == 422, (r.status_code, r.text[:300])
        assert "nests more than" in r.text


def test_an_article_at_the_limits_is_accepted_and_translated(live: LiveServer) -> None:
    for body, fmt, opened, closed in [
        (html_at_the_limits(), "html", "<b>", "</b>"),
        (markdown_at_the_limits(), "markdown", "*", None),
    ]:
        r = live.client.post("/v1/articles", json={"body": body, "format": fmt, "targets": ["zh-Hans", "zh-TW"]})
        assert r.status_code == 202, (fmt, r.text[:300])
        job = wait_for(live.client, r.json()["id"])
        assert job["status"] == "translated", (fmt, job["failure"])
        (segment,) = [s for b in job["document"]["blocks"] for s in b["segments"]]
        assert segment["source"] == "Hello world."
        for variant in ("zh-Hans", "zh-TW"):
            page = job["document"]["full_text"][variant]
            # Every level of markup is kept, and the translation stands inside it.
            translation = html.unescape(re.sub(r"</?b>|\*", "", segment["targets"][variant]))
            assert translation.strip() and translation in html.unescape(page), (fmt, variant, translation)
            if closed:
                assert page.count(opened) == page.count(closed) == INLINE, (fmt, variant)
                assert page.count("<div>") == page.count("</div>") == ELEMENTS - INLINE - 1
            else:
                assert page.count(opened) == 4 * INLINE, (fmt, variant)
                assert page.startswith(">" * MD_LEVELS + " ")


def test_structured_data_too_deep_is_kept_and_the_page_translated(live: LiveServer) -> None:
    page = ld_json_page(DEEP_JSON)
    r = live.client.post("/v1/translate", json={"text": page, "format": "html", "targets": ["zh-Hans"]})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    (segment,) = [s for b in body["blocks"] for s in b["segments"]]
    assert segment["source"] == "The harbour reopened on Monday." and segment["targets"]["zh-Hans"]
    out = body["full_text"]["zh-Hans"]
    assert DEEP_JSON in out
    assert html.unescape(f"<p>{segment['targets']['zh-Hans']}</p>") in html.unescape(out)
    # As an article too: accepted and translated, the script as sent.
    sent = live.client.post("/v1/articles", json={"body": page, "format": "html", "targets": ["zh-Hans"]})
    assert sent.status_code == 202, sent.text[:300]
    job = wait_for(live.client, sent.json()["id"])
    assert job["status"] == "translated", job["failure"]
    assert DEEP_JSON in job["document"]["full_text"]["zh-Hans"]


# --- a job stored before submission refused it ----------------------------------------------------


def test_a_stored_article_nested_too_deep_fails_at_once_and_is_not_queued_again(
    tmp_path: Path, engines: dict[str, Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    settings = Settings(database_url=url, default_glossaries=[], job_poll_s=0.05, job_lease_s=1.0)
    db = Database(url)
    db.migrate()
    glossaries = DatabaseGlossaries(db)
    glossaries.seed(GlossaryStore.load())
    local = Principal(key_id=None, name="test", role=Role.ADMIN)
    deep, _ = TOO_DEEP["bold in a paragraph"]
    sub = Submission(
        article=Article("<p>Hello.</p>", SourceFormat.HTML), targets=["zh-Hans"], external_id="x", revision="1"
    )
    job, _ = submit(db, sub, principal=local, settings=settings, glossaries=glossaries)
    with db.session() as session:  # as stored by a service that took it
        stored = session.get(StoredArticle, session.get(Job, job.id).article_id)  # type: ignore[union-attr]
        assert stored is not None
        stored.body = deep
    calls: list[int] = []
    engine = engines["marian"]

    class Counting:
        def translate_batch(self, *args: object, **kwargs: object) -> object:
            calls.append(1)
            return engine.translate_batch(*args, **kwargs)  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> object:
            return getattr(engine, name)

    runner = JobRunner(db, build_pipeline(settings, Counting()), settings)  # type: ignore[arg-type]
    assert runner.claim() == job.id
    runner.process(job.id)
    with db.session() as session:
        failed = session.get(Job, job.id)
        assert failed is not None
        assert (failed.status, failed.attempts) == ("failed", 1)
        assert failed.failure is not None and failed.failure.startswith("the article cannot be translated: "), (
            failed.failure
        )
        assert "nests more than" in failed.failure
    assert calls == []
    assert runner.claim() is None  # not retried
    # Its article resubmitted (the same external_id, revision and content) is refused, not queued again.
    again = Submission(article=Article(deep, SourceFormat.HTML), targets=["zh-Hans"], external_id="x", revision="1")
    with db.session() as session:  # the stored request is this one
        session.get(Job, job.id).request_hash = again.fingerprint()  # type: ignore[union-attr]
    with pytest.raises(InputError) as raised:
        submit(db, again, principal=local, settings=settings, glossaries=glossaries)
    assert raised.value.code == "markup_too_deep"
    with db.session() as session:
        assert session.get(Job, job.id).status == "failed"  # type: ignore[union-attr]
    db.close()
