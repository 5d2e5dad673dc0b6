"""Finding glossary terms in English text.

Rules (golden cases in tests/test_matching.py):
- whole words only: a form never matches inside another word ("Abe" not in "Abel", "Abenomics");
- possessives and hyphenated compounds still match ("Abe’s", "SCC's", "Futenma-based"), and the
  span covers the term alone so the model still sees the possessive; an apostrophe followed by
  other letters goes on the word ("Xi" is not in "Xi’an", the city);
- straight, curly and modifier-letter apostrophes are the same; runs of white space are the same;
- longest match wins; forms with a capital letter match exactly (acronyms such as SCC),
  lower-case forms match in any case ("Collective self-defense" at a sentence start).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

from glossary.terms import Glossary, Term


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class TermHit:
    term: Term
    span: Span  # in the text that was searched
    text: str  # the text matched, as written in the source


# Apostrophes as news text writes them: straight, curly (and its opening twin, a common typo), and
# the modifier letter apostrophe.
_APOSTROPHES = "'’‘ʼ"


def _form_pattern(form: str, case_sensitive: bool | None) -> str:
    parts: list[str] = []
    for ch in form:
        if ch in _APOSTROPHES:
            parts.append(f"[{_APOSTROPHES}]")
        elif ch.isspace():
            if not parts or parts[-1] != r"\s+":
                parts.append(r"\s+")
        elif ch in "-‐‑":
            parts.append("[-‐‑]")
        else:
            parts.append(re.escape(ch))
    body = "".join(parts)
    exact = case_sensitive if case_sensitive is not None else any(c.isupper() for c in form)
    return body if exact else f"(?i:{body})"


# A form's first word (or its first character, where it starts with no letter or digit), lower-cased
# with apostrophes and hyphens made alike: a form can only match where the text's word there has the
# same key, so each position tries the few forms that start with its word, not the whole glossary.
_FIRST = re.compile(rf"[^\W_{_APOSTROPHES}]+|[\s\S]")
_ALIKE = str.maketrans({c: "'" for c in _APOSTROPHES} | {"‐": "-", "‑": "-"})


def _key(text: str, pos: int) -> str:
    match = _FIRST.match(text, pos)
    return match.group(0).translate(_ALIKE).lower() if match else ""


# Not preceded by a letter or digit; not followed by one (so "-based" may follow), nor by an
# apostrophe and letters other than a possessive "’s" ("Xi’an" is a city, "Xi’s" is Xi's).
_WHOLE = r"(?<![^\W_])(?:{})(?![^\W_{a}])(?![{a}](?![sS](?![^\W_]))[^\W_])"


# Which alternative matched, from the text it matched: the form with its apostrophes, hyphens and
# white space made alike and its letters lower-cased, where `re` with IGNORECASE could match them
# (ASCII letters; the four other characters that `re` takes for one of them, as tests/
# test_glossary_scale.py checks against every code point). Any other character stands for every
# other: this key is never finer than the patterns, so a form that matched has the key of the text.
_SAME = str.maketrans(
    {c: "'" for c in _APOSTROPHES} | {"‐": "-", "‑": "-"} | {"\u0130": "i", "\u0131": "i", "\u212a": "k", "\u017f": "s"}
)
_ANY_OTHER = "\x00"


def _match_key(text: str) -> str:
    out: list[str] = []
    for ch in text.translate(_SAME):
        if ch.isspace():
            if not out or out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch.lower() if ch.isascii() else _ANY_OTHER)
    return "".join(out)


class _Bucket(NamedTuple):
    """The forms that start with one key, longest first (the order the alternation tries them in)."""

    pattern: re.Pattern[str]
    terms: tuple[Term, ...]  # the forms' terms, in that order
    # By match key: the forms that have it, as (pattern, term), in the alternation's order.
    by_key: dict[str, list[tuple[str, Term]]]

    def term(self, matched: str) -> Term:
        """The term of the first form that matches `matched` whole: the alternative the regex took
        (each form matches one text at most at a place, and all share the lookarounds after it)."""
        found = self.by_key[_match_key(matched)]
        if len(found) > 1:
            for pattern, term in found:
                if re.fullmatch(pattern, matched):
                    return term
        return found[0][1]


@dataclass(frozen=True)
class _Compiled:
    # By key: the forms starting with it, longest first, as (regex, form, term).
    forms: dict[str, list[tuple[str, str, Term]]]
    # By key: the forms' alternation (non-capturing: capture groups make `re` cost the square of the
    # forms at each place) and the way back to the term, compiled when first needed.
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def at(self, key: str) -> _Bucket | None:
        found = self.buckets.get(key)
        if found is None and key in self.forms:
            forms = self.forms[key]
            by_key: dict[str, list[tuple[str, Term]]] = {}
            for pattern, form, term in forms:
                by_key.setdefault(_match_key(form), []).append((pattern, term))
            alternation = "|".join(p for p, _, _ in forms)
            compiled = re.compile(_WHOLE.format(alternation, a=_APOSTROPHES))
            found = _Bucket(compiled, tuple(t for _, _, t in forms), by_key)
            self.buckets[key] = found
        return found


@lru_cache(maxsize=64)
def _compile(glossary: Glossary) -> _Compiled:
    alternatives: list[tuple[int, str, str, str, Term]] = []
    for term in glossary.terms:
        for form in term.forms:
            if form:
                alternatives.append((len(form), _key(form, 0), _form_pattern(form, term.case_sensitive), form, term))
    # Longest forms first: at one position the alternation then takes the longest that fits.
    alternatives.sort(key=lambda a: -a[0])
    forms: dict[str, list[tuple[str, str, Term]]] = {}
    for _, key, pattern, form, term in alternatives:
        forms.setdefault(key, []).append((pattern, form, term))
    return _Compiled(forms)


_WORD_START = re.compile(r"(?<![^\W_])[^\s]")


def find_terms(text: str, glossary: Glossary, *, fits: Callable[[Span], bool] | None = None) -> list[TermHit]:
    """All non-overlapping term hits in `text`, in text order, longest match winning. `fits`: only
    the hits it accepts compete (a caller's constraint, such as not crossing inline markup), so a
    shorter term inside a refused longer one still counts ("Putin" in "<b>Vladimir</b> Putin")."""
    compiled = _compile(glossary)
    candidates: list[TermHit] = []
    for start in _WORD_START.finditer(text):
        found = compiled.at(_key(text, start.start()))
        if found is None:
            continue
        match = found.pattern.match(text, start.start())
        if match is None:
            continue
        span = Span(match.start(), match.end())
        if fits is None or fits(span):
            candidates.append(TermHit(found.term(match.group(0)), span, match.group(0)))
    chosen: list[TermHit] = []
    # The chosen spans' starts and ends, in text order (they do not overlap, so both are sorted): a
    # hit overlaps a chosen span only if it overlaps the last one that starts before it ends.
    starts: list[int] = []
    ends: list[int] = []
    for hit in sorted(candidates, key=lambda h: (-(h.span.end - h.span.start), h.span.start)):
        at = bisect_left(starts, hit.span.end)
        if at == 0 or ends[at - 1] <= hit.span.start:
            chosen.append(hit)
            starts.insert(at, hit.span.start)
            ends.insert(at, hit.span.end)
    return _abbreviations_as_written(text, sorted(chosen, key=lambda h: h.span.start))


_OPENING = re.compile(r"\s*[(（]\s*$")
_CLOSING = re.compile(r"\s*[)）]")


def _abbreviations_as_written(text: str, hits: list[TermHit]) -> list[TermHit]:
    """A short form in brackets right after a longer form of the same term ("U.S.-Japan Security
    Consultative Committee (SCC)") introduces the abbreviation: it stays as written (the hit becomes
    do-not-translate), so the translation reads 美日安全保障磋商委员会（SCC）, not the name twice."""
    out = list(hits)
    for index in range(1, len(out)):
        before, hit = out[index - 1], out[index]
        if (
            hit.term.id == before.term.id
            and len(hit.text) < len(before.text)
            and _OPENING.match(text[before.span.end : hit.span.start])
            and _CLOSING.match(text, hit.span.end)
        ):
            out[index] = TermHit(replace(hit.term, do_not_translate=True), hit.span, hit.text)
    return out
