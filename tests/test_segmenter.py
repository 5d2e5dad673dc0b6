from __future__ import annotations

import textwrap

import pytest

from service.documents import Article, SourceFormat, SourceSegment
from service.formats import parse_blocks, render
from service.segmenter import SPLITTER_CAP, segment_blocks, soft_wraps, split_long, split_sentences, unwrapped
from tests.pdf_text import FONTS, LAYOUTS, PROSE, pdf_wrap, sample_prose


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The U.S. and Japan met. Then they left.", ["The U.S. and Japan met.", "Then they left."]),
        ("It was held on Nov. 7 in Tokyo.", ["It was held on Nov. 7 in Tokyo."]),
        (
            "Mr. Smith and Dr. Jones came on Jan. 5. They left.",
            ["Mr. Smith and Dr. Jones came on Jan. 5.", "They left."],
        ),
        (
            "Stephen M. Harner is a former officer. He lives in Japan.",
            ["Stephen M. Harner is a former officer.", "He lives in Japan."],
        ),
        (
            "He said “the alliance… is strong. We agree” and left.",
            ["He said “the alliance… is strong. We agree” and left."],
        ),
        ("The first “2+2” meeting was held. It ended.", ["The first “2+2” meeting was held.", "It ended."]),
        ("He called it “fatal.” Then he left.", ["He called it “fatal.”", "Then he left."]),
        ("What should we make of it? It is clear.", ["What should we make of it?", "It is clear."]),
        (
            "The U.S. Department of Defense took over. The U.S. will defend Japan.",
            ["The U.S. Department of Defense took over.", "The U.S. will defend Japan."],
        ),
        # pySBD wants exactly one space after a closing quote: two, or a no-break space and a space
        # (as the sample article has it), ran the sentences together.
        ("It is “on the wrong side.”  Already, many agree.", ["It is “on the wrong side.”", "Already, many agree."]),
        (
            "It is “on the wrong side.”\u00a0 Already, many agree.",
            ["It is “on the wrong side.”", "Already, many agree."],
        ),
        ('It is "a relic."\u00a0 It must go.', ['It is "a relic."', "It must go."]),
        ("Is it “over?”\t It is not.", ["Is it “over?”", "It is not."]),
        # pySBD knows straight single quotes only.
        ("He called it ‘fatal.’ Then he left.", ["He called it ‘fatal.’", "Then he left."]),
        ("‘We will go,’ he said. ‘Now.’", ["‘We will go,’ he said.", "‘Now.’"]),
        ("The ministers’ meeting ended. It’s over.", ["The ministers’ meeting ended.", "It’s over."]),
        # A sentence does not begin with a lowercase word: pySBD cut after unknown abbreviations.
        ("He met Gov. Cuomo on Tues. and Wed. last week.", ["He met Gov. Cuomo on Tues. and Wed. last week."]),
        (
            "Prices rose 2.5 pct. in May. Analysts were surprised.",
            ["Prices rose 2.5 pct. in May.", "Analysts were surprised."],
        ),
        ("The index rose approx. two points.", ["The index rose approx. two points."]),
        ("It was the iPhone. iPad sales rose.", ["It was the iPhone.", "iPad sales rose."]),
        # After the abbreviation of a place, a word that begins a sentence ends the one before.
        ("Talks with the U.S. But Tokyo refused.", ["Talks with the U.S.", "But Tokyo refused."]),
        ("He moved to the U.K. Then he left.", ["He moved to the U.K.", "Then he left."]),
        (
            "The talks were held in Washington, D.C. The next round is in Tokyo.",
            ["The talks were held in Washington, D.C.", "The next round is in Tokyo."],
        ),
        ("He spoke at the U.N. Meanwhile, Tokyo waited.", ["He spoke at the U.N.", "Meanwhile, Tokyo waited."]),
        (
            "He met the U.S. Army chief and the U.N. Security Council.",
            ["He met the U.S. Army chief and the U.N. Security Council."],
        ),
        # A quoted question or exclamation keeps its attribution.
        ("“Is this right?” Mr. Abe asked. Nobody answered.", ["“Is this right?” Mr. Abe asked.", "Nobody answered."]),
        (
            '"Why now?" Prime Minister Abe Shinzo asked reporters. Kerry smiled.',
            ['"Why now?" Prime Minister Abe Shinzo asked reporters.', "Kerry smiled."],
        ),
        ("“Enough!” she shouted. They left.", ["“Enough!” she shouted.", "They left."]),
        ("“Is it over?” The answer is no.", ["“Is it over?”", "The answer is no."]),
        ("“We will go.” Abe said nothing more.", ["“We will go.”", "Abe said nothing more."]),
    ],
)
def test_news_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_spans_tile_the_text_with_white_space_only_between() -> None:
    text = "  One.  Two?\nThree!  "
    spans = split_sentences(text)
    pos = 0
    for start, end in spans:
        assert not text[pos:start].strip()
        pos = end
    assert not text[pos:].strip()


