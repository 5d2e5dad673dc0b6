"""Quality checks on a translated segment. Each returns a Flag with a reason a translator can act
on, or None. Pure functions over strings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from service.documents import Flag
from service.variants import HAN


@dataclass(frozen=True)
class QASettings:
    # target/source character ratio outside [min, max] is flagged (en→zh is usually 0.25–0.6)
    min_length_ratio: float = 0.1
    max_length_ratio: float = 1.5
    # shortest source (characters) the length check applies to
    length_check_min_chars: int = 20
    # a Latin run this many letters long (or two words or more) left in Chinese is "untranslated"
    untranslated_min_letters: int = 6
    # a unit repeated this many times in a row is a loop
    repetition_min_repeats: int = 4


# A figure as English writes it: 1,000 (groups of three), 3.5, a scale word after it, a decade
# (the 1990s), a section number (2.1.3).
_FIGURE = re.compile(
    r"(?<!\d)(?<!\d\.)(?:(?P<decade>\d*0)s\b|(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>(?:\.\d+)+)?(?!\d|,\d{3}(?!\d))"
    r"(?:[ \t-]?(?P<scale>thousand|million|billion|trillion|bn|tn)\b)?)",
    re.IGNORECASE,
)
_EN_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12, "bn": 10**9, "tn": 10**12}
# Figures in Chinese: digits with 万 and 亿 (and 千万, 十亿 …) after them: 1.5 billion is 15亿,
# 2 million 200万; 千 alone only where it is not 千米, 千克 and the like.
_HAN_FIGURE = re.compile(r"(?P<num>\d+(?:\.\d+)*)[ \t]*(?P<scale>[十百千]?[万萬亿億]+|千(?![米克瓦卡字焦伏赫兆]))?")
_HAN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
               "八": 8, "九": 9}  # fmt: skip
_HAN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
# Figures the model wrote in words: 三, 二十一, 一百五十万, 三点五.
_HAN_NUMERAL = re.compile(r"[零〇一二两兩三四五六七八九十百千万萬亿億]+(?:点[零〇一二三四五六七八九]+)?")
# 一 is the number one only where it counts something: before a measure word (一名士兵, 一艘船,
# 一年, 一小时), after 第 or 分之 (第一, 三分之一), as an hour (下午一点), or with other numerals (一万,
# 十一). Alone it is part of a word (一些, 一起, 一直, 一样), where a figure 1 in the source must not
# find it.
_ONE_COUNTS = re.compile(
    r"(?<=第)一|(?<=分之)一|(?<=[午晨上])一(?=[点點])|一(?=[个個位名次回年月日天周週岁歲人件项項家艘架辆輛条條只隻座台臺部本张張份场場批所间間"
    r"倍成层層号號届屆枚头頭颗顆片段句篇首轮輪国國票股吨噸米秒元%％]|\d|小时|小時|分钟|分鐘|世纪|世紀|季度|英里|公里|"
    r"美元|日元|欧元|歐元|英镑|英鎊|港元|百分点|百分點)"
)
# Words in which 一 stands beside another numeral without being one (唯一一家 is 唯一 and 一家, not 11).
# 万一 (in case) is a word only away from other numerals: 一百万一千 is 1,001,000.
_NOT_ONE = re.compile(
    r"唯一|统一|統一|同一|逐一|单一|單一|划一|劃一|一方面|一一|"
    r"(?<![零〇一二两兩三四五六七八九十百千])[万萬]一(?![零〇一二两兩三四五六七八九十百千万萬亿億])"
)
_URL_OR_ADDRESS = re.compile(
    r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|gov|edu|int|info|io|"
    r"cn|hk|tw|jp|uk|us|de|fr|eu)\b(?:/\S*)?",
    re.ASCII,
)
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’\-]*(?:[ \t]+[A-Za-z][A-Za-z'’\-]*)*")
_LOOP = re.compile(r"((?!\d).{1,12}?)\1{%d,}", re.DOTALL)


def _scaled(digits: str, scale: str) -> Decimal | str:
    if digits.count(".") > 1:  # a section number, 2.1.3: as written
        return digits
    value = Decimal(digits)
    for unit in scale:
        value *= _HAN_UNITS[unit]
    return value


def _han_numeral(run: str) -> Decimal | None:
    """The value of a number written in Chinese characters, or None for a run that is not one."""
    whole, _, frac = run.partition("点")
    if not any(ch in _HAN_UNITS for ch in whole):  # read digit by digit: 二〇一三
        value = Decimal("".join(str(_HAN_DIGITS[ch]) for ch in whole) or "0")
    else:
        total, section, digit = 0, 0, 0
        for ch in whole:
            if ch in _HAN_DIGITS:
                digit = _HAN_DIGITS[ch]
            elif _HAN_UNITS[ch] < 10**4:
                section += (digit or 1) * _HAN_UNITS[ch]
                digit = 0
            elif _HAN_UNITS[ch] == 10**4:
                total += (section + digit or 1) * 10**4
                section = digit = 0
            else:
                total = (total + section + digit or 1) * 10**8
                section = digit = 0
        value = Decimal(total + section + digit)
    if frac:
        value += Decimal("0." + "".join(str(_HAN_DIGITS[ch]) for ch in frac))
    return value


def _source_figures(text: str) -> list[tuple[str, tuple[Decimal | str, ...]]]:
    """Each figure of an English text as written, with the values a translation may give it."""
    found: list[tuple[str, tuple[Decimal | str, ...]]] = []
    for m in _FIGURE.finditer(unicodedata.normalize("NFKC", text)):
        if m.group("decade"):  # the 1990s: 1990年代, or 20世纪90年代
            decade = Decimal(m.group("decade"))
            found.append((m.group(0), (decade, decade % 100)))
            continue
        value = _scaled(m.group("int").replace(",", "") + (m.group("frac") or ""), "")
        if m.group("scale") and isinstance(value, Decimal):
            value *= _EN_SCALES[m.group("scale").lower()]
        found.append((m.group(0).strip(), (value,)))
    return found


def _target_figures(text: str) -> list[Decimal | str]:
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000 → 1000
    values = [_scaled(m.group("num"), m.group("scale") or "") for m in _HAN_FIGURE.finditer(text)]
    # Words with 一 that is no number are taken out first (as a character that is no numeral).
    text = _NOT_ONE.sub(lambda m: "_" * len(m.group()), text)
    for m in _HAN_NUMERAL.finditer(text):
        if m.group(0) == "一" and not _ONE_COUNTS.match(text, m.start()):
            continue
        value = _han_numeral(m.group(0))
        if value is not None:
            values.append(value)
    return values


def number_mismatch(source: str, target: str) -> Flag | None:
    """Figures in the source that the target does not give, in figures or in words, at their value:
    "$1.5 billion" is 15亿美元, "three" may be 三, but 1.5亿 is not 1.5 billion, and the 一 of a word
    (一些, 统一, 一起) is not 1 (see _ONE_COUNTS)."""
    target_values = _target_figures(target)
    missing = []
    for written, values in _source_figures(source):
        match = next((v for v in target_values if v in values), None)
        if match is None:
            missing.append(written)
        else:
            target_values.remove(match)
    if missing:
        return Flag("number_mismatch", f"figures in the source missing from the translation: {', '.join(missing)}")
    return None


def untranslated(target: str, allowed: Iterable[str], settings: QASettings) -> Flag | None:
    """Long Latin runs left in the Chinese, other than do-not-translate terms, inline code, web
    addresses and e-mail addresses (which are never translated)."""
    text = target
    for keep in sorted(set(allowed), key=len, reverse=True):
        if keep:
            text = text.replace(keep, " ")
    text = _URL_OR_ADDRESS.sub(" ", text)
    runs = [
        run
        for run in _LATIN_RUN.findall(text)
        if len(re.sub(r"[^A-Za-z]", "", run)) >= settings.untranslated_min_letters or len(run.split()) >= 2
    ]
    if runs:
        shown = "; ".join(f"“{r}”" for r in runs[:3])
        return Flag("untranslated", f"English left in the translation: {shown}")
    return None


def repetition(target: str, settings: QASettings) -> Flag | None:
    """A unit of text repeated in a loop, the classic failure of en→zh models."""
    for match in re.finditer(_LOOP.pattern % (settings.repetition_min_repeats - 1), target, re.DOTALL):
        unit = match.group(1)
        if re.fullmatch(r"[\d.,，\s]+", unit):  # the digit groups of a number: 1,000,000,000,000
            continue
        count = len(match.group(0)) // len(unit)
        return Flag("repetition", f"“{unit}” repeated {count} times in a row")
    return None


def length_ratio(source: str, target: str, settings: QASettings) -> Flag | None:
    if not target.strip():  # at any length: publishing it would drop the sentence
        return Flag("length_ratio", "the translation is empty") if source.strip() else None
    if len(source) < settings.length_check_min_chars:
        return None
    # Chinese characters carry about three English characters each; Latin text counts as written.
    size = len(HAN.findall(target)) + len(HAN.sub("", target)) / 3
    ratio = size / len(source)
    if ratio < settings.min_length_ratio:
        return Flag("length_ratio", f"translation looks too short for its source (ratio {ratio:.2f})")
    if ratio > settings.max_length_ratio:
        return Flag("length_ratio", f"translation looks too long for its source (ratio {ratio:.2f})")
    return None
