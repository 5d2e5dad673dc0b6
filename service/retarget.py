"""A segment retargeted from a given zh-Hans text (a translator's edit, or a translation memory
hit): the Traditional variants regenerated with OpenCC and each glossary term's own regional form,
term spans found again, QA run again. Pure functions over the pipeline's dataclasses."""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from service.documents import AlignedSegment, AlignedTerm, Flag, SourceFormat, TargetSpan, written_forms
from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated
from service.variants import VariantRule, localize, to_hans

# Private Use Area: OpenCC leaves these alone, so a term's zh-Hans form is kept out of conversion.
_PUA = 0xE000
_MARKUP = re.compile(r"<[^>]+>|\]\([^)]*\)|[\[*_`]")


def _unchanged(old: str, new: str) -> dict[int, int]:
    """Each character of `new` that a person's edit left as it was in `old`: new index → old index."""
    kept: dict[int, int] = {}
    for a, b, size in SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks():
        kept.update((b + k, a + k) for k in range(size))
    return kept


def _rank(start: int, end: int, kept: dict[int, int] | None, before: set[tuple[int, int]], known: bool) -> int | None:
    """How likely the occurrence [start, end) is a term's (0 most), or None when it is not: see _locate."""
    olds = [kept.get(k) for k in range(start, end)] if kept is not None else []
    first = olds[0] if olds else None
    if first is None or None in olds:
        return 1  # the person's own text (or no old text to compare with)
    stood = next(((s, e) for s, e in before if s <= first < e), None)
    if stood is not None and all(stood[0] <= o < stood[1] for o in olds if o is not None):
        return 0  # where the term stood before the edit (as it was, or written otherwise: AT&T for AT&amp;T)
    return None if known else 2  # text that stood before, not as this term


def _occurrences(text: str, forms: Sequence[str]) -> list[tuple[int, int]]:
    """Where any of `forms` (one text, written in several ways) stands in `text`, in text order."""
    found: set[tuple[int, int]] = set()
    for form in forms:
        at = text.find(form)
        while at >= 0:
            found.add((at, at + len(form)))
            at = text.find(form, at + 1)
    return sorted(found)


def _locate(
    text: str, terms: Sequence[AlignedTerm], variant: str, old: str | None, fmt: SourceFormat
) -> list[tuple[int, int] | None]:
    """Where each of `terms` stands in `text` (the variant's text): every hit of a term its own
    occurrence of the term's form, never one inside another term's (弗拉基米尔·普京 holds 普京 once,
    for Vladimir Putin, not also for Putin), longest forms first.

    Chinese has no word boundaries, and 克里 (Kerry) also begins 克里姆林宫 (the Kremlin), so where
    the text holds more occurrences than hits, `old` (the text the segment had before, with the terms'
    spans in `terms`) decides: an occurrence left as it stood where a term was placed is that term;
    one left as it stood where no term was (the 克里 of an unchanged 克里姆林宫) is not, when every
    hit of the term had its place in the old text; the person's new text comes next; first ones first.
    A form is found as the article's format may write it (`AT&amp;T` or `AT&T` in HTML)."""
    spans: list[tuple[int, int] | None] = [None] * len(terms)
    # The hits of one term that must read the same: one entry can want two forms in a sentence
    # ("Security Consultative Committee (SCC)": 美日安全保障磋商委员会 and SCC), each found on its own.
    groups: dict[tuple[str, str], list[int]] = {}
    for index, term in enumerate(terms):
        groups.setdefault((term.term_id, term.expected.get(variant, "")), []).append(index)
    kept = _unchanged(old, text) if old is not None else None
    taken: list[tuple[int, int]] = []
    for same in sorted(groups.values(), key=lambda ix: -len(terms[ix[0]].expected.get(variant, ""))):
        form = terms[same[0]].expected.get(variant)
        if not form:
            continue
        placed = [terms[i].targets.get(variant) for i in same]
        before = {(sp.start, sp.end) for sp in placed if sp is not None}
        # Where every hit had a place of its own before, the term's places are known.
        known = old is not None and None not in placed and len(before) == len(same)
        ranked: list[tuple[int, int, int]] = []  # (rank, start, end)
        for start, end in _occurrences(text, written_forms(form, fmt)):
            rank = _rank(start, end, kept, before, known)
            if rank is not None and all(end <= s or start >= e for s, e in taken):
                ranked.append((rank, start, end))
        picked: list[tuple[int, int]] = []
        for _, start, end in sorted(ranked):
            if len(picked) == len(same):
                break
            if all(end <= s or start >= e for s, e in picked):  # "哈哈哈" holds 哈哈 once
                picked.append((start, end))
        picked.sort()
        order = sorted(same, key=lambda i: terms[i].source_start)
        for i, span in zip(order, picked, strict=False):
            spans[i] = span
            taken.append(span)
    return spans


