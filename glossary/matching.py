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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

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


@dataclass(frozen=True)
class _Compiled:
    # By key: the forms starting with it, longest first, as (regex, term).
    forms: dict[str, list[tuple[str, Term]]]
    # By key: the forms' alternation (group i+1 belongs to terms[i]), compiled when first needed.
    patterns: dict[str, tuple[re.Pattern[str], tuple[Term, ...]]] = field(default_factory=dict)

    def at(self, key: str) -> tuple[re.Pattern[str], tuple[Term, ...]] | None:
        found = self.patterns.get(key)
        if found is None and key in self.forms:
            forms = self.forms[key]
            groups = "|".join(f"({p})" for p, _ in forms)
            found = re.compile(_WHOLE.format(groups, a=_APOSTROPHES)), tuple(t for _, t in forms)
            self.patterns[key] = found
        return found


@lru_cache(maxsize=64)
def _compile(glossary: Glossary) -> _Compiled:
    alternatives: list[tuple[int, str, str, Term]] = []
    for term in glossary.terms:
        for form in term.forms:
            if form:
                alternatives.append((len(form), _key(form, 0), _form_pattern(form, term.case_sensitive), term))
    # Longest forms first: at one position the alternation then takes the longest that fits.
    alternatives.sort(key=lambda a: -a[0])
    forms: dict[str, list[tuple[str, Term]]] = {}
    for _, key, pattern, term in alternatives:
        forms.setdefault(key, []).append((pattern, term))
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
        pattern, terms = found
        match = pattern.match(text, start.start())
        if match is None or match.lastindex is None:
            continue
        span = Span(match.start(), match.end())
        if fits is None or fits(span):
            candidates.append(TermHit(terms[match.lastindex - 1], span, match.group(0)))
    chosen: list[TermHit] = []
    taken: list[Span] = []
    for hit in sorted(candidates, key=lambda h: (-(h.span.end - h.span.start), h.span.start)):
        if all(hit.span.end <= s.start or hit.span.start >= s.end for s in taken):
            chosen.append(hit)
            taken.append(hit.span)
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
