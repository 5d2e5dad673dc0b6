"""What markup a target may hold: an HTML or Markdown article's segment may carry only its source
segment's own inline markup (tags, links, emphasis), so that no person's edit, and no imported
file, brings a script, a new link or a new block into the page (`check_markup`). Also where each
segment's inlines stand in its block (`placed_inlines`), which the exports and the review app use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Protocol

from service.documents import Block, Inline, SourceFormat
from service.jobs.codec import document_from_json
from service.storage.tables import Job, StoredSegment
from service.variants import CodeSpans

# An HTML tag or comment, as a browser would read one.
TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
# Markdown that starts a block of its own at the beginning of a line (CommonMark lets most of them
# interrupt a paragraph): a heading, quote, list item, fence, thematic break or setext underline,
# link reference definition, or indented code. Stricter than CommonMark (`#` needs no space here), as
# other Markdown readers are.
_MD_BLOCK = re.compile(
    r"^(?: {0,3}(?:#|>|[-*+](?:\s|$)|\d{1,9}[.)](?:\s|$)|```|~~~|=+\s*$|-+\s*$|(?:[-*_]\s*){3,}$|\[[^\]]*\]:)"
    r"| {4}|\t)",
    re.MULTILINE,
)
_MD_BLANK_LINE = re.compile(r"\n[ \t]*(?:\n|$)|^[ \t]*\n")
# Link or image syntax that the source's own text holds (an image is text in a Markdown block), and
# code spans: taken out before the checks, as are the source's markup strings.
_MD_SOURCE_IMAGE = re.compile(r"!?\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])")
_MD_REFERENCE = re.compile(r"(?<!\\)(!?)\[[^\]]*\]\[([^\]]*)\]")
_MD_FOOTNOTE_DEF = re.compile(r"\[\^[^\]\s]+\]:")
# A run of emphasis delimiters not escaped by a backslash.
# Runs that may be emphasis (`*`, `_`) or GFM strikethrough (`~~`: a lone `~`, as in 3~5, is text).
_MD_DELIMITERS = re.compile(r"(?<!\\)(?:\\\\)*(\*+|_+|~~+)")


class MarkupNotAllowed(ValueError):
    """A target with tags its source does not have."""


class _Placed(Protocol):
    """A segment as stored or aligned: enough to find where it stands in its block."""

    @property
    def block_id(self) -> str: ...
    @property
    def ws_before(self) -> str: ...
    @property
    def source(self) -> str: ...


# Where a segment starts in its block, and its inlines, each with where it begins in the block.
Placed = tuple[int, list[tuple[int, Inline]]]


def placed_inlines(blocks: Mapping[str, Block], segments: Sequence[_Placed]) -> list[Placed]:
    """For each segment (in document order): where it starts in its block, and the block's inlines
    that belong to it (`in_segment`), each with where it begins in the block."""
    starts: list[int] = []
    end: dict[str, int] = {}
    for seg in segments:
        starts.append(end.get(seg.block_id, 0) + len(seg.ws_before))
        end[seg.block_id] = starts[-1] + len(seg.source)
    out: list[Placed] = []
    for index, seg in enumerate(segments):
        block = blocks.get(seg.block_id)
        start = starts[index]
        if block is None:
            out.append((start, []))
            continue
        first = index == 0 or segments[index - 1].block_id != seg.block_id
        last = index + 1 == len(segments) or segments[index + 1].block_id != seg.block_id
        following = len(block.text) + 1 if last else starts[index + 1]
        spots = ((in_segment(i, start, start + len(seg.source), following, first=first), i) for i in block.inlines)
        out.append((start, [(at, i) for at, i in spots if at >= 0]))
    return out


def segment_markup(job: Job, rows: list[StoredSegment]) -> dict[str, set[str]]:
    """Each segment's inline markup strings (the source's own tags, link syntax, and a Markdown
    autolink whole, `<https://…>`, since its address is written as it is), by segment id."""
    if not job.document:
        return {}
    doc = document_from_json(job.document)
    blocks = {b.id: b for b in doc.blocks}
    ordered = sorted(rows, key=lambda r: r.position)
    found: dict[str, set[str]] = {}
    for row, (_, inlines) in zip(ordered, placed_inlines(blocks, ordered), strict=True):
        strings = {text for _, i in inlines for text in (i.open, i.close) if text}
        autolinks = [(at, i) for at, i in inlines if (i.open, i.close) == ("<", ">")]
        if autolinks:
            written = blocks[row.block_id].text
            strings |= {f"<{written[at : at + i.end - i.start]}>" for at, i in autolinks}
        if strings:
            found[row.id] = strings
    return found


def in_segment(inline: Inline, start: int, end: int, following: int, *, first: bool) -> int:
    """Where in its block `inline` begins if it belongs to the segment at [start, end) (the block's
    next segment starts at `following`), else -1: the segmenter's rule (service.segmenter), so that
    an image or other empty element between two sentences, whose tag the pipeline put in the one
    before, is that segment's markup."""
    if inline.end > inline.start:
        return inline.start if start <= inline.start and inline.end <= end else -1
    if start <= inline.start < following or (first and inline.start < start):
        return min(max(inline.start, start), end)
    return -1


def with_markup(job: Job, rows: list[StoredSegment]) -> set[str]:
    """Ids of segments with inline markup: their targets carry this article's links and tags, so
    they are not reused for other articles."""
    return set(segment_markup(job, rows))


def job_format(job: Job) -> SourceFormat:
    """The format of the job's article (its targets are written in it)."""
    return SourceFormat(job.document["format"]) if job.document else SourceFormat.TEXT