class _Converter:
    """A text in variant `frm` (zh-Hans, or a person's edit of another) in any variant, through
    zh-Hans with OpenCC, each glossary term in the variant's own form (a term's regional form comes
    from the glossary, not from converting it). Terms are masked with private-use characters, which
    OpenCC leaves alone, and the text is taken back to zh-Hans once. Terms are written in the
    article's format (`fmt`: `AT&amp;T` in HTML)."""

    def __init__(
        self, text: str, frm: VariantRule, terms: Sequence[AlignedTerm], old: str | None, fmt: SourceFormat
    ) -> None:
        self.frm = frm
        self.terms = terms
        self.fmt = fmt
        self.spans = _locate(text, terms, frm.variant, old, fmt)
        masked, pos = [], 0
        self.keys: dict[str, int] = {}  # private-use character → index in terms
        for index, span in sorted(((i, sp) for i, sp in enumerate(self.spans) if sp), key=lambda x: x[1][0]):
            key = chr(_PUA + len(self.keys))
            self.keys[key] = index
            masked += [text[pos : span[0]], key]
            pos = span[1]
        masked.append(text[pos:])
        self.hans = to_hans("".join(masked), frm)

    def to(self, rule: VariantRule) -> tuple[str, list[tuple[int, int] | None]]:
        """The text in `rule`'s variant, and where each term stands in it (straight quotes typed in
        the text made the variant's, as the model's are: see `localize`)."""
        converted = localize(self.hans, rule, typed=self.fmt)
        spans: list[tuple[int, int] | None] = [None] * len(self.terms)
        out: list[str] = []
        length = 0
        for piece in re.split(f"([{''.join(self.keys)}])", converted) if self.keys else [converted]:
            index = self.keys.get(piece)
            if index is not None:
                term = self.terms[index]
                form = term.expected.get(rule.variant)
                if form is None:  # the glossary has no form for this variant: the term converted like the rest
                    form = localize(to_hans(term.expected[self.frm.variant], self.frm), rule)
                form = written_forms(form, self.fmt)[0]
                spans[index] = (length, length + len(form))
                piece = form
            out.append(piece)
            length += len(piece)
        return "".join(out), spans


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
    fmt: SourceFormat = SourceFormat.TEXT,
) -> AlignedSegment:
    """The segment with `texts` (variant → a person's text) in place: unlocked variants regenerated
    from zh-Hans (the new one if given, else the segment's), or, in an article without zh-Hans,
    from the text given; term spans found again; QA run again on the zh-Hans text. `fmt`: the
    article's format, in which the texts are written."""
    by_variant = {rule.variant: rule for rule in rules}
    hans_rule = by_variant.get("zh-Hans") or VariantRule("zh-Hans", None, False)
    if "zh-Hans" in texts or "zh-Hans" in seg.targets:
        base, text = hans_rule, texts.get("zh-Hans", seg.targets.get("zh-Hans", ""))
    else:  # an article without zh-Hans: the person's text stands in for it
        given = next(iter(texts))
        base, text = by_variant[given], texts[given]
    convert = _Converter(text, base, seg.terms, seg.targets.get(base.variant), fmt)
    hans, _ = convert.to(hans_rule)
    targets: dict[str, str] = {}
    where: dict[str, list[tuple[int, int] | None]] = {}
    for rule in rules:
        v = rule.variant
        if v in texts or v in locked:
            targets[v] = texts[v] if v in texts else seg.targets[v]
            where[v] = (
                convert.spans if v == base.variant else _locate(targets[v], seg.terms, v, seg.targets.get(v), fmt)
            )
        else:
            targets[v], where[v] = convert.to(rule)
    flags: list[Flag] = []
    terms = []
    for index, term in enumerate(seg.terms):
        spans: dict[str, TargetSpan | None] = {}
        for v in targets:
            at = where[v][index]
            spans[v] = TargetSpan(*at) if at else None
            if at is None:
                form = term.expected.get(v, "")
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
