"""A translator's edit through `realign`: the other variants regenerated with each glossary term in
its own regional form, and every term hit found again in the edited text (or flagged)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from glossary.terms import Glossary, Term
from models.engine import Translation
from models.specs import spec_for
from service.documents import AlignedSegment, Article, SourceFormat
from service.pipeline import Pipeline
from service.qa import QASettings
from service.retarget import realign
from service.variants import variant_rules

RULES = variant_rules()
VARIANTS = ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")


class ScriptedEngine:
    """Answers every sentence with the same zh-Hans text (placeholders included): what a model wrote."""

    name = "scripted"
    spec = spec_for("marian")
    device = "cpu"
    max_source_tokens = 512

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def translate_batch(self, sources: Sequence[str], **_: Any) -> list[Translation]:
        return [Translation(self.answer, 1, 1) for _ in sources]


def translated(source: str, answer: str, news: Glossary) -> AlignedSegment:
    pipeline = Pipeline(ScriptedEngine(answer), RULES)  # type: ignore[arg-type]
    (segment,) = pipeline.translate(Article(source), targets=VARIANTS, glossary=news).segments
    return segment


def edit(segment: AlignedSegment, hans: str) -> AlignedSegment:
    return realign(segment, {"zh-Hans": hans}, set(), [RULES[v] for v in VARIANTS], QASettings())


def missing(segment: AlignedSegment) -> list[tuple[str | None, str]]:
    return sorted((f.variant, f.reason.split("(")[1].split(")")[0]) for f in segment.flags if f.code == "term_missing")


def assert_spans_hold_the_forms(segment: AlignedSegment) -> None:
    for term in segment.terms:
        for variant, span in term.targets.items():
            if span is not None:
                assert segment.targets[variant][span.start : span.end] == term.expected[variant]
    placed = [(v, t.targets[v]) for t in segment.terms for v in VARIANTS if t.targets[v] is not None]
    assert len(placed) == len(set(placed)), "two hits share one place"


def test_kerry_is_not_found_in_the_kremlin(news: Glossary) -> None:
    segment = translated("The Kremlin said Kerry would come.", "克里姆林宫说QZX1将会来。", news)
    assert segment.targets["zh-TW"] == "克里姆林宮說凱瑞將會來。"
    new = edit(segment, "克里姆林宫表示克里将会来。")
    assert new.targets["zh-TW"] == "克里姆林宮表示凱瑞將會來。"
    assert new.targets["zh-Hant"] == "克里姆林宮表示克里將會來。"
    assert missing(new) == []
    assert_spans_hold_the_forms(new)
    assert new.terms[0].targets["zh-Hans"] is not None and new.terms[0].targets["zh-Hans"].start == 7


def test_a_term_the_edit_drops_is_flagged_though_a_longer_word_holds_its_form(news: Glossary) -> None:
    segment = translated("The Kremlin said Kerry would come.", "克里姆林宫说QZX1将会来。", news)
    new = edit(segment, "克里姆林宫表示他将会来。")
    assert new.targets["zh-TW"] == "克里姆林宮表示他將會來。"  # not 凱瑞姆林宮
    assert missing(new) == [(v, "kerry") for v in sorted(VARIANTS)]
    assert all(span is None for span in new.terms[0].targets.values())


def test_every_hit_needs_a_place_of_its_own(news: Glossary) -> None:
    segment = translated("Abe met Abe’s rival.", "QZX1会见了QZX2的对手。", news)
    assert missing(segment) == []
    new = edit(segment, "安倍会见了对手。")
    assert missing(new) == [(v, "abe") for v in sorted(VARIANTS)]
    assert_spans_hold_the_forms(new)
    kept = edit(segment, "安倍会见了安倍的竞争对手。")
    assert missing(kept) == []
    assert_spans_hold_the_forms(kept)


def test_a_shorter_term_is_not_found_inside_a_longer_ones_form(news: Glossary) -> None:
    segment = translated("Vladimir Putin met Putin’s envoy.", "QZX1会见了QZX2的特使。", news)
    assert segment.targets["zh-TW"] == "弗拉基米爾·普丁會見了普丁的特使。"
    new = edit(segment, "弗拉基米尔·普京会见了特使。")
    assert missing(new) == [(v, "putin") for v in sorted(VARIANTS)]
    assert_spans_hold_the_forms(new)


def test_a_memory_hit_without_earlier_text_places_terms_in_order(news: Glossary) -> None:
    segment = translated("Abe met Kerry and Abe’s aide.", "QZX1会见了QZX2和QZX3的助手。", news)
    bare = AlignedSegment(
        segment.id,
        segment.block_id,
        segment.source,
        segment.ws_before,
        {},
        tuple(type(t)(t.term_id, t.source_text, t.source_start, t.source_end, {}, t.expected) for t in segment.terms),
        (),
    )
    new = realign(bare, {"zh-Hans": "安倍会见了克里和安倍的助手。"}, set(), [RULES[v] for v in VARIANTS], QASettings())
    assert new.targets["zh-TW"] == "安倍會見了凱瑞和安倍的助手。"
    assert missing(new) == []
    assert_spans_hold_the_forms(new)


def test_a_term_is_found_and_written_as_the_articles_format_writes_it(news: Glossary) -> None:
    """A do-not-translate name with an ampersand in an HTML article stands as AT&amp;T in its
    targets (or as a person typed it, AT&T): an edit keeping it raises no flag, and the variants
    regenerated from the edit write it escaped, beside Kerry's regional form."""
    att = Glossary("att", (*news.terms, Term("att", ("AT&T",), {}, do_not_translate=True)))
    pipeline = Pipeline(ScriptedEngine("QZX1会见了QZX2。"), RULES)  # type: ignore[arg-type]
    article = Article("<p>AT&amp;T met Kerry.</p>", SourceFormat.HTML)
    (segment,) = pipeline.translate(article, targets=VARIANTS, glossary=att).segments
    assert segment.targets["zh-TW"] == "AT&amp;T會見了凱瑞。" and missing(segment) == []
    rules = [RULES[v] for v in VARIANTS]
    for typed in ("AT&amp;T与克里会面。", "AT&T与克里会面。"):
        new = realign(segment, {"zh-Hans": typed}, set(), rules, QASettings(), fmt=SourceFormat.HTML)
        assert missing(new) == [], typed
        assert new.targets["zh-TW"] == "AT&amp;T與凱瑞會面。"
        for term in new.terms:
            for variant, span in term.targets.items():
                assert span is not None
                assert html.unescape(new.targets[variant][span.start : span.end]) == term.expected[variant]


