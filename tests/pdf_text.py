"""Prose as it comes out of a PDF: wrapped by the widths of a proportional font's glyphs at a fixed
line width in points, not by a count of characters (test data for the reflow of plain text)."""

from __future__ import annotations

import re

# Advance widths (thousandths of an em) of the standard PostScript fonts Helvetica and Times-Roman,
# from Adobe's AFM files (as GNU groff ships them, font/devps/HR and TR): printable ASCII, the
# curly quotes, the dashes, the ellipsis and é. The straight quote is the AFM's quotesingle.
_CHARS = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~é–—‘’“”…"
_HELVETICA = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667,
    556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 333, 556, 333, 556,
    556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722,
    500, 500, 500, 334, 260, 334, 333, 556, 556, 1000, 222, 222, 333, 333, 1000,
)  # fmt: skip
_TIMES = (
    250, 333, 408, 500, 500, 833, 778, 180, 333, 333, 500, 564, 250, 333, 250, 278, 500, 500, 500, 500, 500, 500,
    500, 500, 500, 500, 278, 278, 564, 564, 564, 444, 921, 722, 667, 667, 722, 611, 556, 722, 722, 333, 389, 722,
    611, 889, 722, 722, 556, 722, 667, 556, 611, 722, 722, 944, 722, 722, 611, 333, 278, 333, 333, 500, 333, 444,
    500, 444, 500, 444, 333, 500, 500, 278, 278, 500, 278, 778, 500, 500, 500, 500, 333, 389, 278, 500, 500, 722,
    500, 500, 444, 480, 200, 480, 333, 444, 500, 1000, 333, 333, 444, 444, 1000,
)  # fmt: skip
FONTS: dict[str, dict[str, int]] = {
    "Helvetica": dict(zip(_CHARS, _HELVETICA, strict=True)),
    "Times-Roman": dict(zip(_CHARS, _TIMES, strict=True)),
}
# Where a line may end besides a space: after the hyphen of a compound, between letters.
_BREAK = re.compile(r"(?<=[^\W\d_]-)(?=[^\W\d_])")


def pdf_wrap(paragraph: str, font: dict[str, int], size: float, width: float) -> str:
    """`paragraph` wrapped as a word processor sets it, ragged right: as many words on each line as
    fit `width` points in `font` at `size` points, a line broken at a space or after a compound's
    hyphen; runs of white space are one space."""

    def measure(text: str) -> float:
        return sum(font.get(c, 556) for c in text) * size / 1000

    lines: list[str] = []
    line = ""
    for word in paragraph.split():
        parts = _BREAK.split(word)
        for k, part in enumerate(parts):
            glue = " " if k == 0 and line else ""
            if line and measure(line + glue + part) > width:
                lines.append(line)
                line = part
            else:
                line += glue + part
    lines.append(line)
    return "\n".join(lines)