def test_a_line_break_stays_a_boundary_even_before_a_lowercase_word() -> None:
    """The pipeline writes a break between segments back (a <br>, a Markdown hard break); inside a
    segment it would be lost."""
    assert sentences("Okinawa now.\nand Futenma later.") == ["Okinawa now.", "and Futenma later."]


def test_sample_article_sentences_after_a_quote_and_two_spaces_stand_alone(sample_article: str) -> None:
    blocks, _, _ = parse_blocks(Article(body=sample_article))
    texts = [s.text for s in segment_blocks(blocks, measure=lambda s: len(s.split()), limit=1000)]
    assert "Already, many analysts appreciate this fact." in texts
    assert any(t.endswith("is “on the wrong side of history.”") for t in texts)


def test_long_paragraphs_are_cut_before_the_splitter() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(400))
    assert len(text) > 3 * SPLITTER_CAP
    got = sentences(text)
    assert len(got) == 400
    assert got[123] == "Sentence number 123 is here."
    # Where a cut falls, an abbreviation's full stop is not taken for a sentence's end.
    for filler in range(30, 60):
        text = "This is a plain sentence about policy. " * filler + "Then Mr. Abe spoke to the press."
        assert sentences(text)[-1] == "Then Mr. Abe spoke to the press.", filler
    # The corrections hold where the splitter's window ends, too.
    text = "Shares rose 2 pct. in May.\u00a0 He called it “a relic.”  Then he left. " * 120
    assert len(text) > 3 * SPLITTER_CAP
    assert sentences(text) == ["Shares rose 2 pct. in May.", "He called it “a relic.”", "Then he left."] * 120


def test_a_long_sentence_is_split_at_clause_boundaries_never_truncated() -> None:
    text = (
        "For decades, the alliance (comprising the U.S. secretaries of defense and state, the Japanese ministers) "
        "has been the core; it is clear—very clear—that it matters, and more."
    )
    parts = split_long(text, 0, len(text), measure=lambda s: len(s.split()), limit=8)
    assert len(parts) > 2
    assert all(len(text[s:e].split()) <= 8 for s, e in parts)
    joined = "".join(text[s:e] for s, e in parts)
    assert joined.replace(" ", "") == text.replace(" ", "")
    assert text[parts[0][0] : parts[0][1]] == "For decades, the alliance"


def test_a_sentence_without_boundaries_is_still_cut_to_fit() -> None:
    text = "x" * 100
    parts = split_long(text, 0, len(text), measure=len, limit=30)
    assert all(e - s <= 30 for s, e in parts)
    assert "".join(text[s:e] for s, e in parts) == text


def test_sample_article_reproduced_exactly(sample_article: str) -> None:
    blocks, tail, _ = parse_blocks(Article(body=sample_article))
    segments = segment_blocks(blocks, measure=lambda s: len(s.split()), limit=40)
    inner = {b.id: "".join(s.ws_before + s.text for s in segments if s.block_id == b.id) for b in blocks}
    assert render(SourceFormat.TEXT, tuple(blocks), inner, tail=tail) == sample_article
    paragraphs = [p for p in sample_article.split("\n\n") if p.strip()]
    assert len(blocks) == len(paragraphs)
    assert max(len(s.text.split()) for s in segments) <= 40
    assert [(s.id, s.text) for s in segments][2:4] == [
        ("b1.s0", "Japanese Prime Minister Abe, the U.S.-Japan Alliance, and U.S.-China Relations"),
        ("b2.s0", "Nov 07 , 2013"),
    ]


