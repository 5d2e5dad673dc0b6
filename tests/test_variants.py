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
    ],
)
def test_dates(text: str, expected: str) -> None:
    assert chinese_dates(text) == expected


def test_a_dateline_is_recognised() -> None:
    assert is_date("Nov 07 , 2013")
    assert not is_date("On Nov 07 they met")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('日本 政府 说 , 他们 "同意" .', "日本政府说，他们“同意”。"),
        ("他说:好的;(测试)", "他说：好的；（测试）"),
        ("价格为2.5美元.", "价格为2.5美元。"),
        ("真的吗 ?", "真的吗？"),
        ("1,000人", "1,000人"),
        ("NATO and the UN", "NATO and the UN"),
    ],
)
def test_hans_typography(text: str, expected: str) -> None:
    assert tidy_hans(text) == expected