# News paragraphs of the kinds that reach the desk as PDFs: press releases, government and central
# bank statements, reports, wire stories. Sentences end in the middle of lines, names and figures run
# over line ends, and abbreviations (U.S., Mr., Jan.) stand where a line may end.
PROSE = [
    "WASHINGTON (AP) — The Federal Reserve left its benchmark interest rate unchanged on Wednesday but "
    "signaled that it still expects to cut rates twice before the end of the year, as inflation cools and "
    "hiring slows. Chair Jerome Powell told reporters that the economy remained \u201cin a good place\u201d and "
    "that officials would move carefully. Stocks rose modestly after the announcement.",
    "The Ministry of Health, Labour and Welfare said on Friday that the number of people aged 65 or older "
    "reached a record 36.2 million as of Sept. 15, accounting for 29.1 percent of the population. The "
    "share is the highest among the world's major economies, according to the ministry, which compiled "
    "the figures ahead of Respect for the Aged Day.",
    "BRUSSELS, March 4 (Reuters) - European Union leaders agreed early on Friday to impose new sanctions on "
    "Russia's oil exports, overcoming months of resistance from Hungary, which had demanded exemptions for "
    "pipeline deliveries. The measures, which take effect in 60 days, would cut about two-thirds of the "
    "bloc's imports of Russian crude, officials said.",
    "Acme Robotics Inc. (NASDAQ: ACMR), a maker of warehouse automation systems, today announced that it "
    "has completed its acquisition of Kestrel Vision Ltd., a developer of machine-vision software based in "
    "Cambridge, England. The transaction, valued at approximately $410 million in cash and stock, was "
    "approved by Kestrel's shareholders on Jan. 12. \u201cTogether we can offer customers a complete picking "
    "system,\u201d said Maria Lopez, Acme's chief executive officer.",
    "The report, prepared by the Government Accountability Office at the request of two Senate committees, "
    "found that the Department of Veterans Affairs had paid more than $1.3 billion in improper benefits "
    "over five years, largely because of errors in processing claims. The agency agreed with seven of the "
    "nine recommendations and said it had begun to carry out most of them.",
    "Typhoon Hagibis made landfall on the Izu Peninsula shortly before 7 p.m. on Saturday, bringing record "
    "rainfall to parts of eastern Japan. More than 7 million people were advised to evacuate, and at least "
    "142 rivers burst their banks, the land ministry said. In Nagano prefecture, a levee on the Chikuma "
    "River collapsed, flooding hundreds of homes and a depot of the Hokuriku bullet train.",
    "Mr. Tanaka, who joined the company in 1987 and has led its overseas business since 2015, will succeed "
    "Hiroshi Sato as president on April 1, subject to approval at the annual general meeting in June. "
    "Mr. Sato will become chairman. The board said the change would strengthen the group's management as it "
    "expands in North America and Southeast Asia.",
    "The Court of Appeals for the Ninth Circuit ruled 2-1 that the state's law, which bars companies from "
    "collecting the location data of residents under 18 without parental consent, did not violate the "
    "First Amendment. Writing for the majority, Judge Ellen Park said the law was narrowly tailored to a "
    "compelling interest in protecting children. The dissent argued that the statute was vague.",
    "According to the survey, conducted between Oct. 3 and Oct. 21 among 4,512 adults, 58 percent of "
    "respondents said they were worried about the cost of living, up from 44 percent a year earlier. "
    "Only 12 percent said their household finances had improved. The margin of error is plus or minus "
    "1.5 percentage points.",
    "GENEVA \u2014 The World Health Organization said on Tuesday that the outbreak of cholera in the region "
    "had spread to three more countries, bringing the total to 11, and warned that global stocks of oral "
    "vaccine were running dangerously low. \u201cWe are asking manufacturers to increase production as a "
    "matter of urgency,\u201d a WHO spokesman told reporters in Geneva.",
    "Net sales for the fiscal year ended March 31, 2024 increased 8.4% to \u00a53,215.6 billion, driven by "
    "strong demand for semiconductors and a weaker yen. Operating income rose 15.2% to \u00a5412.9 billion, "
    "and profit attributable to owners of the parent was \u00a5298.1 billion, up 11.7% from the previous "
    "fiscal year. The company expects sales of \u00a53,400 billion in the current year.",
    "Police said the suspect, a 34-year-old man from Osaka, was arrested on suspicion of fraud after "
    "investigators traced payments from at least 120 elderly victims to bank accounts he controlled. "
    "He has denied the allegations, according to his lawyer. The total losses are estimated at about "
    "\u00a5480 million, making it one of the largest such cases in the prefecture.",
]

# A text column of a PDF: fonts, sizes in points and line widths in points (3.5, 4.5, 5.5 and 6.5
# inches: a column of two, a narrow page, a report's page).
LAYOUTS = [
    (font, size, width) for font in FONTS for size in (9.0, 10.0, 11.0, 12.0) for width in (252.0, 324.0, 396.0, 468.0)
]


def sample_prose(article: str) -> list[str]:
    """The paragraphs of the sample article long enough to wrap over three lines or more."""
    return [" ".join(p.split()) for p in article.split("\n\n") if len(p) > 200]
