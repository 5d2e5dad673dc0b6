"""Hard-wrapped plain text (wire copy, pasted e-mail, text out of a PDF) through the pipeline and the
HTTP API, on the real engine of each tiny model: a sentence wrapped over lines is one segment, given
to the model on one line, its translation not wrapped; line breaks that mean something are kept."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from glossary.terms import Glossary
from service.documents import AlignedSegment, Article
from service.memory import Remembered, TranslationMemory
from service.pipeline import Pipeline, assemble_text, parse
from service.segmenter import unwrapped
from service.storage.db import Database
from tests.conftest import LiveServer
from tests.test_pipeline import engine_calls

HEADLINE = "Japan to raise sales tax, Nikkei falls"
SENTENCES = [
    "TOKYO, Nov 7 (Reuters) - Japan's government said on Thursday it would raise the sales tax to 10 percent "
    "next year, a move that analysts said could slow the recovery of the world's third-largest economy.",
    "Prime Minister Shinzo Abe told reporters the decision was needed to curb the public debt.",
    "The Nikkei share average fell 1.2 percent in afternoon trade, led by retailers and carmakers.",
]
# Wrapped at 75 columns, as a wire service's plain text is: a glossary term runs over a line end
# ("Shinzo\nAbe"), and sentences end in the middle of lines.
WRAPPED = textwrap.fill(" ".join(SENTENCES), 75)
ADDRESS = "Ministry of Finance\n3-1-1 Kasumigaseki, Chiyoda-ku\nTokyo 100-8940"
BODY = f"{HEADLINE}\n{WRAPPED}\n\n{ADDRESS}\n"
CHINESE = [
    "日本将上调消费税，日经指数下跌",
    "东京11月7日（路透）——日本政府周四表示，明年将把消费税上调至10%。",
    "安倍晋三首相对记者表示，这一决定是为了控制公共债务。",
    "日经平均指数午盘下跌1.2%。",
    "财务省",
    "东京都千代田区霞关3-1-1",
    "东京100-8940",
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_wrapped_wire_copy_is_translated_a_sentence_at_a_time(pipeline: Pipeline, news: Glossary, newline: str) -> None:
    assert "Shinzo\nAbe" in WRAPPED and WRAPPED.count("\n") == 5
    body = BODY.replace("\n", newline)
    with engine_calls(pipeline) as calls:
        doc = pipeline.translate(Article(body), targets=("zh-Hans", "zh-TW"), glossary=news)
    assert [unwrapped(s.source) for s in doc.segments] == [HEADLINE, *SENTENCES, *ADDRESS.split("\n")]
    # The sources keep the input's line breaks, so they and the white space before them rebuild it.
    assert "".join(s.ws_before + s.source for s in doc.segments[:4]) == body.split(newline * 2)[0]
    assert [s.ws_before for s in doc.segments] == ["", newline, " ", " ", "", newline, newline]
    # The model is given each sentence on one line.
    given = [source for sources, _ in calls for source in sources]
    assert given and not any("\n" in s or "\r" in s for s in given)
    # The glossary finds a term wrapped over a line end, and puts its target in every variant.
    abe = doc.segments[2]
    (term,) = [t for t in abe.terms if t.term_id == "abe-shinzo"]
    # Its source text is the term as read, on one line; its span is where it stands, line end and all.
    assert term.source_text == "Shinzo Abe"
    assert abe.source[term.source_start : term.source_end] == f"Shinzo{newline}Abe"
    for variant in ("zh-Hans", "zh-TW"):
        span = term.targets[variant]
        if span is None:
            assert any(f.code == "term_missing" and f.variant == variant for f in abe.flags)
        else:
            assert abe.targets[variant][span.start : span.end] == term.expected[variant]
    # No soft wrap is written into a translation: the paragraph's only line break is the headline's.
    first, _, rest = doc.full_text["zh-Hans"].partition(newline * 2)
    assert first.count("\n") == 1 and first.count(newline) == 1
    assert rest.count(newline) == 3 and rest.count("\n") == 3


def test_a_compound_broken_at_its_hyphen_reaches_the_model_whole(pipeline: Pipeline, news: Glossary) -> None:
    body = textwrap.fill(SENTENCES[0], 63)
    assert "third-\nlargest" in body
    with engine_calls(pipeline) as calls:
        doc = pipeline.translate(Article(body), targets=("zh-Hans",), glossary=news)
    assert [s.source for s in doc.segments] == [body]
    assert calls[0][0] == [SENTENCES[0]]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_the_translation_of_a_wrapped_paragraph_is_not_wrapped(
    pipeline: Pipeline, news: Glossary, newline: str
) -> None:
    """The Chinese sentences of a wrapped paragraph follow each other with no break or space between
    or inside them; the headline's line, the address's lines and the paragraphs stay, in the
    source's line endings."""
    body = BODY.replace("\n", newline)
    doc = parse(Article(body), pipeline.engine, pipeline.settings)
    segments = [
        AlignedSegment(s.id, s.block_id, s.text, s.ws_before, {"zh-Hans": target}, (), ())
        for s, target in zip(doc.segments, CHINESE, strict=True)
    ]
    expected = (
        f"{CHINESE[0]}{newline}{''.join(CHINESE[1:4])}{newline * 2}"
        f"{CHINESE[4]}{newline}{CHINESE[5]}{newline}{CHINESE[6]}{newline}"
    )
    assert assemble_text(doc, segments, "zh-Hans") == expected


def test_hard_line_breaks_keep_the_line_endings_of_the_source(pipeline: Pipeline) -> None:
    body = ADDRESS.replace("\n", "\r\n")
    doc = parse(Article(body), pipeline.engine, pipeline.settings)
    segments = [
        AlignedSegment(s.id, s.block_id, s.text, s.ws_before, {"zh-Hans": target}, (), ())
        for s, target in zip(doc.segments, CHINESE[4:], strict=True)
    ]
    assert assemble_text(doc, segments, "zh-Hans") == "\r\n".join(CHINESE[4:])


def test_a_wrapped_sentence_is_found_in_translation_memory(pipeline: Pipeline, news: Glossary, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'duiyi.db'}")
    db.migrate()
    try:
        memory = TranslationMemory(db)
        memory.remember([Remembered(SENTENCES[2], "zh-Hans", CHINESE[3])])
        remembering = Pipeline(pipeline.engine, pipeline.rules, pipeline.settings, memory=memory)
        doc = remembering.translate(Article(WRAPPED), targets=("zh-Hans",), glossary=news)
    finally:
        db.close()
    nikkei = doc.segments[-1]
    assert "\n" in nikkei.source and unwrapped(nikkei.source) == SENTENCES[2]
    assert nikkei.origin == "tm" and nikkei.targets["zh-Hans"] == CHINESE[3]


def test_wrapped_text_over_http(server: LiveServer) -> None:
    body = BODY.replace("\n", "\r\n")
    response = server.client.post("/v1/translate", json={"text": body, "targets": ["zh-Hans"]})
    assert response.status_code == 200, response.text
    data = response.json()
    blocks = data["blocks"]
    assert [len(b["segments"]) for b in blocks] == [4, 3]
    # Sources plus white space rebuild the input exactly.
    paragraphs = body.split("\r\n\r\n")
    assert ["".join(s["ws_before"] + s["source"] for s in b["segments"]) for b in blocks] == [
        paragraphs[0],
        paragraphs[1].rstrip("\r\n"),
    ]
    full = data["full_text"]["zh-Hans"]
    # The headline's break, the blank line, the address's two breaks and the tail: all CRLF.
    assert full.count("\r\n") == full.count("\n") == 6
