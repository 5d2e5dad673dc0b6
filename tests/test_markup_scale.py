"""Segmenting and protecting a paragraph costs about its size, however much inline markup it holds.

Every sentence span, every candidate cut and every outer element used to look at all the block's
inline elements (or all its outer ones): a <p> of 3,000 bold sentences took 6 s, a Markdown
paragraph of 100,000 characters of emphases some ten minutes, 4,000 bold words inside one <span>
8.6 s to protect. The index that replaced those scans must give exactly what they gave: the tests
below compare the segmenter's and service.protect's public functions, on generated articles, with
a naive reference that is the former code (every inline looked at, every time), kept here."""

from __future__ import annotations

import itertools
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from glossary.matching import find_terms
from glossary.terms import Glossary
from service.documents import Article, Block, BlockKind, Inline, SourceFormat, SourceSegment
from service.formats import parse_blocks
from service.glossaries import GlossaryStore
from service.protect import PLACEHOLDER, Fragment, Slot, SlotKind, build_fragment
from service.segmenter import masked_span, segment_blocks, split_long, split_sentences, unwrapped

if TYPE_CHECKING:
    from models.engine import Engine

# --- The reference: the former code, which reads every inline element for every question. ---

_CLAUSE = re.compile(r"(?<=[,;:—–])\s+|\s+(?=\()|(?<=\))\s+|(?<=—)|\s+(?=—)")
_SPACE = re.compile(r"\s+")


def ref_masked(text: str, start: int, end: int, inlines: Sequence[Inline]) -> str:
    inside = sorted((i for i in inlines if start <= i.start and i.end <= end), key=lambda i: (i.start, -i.end))
    parts: list[str] = []
    pos = start
    for inline in inside:
        if inline.start < pos:
            continue
        parts.append(text[pos : inline.start])
        parts.append("QZX99999")
        pos = inline.end
    parts.append(text[pos:end])
    return unwrapped("".join(parts))


def ref_crosses(inlines: Sequence[Inline], left_end: int, right_start: int) -> bool:
    return any(i.end > i.start and i.start < left_end and i.end > right_start for i in inlines)


def ref_split_long(
    text: str, start: int, end: int, measure: Callable[[str], int], limit: int, inlines: Sequence[Inline]
) -> list[tuple[int, int]]:
    if end - start < 2 or measure(ref_masked(text, start, end, inlines)) <= limit:
        return [(start, end)]
    sentence = text[start:end]
    middle = len(sentence) // 2

    def fits(m: re.Match[str]) -> bool:
        return (
            m.start() > 0 and m.end() < len(sentence) and not ref_crosses(inlines, start + m.start(), start + m.end())
        )

    cuts = [m for m in _CLAUSE.finditer(sentence) if fits(m)] or [m for m in _SPACE.finditer(sentence) if fits(m)]
    if cuts:
        best = min(cuts, key=lambda m: abs(m.start() - middle))
        left_end, right_start = start + best.start(), start + best.end()
    else:
        free = sorted(range(start + 1, end), key=lambda at: abs(at - start - middle))
        at = next((at for at in free if not ref_crosses(inlines, at, at)), None)
        if at is None:
            return [(start, end)]
        left_end = right_start = at
    return ref_split_long(text, start, left_end, measure, limit, inlines) + ref_split_long(
        text, right_start, end, measure, limit, inlines
    )


