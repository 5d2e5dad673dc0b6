"""Chinese variants and typography: zh-Hans as the model wrote it, tidied; zh-Hant, zh-TW, zh-HK
derived with OpenCC; quotes and dates in each variant's convention.

Order matters, and the pipeline keeps it: `tidy_hans` on the model's output (spaces, full-width
punctuation, English dates), then `localize` per variant (OpenCC, then regional quotes). Glossary
placeholders are plain ASCII, so both steps leave them alone and terms are put in afterwards, in
each variant's own form: conversion never touches a term.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import opencc

from glossary.terms import UnknownVariantError
from service.documents import SourceFormat


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


def localize(hans: str, rule: VariantRule, *, typed: SourceFormat | None = None) -> str:
    """zh-Hans text → the variant's text: OpenCC, then the variant's quotation marks.

    `typed`: the text is a person's (a translator's edit, in an article of this format), not the
    model's output, which `tidy_hans` has given curly quotes already: straight double quotes typed
    in it are made curly first, by the same rule, so that a variant derived from the edit has the
    quotes a variant derived from the model's output has. Quotes are changed only in its text, never
    in its inline markup (an HTML attribute, `href="…"`; a Markdown link's title or code span)."""
    text = _converter(rule.opencc_config).convert(hans) if rule.opencc_config else hans
    if typed is not None and rule.opencc_config:
        text = _outside_markup(text, typed, _quotes)
    if rule.corner_quotes:
        text = _outside_markup(text, typed or SourceFormat.TEXT, _corner)
    return text


def _corner(text: str) -> str:
    text = _SINGLE.sub(r"『\1』", text)
    # Pairs, then marks left alone in the segment: a quotation running over several paragraphs
    # opens each with “ and closes only the last (‘ ’ stay: ’ is also an apostrophe).
    return _DOUBLE.sub(r"「\1」", text).replace("“", "「").replace("”", "」")


# The inline markup a target of an HTML or Markdown article holds (the source's own, which is all a
# person's edit may hold: service.jobs.markup.check_markup): tags and comments, with a code element
# whole; in Markdown an image whole, a link's destination and title or reference, a code span, a
# raw tag or autolink, a backslash escape.
_MARKDOWN_MARKUP = re.compile(
    r"!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])?|\]\((?:[^()]|\([^()]*\))*\)|\]\[[^\]]*\]|`|<[A-Za-z/!?][^<>]*>|\\.",
    re.DOTALL,
)
_HTML_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_HTML_CODE_OPEN = re.compile(r"<code\b[^>]*>", re.IGNORECASE)
_HTML_CODE_CLOSE = re.compile(r"</code>", re.IGNORECASE)


class CodeSpans:
    r"""Where a Markdown code span starting at a backtick ends, as the pattern `(`+).+?\1` (DOTALL)
    finds it (a run of backticks, at least one character, then as many backticks: the longest run
    from that backtick that has such a closer, the nearest closer), in time linear in the text all
    told: the regex backtracks over every shorter run and every closer, cubic on a long run of
    backticks (audit: "中" + 4,000 backticks took seconds)."""

    def __init__(self, text: str) -> None:
        runs = [m.span() for m in re.finditer("`+", text)]
        self._starts = [start for start, _ in runs]
        self._runs = runs
        # The longest run after each run (0 after the last).
        self._longest_after = [0] * (len(runs) + 1)
        for index in range(len(runs) - 1, -1, -1):
            start, end = runs[index]
            self._longest_after[index] = max(self._longest_after[index + 1], end - start)

    def at(self, start: int) -> tuple[int, int] | None:
        """(backticks, end) of the code span that begins at `start` (a backtick), else None."""
        index = bisect.bisect_right(self._starts, start) - 1
        length = self._runs[index][1] - start  # the run from `start`, to its end
        # A closer inside the run itself (`length` ≥ 2 × backticks + 1), or in a later run.
        ticks = max(min(length, self._longest_after[index + 1]), (length - 1) // 2)
        if ticks == 0:
            return None
        if 2 * ticks + 1 <= length:
            return ticks, start + 2 * ticks + 1
        later = index + 1
        while self._runs[later][1] - self._runs[later][0] < ticks:
            later += 1
        return ticks, self._runs[later][0] + ticks


def _markup_spans(text: str, fmt: SourceFormat) -> list[tuple[int, int]] | None:
    """Where the inline markup of an HTML or Markdown target stands (None for other formats): what
    `re.sub` would replace of the patterns in `_markdown_spans` and `_html_spans` (a code span or
    element whole), found without the backtracking that made those patterns cubic or quadratic on
    an edit of unclosed backticks, comments or code elements."""
    if fmt is SourceFormat.MARKDOWN:
        return _markdown_spans(text)
    if fmt is SourceFormat.HTML:
        return _html_spans(text)
    return None


def _markdown_spans(text: str) -> list[tuple[int, int]]:
    r"""`!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])?|\]\((?:[^()]|\([^()]*\))*\)|\]\[[^\]]*\]|(`+).+?\1|<[A-Za-z/!?][^<>]*>|\\.`
    (DOTALL), with its code spans found by `CodeSpans`."""
    spans: list[tuple[int, int]] = []
    code: CodeSpans | None = None
    at = 0
    while m := _MARKDOWN_MARKUP.search(text, at):
        if m.group() != "`":
            spans.append(m.span())
            at = m.end()
            continue
        code = code or CodeSpans(text)
        found = code.at(m.start())
        if found is None:
            at = m.start() + 1
            continue
        spans.append((m.start(), found[1]))
        at = found[1]
    return spans


def _html_spans(text: str) -> list[tuple[int, int]]:
    r"""`<!--.*?-->|<code\b[^>]*>.*?</code>|<[A-Za-z/!?][^<>]*>` (DOTALL, IGNORECASE), each `<`
    tried in turn; once a comment or code element finds no closer, none later does either, so
    later openers are not followed to the end of the text again."""
    spans: list[tuple[int, int]] = []
    comments = code = True  # whether a comment, or a code element, may still close
    last = text.rfind(">")  # every piece of markup ends in a `>`
    at = text.find("<", 0, last) if last > 0 else -1
    while at >= 0:
        end = -1
        if comments and text.startswith("<!--", at):
            close = text.find("-->", at + 4)
            if close >= 0:
                end = close + 3
            else:
                comments = False
        if end < 0 and code:
            opened = _HTML_CODE_OPEN.match(text, at)
            if opened:
                closed = _HTML_CODE_CLOSE.search(text, opened.end())
                if closed:
                    end = closed.end()
                else:
                    code = False
        if end < 0 and (tag := _HTML_TAG.match(text, at)):
            end = tag.end()
        if end >= 0:
            spans.append((at, end))
            at = text.find("<", end, last)
        else:
            at = text.find("<", at + 1, last)
    return spans


def _outside_markup(text: str, fmt: SourceFormat, convert: Callable[[str], str]) -> str:
    """`convert` applied to `text` with its inline markup (in format `fmt`) parked as a private-use
    character, which the typography rules take for Chinese, as service.protect parks placeholders:
    a quotation mark beside a tag is beside the text the tag marks up."""
    spans = _markup_spans(text, fmt)
    if spans is None:
        return convert(text)
    park = next(chr(c) for c in range(0xF8FF, 0xE000, -1) if chr(c) not in text)
    parked = [text[start:end] for start, end in spans]
    edges = [0, *(at for span in spans for at in span), len(text)]
    outside = [text[edges[i] : edges[i + 1]] for i in range(0, len(edges), 2)]
    converted = convert(park.join(outside))
    back = iter(parked)
    return re.sub(re.escape(park), lambda _: next(back), converted)


# --- zh-Hans typography ---------------------------------------------------------------------------

# Han ideographs, plus the Private Use Area where service.protect parks placeholders during typography.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ue000-\uf8ff"
_FULL = r"\u3000-\u303f\uff00-\uffef“”‘’…—·"
_CJK = f"[{_HAN}{_FULL}]"
_SP = r"[ \t\u00a0]"  # white space within a line
_OPEN = "“‘「『（《"
_CLOSE = "”’」』）》"
_SPACE_BETWEEN = re.compile(rf"(?<={_CJK}){_SP}+(?={_CJK})")
# Figures stand against Chinese text ("在2013年", "共有1000人"): a number, not a word or address
# that ends in digits (COVID-19, x=1 in a URL); not after a placeholder either, whose own digits
# would run into the figure's (QZX1 2013 → QZX12013).
_FIGURE = r"\d(?:[\d.,:+]*\d)?%?"
_SPACE_BEFORE_FIGURE = re.compile(
    rf"(?<=[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff{_FULL}]){_SP}+(?={_FIGURE}(?![A-Za-z\d/@_\-+]))"
)
_SPACE_AFTER_FIGURE = re.compile(rf"(?<![^\s{_HAN}{_FULL}])({_FIGURE}){_SP}+(?={_CJK})")
_PUNCT = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；"}
# Punctuation after Chinese, or before it ("在Tokyo,日本", "达到1000,其中"); the comma or colon of
# a figure (1,000, 10:30) has neither beside it.
_AFTER_HAN_PUNCT = re.compile(rf"(?<=[{_HAN}{_CLOSE}]){_SP}*([,?!:;]){_SP}*")
# Not from the second space of a run on: the first was tried, and failed as this one would (each
# try from a space walks the whole run, quadratic in a long run of spaces).
_BEFORE_HAN_PUNCT = re.compile(rf"(?<!{_SP}){_SP}*+([,?!:;]){_SP}*(?=[{_HAN}{_OPEN}])")
_AFTER_HAN_STOP = re.compile(rf"(?<=[{_HAN}{_CLOSE}]){_SP}*\.(?!\d)(?=\s|$|[{_HAN}“”‘’」』)）\"]){_SP}*")
# A Chinese sentence ending in a figure ("增长了3.5%."): after letters a full stop may be an
# abbreviation's (U.S.), so it stays.
_FIGURE_STOP = re.compile(rf"(?<=[\d%])\.(?={_SP}*$|[{_CLOSE}])")
_LATIN_END = re.compile(rf"(?<=[A-Za-z\d%])([?!])(?={_SP}*$|[{_CLOSE}])")
# Runs of dots or dashes (……, ——) beside Chinese. Written so that they cannot backtrack: as
# `(?<=CJK)SP*(?:\.{3,}|…)+|(?:\.{3,}|…)+SP*(?=CJK)` they split a run of dots every possible way
# before giving up, exponential in its length (a line of 40 hyphens stalled the server for
# seconds). The same matches, found once: a run beside Chinese before it; else the whole run, if
# Chinese follows; else the run up to its last … (itself Chinese), if the run holds one after its
# first mark. A run that starts inside a run of dots or hyphens, or of spaces before one, was tried
# from that run's start (unless a letter, a digit or a hyphen precedes that: then from its second).
_DOTS = r"(?:\.{3,}+|…)"
_ELLIPSIS = re.compile(
    rf"(?<={_CJK}){_SP}*+(?>{_DOTS}+)"
    rf"|(?!(?<=\.)\.)(?:(?>{_DOTS}+){_SP}*+(?={_CJK})|{_DOTS}(?:{_DOTS}(?=…|\.{{3,}}+…))*+(?=…))"
)
# -- against a word is an option (--help), not a dash: a run of hyphens before a letter is a dash
# up to its last hyphen but one.
_DASH_MARK = r"(?:(?>-{2,}(?![A-Za-z\d]))|—)"
_DASH = re.compile(
    rf"(?<={_CJK}){_SP}*+(?>{_DASH_MARK}+){_SP}*+"
    rf"|(?<![A-Za-z\d-])(?!(?<=(?<![A-Za-z\d-]){_SP}){_SP}){_SP}*+"
    rf"(?:(?>{_DASH_MARK}+){_SP}*+(?={_CJK})|{_DASH_MARK}(?:{_DASH_MARK}(?=—|-{{2,}}+—))*+(?=—))"
)
# Parentheses with no parentheses inside; the callback strips white space inside them (as
# `\(\s*([^()]*?)\s*\)` did, cubic in the spaces after an unclosed parenthesis).
_PARENS = re.compile(r"\(([^()]*+)\)")
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
# Likewise a 年 after the year ("Nov 7, 2013年"), unless it begins 年度 or 年代.
_YEAR = r"(?P<year>\d{4})(?!\d)(?:\s*年(?![度代]))?"
_ORDINAL = "(?:st|nd|rd|th)?"
_DATE = re.compile(
    rf"(?<![A-Za-z])(?P<month>{_MONTH_NAMES})\.?\s+(?P<day>\d{{1,2}}){_ORDINAL}(?!\d|\s*月){_DAY_MARK}"
    rf"(?:[-–](?P<last>\d{{1,2}}){_ORDINAL}(?!\d){_DAY_MARK})?"  # "March 3-5": 3月3日至5日
    rf"(?:\s*,\s*{_YEAR})?"
)
# "7 November 2013", "7 Nov", as British papers write dates.
_DATE_DMY = re.compile(
    rf"(?<![\d:/])(?<!\d[.,])(?P<day>\d{{1,2}}){_ORDINAL}\s+(?P<month>{_MONTH_NAMES})(?![A-Za-z])\.?(?:,?\s+{_YEAR})?"
)
# "November 2013", "in May 2013": 2013年11月.
_MONTH_YEAR = re.compile(rf"(?<![A-Za-z])(?P<month>{_MONTH_NAMES})\.?,?\s+{_YEAR}")


def _chinese_date(m: re.Match[str]) -> str:
    month = _MONTHS[m.group("month").lower()]
    groups = m.groupdict()
    year = f"{groups['year']}年" if groups.get("year") else ""
    if groups.get("day") is None:
        return f"{year}{month}月"
    day = int(groups["day"])
    last = int(groups["last"]) if groups.get("last") else None
    if not 1 <= day <= 31:
        return m.group(0)
    if last is not None and not day < last <= 31:  # not a range: the date, and the rest as it was
        return f"{month}月{day}日" + m.group(0)[m.end("day") - m.start() :]
    return f"{year}{month}月{day}日" + (f"至{last}日" if last is not None else "")


def chinese_dates(text: str) -> str:
    """English dates → Chinese convention: "Nov 07, 2013" and "7 November 2013" → 2013年11月7日,
    "November 2013" → 2013年11月."""
    for pattern in (_DATE, _DATE_DMY, _MONTH_YEAR):
        text = pattern.sub(_chinese_date, text)
    return text


def is_date(text: str) -> bool:
    """True when the whole text is one English date (a dateline): it needs no model."""
    text = text.strip()
    return any(pattern.fullmatch(text) for pattern in (_DATE, _DATE_DMY, _MONTH_YEAR)) and chinese_dates(text) != text


def _beside_chinese(text: str, start: int, end: int) -> bool:
    """Whether the nearest character before `start` or after `end`, spaces aside, is Chinese."""
    before = text[:start].rstrip(" \t\u00a0")[-1:]
    after = text[end:].lstrip(" \t\u00a0")[:1]
    return bool(CJK_OR_FULL.match(before) or CJK_OR_FULL.match(after))


def _quotes(text: str) -> str:
    """Straight double quotes in Chinese text → “ ”: a pair around Chinese or beside it ("2+2"会议),
    and a lone mark (a quotation running over several paragraphs: “ opens each, ” closes the last)."""
    source = text

    def pair(m: re.Match[str]) -> str:
        if HAN.search(m.group(1)) or _beside_chinese(source, m.start(), m.end()):
            return f"“{m.group(1)}”"
        return m.group(0)

    text = _STRAIGHT.sub(pair, text)
    if source.count('"') % 2 and HAN.search(text):
        at = text.rfind('"')
        before, after = text[at - 1 : at], text[at + 1 : at + 2]
        if before in ("", " ", "\t", "\u00a0", ":", ",", ";", "(", "：", "，", "；", "（", "\n") and HAN.match(after):
            text = text[:at] + "“" + text[at + 1 :]
        elif CJK_OR_FULL.match(before):
            text = text[:at] + "”" + text[at + 1 :]
    return text


def _parens(text: str) -> str:
    """( ) → （ ） around Chinese or beside it: 委员会（SCC）."""

    def pair(m: re.Match[str]) -> str:
        inside = m.group(1).strip()  # str.isspace() is the regex's \s
        if HAN.search(inside) or _beside_chinese(text, m.start(), m.end()):
            return f"（{inside}）"
        return m.group(0)

    return _PARENS.sub(pair, text)


def tidy_hans(text: str) -> str:
    """Typography for Simplified Chinese output: English dates to Chinese, full-width punctuation
    in and beside Chinese, curly quotes, …… and ——, no stray spaces between Chinese characters or
    between them and figures. The rules feed each other (a comma made full-width puts a quotation
    mark beside Chinese), so they run until nothing changes: tidy text stays as it is."""
    for _ in range(5):
        tidied = _tidy_once(text)
        if tidied == text:
            break
        text = tidied
    return text


def _tidy_once(text: str) -> str:
    text = chinese_dates(text)
    text = _quotes(text)
    text = _parens(text)
    text = _ELLIPSIS.sub("……", text)
    text = _DASH.sub("——", text)
    text = _AFTER_HAN_PUNCT.sub(lambda m: _PUNCT[m.group(1)], text)
    text = _BEFORE_HAN_PUNCT.sub(lambda m: _PUNCT[m.group(1)], text)
    text = _AFTER_HAN_STOP.sub("。", text)
    if HAN.search(text):
        text = _FIGURE_STOP.sub("。", text)
        text = _LATIN_END.sub(lambda m: _PUNCT[m.group(1)], text)
    text = _SPACE_BETWEEN.sub("", text)
    text = _SPACE_BEFORE_FIGURE.sub("", text)
    text = _SPACE_AFTER_FIGURE.sub(r"\1", text)
    return text


HAN = re.compile(f"[{_HAN}]")
CJK_OR_FULL = re.compile(_CJK)
