"""Term data: what a newsroom glossary says, as plain frozen data.

A glossary is named and ordered; requests stack several (`news`, then `outlet-tw`) and later
ones override earlier ones. Nothing here reads files: `glossary.csvio` parses text that the
service has read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

VARIANTS: tuple[str, ...] = ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")
# What separates a term's forms in a glossary CSV's `en` column (glossary.csvio).
FORM_SEPARATOR = ";"


def separator_problem(forms: Sequence[str]) -> str | None:
    """Why `forms` cannot be stored as they are, or None: a form holding the CSV's separator would
    come back as two forms from the glossary's CSV export."""
    for form in forms:
        if FORM_SEPARATOR in form:
            return (
                f"the form {form!r} holds {FORM_SEPARATOR!r}, which separates forms in a glossary CSV: "
                "give each form on its own"
            )
    return None


# Where a regional variant has no form of its own, it takes the generic Traditional one first.
_FALLBACK: Mapping[str, tuple[str, ...]] = {
    "zh-Hans": ("zh-Hans",),
    "zh-Hant": ("zh-Hant",),
    "zh-TW": ("zh-TW", "zh-Hant"),
    "zh-HK": ("zh-HK", "zh-Hant"),
}


class UnknownVariantError(ValueError):
    def __init__(self, variant: str) -> None:
        super().__init__(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        self.variant = variant


@dataclass(frozen=True)
class Term:
    id: str
    # Canonical English form first, then aliases ("Abe Shinzo", "Shinzo Abe").
    forms: tuple[str, ...]
    # Targets by variant tag; zh-Hans is required. Other variants only where the region differs.
    targets: Mapping[str, str]
    # None: decide per form (forms with a capital letter match exactly, lower-case ones in any case).
    case_sensitive: bool | None = None
    # Kept as-is in every variant (the English form itself is the target).
    do_not_translate: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        # As CSV reads them, whatever the source (the API, TBX, stored rows): white space around a
        # form or target is a typo, and a blank target means "none" (a blank zh-Hans would put
        # nothing where the name was, unflagged; a blank zh-TW would do the same in Taiwan).
        forms = tuple(" ".join(f.split()) for f in self.forms)
        object.__setattr__(self, "forms", tuple(f for f in forms if f))
        object.__setattr__(self, "targets", {v: t.strip() for v, t in self.targets.items() if t.strip()})
        if not self.forms:
            raise ValueError(f"term {self.id!r} has no English form")
        if not self.do_not_translate and not self.targets.get("zh-Hans"):
            raise ValueError(f"term {self.id!r} has no zh-Hans target")
        for variant in self.targets:
            if variant not in VARIANTS:
                raise UnknownVariantError(variant)

    @property
    def canonical(self) -> str:
        return self.forms[0]

    def own_target(self, variant: str) -> str | None:
        """The glossary's own form for `variant`, or None where it should be converted from zh-Hans."""
        if variant not in _FALLBACK:
            raise UnknownVariantError(variant)
        if self.do_not_translate:
            return None
        for tag in _FALLBACK[variant]:
            if tag in self.targets:
                return self.targets[tag]
        return None


@dataclass(frozen=True, eq=False)  # identity: compiled matchers are cached per glossary object
class Glossary:
    name: str
    terms: tuple[Term, ...] = field(default_factory=tuple)
    description: str = ""


def stack(glossaries: Sequence[Glossary]) -> Glossary:
    """Merge glossaries in order: a later term replaces an earlier one with the same id, and takes
    over any English form it shares with earlier terms (an outlet's "Putin" beats the newsroom's)."""
    merged: dict[str, Term] = {}
    # Each merged form's casefold -> the one merged term that holds it (a term taking a form takes it
    # from every other), so a term touches only the terms it shares a form with, not all of them.
    owner: dict[str, str] = {}
    for glossary in glossaries:
        for term in glossary.terms:
            claimed = {f.casefold() for f in term.forms}
            replaced = merged.pop(term.id, None)
            if replaced is not None:
                for form in replaced.forms:
                    owner.pop(form.casefold(), None)
            losers = {owner[c] for c in claimed if c in owner}
            for tid in losers:
                old = merged[tid]
                kept = tuple(f for f in old.forms if f.casefold() not in claimed)
                if not kept:
                    del merged[tid]
                else:  # a dict keeps a replaced value's place
                    merged[tid] = Term(old.id, kept, old.targets, old.case_sensitive, old.do_not_translate, old.note)
            merged[term.id] = term
            for c in claimed:
                owner[c] = term.id
    name = "+".join(g.name for g in glossaries)
    return Glossary(name=name, terms=tuple(merged.values()))
