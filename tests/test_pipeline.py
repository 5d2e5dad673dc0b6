"""The pipeline in-process, on the real engine of each tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from glossary.terms import Glossary
from models.engine import SAFE_DECODE, DecodeOptions
from service.documents import Article, SourceFormat
from service.pipeline import Pipeline

ALL = ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")


@contextmanager
def engine_calls(pipeline: Pipeline) -> Iterator[list[tuple[list[str], DecodeOptions]]]:
    """Record what reaches the engine (the real engine still does the work)."""
    calls: list[tuple[list[str], DecodeOptions]] = []
    engine: Any = pipeline.engine
    real = engine.translate_batch

    def recording(sources: list[str], **kwargs: Any) -> Any:
        calls.append((list(sources), kwargs.get("options", DecodeOptions())))
        return real(sources, **kwargs)

    engine.translate_batch = recording
    try:
        yield calls
    finally:
        del engine.translate_batch


def test_all_sentences_go_to_the_engine_together_and_once(pipeline: Pipeline, news: Glossary) -> None:
    text = "The alliance is strong. The alliance is strong.\n\nThe alliance is strong. Japan agrees.\n\nFutenma"
    with engine_calls(pipeline) as calls:
        doc = pipeline.translate(Article(text), targets=ALL, glossary=news)
    first = calls[0]
    assert first[1] == pipeline.settings.decode
    # Identical sentences are decoded once; a fragment of glossary terms alone needs no model.
    assert sorted(first[0]) == ["Japan agrees.", "The alliance is strong."]
    by_source = {s.source: s for s in doc.segments}
    assert by_source["Futenma"].targets == {
        "zh-Hans": "普天间",
        "zh-Hant": "普天間",
        "zh-TW": "普天間",
        "zh-HK": "普天間",
    }
    assert by_source["Futenma"].origin == "rule"
    strong = [s for s in doc.segments if s.source == "The alliance is strong."]
    assert len(strong) == 3 and len({s.targets["zh-Hans"] for s in strong}) == 1


def test_repetition_loops_are_decoded_again_with_safer_settings(pipeline: Pipeline, news: Glossary) -> None:
    text = "The alliance has long been the core of the relationship between the two countries in the region."
    with engine_calls(pipeline) as calls:
        doc = pipeline.translate(Article(text), targets=("zh-Hans",), glossary=news)
    # Random weights loop readily, so the second decoding is exercised here.
    assert [c[1] for c in calls] == [pipeline.settings.decode, SAFE_DECODE]
    assert calls[1][0] == calls[0][0]
    loops = [f for f in doc.segments[0].flags if f.code == "repetition"]
    assert all("after a second decoding" in f.reason for f in loops)


def test_every_flag_has_a_reason_and_flagged_segments_need_review(
    pipeline: Pipeline, news: Glossary, sample_article: str
) -> None:
    doc = pipeline.translate(Article(sample_article), targets=ALL, glossary=news)
    codes = {f.code for s in doc.segments for f in s.flags}
    assert codes <= {"term_missing", "number_mismatch", "untranslated", "repetition", "length_ratio", "markup_moved"}
    for seg in doc.segments:
        assert all(f.reason for f in seg.flags)
        assert seg.status == ("needs_review" if seg.flags else "draft")


def test_html_page_round_trip_keeps_everything_outside_the_text(pipeline: Pipeline, news: Glossary) -> None:
    page = (
        '<!doctype html><html><head><title>Futenma</title><meta name="description" content="Okinawa">'
        "<style>p{}</style></head><body>"
        '<nav id="n">menu</nav><p class="lede">Okinawa <strong>now</strong>.</p>'
        '<p><img src="a.png" alt="Okinawa"> Futenma</p></body></html>'
    )
    doc = pipeline.translate(Article(page, SourceFormat.HTML), targets=("zh-TW",), glossary=news)
    out = doc.full_text["zh-TW"]
    assert out.startswith("<!doctype html>")  # as sent
    # The page's title and description are translated, and the page says it is in zh-TW.
    assert (
        '<html lang="zh-TW"><head><title>普天間</title><meta name="description" content="沖繩">'
        "<style>p{}</style></head><body>"
    ) in out
    assert '<nav id="n">menu</nav>' in out
    assert '<p class="lede">沖繩<strong>' in out and "</strong>。</p>" in out
    assert '<img alt="沖繩" src="a.png"/>' in out and "普天間" in out


def test_line_breaks_between_sentences_are_kept(pipeline: Pipeline, news: Glossary) -> None:
    page = pipeline.translate(
        Article("<p>Okinawa now.<br><br>Futenma later.</p>", SourceFormat.HTML), targets=("zh-Hans",), glossary=news
    )
    assert page.full_text["zh-Hans"].count("<br/>") == 2
    md = "Okinawa now.  \nFutenma later.\nTokyo next.\n"
    doc = pipeline.translate(Article(md, SourceFormat.MARKDOWN), targets=("zh-Hans",), glossary=news)
    text = doc.full_text["zh-Hans"]
    # The hard break is kept; the soft one is the space Markdown shows it as, so no break is written.
    assert text.count("  \n") == 1 and text.count("\n") == 2
    assert [s.ws_before for s in doc.segments] == ["", "  \n", " "]


def test_a_markdown_sentence_wrapped_over_lines_is_one_segment(pipeline: Pipeline, news: Glossary) -> None:
    md = "The U.S. and Japan\nmet today in Tokyo to discuss\nthe alliance. Futenma was\nnext.\n"
    doc = pipeline.translate(Article(md, SourceFormat.MARKDOWN), targets=("zh-Hans",), glossary=news)
    assert [s.source for s in doc.segments] == [
        "The U.S. and Japan met today in Tokyo to discuss the alliance.",
        "Futenma was next.",
    ]
    assert "\n" not in doc.full_text["zh-Hans"].rstrip("\n")


def test_breaks_and_images_at_a_blocks_edges_are_kept_in_order(pipeline: Pipeline, news: Glossary) -> None:
    """A <br> at the very start or end of a paragraph belongs to no sentence's white space: it is
    markup, kept where it stood; side-by-side images keep their order."""
    page = '<p><br>Okinawa now. Futenma later.<br><img src="a.png"><img src="b.png"></p><p>Tokyo.<br><br></p>'
    out = pipeline.translate(Article(page, SourceFormat.HTML), targets=("zh-Hans",), glossary=news).full_text["zh-Hans"]
    first, second = out.split("</p>")[:2]
    assert first.startswith("<p><br/>") and first.count("<br/>") == 2, out
    assert first.index("<br/>", 1) < first.index('<img src="a.png"/>') < first.index('<img src="b.png"/>'), out
    assert second.endswith("<br/><br/>") and second.count("<br/>") == 2, out


def test_markdown_autolinks_come_back_as_written(pipeline: Pipeline, news: Glossary) -> None:
    md = "See <https://example.com/a?b=1_c> for Futenma.\n"
    out = pipeline.translate(Article(md, SourceFormat.MARKDOWN), targets=("zh-TW",), glossary=news)
    assert "<https://example.com/a?b=1_c>" in out.full_text["zh-TW"]


def test_a_sentence_longer_than_the_model_takes_is_split_not_truncated(pipeline: Pipeline, news: Glossary) -> None:
    clause = "the ministers discussed the alliance, the region and the budget"
    sentence = "In Tokyo, " + "; ".join(f"{clause} for the {i}th time" for i in range(40)) + "."
    engine = pipeline.engine
    assert engine.count_tokens(sentence) > engine.max_source_tokens
    doc = pipeline.translate(Article(sentence), targets=("zh-Hans",), glossary=news)
    assert len(doc.segments) > 1
    assert all(engine.count_tokens(s.source) <= engine.max_source_tokens for s in doc.segments)
    assert "".join(s.ws_before + s.source for s in doc.segments) == sentence


def test_an_abbreviation_after_its_name_is_not_translated_twice(pipeline: Pipeline, news: Glossary) -> None:
    """The sample article's "U.S.-Japan Security Consultative Committee (SCC)": the name once, the
    abbreviation as written (it was 美日安全保障磋商委员会（美日安全保障磋商委员会）)."""
    text = "U.S.-Japan Security Consultative Committee (SCC)\n\nSCC"
    doc = pipeline.translate(Article(text), targets=("zh-Hans", "zh-TW"), glossary=news)
    named, alone = doc.segments
    assert named.origin == "rule" and not named.flags
    assert named.targets["zh-Hans"] == "美日安全保障磋商委员会（SCC）"
    assert named.targets["zh-TW"].count("SCC") == 1 and named.targets["zh-TW"].count("委員會") == 1
    assert alone.targets["zh-Hans"] == "美日安全保障磋商委员会"  # the abbreviation alone is still the name
