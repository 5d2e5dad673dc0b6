"""Protected spans: glossary terms and inline markup travel through the model as placeholders.

Why placeholders (the glossary-enforcement mechanism): the model never has to know a term.
A matched term is replaced by an opaque ASCII token before decoding and the glossary's target
for each variant is put in its place afterwards; OpenCC and typography run before that, so a
term's zh-TW/zh-HK form comes from the glossary and is never converted. Constrained beam search
is gone from transformers 5 and alignment-based replacement needs a trained model's attention;
placeholders work the same for every engine (transformers, CTranslate2) and every family. When
a model drops or garbles a placeholder, the segment is flagged `term_missing` for that term and
variant: nothing fails silently.

Inline markup works the same way: the marked-up text becomes a child fragment, translated on
its own and put back inside its tags where its placeholder lands, so a link or emphasis
surrounds the corresponding Chinese text in every variant. A lost markup placeholder is appended
at the end of the sentence and flagged `markup_moved`: nothing of the source is dropped.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from glossary.matching import TermHit, find_terms
from glossary.terms import Glossary
from service.documents import Inline
from service.variants import CJK_OR_FULL, tidy_hans

# Marian/NLLB copy short capitalised nonce tokens through; the letters are ones English text
# never puts together, so a real word is never mistaken for a placeholder. That is also why a
# placeholder is found right after a letter: markup inside a word (`un<i>believable</i>`, `Abe<sup>`)
# puts it against the text before it, and a model that copies that text keeps it there.
PLACEHOLDER = "QZX{}"
_PLACEHOLDER = re.compile(r"([ \t]*)Q\s?Z\s?X\s?(\d+)(?![0-9])([ \t]*)", re.IGNORECASE)
# A placeholder exactly as masking writes it (the pipeline never cuts a sentence through one).
PLACEHOLDERS = re.compile(r"QZX\d+")
_LETTER = re.compile(r"[^\W\d_]")
_PRIVATE = 0xE000  # placeholders stand in the Private Use Area while typography runs


def tidy(text: str) -> str:
    """zh-Hans typography on a translation that still holds placeholders. A placeholder stands for
    Chinese text, so for the typography rules it is one Chinese character: "QZX1." ends in 。"""
    swapped = _PLACEHOLDER.sub(lambda m: f"{m.group(1)}{chr(_PRIVATE + int(m.group(2)) % 6400)}{m.group(3)}", text)
    keys = {chr(_PRIVATE + int(m.group(2)) % 6400): m.group(2) for m in _PLACEHOLDER.finditer(text)}
    tidied = tidy_hans(swapped)
    # Private-use characters the model wrote itself (not ours) are left as they are.
    return re.sub("[\ue000-\uf8ff]", lambda m: PLACEHOLDER.format(keys[m[0]]) if m[0] in keys else m[0], tidied)


class SlotKind(StrEnum):
    TERM = "term"
    MARKUP = "markup"
    VERBATIM = "verbatim"


@dataclass(frozen=True)
class Slot:
    key: int
    kind: SlotKind
    start: int  # in the fragment's source
    end: int
    text: str  # the source text it covers
    hit: TermHit | None = None
    inline: Inline | None = None
    child: Fragment | None = None


@dataclass(frozen=True)
class Fragment:
    fid: int
    source: str
    masked: str  # what the model is given
    slots: tuple[Slot, ...]

    @property
    def needs_model(self) -> bool:
        """False when nothing but placeholders, digits and punctuation is left to translate."""
        return bool(_LETTER.search(_PLACEHOLDER.sub(" ", self.masked)))

    def walk(self) -> Iterator[Fragment]:
        """This fragment and its children's, depth first (without nesting generators, whose every
        step would pass through all the levels above it)."""
        todo = [self]
        while todo:
            frag = todo.pop()
            yield frag
            todo += (slot.child for slot in reversed(frag.slots) if slot.child is not None)

    def hits(self) -> Iterator[tuple[TermHit, int]]:
        """Every term hit in this fragment and its children, with its offset in this fragment, in
        the order of the text."""
        levels = [(iter(self.slots), 0)]  # each fragment entered: its slots still to see, and its offset
        while levels:
            slots, offset = levels[-1]
            for slot in slots:
                if slot.hit is not None:
                    yield slot.hit, offset
                if slot.child is not None:
                    levels.append((iter(slot.child.slots), offset + slot.start))
                    break
            else:
                levels.pop()


def _within(inline: Inline, outer: Inline) -> bool:
    """Whether `inline` lies inside `outer`. An empty element (an image, a break) at the edge of
    another's text is taken to stand outside it: where it stood is not known, and outside it stays
    whatever the model does with the text inside."""
    if outer.end == outer.start:
        return False
    if inline.start == inline.end:
        return outer.start < inline.start < outer.end
    return outer.start <= inline.start and inline.end <= outer.end


def build_fragment(
    text: str, inlines: tuple[Inline, ...], glossary: Glossary, keys: Iterator[int] | None = None
) -> Fragment:
    """Mask the outermost inline markup and the terms outside it; recurse into the markup."""
    keys = keys if keys is not None else itertools.count(1)
    return _fragment(text, 0, len(text), sorted(inlines, key=lambda i: (i.start, -i.end)), glossary, keys)


def _fragment(
    text: str, start: int, end: int, inlines: list[Inline], glossary: Glossary, keys: Iterator[int]
) -> Fragment:
    """The fragment of `text[start:end]`, whose inline markup is `inlines` (offsets in `text`, by start
    and then outermost first). Each level's markup keeps its offsets in `text` (only a slot's own is
    made relative): nested markup costs the square of its depth to sort out, not its cube."""
    source = text[start:end]
    # The outermost markup, in one sweep: every element before one in this order begins where it
    # does or earlier, so one is inside an outer element that holds text when the furthest end of
    # those (of those that begin before it, for a zero-width one) reaches past it.
    outer: list[Inline] = []
    outer_starts: list[int] = []  # of the outer elements that hold text, and the furthest end of those up to each
    outer_reach: list[int] = []
    for inline in inlines:
        if inline.start == inline.end:
            before = bisect.bisect_left(outer_starts, inline.start)
            inside = before > 0 and outer_reach[before - 1] > inline.start
        else:
            inside = bool(outer_reach) and outer_reach[-1] >= inline.end
        if not inside:
            outer.append(inline)
            if inline.end > inline.start:
                outer_starts.append(inline.start)
                outer_reach.append(max(inline.end, outer_reach[-1] if outer_reach else inline.end))
    # The outer markup with offsets in `source`.
    placed = [i if start == 0 else Inline(i.start - start, i.end - start, i.open, i.close, i.verbatim) for i in outer]
    # For the terms: the outer elements that hold text by start, with the furthest end up to each,
    # and the places of the zero-width ones.
    spans = sorted((o.start, o.end) for o in placed if o.end > o.start)
    span_starts = [s for s, _ in spans]
    span_reach = list(itertools.accumulate((e for _, e in spans), max))
    points = sorted(o.start for o in placed if o.end == o.start)

    def crosses(begin: int, finish: int) -> bool:
        before = bisect.bisect_left(span_starts, finish)
        if before > 0 and span_reach[before - 1] > begin:
            return True
        after = bisect.bisect_right(points, begin)
        return after < len(points) and points[after] < finish

    starts = [i.start for i in inlines]
    slots: list[Slot] = []
    for inline, here in zip(outer, placed, strict=True):
        key = next(keys)
        if inline.verbatim or inline.end == inline.start:
            slots.append(Slot(key, SlotKind.VERBATIM, here.start, here.end, source[here.start : here.end], inline=here))
            continue
        # Its children begin inside it: a run of `inlines`.
        first = bisect.bisect_left(starts, inline.start)
        last = bisect.bisect_right(starts, inline.end)
        inner = [i for i in inlines[first:last] if i is not inline and _within(i, inline)]
        child = _fragment(text, inline.start, inline.end, inner, glossary, keys)
        slots.append(Slot(key, SlotKind.MARKUP, here.start, here.end, child.source, inline=here, child=child))
    for hit in find_terms(source, glossary, fits=lambda span: not crosses(span.start, span.end)):
        # A term wrapped over a line end ("Shinzo\nAbe" in hard-wrapped copy) is the term as a reader
        # reads it, on one line: what the response lists as its source text, and what a term kept in
        # English (do-not-translate) puts into the translation and a person's edit must have.
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


@dataclass
class Rendered:
    text: str = ""
    # (hit, start, end) of each term target placed, in `text`'s offsets.
    placed: list[tuple[TermHit, int, int]] = field(default_factory=list)
    missing: list[TermHit] = field(default_factory=list)
    moved: list[Slot] = field(default_factory=list)


@dataclass(frozen=True)
class RenderContext:
    """How to turn one variant's text back into output."""

    localize: Callable[[str], str]  # tidied zh-Hans → this variant (OpenCC, quotes)
    term_target: Callable[[TermHit], str]  # the glossary's form of a hit in this variant
    escape: Callable[[str], str]  # the format's escaping of text (HTML, Markdown), or identity
    escape_code: Callable[[str], str]  # of code kept verbatim: HTML's inside <code>, none inside backticks
    markup: bool  # False: plain text (for QA), tags left out


