"""A segment retargeted from a given zh-Hans text (a translator's edit, or a translation memory
hit): the Traditional variants regenerated with OpenCC and each glossary term's own regional form,
term spans found again, QA run again. Pure functions over the pipeline's dataclasses."""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.documents import AlignedSegment, AlignedTerm, Flag, TargetSpan
from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated
from service.variants import VariantRule, localize

# Private Use Area: OpenCC leaves these alone, so a term's zh-Hans form is kept out of conversion.
_PUA = 0xE000
_MARKUP = re.compile(r"<[^>]+>|\]\([^)]*\)|[\[*_`]")


def _localize_with_terms(hans: str, terms: Sequence[AlignedTerm], rule: VariantRule) -> str:
    """`hans` in the variant, each glossary term's zh-Hans form replaced by the variant's own form."""
    masked, forms = hans, list[str]()
    for term in sorted(terms, key=lambda t: -len(t.expected.get("zh-Hans", ""))):
        source_form, target_form = term.expected.get("zh-Hans"), term.expected.get(rule.variant)
        if not source_form or target_form is None or source_form not in masked:
            continue
        token = chr(_PUA + len(forms))
        forms.append(target_form)
        masked = masked.replace(source_form, token)
    text = localize(masked, rule)
    for i, form in enumerate(forms):
        text = text.replace(chr(_PUA + i), form)
    return text


def _plain(text: str) -> str:
    return _MARKUP.sub("", text)


def realign(
    seg: AlignedSegment,
    texts: dict[str, str],
    locked: set[str],
    rules: Sequence[VariantRule],
    qa: QASettings,
    *,
    origin: str = "human",
) -> AlignedSegment:
    """The segment with `texts` (variant → a person's text) in place: unlocked variants regenerated
    from zh-Hans, term spans found again, QA run again on the new zh-Hans."""
    hans = texts.get("zh-Hans", seg.targets.get("zh-Hans", ""))
    targets: dict[str, str] = {}
    for rule in rules:
        v = rule.variant
        if v in texts:
            targets[v] = texts[v]
        elif v == "zh-Hans":
            targets[v] = hans
        elif v in locked:
            targets[v] = seg.targets[v]
        else:
            targets[v] = _localize_with_terms(hans, seg.terms, rule)
    flags: list[Flag] = []
    terms = []
    for term in seg.terms:
        spans: dict[str, TargetSpan | None] = {}
        for v, text in targets.items():
            form = term.expected.get(v, "")
            at = text.find(form) if form else -1
            spans[v] = TargetSpan(at, at + len(form)) if at >= 0 else None
            if at < 0:
                flags.append(
                    Flag("term_missing", f"glossary term “{term.source_text}” ({term.term_id}) should read “{form}”", v)
                )
        terms.append(
            AlignedTerm(term.term_id, term.source_text, term.source_start, term.source_end, spans, dict(term.expected))
        )
    source = seg.source
    for term in sorted(seg.terms, key=lambda t: -t.source_start):
        source = source[: term.source_start] + " " + source[term.source_end :]
    plain = _plain(hans)
    kept = [t.source_text for t in seg.terms if t.expected.get("zh-Hans") == t.source_text]
    checks = [number_mismatch(source, plain), untranslated(plain, kept, qa), length_ratio(seg.source, plain, qa)]
    checks.append(repetition(plain, qa))
    flags.extend(f for f in checks if f is not None)
    return AlignedSegment(
        id=seg.id,
        block_id=seg.block_id,
        source=seg.source,
        ws_before=seg.ws_before,
        targets=targets,
        terms=tuple(terms),
        flags=tuple(flags),
        origin=origin,
        status="needs_review" if flags else "draft",
    )