def ref_merge(spans: list[tuple[int, int]], inlines: Sequence[Inline]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for span in spans:
        if merged and ref_crosses(inlines, merged[-1][1], span[0]):
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def ref_segment_blocks(
    blocks: Sequence[Block], measure: Callable[[str], int], limit: int, reflow: bool = False
) -> tuple[SourceSegment, ...]:
    segments: list[SourceSegment] = []
    for block in blocks:
        text = block.text
        whole = block.inlines[0] if len(block.inlines) == 1 else None
        if whole is not None and whole.verbatim and whole.end - whole.start == len(text):
            spans = [(0, len(text))]
        else:
            spans = ref_merge(split_sentences(text, reflow=reflow), block.inlines)
            spans = [p for s, e in spans for p in ref_split_long(text, s, e, measure, limit, block.inlines)]
            spans = ref_merge(spans, block.inlines)
        pos = 0
        for j, (start, end) in enumerate(spans):
            next_start = spans[j + 1][0] if j + 1 < len(spans) else len(text) + 1
            inlines: list[Inline] = []
            for i in block.inlines:
                if i.end > i.start:
                    if start <= i.start and i.end <= end:
                        inlines.append(Inline(i.start - start, i.end - start, i.open, i.close, i.verbatim))
                elif start <= i.start < next_start or (j == 0 and i.start < start):
                    at = min(max(i.start, start), end) - start
                    inlines.append(Inline(at, at, i.open, i.close, i.verbatim))
            segments.append(
                SourceSegment(
                    f"{block.id}.s{j}", block.id, start, end, text[start:end], text[pos:start], tuple(inlines)
                )
            )
            pos = end
    return tuple(segments)


def _within(inline: Inline, outer: Inline) -> bool:
    if outer.end == outer.start:
        return False
    if inline.start == inline.end:
        return outer.start < inline.start < outer.end
    return outer.start <= inline.start and inline.end <= outer.end


def ref_fragment(
    text: str, start: int, end: int, inlines: list[Inline], glossary: Glossary, keys: Iterator[int]
) -> Fragment:
    source = text[start:end]
    outer: list[Inline] = []
    for inline in inlines:
        if not any(_within(inline, o) for o in outer):
            outer.append(inline)
    placed = [Inline(i.start - start, i.end - start, i.open, i.close, i.verbatim) for i in outer]

    def crosses(begin: int, finish: int) -> bool:
        return any(
            (begin < o.end and o.start < finish) if o.end > o.start else begin < o.start < finish for o in placed
        )

    slots: list[Slot] = []
    for inline, here in zip(outer, placed, strict=True):
        key = next(keys)
        if inline.verbatim or inline.end == inline.start:
            slots.append(Slot(key, SlotKind.VERBATIM, here.start, here.end, source[here.start : here.end], inline=here))
            continue
        inner = [i for i in inlines if i is not inline and _within(i, inline)]
        child = ref_fragment(text, inline.start, inline.end, inner, glossary, keys)
        slots.append(Slot(key, SlotKind.MARKUP, here.start, here.end, child.source, inline=here, child=child))
    for hit in find_terms(source, glossary, fits=lambda span: not crosses(span.start, span.end)):
        read = replace(hit, text=" ".join(hit.text.split()))
        slots.append(Slot(next(keys), SlotKind.TERM, hit.span.start, hit.span.end, hit.text, hit=read))
    slots.sort(key=lambda s: (s.start, s.end))
    masked: list[str] = []
    pos = 0
    for slot in slots:
        masked.append(source[pos : slot.start])
        masked.append(PLACEHOLDER.format(slot.key))
        pos = slot.end
    masked.append(source[pos:])
    return Fragment(next(keys), source, "".join(masked), tuple(slots))


def ref_build_fragment(text: str, inlines: Sequence[Inline], glossary: Glossary, keys: Iterator[int]) -> Fragment:
    return ref_fragment(text, 0, len(text), sorted(inlines, key=lambda i: (i.start, -i.end)), glossary, keys)


# --- Generated articles. ---

WORDS = tuple(
    " ".join(
        (
            "the minister said talks would go on and Abe met Shinzo Abe in Okinawa over Futenma while",
            "officials of the SCC and the U.S. agreed that a new base was needed",
        )
    ).split(" ")
)


def _words(rng: random.Random, count: int, wrap: Callable[[str, int], str], depth: int = 0) -> str:
    out: list[str] = []
    i = 0
    while i < count:
        run = rng.randint(1, 4)
        text = " ".join(rng.choice(WORDS) for _ in range(run))
        roll = rng.random()
        if depth < 3 and roll < 0.35:
            text = wrap(_words(rng, run, wrap, depth + 1) if rng.random() < 0.4 else text, depth)
        elif roll < 0.42:
            text += ","
        elif roll < 0.45:
            text = "(" + text + ")"
        out.append(text)
        i += run
    joiner = rng.choice([" ", " ", " ", ""])  # adjacent markup now and then
    return joiner.join(out) if joiner else " ".join(out[:1]) + "".join(out[1:])


def html_article(rng: random.Random) -> Article:
    def wrap(text: str, depth: int) -> str:
        tag = rng.choice(["b", "i", "em", "strong", "span", "a", "code"])
        if tag == "a":
            return f'<a href="https://example.com/{depth}">{text}</a>'
        return f"<{tag}>{text}</{tag}>"

    paragraphs = []
    for _ in range(rng.randint(1, 5)):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            length = rng.choice([3, 6, 12, 25, 60])  # the longest must be cut
            sentence = _words(rng, length, wrap) + rng.choice([".", ".", "?", "", ";"])
            roll = rng.random()
            if roll < 0.1:
                sentence = f"<span>{sentence}</span>"  # markup around a whole sentence
            elif roll < 0.15:
                sentence += "<br>"
            elif roll < 0.2:
                sentence += ' <img src="x.png" alt="">'
            sentences.append(sentence)
        body = " ".join(sentences)
        if rng.random() < 0.15:
            body = f"<b>{body}</b>"  # markup across sentences
        paragraphs.append(f"<p>{body}</p>")
    return Article("\n".join(paragraphs), SourceFormat.HTML)


def markdown_article(rng: random.Random) -> Article:
    def wrap(text: str, depth: int) -> str:
        kind = rng.choice(["*", "**", "_", "link", "code"])
        if kind == "link":
            return f"[{text}](https://example.com/{depth})"
        if kind == "code":
            return "`" + text + "`"
        return f"{kind}{text}{kind}"

    paragraphs = []
    for _ in range(rng.randint(1, 5)):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            length = rng.choice([3, 6, 12, 25, 60])
            sentence = _words(rng, length, wrap) + rng.choice([".", ".", "!", "", ","])
            roll = rng.random()
            if roll < 0.1:
                sentence = f"[{sentence}](https://example.com/s)"
            elif roll < 0.15:
                sentence += "  \n"
            elif roll < 0.2:
                sentence += " ![a map](map.png)"
            sentences.append(sentence)
        paragraphs.append(" ".join(sentences))
    return Article("\n\n".join(paragraphs), SourceFormat.MARKDOWN)


def _measure(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _articles(seed: int, count: int) -> list[Article]:
    rng = random.Random(seed)
    return [html_article(rng) if n % 2 == 0 else markdown_article(rng) for n in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_segments_and_fragments_are_the_reference_ones(seed: int, news: Glossary) -> None:
    for article in _articles(seed, 40):
        blocks, _, _ = parse_blocks(article)
        for limit in (8, 30):
            segments = segment_blocks(blocks, measure=_measure, limit=limit)
            assert segments == ref_segment_blocks(blocks, _measure, limit), article.body
        keys, ref_keys = itertools.count(1), itertools.count(1)
        for segment in segments:
            fragment = build_fragment(segment.text, segment.inlines, news, keys)
            assert fragment == ref_build_fragment(segment.text, segment.inlines, news, ref_keys), article.body


@pytest.mark.parametrize("seed", range(3))
def test_masking_and_cuts_over_any_inlines_are_the_reference_ones(seed: int, news: Glossary) -> None:
    # Inline elements at random: nested, crossing, empty, at the text's edges, repeated.
    rng = random.Random(seed)
    for _ in range(300):
        text = " ".join(rng.choice(WORDS) + rng.choice(["", "", ",", "."]) for _ in range(rng.randint(1, 40)))
        inlines = []
        for _ in range(rng.randint(0, 12)):
            start = rng.randint(0, len(text))
            end = start if rng.random() < 0.2 else rng.randint(start, len(text))
            inlines.append(Inline(start, end, "<b>", "</b>", verbatim=rng.random() < 0.1))
        if inlines and rng.random() < 0.2:
            inlines.append(rng.choice(inlines))
        start = rng.randint(0, len(text))
        end = rng.randint(start, len(text))
        assert masked_span(text, start, end, inlines) == ref_masked(text, start, end, inlines)
        for limit in (3, 10):
            assert split_long(text, 0, len(text), measure=_measure, limit=limit, inlines=inlines) == ref_split_long(
                text, 0, len(text), _measure, limit, inlines
            )
        block = Block("b1", BlockKind.PARAGRAPH, text, tuple(inlines))
        assert segment_blocks([block], measure=_measure, limit=10) == ref_segment_blocks([block], _measure, 10)
        assert build_fragment(text, tuple(inlines), news, itertools.count(1)) == ref_build_fragment(
            text, inlines, news, itertools.count(1)
        )


def test_prepare_gives_the_reference_segments_and_fragments(engines: dict[str, Engine], news: Glossary) -> None:
    from service.api.app import build_pipeline  # torch: not for the processes of the scale cases
    from service.config import Settings

    engine = engines["marian"]
    pipeline = build_pipeline(Settings(device="cpu"), engine)
    limit = max(8, engine.max_source_tokens - pipeline.settings.length_margin)
    for article in _articles(7, 12):
        prepared = pipeline.prepare(article, targets=["zh-Hans"], glossary=news)
        blocks, _, _ = parse_blocks(article)
        assert prepared.doc.segments == ref_segment_blocks(blocks, engine.count_tokens, limit)
        keys = itertools.count(1)
        expected = tuple(ref_build_fragment(s.text, s.inlines, news, keys) for s in prepared.doc.segments)
        assert prepared.fragments == expected


# --- Scale: the audit's shapes, at sizes that took the former code 20 s or more. ---

# Seconds of CPU time (the machine may be busy) one case may take; each runs in a process of its
# own, killed after HANG_S, so that a return of the former cost fails rather than holds the suite.
BOUND_S = 5.0
HANG_S = 60

SCALE_CASES: dict[str, Callable[[], Article]] = {
    # One <p> of 6,000 bold sentences (the former code: 6.3 s at 3,000, x4 per doubling).
    "html_bold_sentences": lambda: Article("<p>" + "<b>A.</b> " * 6_000 + "</p>", SourceFormat.HTML),
    # A Markdown paragraph of 6,000 emphasised sentences (5.3 s at 1,500, x3.6-4 per doubling).
    "markdown_emphases": lambda: Article("*A.* " * 6_000, SourceFormat.MARKDOWN),
    # 12,000 words and links and no full stop: one sentence cut again and again (12.4 s at 8,000).
    "html_links_one_sentence": lambda: Article("<p>" + "word <a href=x>link</a> " * 6_000 + "</p>", SourceFormat.HTML),
    # 8,000 bold words in one <span>: one sentence that cannot be cut, protected (8.6 s at 4,000, x4.5).
    "html_markup_around_a_sentence": lambda: Article(
        "<p><span>" + "<b>w</b> " * 8_000 + "</span></p>", SourceFormat.HTML
    ),
    # The same in Markdown: one link around 8,000 emphases (7.9 s at 4,000).
    "markdown_link_around_a_sentence": lambda: Article("[" + "*w* " * 8_000 + "](http://x)", SourceFormat.MARKDOWN),
}


def scale_case(case: str) -> None:
    """Segment and protect one of SCALE_CASES, and print the CPU seconds it took."""
    glossary = GlossaryStore.load().stacked(["news"])
    blocks, _, _ = parse_blocks(SCALE_CASES[case]())
    began = time.process_time()
    segments = segment_blocks(blocks, measure=_measure, limit=40)
    keys = itertools.count(1)
    for segment in segments:
        build_fragment(segment.text, segment.inlines, glossary, keys)
    print(time.process_time() - began)


@pytest.mark.parametrize("case", SCALE_CASES)
def test_segmenting_and_protecting_much_markup_takes_about_its_size(case: str) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    code = f"from tests.test_markup_scale import scale_case; scale_case({case!r})"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=HANG_S, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: still running after {HANG_S} s")
    took = float(done.stdout.split()[-1])
    assert took < BOUND_S, f"{case}: {took:.1f} s"
