"""Quality checks on a translated segment. Each returns a Flag with a reason a translator can act
on, or None. Pure functions over strings."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’\-]*(?:[ \t]+[A-Za-z][A-Za-z'’\-]*)*")
_LOOP = re.compile(r"((?!\d).{1,12}?)\1{%d,}", re.DOTALL)


def _numbers(text: str) -> list[str]:
    found = []
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "")
        if re.fullmatch(r"\d+", value):
            value = str(int(value))
        found.append(value)
    return found


def number_mismatch(source: str, target: str) -> Flag | None:
    """Figures in the source that the target does not contain (as figures)."""
    target_numbers = _numbers(target)
    missing = []
    for number in _numbers(source):
        if number in target_numbers:
            target_numbers.remove(number)
        else:
            missing.append(number)
    if missing:
        return Flag("number_mismatch", f"figures in the source missing from the translation: {', '.join(missing)}")
    return None


def untranslated(target: str, allowed: Iterable[str], settings: QASettings) -> Flag | None:
    """Long Latin runs left in the Chinese, other than do-not-translate terms and inline code."""
    text = target
    for keep in sorted(set(allowed), key=len, reverse=True):
        if keep:
            text = text.replace(keep, " ")
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
    match = re.search(_LOOP.pattern % (settings.repetition_min_repeats - 1), target, re.DOTALL)
    if match:
        unit = match.group(1)
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
