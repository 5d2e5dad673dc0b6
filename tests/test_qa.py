from __future__ import annotations

from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated

QA = QASettings()


def test_number_mismatch_names_the_missing_figures() -> None:
    assert number_mismatch("On November 2, 2013, 1,000 troops", "2013年11月2日，1000名士兵") is None
    flag = number_mismatch("On November 2, 2013, 1,000 troops", "2013年11月，1000名士兵")
    assert flag is not None and flag.code == "number_mismatch" and "2" in flag.reason
    assert number_mismatch("Nov 07", "11月7日") is None


def test_untranslated_ignores_short_acronyms_and_do_not_translate_terms() -> None:
    assert untranslated("北约（NATO）和UN", [], QA) is None
    flag = untranslated("他说 the alliance is strong", [], QA)
    assert flag is not None and "the alliance is strong" in flag.reason
    assert untranslated("美联社 Associated Press 报道", ["Associated Press"], QA) is None


def test_repetition_loops() -> None:
    flag = repetition("约翰约翰约翰约翰说", QA)
    assert flag is not None and "约翰" in flag.reason and "4 times" in flag.reason
    assert repetition("哈哈哈", QA) is None
    assert repetition("10000000 美元", QA) is None


def test_length_ratio() -> None:
    source = "The meeting was held in Tokyo, evidencing that the initiative came from Japan."
    assert length_ratio(source, "会议在东京举行，表明这一倡议来自日本。", QA) is None
    short = length_ratio(source, "会议。", QA)
    assert short is not None and "too short" in short.reason
    long = length_ratio("Short sentence here, ok.", "这" * 60, QA)
    assert long is not None and "too long" in long.reason
    # An empty translation of any source, even one too short for the ratio, is flagged.
    for text in ("", "  \n"):
        for src in (source, "Futenma."):
            empty = length_ratio(src, text, QA)
            assert empty is not None and empty.reason == "the translation is empty"
    assert length_ratio("", "", QA) is None
    assert length_ratio("Futenma.", "普天间。", QA) is None
