from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(
    ("source", "target"),
    [
        # Scales: a billion is ten 亿, a million a hundred 万.
        ("The deal is worth $1.5 billion.", "这笔交易价值15亿美元。"),
        ("The company has 2 million users.", "该公司拥有200万用户。"),
        ("It has 1.2 million users and 3.5bn in debt.", "它有120万用户和35亿债务。"),
        ("Around 10,000 people", "约1万人"),
        ("100 billion yen", "1000亿日元"),
        # Figures the model wrote in words.
        ("3 soldiers died.", "三名士兵死亡。"),
        ("the 21st century", "二十一世纪"),
        ("Around 10,000 people", "约一万人"),
        ("It grew 3.5 percent.", "增长了百分之三点五。"),
        ("1.5 billion", "十五亿"),
        # The same value written otherwise.
        ("3.50 dollars", "3.5美元"),
        ("Around 10,000 people", "约10，000人"),
        ("In the 1990s", "在20世纪90年代"),
        ("Items 1,2,3", "第1、2、3项"),
    ],
)
def test_number_mismatch_accepts_the_same_figure_written_the_chinese_way(source: str, target: str) -> None:
    assert number_mismatch(source, target) is None


@pytest.mark.parametrize(
    ("source", "target", "missing"),
    [
        ("The deal is worth $1.5 billion.", "这笔交易价值1.5亿美元。", "1.5 billion"),  # a tenth of it
        ("The company has 2 million users.", "该公司拥有2万用户。", "2 million"),
        ("20 people", "20万人", "20"),
        ("5,000 troops", "500名士兵", "5,000"),
        ("Section 2.1.3", "第2.1节", "2.1.3"),
        ("Officials counted 3 ships.", "官员数了几艘船。", "3"),
        ("Items 1,2,3", "第1、2项", "3"),
    ],
)
def test_number_mismatch_flags_a_wrong_or_dropped_figure(source: str, target: str, missing: str) -> None:
    flag = number_mismatch(source, target)
    assert flag is not None and flag.reason.endswith(f": {missing}")


def test_untranslated_leaves_addresses_alone() -> None:
    assert untranslated("详情请访问https://www.example.com/news或www.example.org。", [], QA) is None
    assert untranslated("请发邮件至newsdesk@example.com。", [], QA) is None
    assert untranslated("请访问example.com/about了解更多", [], QA) is None
    flag = untranslated("请访问example.com，the alliance", [], QA)
    assert flag is not None and "“the alliance”" in flag.reason


def test_repetition_is_not_a_long_number() -> None:
    assert repetition("支出达1,000,000,000,000美元。", QA) is None
    flag = repetition("支出达1,000,000,000,000美元。他说说说说", QA)
    assert flag is not None and "“说”" in flag.reason
