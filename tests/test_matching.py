"""Golden cases for glossary matching."""

from __future__ import annotations

import random
import string

import pytest

from glossary.matching import _compile, find_terms
from glossary.terms import Glossary, Term

G = Glossary(
    "t",
    (
        Term("abe-shinzo", ("Abe Shinzo", "Shinzo Abe"), {"zh-Hans": "安倍晋三"}),
        Term("abe", ("Abe", "Mr. Abe"), {"zh-Hans": "安倍"}),
        Term("abenomics", ("Abenomics",), {"zh-Hans": "安倍经济学"}),
        Term("futenma", ("Futenma",), {"zh-Hans": "普天间"}),
        Term(
            "scc",
            ("SCC", "Security Consultative Committee", "U.S.-Japan Security Consultative Committee"),
            {"zh-Hans": "美日安全保障磋商委员会"},
            case_sensitive=True,
        ),
        Term("two-plus-two", ("2+2",), {"zh-Hans": "2+2"}),
        Term("csd", ("collective self-defense",), {"zh-Hans": "集体自卫权"}),
        Term("pentagon", ("Pentagon",), {"zh-Hans": "五角大楼"}),
        Term("ap", ("Associated Press",), {"zh-Hans": "美联社"}, do_not_translate=True),
        Term("xi", ("Xi Jinping", "Xi"), {"zh-Hans": "习近平"}),
    ),
)


def hits(text: str) -> list[tuple[str, str]]:
    return [(h.term.id, h.text) for h in find_terms(text, G)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Abe Shinzo spoke.", [("abe-shinzo", "Abe Shinzo")]),
        ("Prime Minister Abe Shinzo’s government", [("abe-shinzo", "Abe Shinzo")]),
        ("Abe’s actions", [("abe", "Abe")]),
        ("Abe's actions", [("abe", "Abe")]),
        ("Mr. Abe said", [("abe", "Mr. Abe")]),
        ("Abel and Abenomics", [("abenomics", "Abenomics")]),
        ("Kabe went home", []),
        ("the Futenma-based Marines", [("futenma", "Futenma")]),
        ("the SCC's role", [("scc", "SCC")]),
        ("the scc met", []),
        ("the SCCs", []),
        (
            "the U.S.-Japan Security Consultative Committee (SCC)",
            [("scc", "U.S.-Japan Security Consultative Committee"), ("scc", "SCC")],
        ),
        ("the Security Consultative Committee met", [("scc", "Security Consultative Committee")]),
        ("the first “2+2” meeting", [("two-plus-two", "2+2")]),
        ("12+2 is not it", []),
        ("Collective self-defense is legal", [("csd", "Collective self-defense")]),
        ("collective  self-defense", [("csd", "collective  self-defense")]),
        ("a pentagon is a shape", []),
        ("The Pentagon sets", [("pentagon", "Pentagon")]),
        ("", []),
        # An apostrophe followed by letters other than a possessive s belongs to the word: Xi’an is
        # a city (西安), not 习近平’an.
        ("Xi’an is an ancient capital", []),
        ("Xi'an's walls", []),
        ("Abe’sa", []),
        ("Xi’s speech in Xi’an", [("xi", "Xi")]),
        ("XI’S", []),
        ("the SCC’S role", [("scc", "SCC")]),
        ("‘Xi’ was the word", [("xi", "Xi")]),
        ("Abe‘s actions", [("abe", "Abe")]),
        ("Abeʼs actions", [("abe", "Abe")]),  # U+02BC, the modifier letter apostrophe
    ],
)
def test_golden(text: str, expected: list[tuple[str, str]]) -> None:
    assert hits(text) == expected


def test_spans_point_at_the_source() -> None:
    text = "On November 2 Abe Shinzo’s government held the first “2+2” meeting."
    for hit in find_terms(text, G):
        assert text[hit.span.start : hit.span.end] == hit.text


def test_longest_match_wins_over_an_earlier_shorter_one() -> None:
    g = Glossary("t", (Term("a", ("Security",), {"zh-Hans": "安全"}), *G.terms))
    assert [(h.term.id, h.text) for h in find_terms("the Security Consultative Committee", g)] == [
        ("scc", "Security Consultative Committee")
    ]


def test_a_newsroom_sized_glossary_is_tried_only_where_a_forms_first_word_stands(sample_article: str) -> None:
    """Each position tries only the forms that start with its word, not the whole glossary (one
    alternation over every form took over a minute on this article with 4,000 terms; the time per
    glossary size is measured by `python -m bench.glossary`)."""
    rng = random.Random(7)

    def name() -> str:
        words = [rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase, k=6)) for _ in "ab"]
        return " ".join(words)

    big = Glossary("big", (*(Term(f"t{i}", (name(), name()), {"zh-Hans": "某"}) for i in range(4000)), *G.terms))
    found = find_terms(sample_article, big)
    assert [h.text for h in found if h.term.id == "abe-shinzo"] == ["Abe Shinzo"]
    assert len([h for h in found if h.term.id == "abe"]) == 8
    tried = _compile(big).at("abe")
    assert tried is not None and {t.id for t in tried[1]} == {"abe-shinzo", "abe"}
    assert _compile(big).at("the") is None  # no form starts with "the": nothing is tried there


@pytest.mark.parametrize(
    ("text", "as_written"),
    [
        ("The U.S.-Japan Security Consultative Committee (SCC) met.", ["SCC"]),
        ("The Security Consultative Committee （SCC） met.", ["SCC"]),
        ("The Security Consultative Committee ( SCC ) met; the SCC agreed.", ["SCC"]),
        # Not an introduction: another term before the brackets, a longer form in them, no brackets.
        ("Abe Shinzo (SCC) met.", []),
        ("The SCC (Security Consultative Committee) met.", []),
        ("The Security Consultative Committee, SCC, met.", []),
    ],
)
def test_an_abbreviation_introduced_in_brackets_stays_as_written(text: str, as_written: list[str]) -> None:
    found = find_terms(text, G)
    assert [h.text for h in found if h.term.do_not_translate] == as_written
    # Every hit keeps its term (its id and note); only how it is written changes.
    assert all(h.term.id == "scc" for h in found if h.text == "SCC")
