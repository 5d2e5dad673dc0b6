from __future__ import annotations

import json
import re

import pytest

from service.variants import VariantRule, chinese_dates, is_date, localize, tidy_hans, to_hans, variant_rules
from tests.conftest import shared_file

SERVED = ("s2t", "s2tw", "s2twp", "s2hk")


def _opencc_cases() -> list[tuple[str, str, str, str]]:
    raw = shared_file("opencc", "testcases.json").read_text(encoding="utf-8")
    data = json.loads(re.sub(r",(\s*[\]}])", r"\1", raw))
    return [
        (case["id"], config, case["input"], expected)
        for case in data["cases"]
        for config, expected in case["expected"].items()
        if config in SERVED
    ]


CASES = _opencc_cases()


def test_conformance_set_is_not_empty() -> None:
    assert {c[1] for c in CASES} == set(SERVED)
    assert len(CASES) > 50


@pytest.mark.parametrize(("case_id", "config", "text", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_opencc_conformance_through_our_layer(case_id: str, config: str, text: str, expected: str) -> None:
    # Corner quotes on, as for zh-TW/zh-HK: the quote step must not disturb ordinary conversion.
    rule = VariantRule("zh-TW", config, corner_quotes=True)
    assert localize(text, rule) == expected


def test_rules_use_the_configs_in_design() -> None:
    rules = variant_rules()
    assert [rules[v].opencc_config for v in ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")] == [None, "s2t", "s2twp", "s2hk"]
    assert variant_rules(tw_phrases=False)["zh-TW"].opencc_config == "s2tw"


@pytest.mark.parametrize(
    ("variant", "text", "expected"),
    [
        ("zh-Hans", "他说“软件‘很好’”", "他说“软件‘很好’”"),
        ("zh-Hant", "他说“软件‘很好’”", "他說“軟件‘很好’”"),
        ("zh-TW", "他说“软件‘很好’”", "他說「軟體『很好』」"),
        ("zh-HK", "他说“软件‘很好’”", "他説「軟件『很好』」"),  # HK standard form 説
        ("zh-TW", "Abe’s 2+2", "Abe’s 2+2"),
        # A quotation over several paragraphs: each opens with “, only the last closes.
        ("zh-TW", "“我们会回来的。", "「我們會回來的。"),
        ("zh-HK", "他说：“我们会回来的。”", "他説：「我們會回來的。」"),
        ("zh-Hant", "“我们会回来的。", "“我們會回來的。"),
    ],
)
def test_variant_quotes_and_vocabulary(variant: str, text: str, expected: str) -> None:
    assert localize(text, variant_rules()[variant]) == expected


@pytest.mark.parametrize("variant", ["zh-Hant", "zh-TW", "zh-HK"])
def test_a_variant_goes_back_to_zh_hans(variant: str) -> None:
    """What an edit of a Traditional variant becomes when an article has no zh-Hans: OpenCC's reverse
    conversion, quotation marks included (a paragraph of a longer quotation opens without closing)."""
    rule = variant_rules()[variant]
    for hans in ["他说：“软件‘很好’。”", "“我们会回来的。", "美日安全保障磋商委员会在东京开会。"]:
        assert to_hans(localize(hans, rule), rule) == hans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nov 07 , 2013", "2013年11月7日"),
        ("Nov 07, 2013", "2013年11月7日"),
        ("November 7, 2013", "2013年11月7日"),
        ("在October 3举行", "在10月3日举行"),
        ("Sept. 11th", "9月11日"),
        ("Mayor Smith", "Mayor Smith"),
        ("May 40", "May 40"),
        # The model wrote the day's 日 or 号 itself: one 日, not two; 日本 after a date is Japan.
        ("May 5日在东京", "5月5日在东京"),
        ("May 5号，", "5月5日，"),
        ("May 5日前", "5月5日前"),
        ("May 5日本首相", "5月5日日本首相"),
        ("Nov 7日美会谈", "11月7日日美会谈"),
        # A 年 the model put after the year is the year's: one 年, not two.
        ("Nov. 7, 2013年", "2013年11月7日"),
        ("November 7, 2013年，", "2013年11月7日，"),
        ("2013年度", "2013年度"),
        # Day before month, as British papers write it; month and year; a range of days.
        ("7 November 2013", "2013年11月7日"),
        ("于7 Nov.举行", "于11月7日举行"),
        ("在May 2013", "在2013年5月"),
        ("November 2013年", "2013年11月"),
        ("在March 3-5举行", "在3月3日至5日举行"),
        ("Nov 7–9, 2013", "2013年11月7日至9日"),
        ("March 5-3", "3月5日-3"),
        ("1,000 March", "1,000 March"),
        ("May be", "May be"),
        ("November 11月7日", "November 11月7日"),  # 11 is the month the model wrote, not a day
    ],
)
def test_dates(text: str, expected: str) -> None:
    assert chinese_dates(text) == expected


def test_a_dateline_is_recognised() -> None:
    assert is_date("Nov 07 , 2013")
    assert is_date("7 November 2013") and is_date("November 2013")
    assert not is_date("On Nov 07 they met")
    assert not is_date("Nov 32")  # not a date: the model has it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('日本 政府 说 , 他们 "同意" .', "日本政府说，他们“同意”。"),
        ("他说:好的;(测试)", "他说：好的；（测试）"),
        ("价格为2.5美元.", "价格为2.5美元。"),
        ("真的吗 ?", "真的吗？"),
        ("1,000人", "1,000人"),
        ("NATO and the UN", "NATO and the UN"),
        # Punctuation after Chinese before a figure, and before Chinese after a figure or a word.
        ("在东京,10名士兵死亡.", "在东京，10名士兵死亡。"),
        ("他说:2013年是关键的一年.", "他说：2013年是关键的一年。"),
        ("人数达到1000,其中一半是儿童.", "人数达到1000，其中一半是儿童。"),
        ("在Tokyo,日本", "在Tokyo，日本"),
        # A sentence ending in a figure ends in 。, but a decimal point or a time stays.
        ("增长了3.5%.", "增长了3.5%。"),
        ("会议时间:10:30.", "会议时间：10:30。"),
        ("比分是3:2?", "比分是3:2？"),
        ("他说:“我们增长了3.5%.”", "他说：“我们增长了3.5%。”"),
        ("美国U.S.", "美国U.S."),
        ("The rate rose 3.5%.", "The rate rose 3.5%."),
        # Figures stand against Chinese; a date made Chinese too; not a URL's or a name's digits.
        ("安倍晋三 在 2013 年 访问 了 美国 .", "安倍晋三在2013年访问了美国。"),
        ("会议 在 Nov 07, 2013 举行.", "会议在2013年11月7日举行。"),
        ("共有 1,000 人, 占 3.5 %", "共有1,000人，占3.5 %"),
        ("这是 2+2 会议", "这是2+2会议"),
        ("请访问 https://example.com/a?x=1 了解详情.", "请访问 https://example.com/a?x=1 了解详情。"),
        ("在 COVID-19 期间", "在 COVID-19 期间"),
        ("iPhone 5s 的价格", "iPhone 5s 的价格"),
        # Quotes and parentheses around Chinese, or beside it: the “2+2” of the sample article.
        ('这是"2+2"会议.', "这是“2+2”会议。"),
        ('"2+2"会议在东京举行.', "“2+2”会议在东京举行。"),
        ('He said "OK".', 'He said "OK".'),
        ("美国(US)和日本(Japan)", "美国（US）和日本（Japan）"),
        ("15亿美元 ( $1.5 billion )", "15亿美元（$1.5 billion）"),
        ("f(x) = 2", "f(x) = 2"),
        # A quotation running over paragraphs: “ opens each, ” closes only the last.
        ('他说:"我们会回来的.', "他说：“我们会回来的。"),
        ('我们会回来的."', "我们会回来的。”"),
        # Ellipses and dashes in Chinese are two marks wide.
        ("他补充说...我们会回来的.", "他补充说……我们会回来的。"),
        ("他说…", "他说……"),
        ("美国 -- 日本关系", "美国——日本关系"),
        ("美国—日本关系", "美国——日本关系"),
        ("运行 --help 查看", "运行 --help 查看"),
    ],
)
def test_hans_typography(text: str, expected: str) -> None:
    assert tidy_hans(text) == expected
    assert tidy_hans(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        '日,"--',  # the comma becomes ， and puts the quotation mark beside Chinese
        "--;日本",
        '他说:"美国",--“日本”...',
        "QZX1!--…;?…,",
        "U.S.Nov 7， ...7 November",
    ],
)
def test_typography_is_idempotent(text: str) -> None:
    """Tidy text stays as it is: a translator's edit or a stored translation tidied again is unchanged."""
    once = tidy_hans(text)
    assert tidy_hans(once) == once


@pytest.mark.parametrize(
    ("variant", "text", "expected"),
    [
        ("zh-TW", '这是"2+2"会议.', "這是「2+2」會議。"),
        ("zh-HK", '他说:"我们会回来的.', "他説：「我們會回來的。"),
        ("zh-Hant", '这是"2+2"会议.', "這是“2+2”會議。"),
        ("zh-TW", "会议于 10:30 举行, 增长 3.5%.", "會議於10:30舉行，增長3.5%。"),
    ],
)
def test_typography_reaches_every_variant(variant: str, text: str, expected: str) -> None:
    assert localize(tidy_hans(text), variant_rules()[variant]) == expected