def _joinable(before: str, after: str) -> bool:
    """No space is kept between a placeholder and a Chinese neighbour (or the text's edge)."""
    return not before or not after or bool(CJK_OR_FULL.match(before)) or bool(CJK_OR_FULL.match(after))


def _shown(slot: Slot, mt: Mapping[int, str], ctx: RenderContext) -> str | None:
    """The text a term or markup slot puts in the output, for the spacing on either side of it
    (nested placeholders stand as Chinese); None for code and images, whose spaces always stay."""
    if slot.kind is SlotKind.TERM and slot.hit is not None:
        return ctx.term_target(slot.hit)
    if slot.child is not None:
        return _PLACEHOLDER.sub("一", ctx.localize(mt[slot.child.fid])).strip()
    return None


def render(fragment: Fragment, mt: Mapping[int, str], ctx: RenderContext) -> Rendered:
    """One variant's text of `fragment` from the tidied zh-Hans translations in `mt` (by fid)."""
    text = ctx.escape(ctx.localize(mt[fragment.fid]))
    by_key = {s.key: s for s in fragment.slots}
    out = Rendered()
    parts: list[str] = []
    length = 0
    pos = 0
    used: set[int] = set()

    def emit(piece: str) -> None:
        nonlocal length
        parts.append(piece)
        length += len(piece)

    def place(slot: Slot) -> None:
        if slot.kind is SlotKind.TERM and slot.hit is not None:
            target = ctx.term_target(slot.hit)
            out.placed.append((slot.hit, length, length + len(target)))
            emit(target)
        elif slot.kind is SlotKind.VERBATIM and slot.inline is not None:
            emit((slot.inline.open + ctx.escape_code(slot.text) + slot.inline.close) if ctx.markup else slot.text)
        elif slot.child is not None and slot.inline is not None:
            inner = render(slot.child, mt, ctx)
            opener = slot.inline.open if ctx.markup else ""
            offset = length + len(opener)
            out.placed.extend((h, s + offset, e + offset) for h, s, e in inner.placed)
            out.missing.extend(inner.missing)
            out.moved.extend(inner.moved)
            emit(opener + inner.text + (slot.inline.close if ctx.markup else ""))

    # Markup the model left out is put back at the start if the source had it there (a leading <br>
    # or image: exactly where it was, so not reported as moved), else at the end: none is lost.
    written = {int(m.group(2)) for m in _PLACEHOLDER.finditer(text)}
    for leading in fragment.slots:
        if leading.start == 0 and leading.key not in written and leading.kind is not SlotKind.TERM:
            used.add(leading.key)
            if leading.end > 0:
                out.moved.append(leading)
            place(leading)
    for match in _PLACEHOLDER.finditer(text):
        emit(text[pos : match.start()])
        pos = match.end()
        key = int(match.group(2))
        slot = by_key.get(key)
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end()] if match.end() < len(text) else ""
        lead, trail = match.group(1), match.group(3)
        if slot is None or key in used:
            # An invented or repeated placeholder carries nothing: drop it.
            emit("" if _joinable(before, after) else " " if (lead or trail) else "")
            continue
        used.add(key)
        shown = _shown(slot, mt, ctx)
        if lead and not (shown is not None and _joinable(before, shown[:1])):
            emit(lead)
        place(slot)
        if trail and not (shown is not None and _joinable(shown[-1:], after)):
            emit(trail)
    emit(text[pos:])
    for slot in fragment.slots:
        if slot.key in used:
            continue
        if slot.kind is SlotKind.TERM and slot.hit is not None:
            out.missing.append(slot.hit)
        else:
            out.moved.append(slot)
            place(slot)
    out.text = "".join(parts)
    return out
