"""English sentence splitting for news text, and clause splitting for sentences too long for the model.

pySBD does the sentence work (it handles "U.S.", "Nov.", "Mr.", initials and quotes that continue a
sentence); we hand it one paragraph at a time, in pieces of at most SPLITTER_CAP characters, because
it slows down sharply on long strings, and correct what it gets wrong in news copy (see _sbd).
Everything returns (start, end) spans over the input, so no character of the source can be lost:
the spans tile the text, white space included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

import pysbd

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
_ATTRIBUTION = re.compile(
    r"(?:[A-Z][\w.’'-]*\s+){1,4}"
    r"(?:said|says|asked|asks|added|adds|replied|shouted|told|wrote|writes|recalled|wondered|demanded|insisted)"
    r"(?:\s+[\w.’'-]+){0,4}[.!?]?"
)


_local = threading.local()


def _pysbd() -> pysbd.Segmenter:
    """One segmenter per thread: pySBD keeps per-call state on the object, so requests served
    concurrently must not share one (they did, and sentences ran together)."""
    segmenter = getattr(_local, "segmenter", None)
    if segmenter is None:
        segmenter = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return segmenter


def _sbd(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """pySBD's sentence spans over text[start:end], in offsets of `text`, white space excluded.

    pySBD reads a copy in which each run of white space is one space (one newline where the run holds
    a line break) and curly single quotes are straight: its rules expect exactly one space after a
    closing quote and know only straight single quotes, so “fatal.”  Already (two spaces, or a
    no-break space and a space) and ‘No.’ Then ran two sentences together. A span that begins with
    a lowercase word is joined to the one before (see _continues)."""
    index: list[int] = []  # the offset in `text` of each character of the copy
    parts: list[str] = []
    pos = start
    for m in _SPACE.finditer(text, start, end):
        parts.append(text[pos : m.start()])
        index.extend(range(pos, m.start()))
        parts.append("\n" if "\n" in m.group() else " ")
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
                if spans and _continues(text, spans[-1], span):
                    spans[-1] = (spans[-1][0], span[1])
                else:
                    spans.append(span)
    return spans


def _continues(text: str, before: tuple[int, int], span: tuple[int, int]) -> bool:
    """Whether the sentence `span` is the rest of the one `before` it, on the same line (a line break
    stays a boundary: the pipeline writes it back between segments, as a <br> or a Markdown break).

    It is when it begins with a lowercase word (pySBD cuts “Tues. and Wed. last week” and “2.5 pct.
    in May” after the full stop), unless the word is a name written so (iPhone, eBay); and when it
    is the attribution of a quoted question or exclamation (“Why now?” Mr. Abe asked.), which
    translated alone loses who asked."""
    if "\n" in text[before[1] : span[0]]:
        return False
    word = re.match(r"\w+", text[span[0] : span[1]])
    if word is not None and word.group()[0].islower() and word.group().islower():
        return True
    return bool(_QUESTION_QUOTED.search(text, before[0], before[1])) and bool(
        _ATTRIBUTION.fullmatch(text, span[0], span[1])
    )


def _pieces(text: str, cap: int) -> list[tuple[int, int]]:
    """Cut `text` into pieces of at most `cap` characters where the splitter itself sees the last
    sentence of the window begin (so not after “Mr.”), else at white space after sentence punctuation,
    else at any white space: the splitter never sees a huge string."""
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > cap:
        window = text[start : start + cap]
        found = _sbd(text, start, start + cap)
        cut = found[-1][0] - start if len(found) > 1 else 0  # the last one runs past the window's end
        if cut == 0:
            cut = max((m.end() for m in re.finditer(r"[.!?]['\"’”)]?\s+", window)), default=0)
        if cut == 0:
            cut = max((m.end() for m in _SPACE.finditer(window)), default=cap)
        spans.append((start, start + cut))
        start += cut
    spans.append((start, len(text)))
    return spans


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans over `text`, white space excluded; the text between spans is white space only."""
    spans: list[tuple[int, int]] = []
    for piece_start, piece_end in _pieces(text, SPLITTER_CAP):
        if text[piece_start:piece_end].strip():
            spans.extend(_sbd(text, piece_start, piece_end))
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


def split_long(text: str, start: int, end: int, *, measure: Callable[[str], int], limit: int) -> list[tuple[int, int]]:
    """Split the sentence text[start:end] at clause boundaries until each part measures ≤ limit
    (in the model's tokens). Never truncates: a part with no boundary left is cut at white space,
    and as a last resort in the middle, so the parts always tile the sentence."""
    if measure(text[start:end]) <= limit or end - start < 2:
        return [(start, end)]
    sentence = text[start:end]
    middle = len(sentence) // 2
    cuts = [m for m in _CLAUSE.finditer(sentence) if m.start() > 0 and m.end() < len(sentence)]
    if not cuts:
        cuts = [m for m in _SPACE.finditer(sentence) if m.start() > 0 and m.end() < len(sentence)]
    if cuts:
        best = min(cuts, key=lambda m: abs(m.start() - middle))
        left_end, right_start = start + best.start(), start + best.end()
    else:
        left_end = right_start = start + middle
    if left_end == start:
        left_end = right_start = start + middle
    return split_long(text, start, left_end, measure=measure, limit=limit) + split_long(
        text, right_start, end, measure=measure, limit=limit
    )


def _merge_crossing(spans: list[tuple[int, int]], inlines: tuple[Inline, ...]) -> list[tuple[int, int]]:
    """Join neighbouring spans that an inline element straddles: markup never crosses segments."""
    merged: list[tuple[int, int]] = []
    for span in spans:
        if merged and any(i.end > i.start and i.start < merged[-1][1] and i.end > span[0] for i in inlines):
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def segment_blocks(blocks: Sequence[Block], *, measure: Callable[[str], int], limit: int) -> tuple[SourceSegment, ...]:
    """Sentence segments of every block, each no longer than `limit` model tokens where clause
    boundaries allow. Per block, `ws_before + text` of its segments, concatenated, is the block's
    text exactly."""
    segments: list[SourceSegment] = []
    for block in blocks:
        text = block.text
        if (
            len(block.inlines) == 1
            and block.inlines[0].verbatim
            and block.inlines[0].end - block.inlines[0].start == len(text)
        ):
            spans = [(0, len(text))]  # a code block: one untranslated segment
        else:
            spans = _merge_crossing(split_sentences(text), block.inlines)
            spans = [part for s, e in spans for part in split_long(text, s, e, measure=measure, limit=limit)]
            spans = _merge_crossing(spans, block.inlines)
        pos = 0
        for j, (start, end) in enumerate(spans):
            next_start = spans[j + 1][0] if j + 1 < len(spans) else len(text) + 1
            inlines: list[Inline] = []
            for i in block.inlines:
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
