"""A sentence is cut to the model's limit as the model is given it, placeholders included: a
Markdown sentence of one-letter emphases ("*a*a*a…") measured in its letters reached the model at
four times its limit and failed with an IndexError (a 500)."""

from __future__ import annotations

import pytest

from models.engine import Engine, SourceTooLong
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, SourceFormat
from service.glossaries import GlossaryStore
from service.segmenter import unwrapped


def test_emphasis_placeholders_are_measured_and_cut(engines: dict[str, Engine]) -> None:
    engine = engines["marian"]
    pipeline = build_pipeline(Settings(device="cpu"), engine)
    glossary = GlossaryStore.load().stacked(["news"])
    article = Article(body="*a" * 1200, format=SourceFormat.MARKDOWN)
    prepared = pipeline.prepare(article, targets=["zh-Hans"], glossary=glossary)
    given = [engine.count_tokens(unwrapped(f.masked)) for top in prepared.fragments for f in top.walk()]
    assert max(given) <= engine.max_source_tokens
    doc = pipeline.translate(article, targets=["zh-Hans"], glossary=glossary)
    assert "".join(s.source for s in doc.segments).count("a") == 1200
    assert all(s.targets["zh-Hans"] for s in doc.segments)


def test_link_text_longer_than_the_model_is_decoded_in_pieces(engines: dict[str, Engine]) -> None:
    # Markup never crosses segments, so a link's text over the limit is one fragment: the pipeline
    # cuts what the model is given rather than let the engine refuse it.
    engine = engines["marian"]
    pipeline = build_pipeline(Settings(device="cpu"), engine)
    glossary = GlossaryStore.load().stacked(["news"])
    article = Article(
        body="See [" + "talks went on " * 150 + "](https://example.com) now.", format=SourceFormat.MARKDOWN
    )
    doc = pipeline.translate(article, targets=["zh-Hans"], glossary=glossary)
    assert "https://example.com" in doc.full_text["zh-Hans"]


def test_engine_refuses_an_over_long_source(all_engines: dict[tuple[str, str], Engine], engine_kind: str) -> None:
    # Both engines refuse it whole: CTranslate2 would otherwise cut it at its max_input_length and
    # translate the rest, losing the end of the sentence without a word.
    engine = all_engines[(engine_kind, "marian")]
    fits = "QZX1 " * 10
    with pytest.raises(SourceTooLong, match="limit"):
        engine.translate_batch([fits, "QZX1 " * 400])
    assert engine.translate_batch([fits])[0].source_tokens == engine.count_tokens(fits)