def test_inline_markup_never_crosses_segments() -> None:
    blocks, _, _ = parse_blocks(
        Article(body="<p>One. <a href='/x'>Two. Three.</a> Four.</p>", format=SourceFormat.HTML)
    )
    segments = segment_blocks(blocks, measure=len, limit=1000)
    assert [s.text for s in segments] == ["One.", "Two. Three.", "Four."]
    assert segments[1].inlines[0].open == '<a href="/x">'


@pytest.mark.parametrize(
    ("body", "fmt", "texts", "marked"),
    [
        (
            '<p>First sentence here.<a href="/x"> Read more.</a></p>',
            "html",
            ["First sentence here.", "Read more."],
            {"b0.s1": [('<a href="/x">', "Read more.")]},
        ),
        ("<p>One. <b>Two. </b>Three.</p>", "html", ["One.", "Two.", "Three."], {"b0.s1": [("<b>", "Two.")]}),
        ("One. [Two. ](/y)Three.\n", "markdown", ["One.", "Two.", "Three."], {"b0.s1": [("[", "Two.")]}),
    ],
)
def test_markup_with_white_space_at_its_edges_stays_with_its_sentence(
    body: str, fmt: str, texts: list[str], marked: dict[str, list[tuple[str, str]]]
) -> None:
    blocks, _, _ = parse_blocks(Article(body=body, format=SourceFormat(fmt)))
    segments = segment_blocks(blocks, measure=len, limit=1000)
    assert [s.text for s in segments] == texts
    got = {s.id: [(i.open, s.text[i.start : i.end]) for i in s.inlines] for s in segments if s.inlines}
    assert got == marked


def test_splitting_is_safe_from_many_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def text(i: int) -> str:
        return " ".join(f"Request {i} asks about alliance {j} today." for j in range(i % 7 + 1))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: sentences(text(i)), range(2000)))
    for i, got in enumerate(results):
        assert got == [f"Request {i} asks about alliance {j} today." for j in range(i % 7 + 1)]


# --- hard-wrapped plain text ----------------------------------------------------------------------

WIRE = [
    "TOKYO, Nov 7 (Reuters) - Japan's government said on Thursday it would raise the sales tax to 10 "
    "percent next year, a move that analysts said could slow the recovery of the world's third-largest economy.",
    "The Nikkei share average fell 1.2 percent in afternoon trade, led by retailers and carmakers.",
    "Prime Minister Shinzo Abe told reporters the decision was needed to curb the public debt, the heaviest "
    "among industrialised nations.",
]
HEADLINE = "Japan to raise sales tax, Nikkei falls"


def text_segments(body: str) -> list[SourceSegment]:
    """The segments of a plain-text article, as the pipeline makes them."""
    blocks, _, _ = parse_blocks(Article(body=body))
    return list(segment_blocks(blocks, measure=len, limit=1000, reflow=True))


def rebuilt(body: str) -> str:
    """The article put back together from its segments' sources and the white space before them."""
    blocks, tail, _ = parse_blocks(Article(body=body))
    segments = segment_blocks(blocks, measure=len, limit=1000, reflow=True)
    inner = {b.id: "".join(s.ws_before + s.text for s in segments if s.block_id == b.id) for b in blocks}
    return render(SourceFormat.TEXT, tuple(blocks), inner, tail=tail)


@pytest.mark.parametrize("width", [60, 64, 69, 70, 72, 76, 78])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_wire_copy_wrapped_at_a_fixed_width_is_one_segment_per_sentence(width: int, newline: str) -> None:
    body = textwrap.fill(" ".join(WIRE), width).replace("\n", newline)
    assert body.count(newline) >= 5
    segments = text_segments(body)
    # The sources keep the line breaks (the input is rebuilt exactly); on one line they are the sentences.
    assert [unwrapped(s.text) for s in segments] == WIRE
    assert sum(s.text.count(newline) for s in segments) >= 4
    assert rebuilt(body) == body


