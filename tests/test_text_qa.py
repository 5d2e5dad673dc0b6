"""The number check and 一: a figure 1 in the source is not found in the 一 of a word (一些, 统一,
一起, 一直), only in a 一 that counts something (一艘船, 第一, 三分之一, 一万)."""

from __future__ import annotations

import pytest

from service.qa import number_mismatch


@pytest.mark.parametrize(
    "target",
    [
        "一些船只沉没。",  # some ships
        "各方统一行动。",  # unified
        "他们一起沉没了。",  # together
        "船一直在沉。",  # all along
        "万一船沉了。",  # in case
        "这是唯一的船。",  # the only
        "一方面，船沉了。",  # on the one hand
        "进一步的消息。",  # further
    ],
)
def test_a_one_that_is_part_of_a_word_is_not_the_figure_1(target: str) -> None:
    flag = number_mismatch("1 ship sank.", target)
    assert flag is not None and flag.reason.endswith(": 1")


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("1 ship sank.", "一艘船沉没。"),
        ("He won 1 vote.", "他获得一票。"),
        ("It ranked No. 1.", "它排名第一。"),
        ("1 in 3 people", "三分之一的人"),
        ("1 percent", "百分之一"),
        ("It lasted 1 year.", "持续了一年。"),
        ("It took 1 hour.", "用了一小时。"),
        ("It cost $1 billion.", "耗资十亿美元。"),
        ("1 million", "一百万"),
        ("1,001,000 people", "一百万一千人"),
        ("11 ships", "十一艘船"),
        ("It was the only 1 left.", "它是唯一一家。"),  # 唯一 and 一家, not 11
        ("at 1 p.m.", "下午一点"),
        ("1 ship sank.", "1艘船沉没。"),
    ],
)
def test_a_one_that_counts_is_the_figure_1(source: str, target: str) -> None:
    assert number_mismatch(source, target) is None


@pytest.mark.parametrize(
    ("source", "target"),
    [
        # The sample article's figures, in translations that also hold words with 一: no flag.
        ("On November 2 Japan held the first “2+2” meeting.", "11月2日，日本举行了第一次“2+2”会议，双方一致同意。"),
        ("The most recent “2+2” meeting took place in Tokyo on October 3.", "最近一次“2+2”会议于10月3日在东京举行。"),
        ("The August 19 meeting offered hope.", "8月19日的会晤进一步带来了希望，这一点很重要。"),
        ("Nov 07 , 2013", "2013年11月7日"),
    ],
)
def test_the_sample_articles_figures_are_not_flagged(source: str, target: str) -> None:
    assert number_mismatch(source, target) is None
