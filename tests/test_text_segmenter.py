"""Sentence splitting of news copy where it went wrong: a sentence that begins with a lowercase name
(de Gaulle, al-Qaeda) or word (e-commerce) was joined to the one before; a wire story's credit lines
and a two-line address were joined by the reflow of hard-wrapped text."""

from __future__ import annotations

import textwrap

import pytest

from service.segmenter import soft_wraps, unwrapped
from tests.test_segmenter import WIRE, rebuilt, sentences, text_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Prices rose 5 percent. de Gaulle would have objected.",
            ["Prices rose 5 percent.", "de Gaulle would have objected."],
        ),
        ("Sales rose. van Gogh paintings sold well.", ["Sales rose.", "van Gogh paintings sold well."]),
        ("The vote was held. von der Leyen won it.", ["The vote was held.", "von der Leyen won it."]),
        (
            "It was the worst attack since 2009. al-Qaeda claimed it.",
            ["It was the worst attack since 2009.", "al-Qaeda claimed it."],
        ),
        ("Store sales fell. e-commerce grew.", ["Store sales fell.", "e-commerce grew."]),
        # Names written with a capital inside were split already, and still are.
        (
            "Apple said sales rose. iPhone shipments fell 5 percent.",
            ["Apple said sales rose.", "iPhone shipments fell 5 percent."],
        ),
        ("He left. eBay shares fell.", ["He left.", "eBay shares fell."]),
        # A quoted question keeps its attribution, a lowercase name's too.
        ("“Why now?” de Gaulle asked. Nobody answered.", ["“Why now?” de Gaulle asked.", "Nobody answered."]),
    ],
)
def test_a_sentence_that_begins_with_a_lowercase_name_stands_alone(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # After an abbreviation (pySBD's, or one news copy uses) the name goes on the sentence.
        "He met Gen. de Gaulle in Paris.",
        "He quoted Pres. de Gaulle at length.",
        "It rose 5 pct. van Gogh prices did not.",
        "He arrived on Tues. van Gogh's letters say so.",
        "The index rose approx. e-commerce shares led.",
        "It was studied by Smith et al. van Dyke disagreed.",
        "They met at 9 a.m. de Gaulle arrived late.",
        "He worked at Acme Corp. de Beers hired him.",
        # A capitalised word before the stop may be a title's abbreviation: kept joined.
        "He wrote to Messrs. de Gaulle and Monnet.",
        # Lowercase words that are no names go on as before.
        "He met Gov. Cuomo on Tues. and Wed. last week.",
        "The index rose approx. two points.",
        "He met U.S. officials at 9 a.m. on Tuesday.",
        "He ranked No. 2 in the poll.",
    ],
)
def test_after_an_abbreviation_a_lowercase_name_goes_on_the_sentence(text: str) -> None:
    assert sentences(text) == [text]


# --- hard-wrapped plain text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "credits",
    [
        "Reporting by Tim Kelly and Nobuhiro Kubo in Tokyo\nEditing by Jane Doe",
        "Reporting by Tim Kelly; Additional reporting by Linda Sieg in Tokyo\nEditing by Jane Doe",
        "Writing by Tim Kelly and Nobuhiro Kubo; additional work by Linda Sieg\nCompiled by Jane Doe",
        "(Reporting by Tim Kelly and Nobuhiro Kubo; with help from Linda Sieg\n(Editing by Jane Doe)",
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_credit_lines_keep_their_lines(credits: str, newline: str) -> None:
    body = credits.replace("\n", newline)
    assert len(body.split(newline)[0]) >= 40  # long enough for the reflow to take it for wrapped
    assert [s.text for s in text_segments(body)] == body.split(newline)
    assert rebuilt(body) == body


def test_credit_lines_after_a_wrapped_story_keep_their_lines() -> None:
    # The story's last line is long: the first word of the credit line would not have fitted on it.
    story = textwrap.fill(" ".join(WIRE), 64)
    last = story.split("\n")[-1]
    assert len(last) + len(" Reporting") > 64
    body = f"{story}\nReporting by Tim Kelly; Editing by Jane Doe"
    segments = text_segments(body)
    assert segments[-1].text == "Reporting by Tim Kelly; Editing by Jane Doe"
    assert segments[-1].ws_before == "\n"
    # The break before it is a hard one, written back into the translation.
    assert len(story) not in soft_wraps(body)
    assert [unwrapped(s.text) for s in segments[:-1]] == WIRE
    assert rebuilt(body) == body


def test_a_credit_line_wrapped_at_the_width_is_one_line() -> None:
    """A break inside a credit line that only wraps it ("Editing by" / "Jane Doe") stays a soft
    wrap: the names belong to their credit."""
    body = "Reporting by Tim Kelly and Nobuhiro Kubo in Tokyo; Editing by\nJane Doe"
    assert [s.text for s in text_segments(body)] == [body]


@pytest.mark.parametrize(
    "address",
    [
        "Embassy of the United States of America in Tokyo, Japan\n1-10-5 Akasaka, Minato-ku",
        "Ministry of Economy, Trade and Industry of Japan, Tokyo\nChiyoda-ku 100-8901",
        "Office of the Press Secretary, The White House, Washington\nWashington, DC 20500",
        "Foreign, Commonwealth and Development Office, King Charles Street\nLondon SW1A 2AH",
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_two_line_address_with_a_long_first_line_keeps_its_lines(address: str, newline: str) -> None:
    body = address.replace("\n", newline)
    assert [s.text for s in text_segments(body)] == body.split(newline)
    assert rebuilt(body) == body


def test_an_address_after_a_wrapped_story_keeps_its_lines_and_the_story_its_wraps() -> None:
    address = "Embassy of the United States of America in Tokyo, Japan\n1-10-5 Akasaka, Minato-ku"
    story = textwrap.fill(" ".join(WIRE), 60)  # "1-10-5" would not have fitted on the line before
    body = f"{story}\n{address}"
    assert not soft_wraps(body) & set(range(len(story), len(body)))
    segments = text_segments(body)
    assert [s.text for s in segments[-2:]] == address.split("\n")
    assert [unwrapped(s.text) for s in segments[:-2]] == WIRE
    assert rebuilt(body) == body


def test_a_wrapped_paragraph_with_figures_like_a_postcode_is_still_reflowed() -> None:
    """Only a paragraph that ends without a full stop can end in an address."""
    body = textwrap.fill(
        "The ministry, at 1-3-1 Kasumigaseki in Tokyo's Chiyoda ward (postcode 100-8901), said on "
        "Thursday that it would raise the sales tax to 10 percent next year.",
        60,
    )
    assert body.count("\n") >= 2
    assert [s.text for s in text_segments(body)] == [body]