def test_a_line_broken_after_a_hyphen_runs_on_without_a_space() -> None:
    body = textwrap.fill(" ".join(WIRE), 64)
    assert "third-\nlargest" in body
    assert "world's third-largest economy." in unwrapped(text_segments(body)[0].text)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_headline_and_a_dateline_keep_their_own_lines(newline: str) -> None:
    dateline, first = WIRE[0].split(" - ", 1)
    body = "\n".join([HEADLINE, dateline + " -", textwrap.fill(" ".join([first, *WIRE[1:]]), 70)])
    body = body.replace("\n", newline)
    segments = text_segments(body)
    assert [unwrapped(s.text) for s in segments] == [HEADLINE, dateline + " -", first, *WIRE[1:]]
    assert [s.ws_before for s in segments[:3]] == ["", newline, newline]
    assert rebuilt(body) == body


LINES_KEPT = {
    "address": "Ministry of Foreign Affairs of Japan\n2-2-1 Kasumigaseki, Chiyoda-ku\nTokyo 100-8919",
    "address with a long first line": (
        "Embassy of the United States of America in Tokyo, Japan\n1-10-5 Akasaka, Minato-ku\nTokyo 107-8420\nJapan"
    ),
    "short lines": "Toyota Motor Corp\nHonda Motor Co\nNissan Motor Co\nMazda Motor Corp",
    "list": (
        "- a 10 percent cut in tariffs on farm goods from next April\n"
        "- joint patrols in the East China Sea starting in the summer\n"
        "- a new hotline between the two defence ministries"
    ),
    "verse": (
        "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
        "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;"
    ),
    "verse of even lines": (
        "The curfew tolls the knell of parting day,\nThe lowing herd wind slowly o'er the lea,\n"
        "The ploughman homeward plods his weary way,\nAnd leaves the world to darkness and to me."
    ),
    "sentences a line each": (
        "Toyota Motor Corp said its operating profit rose 5 percent.\n"
        "Honda Motor Co cut its forecast for the year.\n"
        "Nissan Motor Co shares fell 3 percent in Tokyo trading on Thursday.\n"
        "Mazda said sales in China doubled."
    ),
    "table": (
        "Company                Revenue    Profit\n"
        "Toyota Motor Corp       1,234.5     210.3\n"
        "Honda Motor Co            987.1     101.2"
    ),
    "quoted e-mail": (
        "> The ministry will announce the new tax rate on Thursday after\n"
        "> the cabinet meeting, a spokesman said on Tuesday morning."
    ),
    # The sentence goes on over a line end into a lowercase word, but the line ended well short of
    # the width: a line of verse.
    "verse in lowercase": (
        "so much depends upon the red wheel barrow glazed with rain\n"
        "water beside the white chickens in the yard\n"
        "and the light that falls across the morning fields"
    ),
    "verse without punctuation": (
        "Because I could not stop for Death he kindly stopped for me\n"
        "The carriage held but just ourselves and Immortality\n"
        "We slowly drove he knew no haste and I had put away\n"
        "My labor and my leisure too for his civility"
    ),
    # A figure that begins a line begins an item, not the rest of a sentence.
    "programme": (
        "09:00 Opening remarks by the Minister of Foreign Affairs\n"
        "10:30 Panel discussion on regional security\n"
        "12:00 Lunch\n"
        "14:00 Press conference"
    ),
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("name", list(LINES_KEPT))
def test_lines_that_mean_something_are_kept(name: str, newline: str) -> None:
    body = LINES_KEPT[name].replace("\n", newline)
    segments = text_segments(body)
    assert [s.text for s in segments] == body.split(newline)
    assert all(s.ws_before == newline for s in segments[1:])
    assert rebuilt(body) == body


def test_a_wrapped_list_keeps_its_items_and_joins_their_lines() -> None:
    body = (
        "The agreement covers:\n"
        "- a cut of 10 percent in the tariffs that Japan charges on imports of\n"
        "  farm goods, starting from next April\n"
        "- joint patrols by the two navies in the East China Sea, starting in\n"
        "  the summer"
    )
    segments = text_segments(body)
    assert [unwrapped(s.text) for s in segments] == [
        "The agreement covers:",
        "- a cut of 10 percent in the tariffs that Japan charges on imports of farm goods, starting from next April",
        "- joint patrols by the two navies in the East China Sea, starting in the summer",
    ]
    assert rebuilt(body) == body


def test_wrapped_paragraphs_indented_without_blank_lines_stay_paragraphs() -> None:
    first = textwrap.fill(WIRE[0], 70, initial_indent="   ")
    second = textwrap.fill(" ".join(WIRE[1:]), 70, initial_indent="   ")
    body = first + "\n" + second
    segments = text_segments(body)
    assert [unwrapped(s.text) for s in segments] == WIRE
    assert segments[1].ws_before == "\n   "
    assert rebuilt(body) == body


def test_soft_wraps_are_line_feeds_inside_the_paragraph() -> None:
    body = textwrap.fill(" ".join(WIRE), 70).replace("\n", "\r\n")
    wraps = soft_wraps(body)
    assert wraps and all(body[i] == "\n" and body[i - 1] == "\r" for i in wraps)
    assert len(wraps) == body.count("\n")
    # Only plain text is reflowed (segment_blocks' `reflow`): in a Markdown or HTML block's text a
    # line break is a hard one (a Markdown hard break, a <br>).
    assert sentences(body)[0] == body.split("\r\n")[0]


# --- text out of a PDF: wrapped by the widths of a proportional font's glyphs ----------------------


def layout_id(layout: tuple[str, float, float]) -> str:
    font, size, width = layout
    return f"{font}-{size:g}pt-{width:g}pt"


@pytest.mark.parametrize(("font", "size", "width"), LAYOUTS, ids=[layout_id(layout) for layout in LAYOUTS])
def test_prose_out_of_a_pdf_is_one_segment_per_sentence(font: str, size: float, width: float) -> None:
    """Lines of one width on the page hold different numbers of characters; the sentences come out
    as they do from the paragraph on one line, and the sources keep the line breaks."""
    for paragraph in PROSE:
        body = pdf_wrap(paragraph, FONTS[font], size, width)
        assert body.count("\n") >= 2
        segments = text_segments(body)
        assert [unwrapped(s.text) for s in segments] == sentences(paragraph), body
        assert rebuilt(body) == body


def test_the_sample_article_out_of_a_pdf_is_one_segment_per_sentence(sample_article: str) -> None:
    paragraphs = sample_prose(sample_article)
    assert len(paragraphs) >= 10
    for font, size, width in LAYOUTS:
        for paragraph in paragraphs:
            body = pdf_wrap(paragraph, FONTS[font], size, width)
            segments = text_segments(body)
            assert [unwrapped(s.text) for s in segments] == sentences(paragraph), (font, size, width, body)
            assert rebuilt(body) == body


def test_a_line_that_would_have_held_the_next_word_by_its_characters_is_still_a_wrap() -> None:
    body = pdf_wrap(PROSE[4], FONTS["Helvetica"], 11, 324)
    lines = body.split("\n")
    # Set in Helvetica, the line of "claims. The agency…" is full at 48 characters, another at 65:
    # counted in characters, "recommendations" would have fitted on it.
    assert lines[4] == "claims. The agency agreed with seven of the nine"
    assert len(lines[4]) + len(" recommendations") < max(len(line) for line in lines)
    assert len(soft_wraps(body)) == body.count("\n") == 5
    assert [unwrapped(s.text) for s in text_segments(body)] == sentences(PROSE[4])


def test_a_sentence_that_visibly_goes_on_over_a_line_end_is_one_segment() -> None:
    """Lines ended by hand short of the width, in no measure full: where the line ends no sentence
    or clause and the next begins with a lowercase word, the sentence goes on."""
    body = (
        "The cabinet approved a draft budget of 114 trillion yen on Friday, the\n"
        "largest ever, as spending on defence and social security rose\n"
        "and the government counted on record tax revenue to limit new\n"
        "borrowing to 35 trillion yen. Economists said the plan relied on\n"
        "optimistic forecasts of growth and was unlikely to restore the\n"
        "primary balance by the target year of 2025 without cuts that no\n"
        "party has proposed."
    )
    lines = body.split("\n")
    assert len(lines[1]) + len(" and") < len(lines[0])
    assert [unwrapped(s.text) for s in text_segments(body)] == sentences(unwrapped(body))
    assert len(sentences(unwrapped(body))) == 2
    assert rebuilt(body) == body


def test_a_line_that_ends_in_a_compound_s_hyphen_runs_on() -> None:
    body = (
        "Japan's government said on Thursday it would raise the sales tax to 10\n"
        "percent next year, and that talks with the opposition on a cut for\n"
        "food would begin with the ruling party's partners in mid-\n"
        "November. The Nikkei share average fell 1.2 percent in afternoon\n"
        "trade, led by retailers and carmakers, while the yen firmed."
    )
    assert len("food would begin with the ruling party's partners in mid-November.") < 70
    segments = text_segments(body)
    assert [unwrapped(s.text) for s in segments] == sentences(unwrapped(body))
    assert "in mid-November." in unwrapped(segments[0].text)


@pytest.mark.parametrize(("font", "size", "width"), [("Helvetica", 11.0, 252.0), ("Times-Roman", 12.0, 252.0)])
def test_a_heading_in_capitals_keeps_its_line_over_prose_out_of_a_pdf(font: str, size: float, width: float) -> None:
    """In glyph widths a line in capitals is wide: "FOR IMMEDIATE RELEASE" with a first word such as
    "WASHINGTON" may overrun the width of a narrow column, but a heading does not run on into the text."""
    heading = "FOR IMMEDIATE RELEASE"
    for paragraph in PROSE:
        body = f"{heading}\n{pdf_wrap(paragraph, FONTS[font], size, width)}"
        segments = text_segments(body)
        assert [unwrapped(s.text) for s in segments] == [heading, *sentences(paragraph)], body
        assert segments[1].ws_before == "\n"
        assert rebuilt(body) == body


def test_a_headline_and_a_dateline_keep_their_lines_over_prose_out_of_a_pdf() -> None:
    dateline = "WASHINGTON, Sept. 12 -"
    paragraph = PROSE[0].removeprefix("WASHINGTON (AP) — ")
    for font, size, width in LAYOUTS:
        body = "\n".join([HEADLINE, dateline, pdf_wrap(paragraph, FONTS[font], size, width)])
        segments = text_segments(body)
        assert [unwrapped(s.text) for s in segments] == [HEADLINE, dateline, *sentences(paragraph)], body
        assert [s.ws_before for s in segments[:3]] == ["", "\n", "\n"]
        assert rebuilt(body) == body


def test_a_bulleted_list_out_of_a_pdf_keeps_its_items_and_joins_their_lines() -> None:
    items = [sentences(paragraph)[0] for paragraph in PROSE[:4]]
    body = "\n".join("• " + pdf_wrap(item, FONTS["Times-Roman"], 10, 300) for item in items)
    assert body.count("\n") >= 2 * len(items)
    segments = text_segments(body)
    assert [unwrapped(s.text) for s in segments] == ["• " + item for item in items]
    assert rebuilt(body) == body


def test_sentence_spans_are_pysbds_own_on_repeated_sentences() -> None:
    """service.segmenter reads each sentence's place on from where the same sentence was last found
    (pySBD reads the text again from its start for every sentence, minutes on a page of `![`): the
    spans must be pySBD's own, repeated sentences, white space and look-alikes included."""
    import pysbd

    from service.segmenter import _pysbd

    texts = [
        "![ " * 300,
        "Yes! Yes!  Yes! No. Yes! " * 40,
        "He said no. He said no.\nHe said no. She said yes. He said no." * 10,
        "U.S. talks. Talks. U.S. talks. Talks in the U.S. talks. " * 20,
    ]
    for text in texts:
        ours = [(s.sent, s.start, s.end) for s in _pysbd().segment(text)]
        theirs = pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)
        assert ours == [(s.sent, s.start, s.end) for s in theirs]
        assert len(ours) > 10