def has_markup(job: Job) -> bool:
    return job.document is not None and job.document.get("format") in ("html", "markdown")


def check_markup(job: Job, rows: list[StoredSegment], row: StoredSegment, text: str) -> None:
    """An HTML or Markdown article's target may hold only the markup its source segment has: a
    person's edit (or an imported file) must not bring new tags, such as a script, into a page, nor
    (Markdown) new links, images, emphasis or blocks."""
    if not has_markup(job) or text in row.targets.values():
        return  # a stored target (the pipeline's, or one checked before) brings nothing new
    allowed = segment_markup(job, rows).get(row.id, set())
    foreign = [tag for tag in TAG.findall(text) if tag not in allowed]
    if foreign:
        raise MarkupNotAllowed(
            f"segment {row.id}: {foreign[0]} is not markup of its source; keep the source's own tags "
            f"({', '.join(sorted(allowed)) or 'it has none'}) and write everything else as text"
        )
    if job.document is not None and job.document.get("format") == "markdown":
        _check_markdown(row, text, allowed)


def _check_markdown(row: StoredSegment, text: str, allowed: set[str]) -> None:
    """New Markdown syntax in a target: links and images other than the source's, block syntax that
    would start a new paragraph, heading, quote, list or code block, and emphasis or strikethrough
    the source lacks.
    `*` and `_` that CommonMark cannot read as emphasis (`a * b`, `snake_case`, `\\*`) are text."""
    where = f"segment {row.id}"
    # A footnote definition's own `[^1]:`, which the source segment opens with, opens the target too.
    footnote = _MD_FOOTNOTE_DEF.match(row.source)
    probe = text
    if footnote and text.startswith(footnote.group()):
        probe = "x" + text[footnote.end() :]
    block = _MD_BLANK_LINE.search(probe) or _MD_BLOCK.search(probe)
    if block:
        line = text[block.start() :].strip("\n").split("\n", 1)[0]
        raise MarkupNotAllowed(
            f"{where}: a blank line or a line starting {line[:12]!r} would start a new Markdown block (paragraph, "
            "heading, quote, list or code); keep the translation in its sentence's paragraph, without blank "
            "lines, and write a leading #, >, -, +, * or 1. as full-width ＃ ＞ － ＋ ＊ or after other text"
        )
    # The source's own markup, images and code spans are taken out (as a letter, which joins no
    # delimiter to white space) so that only what is new is left to check.
    rest = _source_code_spans(text, row.source)
    rest = _MD_SOURCE_IMAGE.sub(lambda m: "x" if m.group() in row.source else m.group(), rest)
    # A reference link must close as one of the source's does (`][rep]`); an image left here is new.
    for ref in _MD_REFERENCE.finditer(rest):
        if ref.group(1) or f"][{ref.group(2)}]" not in allowed:
            shown = ", ".join(sorted(m for m in allowed if m.startswith("]"))) or "it has none"
            raise MarkupNotAllowed(
                f"{where}: the target has a Markdown link or image its source does not have ({ref.group()!r}); "
                f"keep the source's own links ({shown}) and write other brackets as text, e.g. full-width 【】"
            )
    for markup in sorted(allowed, key=len, reverse=True):
        rest = rest.replace(markup, "x")
    if "](" in rest or "![" in rest:
        shown = ", ".join(sorted(m for m in allowed if "](" in m)) or "it has none"
        raise MarkupNotAllowed(
            f"{where}: the target has a Markdown link or image its source does not have; keep the source's own "
            f"links ({shown}) and write other brackets as text, e.g. full-width 【】 or （）"
        )
    for run in _MD_DELIMITERS.finditer(rest):
        if not _can_emphasize(rest, run.start(1), run.end(1)):
            continue
        if run.group(1)[0] == "~":
            raise MarkupNotAllowed(
                f"{where}: {run.group(1)!r} would be Markdown strikethrough, which its source does not have; for "
                "the character itself write full-width ～, a backslash before it (\\~), or a single ~"
            )
        raise MarkupNotAllowed(
            f"{where}: {run.group(1)!r} would be Markdown emphasis, which its source does not have; for the "
            f"character itself write full-width ＊ or ＿, a backslash before it (\\{run.group(1)[0]}), or spaces "
            "around it"
        )


def _source_code_spans(text: str, source: str) -> str:
    r"""`text` with each code span whose code `source` holds as "x": what
    `re.sub(r"(`+)(.+?)\1", ..., flags=re.DOTALL)` did, without its backtracking (cubic on a long
    run of backticks: an edit of 20,000 took minutes)."""
    spans = CodeSpans(text)
    out: list[str] = []
    done = 0
    at = text.find("`")
    while at >= 0:
        found = spans.at(at)
        if found is None:
            at = text.find("`", at + 1)
            continue
        ticks, end = found
        out += [text[done:at], "x" if text[at + ticks : end - ticks] in source else text[at:end]]
        done = end
        at = text.find("`", end)
    return "".join(out) + text[done:]


def _can_emphasize(text: str, start: int, end: int) -> bool:
    """Whether the delimiter run text[start:end] may open or close emphasis (CommonMark's flanking
    rules, taken strictly: the text's edges count as anything, since other sentences join there)."""
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    if not before or not after:
        return True
    if before.isspace() and after.isspace():
        return False
    # `_` inside a word (letters, digits, Chinese on both sides) neither opens nor closes.
    inside = not before.isspace() and not after.isspace() and not _punctuation(before) and not _punctuation(after)
    return not (text[start] == "_" and inside)


def _punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"
