"""A segment retargeted from a given zh-Hans text (a translator's edit, or a translation memory
hit): the Traditional variants regenerated with OpenCC and each glossary term's own regional form,
term spans found again, QA run again. Pure functions over the pipeline's dataclasses."""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.documents import AlignedSegment, AlignedTerm, Flag, TargetSpan
from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated
from service.variants import VariantRule, localize, to_hans

# Private Use Area: OpenCC leaves these alone, so a term's zh-Hans form is kept out of conversion.
_PUA = 0xE000
_MARKUP = re.compile(r"<[^>]+>|\]\([^)]*\)|[\[*_`]")


def _masked(text: str, terms: Sequence[AlignedTerm], variant: str) -> tuple[str, list[AlignedTerm]]:
    """`text` with each glossary term's form in `variant` replaced by a private-use character (the
    i-th term found: chr(_PUA + i)), so conversion leaves terms alone; and the terms found. A term
    replaces as many occurrences as the source has hits of it, first ones first: Chinese has no word
    boundaries, and 克里 (Kerry) also begins 克里姆林宫 (the Kremlin)."""
    hits: dict[str, list[AlignedTerm]] = {}
    for term in terms:
        hits.setdefault(term.term_id, []).append(term)
    masked, found = text, list[AlignedTerm]()
    for same in sorted(hits.values(), key=lambda ts: -len(ts[0].expected.get(variant, ""))):
        form = same[0].expected.get(variant)
        if not form or form not in masked:
            continue
        masked = masked.replace(form, chr(_PUA + len(found)), len(same))
        found.append(same[0])
    return masked, found


class _Converter:
    """A text in variant `frm` (zh-Hans, or a person's edit of another) in any variant, through
    zh-Hans with OpenCC, each glossary term in the variant's own form (a term's regional form comes
    from the glossary, not from converting it). Masked and taken back to zh-Hans once."""

    def __init__(self, text: str, frm: VariantRule, terms: Sequence[AlignedTerm]) -> None:
        masked, self.found = _masked(text, terms, frm.variant)
        self.frm = frm
        self.hans = to_hans(masked, frm)

    def to(self, rule: VariantRule) -> str:
        out = localize(self.hans, rule)
        for i, term in enumerate(self.found):
            form = term.expected.get(rule.variant)
            if form is None:  # the glossary has no form for this variant: the term converted like the rest
                form = localize(to_hans(term.expected[self.frm.variant], self.frm), rule)
            out = out.replace(chr(_PUA + i), form)
        return out


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
    from zh-Hans (the new one if given, else the segment's), or, in an article without zh-Hans,
    from the text given; term spans found again; QA run again on the zh-Hans text."""
    by_variant = {rule.variant: rule for rule in rules}
    hans_rule = by_variant.get("zh-Hans") or VariantRule("zh-Hans", None, False)
    if "zh-Hans" in texts or "zh-Hans" in seg.targets:
        base, text = hans_rule, texts.get("zh-Hans", seg.targets.get("zh-Hans", ""))
    else:  # an article without zh-Hans: the person's text stands in for it
        given = next(iter(texts))
        base, text = by_variant[given], texts[given]
    convert = _Converter(text, base, seg.terms)
    hans = convert.to(hans_rule)
    targets: dict[str, str] = {}
    for rule in rules:
        v = rule.variant
        if v in texts:
            targets[v] = texts[v]
        elif v in locked:
            targets[v] = seg.targets[v]
        else:
            targets[v] = convert.to(rule)
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
            AlignedTerm(
                term.term_id,
                term.source_text,
                term.source_start,
                term.source_end,
                spans,
                {v: form for v, form in term.expected.items() if v in targets},
            )
        )
    source = seg.source
    for term in sorted(seg.terms, key=lambda t: -t.source_start):
        source = source[: term.source_start] + " " + source[term.source_end :]
    plain = _plain(hans)
    kept = [t.source_text for t in seg.terms if t.source_text in t.expected.values()]  # do-not-translate terms
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