def test_one_entry_with_two_forms_in_a_sentence_is_found_in_each(news: Glossary) -> None:
    """ "Security Consultative Committee (SCC)" has two hits of one entry, one to read as the name
    and one as the abbreviation: a translator's edit that keeps both is not flagged, one that drops
    the abbreviation is flagged for it alone."""
    source = "Abe Shinzo told the Security Consultative Committee (SCC) that Futenma must move."
    segment = translated(source, "QZX1告诉QZX2（QZX3），QZX4必须搬迁。", news)
    assert [(t.term_id, t.expected["zh-Hans"]) for t in segment.terms if t.term_id == "scc"] == [
        ("scc", "美日安全保障磋商委员会"),
        ("scc", "SCC"),
    ]
    assert missing(segment) == []
    new = edit(segment, "安倍晋三告诉美日安全保障磋商委员会（SCC），普天间必须迁走。")
    assert new.targets["zh-TW"] == "安倍晉三告訴美日安全保障磋商委員會（SCC），普天間必須遷走。"
    assert missing(new) == []
    assert_spans_hold_the_forms(new)
    dropped = edit(segment, "安倍晋三告诉美日安全保障磋商委员会，普天间必须迁走。")
    assert missing(dropped) == [(v, "scc") for v in sorted(VARIANTS)]
    flagged = {f.reason for f in dropped.flags if f.code == "term_missing" and f.variant == "zh-Hans"}
    assert len(flagged) == 1 and flagged.pop().endswith("should read “SCC”")
