"""English sentence splitting for news text, and clause splitting for sentences too long for the model.

pySBD does the sentence work (it handles "U.S.", "Nov.", "Mr.", initials and quotes that continue a
sentence); we hand it one paragraph at a time, in pieces of at most SPLITTER_CAP characters, because
it slows down sharply on long strings, and correct what it gets wrong in news copy (see _sbd).
Everything returns (start, end) spans over the input, so no character of the source can be lost:
the spans tile the text, white space included.

A line break is a sentence boundary, except in plain text that was hard-wrapped at a fixed width
(wire copy and pasted e-mail at a number of characters, text copied out of a PDF at a width on the
page, in a proportional font): there a break that only wraps a line (see `soft_wraps`) is a space,
so a sentence wrapped over lines is one segment whose source holds the break; the pipeline gives
the model a space for it and writes no break into the translation.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Sequence

import pysbd
from pysbd.lang.english import English
from pysbd.utils import TextSpan

from service.documents import Block, Inline, SourceSegment

SPLITTER_CAP = 2000
# A clause boundary: after , ; : or a dash, or before an opening parenthesis, at a space.
_CLAUSE = re.compile(r"(?<=[,;:—–])\s+|\s+(?=\()|(?<=\))\s+|(?<=—)|\s+(?=—)")
_SPACE = re.compile(r"\s+")
_SINGLE_QUOTES = str.maketrans("‘’", "''")
# pySBD ends a sentence after “U.S.”, “U.K.” or “E.U.” only before a few sentence starters (He, The,
# They…) and never after “U.N.” or “D.C.”: “talks with the U.S. But Tokyo…” and “in Washington, D.C.
# The next round…” ran on. These words begin a sentence and do not go on a name (“U.S. Army”).
_PLACE_END = re.compile(
    r"(?<![\w.])(?:U\.S|U\.K|U\.N|E\.U|D\.C)\.(\s+)(?=(?:"
    r"The|He|She|It|They|We|There|In|But|And|Then|This|These|Those|Its|His|Her|Their|Our|So|Yet|If|"
    r"While|Although|Though|Since|After|Before|Now|Still|Meanwhile|Instead|Yesterday|Today|Some|Many|"
    r"Most|Both|Such|Even|Only|Officials|Analysts|Critics)[\s,])"
)
# A quotation that ends in ? or ! (where a comma would stand before an attribution)…
_QUESTION_QUOTED = re.compile(r"[?!][\"'’”]$")
# …and a short attribution after it: a name or pronoun of one to four capitalised words (titles
# included), a verb of saying, at most four more words (“Why now?” Mr. Abe asked reporters.).
_NAME_PARTICLE = r"(?:de|da|di|du|del|della|der|den|van|von|ter|ten|le|la|dos|das|bin|ibn)"
_ATTRIBUTION = re.compile(
    rf"(?:(?:[A-Z][\w.’'-]*|{_NAME_PARTICLE})\s+){{1,4}}"
    r"(?:said|says|asked|asks|added|adds|replied|shouted|told|wrote|writes|recalled|wondered|demanded|insisted)"
    r"(?:\s+[\w.’'-]+){0,4}[.!?]?"
)

# A sentence that begins with a lowercase word which is no continuation: a name with a lowercase
# particle (de Gaulle, van Gogh, von der Leyen), an Arabic name's article (al-Qaeda, el-Sisi), a word
# with a one-letter prefix (e-commerce). (iPhone, eBay: not all lowercase, so never joined.)
_LOWERCASE_START = re.compile(rf"(?:{_NAME_PARTICLE}\s+)+[A-Z]|(?:al|el|ul)-[A-Z]|[a-z]-[a-z]{{2}}")
# The word before a sentence's full stop, when it is all lowercase letters (a word such as "percent"
# or "fell", or an abbreviation such as "pct" or "approx": see _ABBREVIATIONS).
_LAST_WORD = re.compile(r"(?<![\w.’'-])[\"“‘(\[]*([a-z]+)\.$")
# Lowercase abbreviations whose full stop is no sentence's end: pySBD's own, and news copy's.
_ABBREVIATIONS = frozenset(English.Abbreviation.ABBREVIATIONS) | {
    "approx", "pct", "est", "govt", "dept", "incl", "excl", "esp", "cf", "ca", "al", "vs", "max", "yr", "yrs",
    "mos", "wk", "wks", "hrs", "mln", "bln", "mn", "bn", "vol", "tel", "avg", "misc", "ibid", "resp", "mil",
    "mi", "lb", "lbs", "oz", "kg", "km", "sq", "div", "natl", "intl", "ie", "eg",
}  # fmt: skip

# Reflowing hard-wrapped text. A paragraph whose longest line is shorter than this is an address, a
# list or verse, not prose wrapped at a width (wire copy is wrapped at 60-80 columns, e-mail at 72-78).
WRAP_MIN_WIDTH = 40
# A line shorter than this share of the width ends where the writer ended it (a headline, a dateline,
# the last line of a paragraph), whether or not the next word would have fitted on it.
_SHORT_LINE = 0.6
# Text copied out of a PDF was set in a proportional font, where a full line may hold a quarter fewer
# characters than the longest ("illiterate" against "WWWMMM"): lines are measured in glyph widths
# too, those of a common text face (Helvetica, Arial, Times) in thousandths of an em, by classes of
# like width (a character not listed is as wide as "n"). The face a PDF used is unknown, so in glyph
# widths a line that reaches within this share of the width is full.
_GLYPH_WIDTHS: dict[str, int] = {
    **dict.fromkeys("ijl'|", 250),
    **dict.fromkeys(" .,:;!ftI()[]{}-‘’`", 300),
    **dict.fromkeys('r"“”/*^~', 370),
    **dict.fromkeys("sczJ", 450),
    **dict.fromkeys("ABCDEFGHKLNOPQRSTUVXYZ&w", 700),
    **dict.fromkeys("mMW%@—…", 900),
}
_GLYPH_WIDTH = 520
_GLYPH_TOLERANCE = 0.05
# A break where the sentence visibly goes on (the line ends in a word's hyphen, or ends no sentence or
# clause and the next line begins with a lowercase word) is a wrap when the next word would have
# taken the line this close to the width, in either measure.
_CONTINUATION_REACH = 0.85
_LINE_BREAK = re.compile(r"\r?\n")
# A row of a table of figures or of aligned columns: a tab, or two spaces or more after a word (two
# spaces after a sentence's end are a typing habit, not a column).
_ALIGNED = re.compile(r"\S\t|(?<=[^\s.!?:;\"'”’)\]]) {2,}(?=\S)")
# A word, as a line is wrapped: a no-break space joins what it stands between (“Mr.\u00a0Abe”).
_WORD = re.compile(r"[^ \t]+")
# What begins the item of a list ("- ", "* ", "1. ", "2) ", "(a) "); one such line may be a wrapped
# line that begins with a dash, two or more in a paragraph are a list.
_LIST_ITEM = re.compile(r"(?:[-*+–]|\d{1,3}[.)]|\(\w{1,3}\))\s")
# What never begins a wrapped line of prose: a bullet, or an e-mail's quotation mark.
_ALWAYS_HARD = re.compile(r"[•◦▪‣>]")
_HYPHENATED = re.compile(r"[^\W\d_]-$")
# A line's end that ends no sentence or clause (a comma or a dash does not).
_OPEN_END = re.compile(r"[^.!?…:;\"'”’)\]][\"'”’)\]]*$")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
# A line's end that verse often has, and wrapped prose at one line in five or so.
_PUNCTUATED = re.compile(r"[.!?…,;:—–-][\"'”’)\]]*$")
_FIRST_LETTER = re.compile(r"[ \t]*[\"'“‘(\[]*([^\W\d_])")
# A wire story's credit line ("Reporting by …; Editing by …"): it begins a line of its own, after the
# story's last line or another credit line, however long the line before it is.
_CREDIT = re.compile(r"[(\[]?(?:Additional reporting|Reporting|Writing|Editing|Compiled) by\b")
# What only an address holds: a postcode (Tokyo 100-8919, Washington, DC 20500, London SW1A 2AA,
# 75008 Paris) or a Japanese block number (1-10-5 Akasaka). Prose that holds one ends in a full stop.
_POSTCODE = re.compile(
    r"(?<![\w-])(?:\d{3}-\d{4}|\d{1,2}-\d{1,2}-\d{1,2}|[A-Z]{2} \d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}|"
    r"\d{5}(?= [A-Z][a-z]))(?![\w-])"
)

_local = threading.local()


class _Segmenter(pysbd.Segmenter):  # type: ignore[misc]
    """pySBD's segmenter, finding where each sentence stands without reading the text again from its
    start for every sentence: pySBD takes a sentence's first match (`re.finditer`) that ends past the
    sentence before, so a text of many sentences written alike (`!` after `!`, fifty thousand of
    them in a page of `![`) took it minutes. The same spans: each sentence's matches are read on
    from where those of the same sentence were left, all of which end before the sentence before."""

    def sentences_with_char_spans(self, sentences: list[str]) -> list[TextSpan]:
        spans: list[TextSpan] = []
        prior_end = 0
        matches: dict[str, Iterator[re.Match[str]]] = {}
        for sent in sentences:
            found = matches.get(sent)
            if found is None:
                found = matches[sent] = re.finditer(re.escape(sent) + r"\s*", self.original_text)
            for match in found:
                if match.end() > prior_end:
                    spans.append(TextSpan(match.group(), match.start(), match.end()))
                    prior_end = match.end()
                    break
        return spans


def _pysbd() -> pysbd.Segmenter:
    """One segmenter per thread: pySBD keeps per-call state on the object, so requests served
    concurrently must not share one (they did, and sentences ran together)."""
    segmenter = getattr(_local, "segmenter", None)
    if segmenter is None:
        segmenter = _local.segmenter = _Segmenter(language="en", clean=False, char_span=True)
    return segmenter


def soft_wraps(text: str) -> frozenset[int]:
    """The offsets of the line breaks in a paragraph of plain text that only wrap it, where a sentence
    goes on (each the offset of the line feed, which follows a carriage return in CRLF text).

    The reflow test: a paragraph looks wrapped when its longest line of words is at least
    WRAP_MIN_WIDTH characters long and its lines end near that width, measured in one of two ways:
    in characters (a monospaced font: wire copy, e-mail) or in the glyph widths of a common
    proportional face (`_glyphs`: a PDF, whose full lines hold different numbers of characters); it
    is read in the measure under which fewer breaks look chosen, characters if as few. A break is a
    wrap when the first word of the next line would not have fitted on the line before within that
    width (exactly in characters, within _GLYPH_TOLERANCE of it in glyph widths, the face being
    unknown), or when the sentence visibly goes on (the line ends in a compound's hyphen, or ends no
    sentence or clause and the next line begins with a lowercase word) and the word would have taken
    the line past _CONTINUATION_REACH of the width. A paragraph in which more than one break in four
    looks chosen (a line that was long enough for the next word but ended anyway: verse, a list of
    sentences) is not wrapped at all, nor is verse (see `_verse`). A break is always kept before and
    after a short line that ends no sentence (a headline, a dateline, an address's lines), a row of
    aligned columns (a table of figures), a list item, a bullet or a quoted e-mail's line, after a
    heading in capitals before a line that is not ("FOR IMMEDIATE RELEASE"), before a wire story's
    credit line ("Reporting by …", "Editing by …") and a line indented deeper than the one before (a
    new paragraph), and between the lines of an address that ends the paragraph (`_address_start`).
    A credit line wrapped at the width ("…; Editing by\nJane Doe") is one line, and stays joined."""
    breaks = list(_LINE_BREAK.finditer(text))
    if not breaks:
        return frozenset()
    starts = [0, *(m.end() for m in breaks)]
    ends = [*(m.start() for m in breaks), len(text)]
    lines = [text[s:e].rstrip(" \t") for s, e in zip(starts, ends, strict=True)]
    aligned = [bool(_ALIGNED.search(line.lstrip(" \t"))) for line in lines]
    # A line of one word (an address too long for the width) says nothing about the width.
    width = max(
        (len(line) for line, a in zip(lines, aligned, strict=True) if not a and len(line.split()) > 1), default=0
    )
    if width < WRAP_MIN_WIDTH or _verse(lines):
        return frozenset()
    items = sum(bool(_LIST_ITEM.match(line.lstrip(" \t"))) for line in lines)
    candidates: list[tuple[int, str]] = []  # the breaks that may be wraps, with the next line's first word
    for i, (line, after) in enumerate(itertools.pairwise(lines)):
        words = after.lstrip(" \t")
        first = _WORD.match(words) if words.strip() else None
        if (
            not line.strip()
            or first is None
            or aligned[i]
            or aligned[i + 1]
            or _ALWAYS_HARD.match(words)
            or _CREDIT.match(words)
            or (items > 1 and _LIST_ITEM.match(words))
            or (_indent(after) > _indent(line) and not _LIST_ITEM.match(line.lstrip(" \t")))
            or (_in_capitals(line) and not _in_capitals(after))
        ):
            continue
        candidates.append((i, first.group()))
    # Wrapped by a count of characters (a monospaced font: wire copy, e-mail) or by glyph widths (a
    # proportional font: a PDF): the measure under which fewer breaks look chosen, characters if
    # as few.
    found = [_wrapped(lines, aligned, candidates, measure, tolerance) for measure, tolerance in _MEASURES]
    readings = [reading for reading in found if reading is not None]
    if not readings:
        return frozenset()
    wraps, short = min(readings, key=lambda reading: reading[2])[:2]
    # An address that ends the paragraph keeps its lines, even where its first line was long enough
    # to look wrapped (and the address has too few lines for the rule below).
    address = _address_start(lines)
    wraps = [i for i in wraps if i + 1 < address]
    # A short line that ends no sentence and is followed by another of the same kind (not a list
    # item, not a new paragraph) was ended by its writer, as an address's lines are: the line before
    # it does not run on into it either.
    return frozenset(breaks[i].end() - 1 for i in wraps if i + 1 not in short or _SENTENCE_END.search(lines[i + 1]))


def _glyphs(text: str) -> int:
    """The width of `text` in a common proportional text face, in thousandths of an em."""
    return sum(_GLYPH_WIDTHS.get(c, _GLYPH_WIDTH) for c in text)


_MEASURES: tuple[tuple[Callable[[str], int], float], ...] = ((len, 0.0), (_glyphs, _GLYPH_TOLERANCE))


def _wrapped(
    lines: list[str],
    aligned: list[bool],
    candidates: list[tuple[int, str]],
    measure: Callable[[str], int],
    tolerance: float,
) -> tuple[list[int], set[int], int] | None:
    """The paragraph read as wrapped at the width of its longest line in `measure`: the indexes of
    the lines that wrap (a break after them is soft), those of the short lines, and the number of
    breaks that look chosen; None where more than one break in four looks chosen (not wrapped)."""
    width = max(
        (measure(line) for line, a in zip(lines, aligned, strict=True) if not a and len(line.split()) > 1), default=0
    )
    wraps: list[int] = []
    chosen = 0
    short: set[int] = set()  # breaks after a short line
    for i, first in candidates:
        line = lines[i]
        # After a hyphen the next word would have gone on without a space (“third-largest”).
        hyphenated = bool(_HYPHENATED.search(line))
        reach = measure(line) + (0 if hyphenated else measure(" ")) + measure(first)
        if reach > (1 - tolerance) * width:
            wraps.append(i)
        elif measure(line) < _SHORT_LINE * width:
            short.add(i)
        elif reach > _CONTINUATION_REACH * width and (hyphenated or _goes_on(line, lines[i + 1])):
            wraps.append(i)
        else:
            chosen += 1
    if chosen * 3 > len(wraps):
        return None
    return wraps, short, chosen


def _goes_on(line: str, after: str) -> bool:
    """Whether the sentence visibly goes on from `line` to the line `after` it: the line ends no
    sentence or clause, and the next begins with a lowercase word."""
    first = _FIRST_LETTER.match(after)
    return bool(_OPEN_END.search(line)) and first is not None and first.group(1).islower()


def _in_capitals(line: str) -> bool:
    """Whether the line has letters, none of them lowercase (a heading: FOR IMMEDIATE RELEASE)."""
    return any(c.isupper() for c in line) and not any(c.islower() for c in line)


def _address_start(lines: list[str]) -> int:
    """The index of the first line of the address that ends the paragraph (len(lines) if none): the
    lines after the last that ends a sentence, when the last of them holds a postcode and ends no
    sentence itself."""
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    if end == 0 or _SENTENCE_END.search(lines[end - 1]) or not _POSTCODE.search(lines[end - 1]):
        return len(lines)
    start = end - 1
    while start > 0 and not _SENTENCE_END.search(lines[start - 1]):
        start -= 1
    return start


def _verse(lines: list[str]) -> bool:
    """Whether the lines are verse (or a list of sentences): three or more, each beginning with a
    capital, and three in four or more of those before the last ending with punctuation."""
    if len(lines) < 3:
        return False
    firsts = [_FIRST_LETTER.match(line) for line in lines]
    if not all(m is not None and m.group(1).isupper() for m in firsts):
        return False
    return 4 * sum(bool(_PUNCTUATED.search(line)) for line in lines[:-1]) >= 3 * (len(lines) - 1)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _hard_break(text: str, start: int, end: int, soft: frozenset[int]) -> bool:
    """Whether text[start:end] holds a line break that is not a soft wrap."""
    return any(i not in soft for i in range(start, end) if text[i] == "\n")


def _sbd(text: str, start: int, end: int, soft: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """pySBD's sentence spans over text[start:end], in offsets of `text`, white space excluded.

    pySBD reads a copy in which each run of white space is one space (one newline where the run holds
    a line break that is not one of the soft wraps in `soft`) and curly single quotes are straight:
    its rules expect exactly one space after a closing quote and know only straight single quotes,
    so “fatal.”  Already (two spaces, or a no-break space and a space) and ‘No.’ Then ran two
    sentences together. A span that begins with a lowercase word is joined to the one before (see
    _continues)."""
    index: list[int] = []  # the offset in `text` of each character of the copy
    parts: list[str] = []
    pos = start
    for m in _SPACE.finditer(text, start, end):
        parts.append(text[pos : m.start()])
        index.extend(range(pos, m.start()))
        parts.append("\n" if _hard_break(text, m.start(), m.end(), soft) else " ")
        index.append(m.start())
        pos = m.end()
    parts.append(text[pos:end])
    index.extend(range(pos, end))
    copy = "".join(parts).translate(_SINGLE_QUOTES)
    spans: list[tuple[int, int]] = []
    for sent in _pysbd().segment(copy):
        s, e = sent.start, sent.end
        while s < e and copy[s].isspace():
            s += 1
        while e > s and copy[e - 1].isspace():
            e -= 1
        if s < e:
            places = list(_PLACE_END.finditer(copy, s, e))
            starts = [index[s]] + [index[m.end(1)] for m in places]
            ends = [index[m.start(1) - 1] + 1 for m in places] + [index[e - 1] + 1]
            for span in zip(starts, ends, strict=True):
                if spans and _continues(text, spans[-1], span, soft):
                    spans[-1] = (spans[-1][0], span[1])
                else:
                    spans.append(span)
    return spans


def _continues(text: str, before: tuple[int, int], span: tuple[int, int], soft: frozenset[int]) -> bool:
    """Whether the sentence `span` is the rest of the one `before` it, on the same line (a line break
    that is not a soft wrap stays a boundary: the pipeline writes it back between segments, as a <br>
    or a Markdown break).

    It is when it begins with a lowercase word (pySBD cuts “Tues. and Wed. last week” and “2.5 pct.
    in May” after the full stop), unless the word is a name written so (iPhone, eBay), or a name or
    word that begins in lowercase (de Gaulle, al-Qaeda, e-commerce: `_LOWERCASE_START`) after a full
    stop that surely ends a sentence (`_full_stop`): a wrong split hurts a translator more than a
    missed one, so only there; and when it is the attribution of a quoted question or exclamation
    (“Why now?” Mr. Abe asked., “Why?” de Gaulle asked.), which translated alone loses who asked."""
    if _hard_break(text, before[1], span[0], soft):
        return False
    if _QUESTION_QUOTED.search(text, before[0], before[1]) and _ATTRIBUTION.fullmatch(text, span[0], span[1]):
        return True
    word = re.match(r"\w+", text[span[0] : span[1]])
    if word is None or not word.group().islower():
        return False
    return not (_LOWERCASE_START.match(text, span[0], span[1]) and _full_stop(text, before))


def _full_stop(text: str, sentence: tuple[int, int]) -> bool:
    """Whether `sentence` surely ends where pySBD ended it: a full stop after a lowercase word that
    is no abbreviation ("5 percent.", "fell.") or after a figure ("in 2009."). After anything else
    ("Pres.", "a.m.", "Paris.") the stop may be an abbreviation's, and the sentence may go on."""
    if re.search(r"(?<![\d.,])\d+\.$", text[sentence[0] : sentence[1]]):
        return True
    word = _LAST_WORD.search(text, sentence[0], sentence[1])
    return word is not None and len(word.group(1)) > 1 and word.group(1) not in _ABBREVIATIONS


def _pieces(text: str, cap: int, soft: frozenset[int]) -> list[tuple[int, int]]:
    """Cut `text` into pieces of at most `cap` characters where the splitter itself sees the last
    sentence of the window begin (so not after “Mr.”), else at white space after sentence punctuation,
    else at any white space: the splitter never sees a huge string."""
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > cap:
        window = text[start : start + cap]
        found = _sbd(text, start, start + cap, soft)
        cut = found[-1][0] - start if len(found) > 1 else 0  # the last one runs past the window's end
        if cut == 0:
            cut = max((m.end() for m in re.finditer(r"[.!?]['\"’”)]?\s+", window)), default=0)
        if cut == 0:
            cut = max((m.end() for m in _SPACE.finditer(window)), default=cap)
        spans.append((start, start + cut))
        start += cut
    spans.append((start, len(text)))
    return spans


def split_sentences(text: str, *, reflow: bool = False) -> list[tuple[int, int]]:
    """Sentence spans over `text`, white space excluded; the text between spans is white space only.
    `reflow`: `text` is a paragraph of plain text, whose soft wraps (`soft_wraps`) are no boundary."""
    soft = soft_wraps(text) if reflow else frozenset()
    spans: list[tuple[int, int]] = []
    for piece_start, piece_end in _pieces(text, SPLITTER_CAP, soft):
        if text[piece_start:piece_end].strip():
            spans.extend(_sbd(text, piece_start, piece_end, soft))
    return _cover_gaps(text, spans)


def _cover_gaps(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """pySBD may skip characters in rare inputs; fold any non-space text it left out into a span."""
    fixed: list[tuple[int, int]] = []
    pos = 0
    for s, e in [*sorted(spans), (len(text), len(text))]:
        s = max(s, pos)
        gap = text[pos:s]
        if gap.strip():
            first = pos + len(gap) - len(gap.lstrip())
            last = pos + len(gap.rstrip())
            if fixed:
                fixed[-1] = (fixed[-1][0], last)
            else:
                fixed.append((first, last))
        if e > s:
            fixed.append((s, e))
            pos = e
    return fixed


class _Inlines:
    """A block's inline elements, sorted by start once, so that what a span or a cut asks of them
    reads only the elements that overlap it: a paragraph of thousands of emphases took minutes when
    every sentence and every candidate cut looked at all of them."""

    def __init__(self, inlines: Sequence[Inline]) -> None:
        self.inlines = tuple(inlines)
        # By start, outermost first (equal ones in their order): how masking reads them.
        self.order = sorted(range(len(self.inlines)), key=lambda k: (self.inlines[k].start, -self.inlines[k].end))
        self.by_start = [self.inlines[k] for k in self.order]
        self.starts = [i.start for i in self.by_start]
        # The elements that hold text, by start, and the furthest end of those up to each.
        spans = sorted((i.start, i.end) for i in self.inlines if i.end > i.start)
        self.span_starts = [start for start, _ in spans]
        self.reach = list(itertools.accumulate((end for _, end in spans), max))

    def crosses(self, left_end: int, right_start: int) -> bool:
        """Whether a cut that ends one part at `left_end` and begins the next at `right_start` would
        cut through an element that holds text: one that begins before the first ends and ends
        after the second begins."""
        before = bisect.bisect_left(self.span_starts, left_end)
        return before > 0 and self.reach[before - 1] > right_start

    def between(self, low: int | None, high: int) -> list[Inline]:
        """The elements that begin at `low` or after (anywhere, where `low` is None) and before
        `high`, in their own order."""
        first = 0 if low is None else bisect.bisect_left(self.starts, low)
        last = bisect.bisect_left(self.starts, high)
        return [self.inlines[k] for k in sorted(self.order[first:last])]

    def masked(self, text: str, start: int, end: int) -> str:
        """`masked_span` of text[start:end]."""
        parts: list[str] = []
        pos = start
        k = bisect.bisect_left(self.starts, start)
        while k < len(self.starts) and self.starts[k] <= end:
            inline = self.by_start[k]
            if inline.end > end:
                k += 1  # not wholly inside the span
                continue
            parts.append(text[pos : inline.start])
            parts.append(_PLACEHOLDER_MEASURED)
            pos = inline.end
            # Those that begin before its end are inside the element just masked.
            k = bisect.bisect_left(self.starts, pos, k + 1)
        parts.append(text[pos:end])
        return unwrapped("".join(parts))


def masked_span(text: str, start: int, end: int, inlines: Sequence[Inline] = ()) -> str:
    """text[start:end] as the model is given it (service.protect masks the same way): on one line
    (`unwrapped`), each outermost inline element wholly inside it a placeholder. A sentence of
    25,000 one-letter emphases is 25,000 placeholders, far longer in tokens than its letters, so
    a sentence is measured in this form, not in its letters. The placeholder's number is a wide
    one, as the article's later placeholders are, so the measure errs long."""
    return _Inlines(inlines).masked(text, start, end)


# What a placeholder of service.protect is measured as (QZX and a key as wide as an article's).
_PLACEHOLDER_MEASURED = "QZX99999"


def split_long(
    text: str,
    start: int,
    end: int,
    *,
    measure: Callable[[str], int],
    limit: int,
    inlines: Sequence[Inline] = (),
) -> list[tuple[int, int]]:
    """Split the sentence text[start:end] at clause boundaries until each part measures ≤ limit
    (in the model's tokens, of the part as the model is given it: `masked_span`). Never truncates:
    a part with no boundary left is cut at white space, and as a last resort at the character
    nearest the middle, so the parts always tile the sentence. No cut goes through one of
    `inlines` (offsets in `text`); a part that only such a cut could shorten is left whole."""
    return _split_long(text, start, end, measure, limit, _Inlines(inlines))


def _split_long(
    text: str, start: int, end: int, measure: Callable[[str], int], limit: int, inlines: _Inlines
) -> list[tuple[int, int]]:
    if end - start < 2 or measure(inlines.masked(text, start, end)) <= limit:
        return [(start, end)]
    sentence = text[start:end]
    middle = len(sentence) // 2

    def fits(m: re.Match[str]) -> bool:
        return m.start() > 0 and m.end() < len(sentence) and not inlines.crosses(start + m.start(), start + m.end())

    cuts = [m for m in _CLAUSE.finditer(sentence) if fits(m)]
    if not cuts:
        cuts = [m for m in _SPACE.finditer(sentence) if fits(m)]
    if cuts:
        best = min(cuts, key=lambda m: abs(m.start() - middle))
        left_end, right_start = start + best.start(), start + best.end()
    else:
        # At the character nearest the middle that no inline element spans.
        free = sorted(range(start + 1, end), key=lambda at: abs(at - start - middle))
        at = next((at for at in free if not inlines.crosses(at, at)), None)
        if at is None:
            return [(start, end)]
        left_end = right_start = at
    return _split_long(text, start, left_end, measure, limit, inlines) + _split_long(
        text, right_start, end, measure, limit, inlines
    )


def _merge_crossing(spans: list[tuple[int, int]], inlines: _Inlines) -> list[tuple[int, int]]:
    """Join neighbouring spans that an inline element straddles: markup never crosses segments."""
    merged: list[tuple[int, int]] = []
    for span in spans:
        if merged and inlines.crosses(merged[-1][1], span[0]):
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def segment_blocks(
    blocks: Sequence[Block], *, measure: Callable[[str], int], limit: int, reflow: bool = False
) -> tuple[SourceSegment, ...]:
    """Sentence segments of every block, each no longer than `limit` model tokens where clause
    boundaries allow. Per block, `ws_before + text` of its segments, concatenated, is the block's
    text exactly. `reflow`: the blocks are plain text, where a soft wrap (`soft_wraps`) is no
    boundary; a sentence wrapped over lines is one segment, its source holding the line breaks."""
    segments: list[SourceSegment] = []
    for block in blocks:
        text = block.text
        index = _Inlines(block.inlines)
        if (
            len(block.inlines) == 1
            and block.inlines[0].verbatim
            and block.inlines[0].end - block.inlines[0].start == len(text)
        ):
            spans = [(0, len(text))]  # a code block: one untranslated segment
        else:
            spans = _merge_crossing(split_sentences(text, reflow=reflow), index)
            spans = [part for s, e in spans for part in _split_long(text, s, e, measure, limit, index)]
            spans = _merge_crossing(spans, index)
        pos = 0
        for j, (start, end) in enumerate(spans):
            next_start = spans[j + 1][0] if j + 1 < len(spans) else len(text) + 1
            inlines: list[Inline] = []
            # Only those that begin in the span or before the next one (or before the first) can be
            # the segment's: an element inside it, or a zero-width one after it.
            for i in index.between(None if j == 0 else start, max(end, next_start)):
                if i.end > i.start:
                    if start <= i.start and i.end <= end:
                        inlines.append(Inline(i.start - start, i.end - start, i.open, i.close, i.verbatim))
                elif start <= i.start < next_start or (j == 0 and i.start < start):
                    # A zero-width element (<br>) between sentences stays after the one before it.
                    at = min(max(i.start, start), end) - start
                    inlines.append(Inline(at, at, i.open, i.close, i.verbatim))
            segments.append(
                SourceSegment(
                    id=f"{block.id}.s{j}",
                    block_id=block.id,
                    start=start,
                    end=end,
                    text=text[start:end],
                    ws_before=text[pos:start],
                    inlines=tuple(inlines),
                )
            )
            pos = end
    return tuple(segments)


_WRAP = re.compile(r"(?<=[^\W\d_]-)[ \t]*\r?\n\s*(?=[^\W\d_])|(\s*\n\s*)")


def unwrapped(text: str) -> str:
    """A segment's text as the model is given it: on one line. A line break inside it (a soft wrap)
    is a space, and none after a hyphen that ends a line between two letters (“third-\\nlargest”)."""
    return _WRAP.sub(lambda m: " " if m.group(1) is not None else "", text)
