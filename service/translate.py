"""From a request (HTTP or CLI) to a validated translation job. One place for the rules, so the
API and the CLI refuse the same inputs with the same words."""

from __future__ import annotations

from dataclasses import dataclass

from glossary.terms import VARIANTS, Glossary
from service.config import Settings
from service.documents import Article
from service.formats import MarkupTooDeep, parse_blocks
from service.glossaries import Glossaries
from service.pipeline import Parsed
from service.schemas import TranslateRequest


class InputError(ValueError):
    """Input the service refuses. `code` is stable; the message says what to change."""

    def __init__(self, code: str, message: str, *, valid: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.valid = valid


@dataclass(frozen=True)
class TranslateJob:
    article: Article
    targets: tuple[str, ...]
    glossary: Glossary
    glossary_names: tuple[str, ...]
    # The article as check_article parsed it, for the pipeline to take rather than parse it again.
    parsed: Parsed | None = None


def check_targets(targets: list[str] | None, settings: Settings) -> tuple[str, ...]:
    chosen = list(dict.fromkeys(targets if targets is not None else settings.default_targets))
    if not chosen:
        raise InputError("invalid_targets", "targets is empty; name at least one variant", valid=list(VARIANTS))
    unknown = [t for t in chosen if t not in VARIANTS]
    if unknown:
        raise InputError(
            "unknown_variant",
            f"unknown variant {', '.join(map(repr, unknown))}; valid: {', '.join(VARIANTS)}",
            valid=list(VARIANTS),
        )
    return tuple(chosen)


def check_article(article: Article, settings: Settings, *, what: str = "article") -> Parsed:
    """Refuse an article with no text, more than DUIYI_MAX_CHARS characters in all its fields, or
    markup nested deeper than the formats read (service.formats.MarkupTooDeep: it could never be
    translated). It is parsed as the pipeline parses it (a tenth of a second at most for an article
    of 100,000 characters, about a second for as many brackets; see bench/markdown_cost.py): the
    parse is returned, for a translation made now to take (`Pipeline.translate(parsed=…)`) rather
    than parse it again."""
    fields = (article.body, article.title, article.subtitle, article.byline, article.date)
    if not any(x.strip() for x in fields):
        raise InputError("empty_input", "there is no text to translate")
    size = sum(len(x) for x in fields)
    if size > settings.max_chars:
        raise InputError(
            "too_large",
            f"the {what} has {size:,} characters; the limit is {settings.max_chars:,} "
            "(split the article, or raise DUIYI_MAX_CHARS)",
        )
    try:
        return parse_blocks(article)
    except MarkupTooDeep as exc:
        raise InputError("markup_too_deep", str(exc)) from None


def prepare(request: TranslateRequest, settings: Settings, store: Glossaries) -> TranslateJob:
    """Validate a request; raises InputError or UnknownGlossaryError. The job carries the article
    as parsed to check it (`parsed`), for the pipeline to take."""
    if (request.text is None) == (request.article is None):
        raise InputError("invalid_request", "send exactly one of `text` or `article`")
    if request.article is not None:
        a = request.article
        article = Article(a.body, request.format, a.title, a.subtitle, a.byline, a.date)
    else:
        article = Article(request.text or "", request.format)
    parsed = check_article(article, settings, what="input")
    targets = check_targets(request.targets, settings)
    names = tuple(request.glossaries if request.glossaries is not None else settings.default_glossaries)
    glossary = store.stacked(names) if names else Glossary(name="none")
    return TranslateJob(article, targets, glossary, names, parsed)
