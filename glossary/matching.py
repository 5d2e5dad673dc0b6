"""Finding glossary terms in English text.

Rules (golden cases in tests/test_matching.py):
- whole words only: a form never matches inside another word ("Abe" not in "Abel", "Abenomics");
- possessives and hyphenated compounds still match ("Abe’s", "SCC's", "Futenma-based"), and the
  span covers the term alone so the model still sees the possessive;
- straight and curly apostrophes are the same; runs of white space are the same;
- longest match wins; forms with a capital letter match exactly (acronyms such as SCC),
  lower-case forms match in any case ("Collective self-defense" at a sentence start).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
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


def _form_pattern(form: str, case_sensitive: bool | None) -> str:
    parts: list[str] = []
    for ch in form:
        if ch in "'’":
            parts.append("['’]")
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


@dataclass(frozen=True)
class _Compiled:
    pattern: re.Pattern[str]
    terms: tuple[Term, ...]  # group i+1 belongs to terms[i]


@lru_cache(maxsize=64)
def _compile(glossary: Glossary) -> _Compiled:
    alternatives: list[tuple[int, str, int]] = []
    for index, term in enumerate(glossary.terms):
        for form in term.forms:
            alternatives.append((len(form), _form_pattern(form, term.case_sensitive), index))
    # Longest forms first: at one position the alternation then takes the longest that fits.
    alternatives.sort(key=lambda a: -a[0])
    terms = tuple(glossary.terms[i] for _, _, i in alternatives)
    groups = "|".join(f"({p})" for _, p, _ in alternatives) or "(?!)"
    # Not preceded by a letter or digit; not followed by one (so "’s" and "-based" may follow).
    pattern = re.compile(rf"(?<![^\W_])(?:{groups})(?![^\W_])")
    return _Compiled(pattern, terms)


_WORD_START = re.compile(r"(?<![^\W_])[^\s]")


def find_terms(text: str, glossary: Glossary, *, fits: Callable[[Span], bool] | None = None) -> list[TermHit]:
    """All non-overlapping term hits in `text`, in text order, longest match winning. `fits`: only
    the hits it accepts compete (a caller's constraint, such as not crossing inline markup), so a
    shorter term inside a refused longer one still counts ("Putin" in "<b>Vladimir</b> Putin")."""
    compiled = _compile(glossary)
    candidates: list[TermHit] = []
    for start in _WORD_START.finditer(text):
        match = compiled.pattern.match(text, start.start())
        if match is None or match.lastindex is None:
            continue
        span = Span(match.start(), match.end())
        if fits is None or fits(span):
            candidates.append(TermHit(compiled.terms[match.lastindex - 1], span, match.group(0)))
    chosen: list[TermHit] = []
    taken: list[Span] = []
    for hit in sorted(candidates, key=lambda h: (-(h.span.end - h.span.start), h.span.start)):
        if all(hit.span.end <= s.start or hit.span.start >= s.end for s in taken):
            chosen.append(hit)
            taken.append(hit.span)
    return sorted(chosen, key=lambda h: h.span.start)
