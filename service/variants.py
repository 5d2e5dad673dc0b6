"""Chinese variants and typography: zh-Hans as the model wrote it, tidied; zh-Hant, zh-TW, zh-HK
derived with OpenCC; quotes and dates in each variant's convention.

Order matters, and the pipeline keeps it: `tidy_hans` on the model's output (spaces, full-width
punctuation, English dates), then `localize` per variant (OpenCC, then regional quotes). Glossary
placeholders are plain ASCII, so both steps leave them alone and terms are put in afterwards, in
each variant's own form: conversion never touches a term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import opencc

from glossary.terms import UnknownVariantError


@dataclass(frozen=True)
class VariantRule:
    variant: str
    opencc_config: str | None  # None: no conversion (zh-Hans)
    corner_quotes: bool  # 「」『』 instead of “”‘’


def variant_rules(*, tw_phrases: bool = True, hant_corner_quotes: bool = False) -> dict[str, VariantRule]:
    """The rule for each variant. `tw_phrases` picks s2twp (Taiwan vocabulary: 软件 → 軟體) over
    s2tw (characters only)."""
    return {
        "zh-Hans": VariantRule("zh-Hans", None, False),
        "zh-Hant": VariantRule("zh-Hant", "s2t", hant_corner_quotes),
        "zh-TW": VariantRule("zh-TW", "s2twp" if tw_phrases else "s2tw", True),
        "zh-HK": VariantRule("zh-HK", "s2hk", True),
    }


def rule_for(variant: str, rules: dict[str, VariantRule]) -> VariantRule:
    if variant not in rules:
        raise UnknownVariantError(variant)
    return rules[variant]


@lru_cache(maxsize=8)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


_DOUBLE = re.compile(r"“([^“”]*)”")
_SINGLE = re.compile(r"‘([^‘’]*)’")


# OpenCC's way back to Simplified from each variant's conversion.
_TO_HANS = {"s2t": "t2s", "s2tw": "tw2s", "s2twp": "tw2sp", "s2hk": "hk2s"}
_CORNER_SINGLE = re.compile(r"『([^『』]*)』")


def to_hans(text: str, rule: VariantRule) -> str:
    """The variant's text back in zh-Hans (OpenCC's reverse conversion, curly quotes again): how a
    person's edit of a Traditional variant reaches the others when the article has no zh-Hans."""
    if rule.opencc_config:
        text = _converter(_TO_HANS[rule.opencc_config]).convert(text)
    if rule.corner_quotes:
        text = _CORNER_SINGLE.sub(r"‘\1’", text).replace("「", "“").replace("」", "”")
    return text


def localize(hans: str, rule: VariantRule) -> str:
    """zh-Hans text → the variant's text: OpenCC, then the variant's quotation marks."""
    text = _converter(rule.opencc_config).convert(hans) if rule.opencc_config else hans
    if rule.corner_quotes:
        text = _SINGLE.sub(r"『\1』", text)
        # Pairs, then marks left alone in the segment: a quotation running over several paragraphs
        # opens each with “ and closes only the last (‘ ’ stay: ’ is also an apostrophe).
        text = _DOUBLE.sub(r"「\1」", text).replace("“", "「").replace("”", "」")
    return text


# --- zh-Hans typography ---------------------------------------------------------------------------

# Han ideographs, plus the Private Use Area where service.protect parks placeholders during typography.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ue000-\uf8ff"
_FULL = r"\u3000-\u303f\uff00-\uffef“”‘’…—·"
_CJK = f"[{_HAN}{_FULL}]"
_SPACE_BETWEEN = re.compile(rf"(?<={_CJK})[ \t\u00a0]+(?={_CJK})")
_PUNCT = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；"}
_AFTER_HAN_PUNCT = re.compile(rf"(?<=[{_HAN}”’」』）])\s*([,?!:;])(?!\d)\s*")
_AFTER_HAN_STOP = re.compile(rf"(?<=[{_HAN}”’」』）])\s*\.(?!\d)(?=\s|$|[{_HAN}“”‘’」』)）])\s*")
_PARENS = re.compile(rf"\(\s*([^()]*[{_HAN}][^()]*?)\s*\)")
_STRAIGHT = re.compile(r'"([^"\n]*)"')

_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
# "Nov 07 , 2013", "November 7, 2013", "Oct. 3", "October 3" (month names capitalised, as in news).
_MONTH_NAMES = "|".join(m.capitalize() for m in sorted(_MONTHS, key=len, reverse=True))
# A 日 or 号 the model already put after the day ("May 5日") belongs to the date, unless it begins a
# word for Japan or the Japanese (日本, 日方, 日美, 日元, …), which a date may well precede.
_DAY_MARK = "(?:\\s*[日号](?![本方美中韩俄朝元圆军籍相企产经媒语文菲澳欧印台英法德]))?"
_DATE = re.compile(
    rf"(?<![A-Za-z])(?P<month>{_MONTH_NAMES})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?!\d){_DAY_MARK}"
    rf"(?:\s*,\s*(?P<year>\d{{4}}))?"
)


def chinese_dates(text: str) -> str:
    """English month-day(-year) dates → Chinese convention: "Nov 07, 2013" → 2013年11月7日."""

    def repl(m: re.Match[str]) -> str:
        month = _MONTHS[m.group("month").lower()]
        day = int(m.group("day"))
        if not 1 <= day <= 31:
            return m.group(0)
        year = f"{m.group('year')}年" if m.group("year") else ""
        return f"{year}{month}月{day}日"

    return _DATE.sub(repl, text)


def is_date(text: str) -> bool:
    """True when the whole text is one English date (a dateline): it needs no model."""
    return bool(_DATE.fullmatch(text.strip()))


def tidy_hans(text: str) -> str:
    """Typography for Simplified Chinese output: English dates to Chinese, full-width punctuation
    after Chinese, curly quotes, no stray spaces between Chinese characters."""
    text = chinese_dates(text)
    text = _STRAIGHT.sub(lambda m: f"“{m.group(1)}”" if re.search(f"[{_HAN}]", m.group(1)) else m.group(0), text)
    text = _AFTER_HAN_PUNCT.sub(lambda m: _PUNCT[m.group(1)], text)
    text = _AFTER_HAN_STOP.sub("。", text)
    text = _PARENS.sub(r"（\1）", text)
    text = _SPACE_BETWEEN.sub("", text)
    return text


HAN = re.compile(f"[{_HAN}]")
CJK_OR_FULL = re.compile(_CJK)
