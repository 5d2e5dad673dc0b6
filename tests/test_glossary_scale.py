"""Glossaries at a newsroom's scale: stacking and matching give what their plain definitions give,
and take time in proportion to the glossary, not its square.

The references below are the rules written out the slow, obvious way (stack: rebuild the whole
list for every term; match: at every word start try each form on its own, longest first, and keep
the first that fits), not copies of the code under test.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from glossary.matching import (
    _APOSTROPHES,
    _WHOLE,
    Span,
    TermHit,
    _abbreviations_as_written,
    _form_pattern,
    find_terms,
)
from glossary.terms import Glossary, Term, stack

_SYLLABLES = ["ka", "ta", "na", "ma", "ra", "sa", "ha", "ya", "wa", "ko", "to", "no", "mo", "ro", "so"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()


def _forms(rng: random.Random) -> tuple[str, ...]:
    """A few forms that share first words, overlap and differ only in case, apostrophes or hyphens."""
    family, given = _name(rng), _name(rng)
    shapes = [
        f"Mr. {family}",
        f"Mr. {family} {given}",
        f"{family} {given}",
        f"{given} {family}",
        family,
        family.upper(),
        family.lower(),
        f"{family}’s {given}",
        f"{family}'s {given}",
        f"{family}-{given}",
        f"the {given.lower()} council",
        f"Prime Minister {family}",
        f"Security {family} Committee",
        f"security {given.lower()}",
    ]
    return tuple(rng.sample(shapes, rng.randint(1, 3)))


def _glossary(name: str, seed: int, count: int, prefix: str) -> Glossary:
    rng = random.Random(seed)
    terms = []
    for i in range(count):
        # Ids repeat now and then (a later term replaces an earlier one with its id).
        tid = f"{prefix}{rng.randrange(count * 4 // 5)}"
        case = rng.choice((None, None, True, False))
        terms.append(Term(tid, _forms(rng), {"zh-Hans": f"{name}{i}"}, case_sensitive=case, note=str(i)))
    return Glossary(name, tuple(terms))


def _reference_stack(glossaries: Sequence[Glossary]) -> tuple[Term, ...]:
    """Term by term: drop the term with the same id, take the term's forms (in any case) away from
    every other term, drop the terms left with none, and put the term last."""
    merged: list[Term] = []
    for glossary in glossaries:
        for term in glossary.terms:
            claimed = {f.casefold() for f in term.forms}
            rest = []
            for old in merged:
                if old.id == term.id:
                    continue
                kept = tuple(f for f in old.forms if f.casefold() not in claimed)
                if kept == old.forms:
                    rest.append(old)
                elif kept:
                    rest.append(Term(old.id, kept, old.targets, old.case_sensitive, old.do_not_translate, old.note))
            merged = [*rest, term]
    return tuple(merged)


def _reference_hits(text: str, glossary: Glossary) -> list[tuple[str, int, int, str, bool]]:
    """At each word start, every form on its own, longest first (glossary order among equals): the
    first that matches there as a whole word is the candidate; then the longest candidates win."""
    forms = sorted(
        ((f, t) for t in glossary.terms for f in t.forms),
        key=lambda ft: -len(ft[0]),
    )
    # By first letter, lower-cased (only to save time: every form here starts with an ASCII letter).
    alone: dict[str, list[tuple[re.Pattern[str], Term]]] = {}
    for f, t in forms:
        pattern = re.compile(_WHOLE.format(_form_pattern(f, t.case_sensitive), a=_APOSTROPHES))
        alone.setdefault(f[0].lower(), []).append((pattern, t))
    candidates = []
    for start in re.finditer(r"(?<![^\W_])\S", text):
        for pattern, term in alone.get(start.group(0).lower(), []):
            match = pattern.match(text, start.start())
            if match:
                candidates.append((term, match.start(), match.end()))
                break
    chosen: list[tuple[Term, int, int]] = []
    for term, start_, end in sorted(candidates, key=lambda c: (c[1] - c[2], c[1])):
        if all(end <= s or start_ >= e for _, s, e in chosen):
            chosen.append((term, start_, end))
    chosen.sort(key=lambda c: c[1])
    hits = _abbreviations_as_written(text, [TermHit(t, Span(s, e), text[s:e]) for t, s, e in chosen])
    return [(h.term.id, h.span.start, h.span.end, h.text, h.term.do_not_translate) for h in hits]


def _text(glossary: Glossary, seed: int, sentences: int) -> str:
    """Sentences naming the glossary's forms, changed the ways news text changes them."""
    rng = random.Random(seed)
    forms = [f for t in glossary.terms for f in t.forms]
    filler = ["the", "minister", "said", "on", "Tuesday", "that", "talks", "with", "Mr.", "Nobody", "would", "go", "on"]
    out = []
    for _ in range(sentences):
        words = []
        for _ in range(rng.randint(4, 12)):
            if rng.random() < 0.4:
                form = rng.choice(forms)
                change = rng.randrange(8)
                if change == 0:
                    form = form.upper()
                elif change == 1:
                    form = form.lower()
                elif change == 2:
                    form = form.replace(" ", "  \n")
                elif change == 3:
                    form = form.replace("'", "’").replace("-", "‑")
                elif change == 4:
                    form += rng.choice(("’s", "'s", "-based", "’an", "s", "ese"))
                elif change == 5:
                    form = rng.choice(("(", "“", "x")) + form
                words.append(form)
            else:
                words.append(rng.choice(filler))
        out.append(" ".join(words) + rng.choice((". ", "; ", " (SCC) ", "\n\n")))
    return "".join(out)


