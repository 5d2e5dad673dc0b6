"""Concordance: how a word or phrase was translated before, as a CAT tool shows it to a translator.

The translation memory's entries that hold the query (`TranslationMemory.search`), and the glossary
terms whose English or Chinese forms hold it, both matched as `service.memory.query_pattern` says
(at word boundaries in English, anywhere in Chinese, in any case). Used by `/v1/memory/search` and
by the review workspace's Concordance box; the memory holds every owner's approved sentences, so
both are for those who may read it (Permission.MEMORY_READ).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from glossary.terms import VARIANTS, Term
from service.glossaries import Glossaries, UnknownGlossaryError
from service.jobs.articles import get_job
from service.memory import (
    SEARCH_MAX_QUERY,
    SearchResult,
    SearchSide,
    TranslationMemory,
    match_spans,
    normalize,
    query_pattern,
)
from service.schemas import ConcordanceEntry, ConcordanceOut, ConcordanceTerm, MarkedText, Span
from service.storage.db import Database
from service.variants import VariantRule, localize, rule_for

Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TermHit:
    glossary: str
    term: Term
    forms: tuple[tuple[str, Spans], ...]  # the English forms, each with where the query is in it
    variant: str
    form: str  # the term's form in `variant`: its own, else its zh-Hans form converted
    form_matches: Spans


@dataclass(frozen=True)
class Found:
    memory: SearchResult
    terms: list[TermHit]


class BadQuery(ValueError):
    """A query or variant that cannot be searched for: `code` and the message are the API's 422."""

    def __init__(self, code: str, message: str, valid: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.valid = valid


def check(query: str, variant: str | None) -> None:
    """BadQuery unless `query` can be searched for in `variant` (None: every variant)."""
    if "\0" in query:
        raise BadQuery("invalid_request", "q: holds a NUL (U+0000), which is no text: remove it")
    if not normalize(query):
        raise BadQuery("invalid_request", "q: the query is blank: give a word or phrase to look for")
    if len(query) > SEARCH_MAX_QUERY:
        raise BadQuery(
            "invalid_request", f"q: at most {SEARCH_MAX_QUERY} characters (a term or phrase), not {len(query)}"
        )
    if variant is not None and variant not in VARIANTS:
        raise BadQuery("unknown_variant", f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}", list(VARIANTS))


def article_glossaries(db: Database, job_id: str, scope: str | None) -> list[str]:
    """The glossaries article `job_id` was translated with, in their order; JobNotFound for an
    article that does not exist or that `scope` (`Principal.scope`) may not see."""
    with db.session() as session:
        return [str(name) for name in get_job(session, job_id, scope).glossaries]


def variant_form(term: Term, rule: VariantRule) -> str:
    """The glossary's form of `term` in the rule's variant, as the pipeline puts it in a translation:
    its own regional form, else its zh-Hans form converted; the English itself for a term kept
    as it is (do not translate)."""
    if term.do_not_translate:
        return term.canonical
    own = term.own_target(rule.variant)
    return own if own is not None else localize(term.targets["zh-Hans"], rule)


def glossary_hits(
    glossaries: Glossaries,
    names: Sequence[str],
    pattern: re.Pattern[str],
    variant: str,
    rules: dict[str, VariantRule],
    limit: int,
) -> list[TermHit]:
    """The terms of the glossaries `names` (in their order; one that is gone is left out) that hold
    `pattern` in an English form, in a Chinese form of any variant, or in their form for `variant`
    (so a query in Traditional characters finds a term stored only in Simplified); at most `limit`."""
    rule = rule_for(variant, rules)
    hits: list[TermHit] = []
    for name in names:
        try:
            glossary = glossaries.get(name)
        except UnknownGlossaryError:
            continue  # an article's glossary deleted since: its terms are no longer anyone's advice
        for term in glossary.terms:
            forms = tuple((form, match_spans(pattern, form)) for form in term.forms)
            form = variant_form(term, rule)
            in_form = match_spans(pattern, form)
            if any(spans for _, spans in forms) or in_form or any(pattern.search(t) for t in term.targets.values()):
                hits.append(TermHit(name, term, forms, variant, form, in_form))
                if len(hits) == limit:
                    return hits
    return hits


def search(
    memory: TranslationMemory,
    glossaries: Glossaries,
    rules: dict[str, VariantRule],
    query: str,
    *,
    variant: str | None,
    limit: int,
    side: SearchSide = "both",
    glossary_names: Sequence[str] | None = None,
) -> Found:
    """The memory's entries (of `variant`, or of every variant) and the glossaries' terms (those
    named, else every glossary) that hold `query`; raises ValueError for a blank query."""
    pattern = query_pattern(query)
    names = glossaries.names() if glossary_names is None else list(glossary_names)
    found = memory.search(query, variant=variant, limit=limit, side=side)
    return Found(found, glossary_hits(glossaries, names, pattern, variant or "zh-Hans", rules, limit))


def _spans(spans: Spans) -> list[Span]:
    return [Span(start=start, end=end) for start, end in spans]


def to_response(found: Found, query: str, variant: str | None) -> ConcordanceOut:
    """What `search` found, on the wire (`/v1/memory/search` and the review workspace's route)."""
    return ConcordanceOut(
        query=normalize(query),
        variant=variant,
        memory=[
            ConcordanceEntry(
                id=h.id,
                job_id=h.job_id,
                source=h.source,
                target=h.target,
                variant=h.variant,
                origin=h.origin,
                created_at=h.created_at,
                source_matches=_spans(h.source_matches),
                target_matches=_spans(h.target_matches),
            )
            for h in found.memory.hits
        ],
        more=found.memory.more,
        glossary=[
            ConcordanceTerm(
                glossary=t.glossary,
                term_id=t.term.id,
                forms=[MarkedText(text=form, matches=_spans(spans)) for form, spans in t.forms],
                targets=dict(t.term.targets),
                variant=t.variant,
                form=MarkedText(text=t.form, matches=_spans(t.form_matches)),
                do_not_translate=t.term.do_not_translate,
                note=t.term.note,
            )
            for t in found.terms
        ],
    )