def _found(text: str, glossary: Glossary) -> list[tuple[str, int, int, str, bool]]:
    return [(h.term.id, h.span.start, h.span.end, h.text, h.term.do_not_translate) for h in find_terms(text, glossary)]


def test_stacking_gives_what_the_rule_gives() -> None:
    news = _glossary("news", 1, 300, "t")
    outlet = _glossary("outlet", 2, 150, "t")  # the same ids as news now and then, and shared forms
    for glossaries in ([news], [news, outlet], [outlet, news], [news, outlet, news]):
        assert stack(glossaries).terms == _reference_stack(glossaries)


def test_matching_gives_what_trying_each_form_alone_gives() -> None:
    news = _glossary("news", 1, 300, "t")
    outlet = _glossary("outlet", 2, 150, "t")
    for glossary in (stack([news, outlet]), news, Glossary("both", (*news.terms, *outlet.terms))):
        # Unstacked, many forms share a match key ("Abe", "ABE", "abe"; "’s" and "'s"): the form the
        # alternation tries first still wins.
        text = _text(glossary, 3, 400)
        found = _found(text, glossary)
        assert len(found) > 300
        assert found == _reference_hits(text, glossary)


def test_which_of_forms_alike_wins_is_the_one_tried_first() -> None:
    glossary = Glossary(
        "t",
        (
            Term("exact", ("Abe",), {"zh-Hans": "甲"}),
            Term("any-case", ("abe",), {"zh-Hans": "乙"}),
            Term("curly", ("O’Neil",), {"zh-Hans": "丙"}),
            Term("straight", ("O'Neil",), {"zh-Hans": "丁"}),
            Term("upper", ("ABE",), {"zh-Hans": "戊"}, case_sensitive=True),
            Term("kelvin", ("\u212aato",), {"zh-Hans": "己"}, case_sensitive=False),
            Term("k", ("kato",), {"zh-Hans": "庚"}),
        ),
    )
    found = [(h.term.id, h.text) for h in find_terms("Abe, ABE, aBe, O'Neil, O‘Neil, KATO", glossary)]
    assert found == [
        ("exact", "Abe"),
        ("any-case", "ABE"),  # "abe" comes before "ABE" in the glossary
        ("any-case", "aBe"),
        ("curly", "O'Neil"),
        ("curly", "O‘Neil"),
        ("kelvin", "KATO"),  # re takes the Kelvin sign for K when case does not matter
    ]


def test_match_key_is_never_finer_than_re_ignorecase() -> None:
    """Two characters `re` takes for one another (case aside) get the same key: the key can find
    the form the alternation took from the text it matched."""
    from glossary.matching import _match_key  # here, so that the rest runs against older matchers too

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for c in map(chr, range(0x80)):
        for other in re.findall(re.escape(c), every, re.IGNORECASE):
            assert _match_key(other) == _match_key(c), (c, other)


@contextmanager
def _within(seconds: float) -> Iterator[None]:
    """Fails the test, rather than hanging it, once `seconds` have passed."""

    def late(signum: int, frame: object) -> None:
        raise TimeoutError(f"took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _names(count: int) -> list[str]:
    """`count` distinct made-up family names."""
    rng = random.Random(11)
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(_SYLLABLES) for _ in range(4)).capitalize())
    return sorted(names)


# Before 2026-11-30 stacking 8,000 + 4,000 terms took minutes (every term scanned every term kept
# so far) and finding 8,000 "Mr. X" terms in 100,000 characters over a minute (capture groups made
# `re` cost the square of the forms sharing a first word at each "Mr."); both now take about a
# second. The bounds leave room for a slow, busy machine.


def test_stacking_a_large_glossary_takes_time_in_proportion() -> None:
    names = _names(8000)
    news = Glossary(
        "news", tuple(Term(f"n{i}", (f"Mr. {n}", n.upper()), {"zh-Hans": "某"}) for i, n in enumerate(names))
    )
    # The outlet redefines every other name: each term takes a form from a news term.
    outlet = Glossary(
        "outlet", tuple(Term(f"o{i}", (f"mr. {n}",), {"zh-Hans": "乙"}) for i, n in enumerate(names[::2]))
    )
    with _within(20):
        start = time.perf_counter()
        merged = stack([news, outlet])
        took = time.perf_counter() - start
    assert took < 5, took
    assert len(merged.terms) == 12000
    assert merged.terms[0] == Term("n0", (names[0].upper(),), {"zh-Hans": "某"})
    assert merged.terms[1] == news.terms[1]
    assert merged.terms[-1].id == f"o{len(names[::2]) - 1}"


def test_finding_many_terms_that_share_a_first_word_takes_time_in_proportion() -> None:
    names = _names(8000)
    glossary = Glossary(
        "names", tuple(Term(f"n{i}", (f"Mr. {n}", f"{n} Taro"), {"zh-Hans": "某"}) for i, n in enumerate(names))
    )
    rng = random.Random(5)
    parts, size = [], 0
    while size < 100_000:
        # Mostly names in the glossary, some not: every "Mr." tries the forms that start with it.
        name = rng.choice(names) if rng.random() < 0.7 else "Nobody"
        sentence = f"Mr. {name} said talks with officials would go on. "
        parts.append(sentence)
        size += len(sentence)
    text = "".join(parts)
    with _within(60):
        find_terms(text, glossary)  # compiles the forms that start with each word in the text
        start = time.perf_counter()
        found = find_terms(text, glossary)
        took = time.perf_counter() - start
    assert took < 5, took
    expected = [f"Mr. {m}" for m in re.findall(r"Mr\. (\w+)", text) if m != "Nobody"]
    assert [h.text for h in found] == expected
    assert all(h.term.forms[0] == h.text for h in found)
