"""The translation pipeline: Article → Document → Segments → protect → Engine → restore → QA → variants.

One object, built once per process around one engine; `translate` is a plain synchronous call
(the HTTP layer runs it in a worker thread). Every model call goes through `_decode`, which sends
all of a request's sentences to the engine at once, so the engine batches them by length.
"""

from __future__ import annotations

import html
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from glossary.matching import TermHit
from glossary.terms import Glossary
from models.engine import DecodeOptions, Engine, safer
from service.documents import (
    AlignedDocument,
    AlignedSegment,
    AlignedTerm,
    Article,
    Block,
    Document,
    Flag,
    Inline,
    SourceFormat,
    SourceSegment,
    TargetSpan,
    in_format,
)
from service.formats import parse_blocks, render
from service.protect import PLACEHOLDERS, Fragment, RenderContext, Rendered, SlotKind, build_fragment, tidy
from service.protect import render as render_fragment
from service.qa import QASettings, length_ratio, number_mismatch, repetition, untranslated
from service.retarget import realign
from service.segmenter import segment_blocks, soft_wraps, split_long, unwrapped
from service.variants import CJK_OR_FULL, VariantRule, chinese_dates, is_date, localize, rule_for

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (sentences done, sentences in all)


@dataclass(frozen=True)
class PipelineSettings:
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    qa: QASettings = field(default_factory=QASettings)
    # Tokens kept free below the model's limit when splitting long sentences (placeholders may
    # tokenize a little longer than the words they replace).
    length_margin: int = 16
    # Decode a looping translation once more with SAFE_DECODE before flagging it.
    redecode_loops: bool = True


# What service.formats.parse_blocks gives for an article: its blocks, its text tail, its page.
Parsed = tuple[list[Block], str, str]


def parse(article: Article, engine: Engine, settings: PipelineSettings, parsed: Parsed | None = None) -> Document:
    """The article's document: its blocks (as `parsed` has them, where the caller parsed it already
    with service.formats.parse_blocks, else parsed now), segmented for the engine."""
    blocks, tail, page = parsed if parsed is not None else parse_blocks(article)
    segments = segment_blocks(
        blocks,
        measure=engine.count_tokens,
        limit=max(8, engine.max_source_tokens - settings.length_margin),
        reflow=article.format is SourceFormat.TEXT,
    )
    return Document(article.format, tuple(blocks), segments, tail=tail, html=page)


@dataclass(frozen=True)
class Prepared:
    """An article parsed, segmented and protected, ready for the model."""

    doc: Document
    fragments: tuple[Fragment, ...]  # one per doc.segments, terms and markup as placeholders
    rules: tuple[VariantRule, ...]
    targets: tuple[str, ...]
    glossary_names: tuple[str, ...]


class Memory(Protocol):
    """Approved translations (service.memory.TranslationMemory); what the pipeline asks of it."""

    def exact(self, sources: Sequence[str], variants: Sequence[str]) -> dict[str, dict[str, str]]: ...


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        rules: dict[str, VariantRule],
        settings: PipelineSettings | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.settings = settings or PipelineSettings()
        # Exact hits take the approved translation and skip the model.
        self.memory = memory

    def translate(
        self,
        article: Article,
        *,
        targets: Sequence[str],
        glossary: Glossary,
        glossary_names: Sequence[str] = (),
        progress: Progress | None = None,
        deadline: float | None = None,
        parsed: Parsed | None = None,
    ) -> AlignedDocument:
        """The aligned document of `article`. `deadline` (time.monotonic()): give up with
        DeadlineExceeded, and leave undecoded sentences undecoded, once it passes. `parsed`: the
        article as service.formats.parse_blocks gave it (service.translate.check_article returns
        that), not parsed again."""
        prepared = self.prepare(
            article, targets=targets, glossary=glossary, glossary_names=glossary_names, parsed=parsed
        )
        segments = self.translate_segments(prepared, range(len(prepared.doc.segments)), progress, deadline)
        return self.assemble(prepared.doc, segments, prepared.targets, prepared.glossary_names)

    def prepare(
        self,
        article: Article,
        *,
        targets: Sequence[str],
        glossary: Glossary,
        glossary_names: Sequence[str] = (),
        parsed: Parsed | None = None,
    ) -> Prepared:
        """Parse and segment `article` and protect its terms: everything before the model. Cheap and
        deterministic, so a resumed job prepares again and translates only what is missing.
        `parsed`: the article already parsed (see `translate`)."""
        rules = tuple(rule_for(v, self.rules) for v in targets)
        doc = parse(article, self.engine, self.settings, parsed)
        keys = itertools.count(1)
        fragments = tuple(build_fragment(s.text, s.inlines, glossary, keys) for s in doc.segments)
        return Prepared(doc, fragments, rules, tuple(targets), tuple(glossary_names) or (glossary.name,))

    def translate_segments(
        self,
        prepared: Prepared,
        indices: Iterable[int],
        progress: Progress | None = None,
        deadline: float | None = None,
    ) -> list[AlignedSegment]:
        """The aligned segments at `indices` of a prepared document: translation memory's exact
        hits first, the rest decoded together."""
        chosen = list(indices)
        segments = prepared.doc.segments
        remembered: dict[str, dict[str, str]] = {}
        if self.memory is not None:
            # Segments with inline markup are always translated: a stored target carries another article's links.
            plain = [segments[i].text for i in chosen if not segments[i].inlines]
            remembered = self.memory.exact(plain, prepared.targets) if plain else {}
        todo = [i for i in chosen if segments[i].inlines or segments[i].text not in remembered]
        mt, redecoded = self._translate_fragments([prepared.fragments[i] for i in todo], progress, deadline)
        fmt = prepared.doc.format
        out = []
        for i in chosen:
            hit = None if segments[i].inlines else remembered.get(segments[i].text)
            if hit is not None:
                out.append(self._from_memory(prepared, i, hit))
            else:
                out.append(self._align(segments[i], prepared.fragments[i], mt, prepared.rules, fmt, redecoded))
        return out

    def _from_memory(self, prepared: Prepared, i: int, texts: dict[str, str]) -> AlignedSegment:
        """A segment from an approved translation: its stored variants, the others derived from zh-Hans."""
        fmt = prepared.doc.format
        return self.adopt(prepared, i, {v: in_format(t, fmt) for v, t in texts.items()}, origin="tm")

    def adopt(self, prepared: Prepared, i: int, texts: Mapping[str, str], *, origin: str) -> AlignedSegment:
        """Segment `i` with translations made before (in the article's format, variant → text): the
        targeted ones and zh-Hans taken as they are, the others derived from zh-Hans; its terms found
        in them and QA run, as after a person's edit."""
        seg = prepared.doc.segments[i]
        terms = tuple(
            AlignedTerm(
                term_id=hit.term.id,
                source_text=hit.text,
                source_start=offset + hit.span.start,
                source_end=offset + hit.span.end,
                # zh-Hans too, targeted or not: the stored zh-Hans is what the other variants come from.
                expected={rule.variant: term_target(hit, rule) for rule in (self.rules["zh-Hans"], *prepared.rules)},
            )
            for hit, offset in prepared.fragments[i].hits()
        )
        base = AlignedSegment(seg.id, seg.block_id, seg.text, seg.ws_before, {}, terms, ())
        wanted = {v: t for v, t in texts.items() if v in prepared.targets or v == "zh-Hans"}
        return realign(base, wanted, set(), prepared.rules, self.settings.qa, origin=origin, fmt=prepared.doc.format)

    def assemble(
        self,
        doc: Document,
        segments: Sequence[AlignedSegment],
        targets: Sequence[str],
        glossary_names: Sequence[str],
    ) -> AlignedDocument:
        """The aligned document from its structure and its segments (machine or human translated)."""
        return AlignedDocument(
            format=doc.format,
            variants=tuple(targets),
            blocks=doc.blocks,
            segments=tuple(segments),
            full_text={v: assemble_text(doc, segments, v) for v in targets},
            model=self.engine.name,
            glossaries=tuple(glossary_names),
        )

    # --- model ---------------------------------------------------------------------------------

    def _translate_fragments(
        self, fragments: Sequence[Fragment], progress: Progress | None, deadline: float | None
    ) -> tuple[dict[int, str], set[int]]:
        """Tidied zh-Hans text (with placeholders) of every fragment, by fid; and the fids that
        needed a second decoding."""
        mt: dict[int, str] = {}
        todo: dict[str, list[int]] = {}  # masked source → fids (identical sources decoded once)
        for top in fragments:
            for frag in top.walk():
                # A sentence wrapped over lines (plain text) is given on one line.
                if is_date(unwrapped(frag.source)):
                    mt[frag.fid] = chinese_dates(unwrapped(frag.source).strip())
                elif not frag.needs_model:
                    mt[frag.fid] = tidy(unwrapped(frag.masked))
                else:
                    todo.setdefault(unwrapped(frag.masked), []).append(frag.fid)
        sources = list(todo)
        outputs = self._decode(sources, self.settings.decode, progress, deadline)
        loops = (
            [i for i, text in enumerate(outputs) if repetition(text, self.settings.qa)]
            if self.settings.redecode_loops
            else []
        )
        redecoded: set[int] = set()
        if loops:
            log.info("re-decoding %d sentence(s) that fell into repetition loops", len(loops))
            second = self._decode([sources[i] for i in loops], safer(self.settings.decode), None, deadline)
            for i, text in zip(loops, second, strict=True):
                outputs[i] = text
                redecoded.update(todo[sources[i]])
        for source, text in zip(sources, outputs, strict=True):
            for fid in todo[source]:
                mt[fid] = text
        return mt, redecoded

    def _decode(
        self, sources: list[str], options: DecodeOptions, progress: Progress | None, deadline: float | None
    ) -> list[str]:
        if not sources:
            if progress:
                progress(0, 0)
            return []
        pieces = [self._pieces(source) for source in sources]
        if any(len(p) > 1 for p in pieces):
            flat = [piece for p in pieces for piece in p]
            done = self._decode_whole(flat, options, progress, deadline)
            out: list[str] = []
            for p in pieces:
                parts, done = done[: len(p)], done[len(p) :]
                out.append(tidy(_joined(parts)) if len(parts) > 1 else parts[0])
            return out
        return self._decode_whole(sources, options, progress, deadline)

    def _pieces(self, source: str) -> list[str]:
        """`source` (a masked sentence, as the model is given it) in pieces the model accepts: itself
        where it fits, else cut at clause boundaries or white space (never through a placeholder),
        each piece decoded on its own. Segmentation measures sentences as they are masked, but a
        glossary term's placeholder, or the text of one link or emphasis longer than the model's
        limit (markup never crosses segments), may still leave one too long: this measures exactly
        what the model is given and cuts it rather than have the engine refuse it."""
        limit = self.engine.max_source_tokens
        if self.engine.count_tokens(source) <= limit:
            return [source]
        keep = tuple(Inline(m.start(), m.end(), "", "") for m in PLACEHOLDERS.finditer(source))
        spans = split_long(
            source,
            0,
            len(source),
            measure=self.engine.count_tokens,
            limit=max(8, limit - self.settings.length_margin),
            inlines=keep,
        )
        log.info("decoding a sentence of %d characters in %d pieces", len(source), len(spans))
        return [source[s:e] for s, e in spans]

    def _decode_whole(
        self, sources: list[str], options: DecodeOptions, progress: Progress | None, deadline: float | None
    ) -> list[str]:
        # Chunks let a progress bar move; each chunk is still length-sorted into batches.
        chunk = max(self.settings.max_batch_size, 1) * (4 if progress else 1_000_000)
        out: list[str] = []
        for start in range(0, len(sources), chunk):
            part = sources[start : start + chunk]
            results = self.engine.translate_batch(
                part,
                options=options,
                max_batch_tokens=self.settings.max_batch_tokens,
                max_batch_size=self.settings.max_batch_size,
                deadline=deadline,
            )
            out.extend(tidy(r.text) for r in results)
            if progress:
                progress(len(out), len(sources))
        return out

    # --- restore, QA, variants -----------------------------------------------------------------

    def _align(
        self,
        seg: SourceSegment,
        frag: Fragment,
        mt: dict[int, str],
        rules: Sequence[VariantRule],
        fmt: SourceFormat,
        redecoded: set[int],
    ) -> AlignedSegment:
        hits = list(frag.hits())
        targets: dict[str, str] = {}
        flags: list[Flag] = []
        spans: list[dict[str, TargetSpan | None]] = [{} for _ in hits]
        expected: list[dict[str, str]] = [{} for _ in hits]
        for rule in rules:
            shown = render_fragment(frag, mt, render_context(rule, fmt, markup=True))
            targets[rule.variant] = shown.text
            self._record_terms(shown, hits, rule, spans, expected)
            for hit in shown.missing:
                flags.append(
                    Flag(
                        "term_missing",
                        f"glossary term “{hit.text}” ({hit.term.id}) should read "
                        f"“{term_target(hit, rule)}” but the model lost its place",
                        rule.variant,
                    )
                )
            if rule.variant == rules[0].variant:
                for slot in shown.moved:
                    flags.append(
                        Flag(
                            "markup_moved",
                            f"inline markup around “{slot.text}” was moved to the end of the sentence",
                        )
                    )
        flags.extend(self._qa(seg, frag, hits, mt, redecoded))
        origin = "rule" if is_date(seg.text) or not any(f.needs_model for f in frag.walk()) else "mt"
        return AlignedSegment(
            id=seg.id,
            block_id=seg.block_id,
            source=seg.text,
            ws_before=seg.ws_before,
            targets=targets,
            terms=tuple(
                AlignedTerm(
                    term_id=hit.term.id,
                    source_text=hit.text,
                    source_start=offset + hit.span.start,
                    source_end=offset + hit.span.end,
                    targets=spans[i],
                    expected=expected[i],
                )
                for i, (hit, offset) in enumerate(hits)
            ),
            flags=tuple(flags),
            origin=origin,
            status="needs_review" if flags else "draft",
        )

    def _record_terms(
        self,
        shown: Rendered,
        hits: list[tuple[TermHit, int]],
        rule: VariantRule,
        spans: list[dict[str, TargetSpan | None]],
        expected: list[dict[str, str]],
    ) -> None:
        placed = {id(h): (s, e) for h, s, e in shown.placed}
        for i, (hit, _) in enumerate(hits):
            where = placed.get(id(hit))
            spans[i][rule.variant] = TargetSpan(*where) if where else None
            expected[i][rule.variant] = term_target(hit, rule)

    def _qa(
        self,
        seg: SourceSegment,
        frag: Fragment,
        hits: list[tuple[TermHit, int]],
        mt: dict[int, str],
        redecoded: set[int],
    ) -> list[Flag]:
        hans = self.rules["zh-Hans"]
        plain = render_fragment(frag, mt, render_context(hans, SourceFormat.TEXT, markup=False)).text
        qa = self.settings.qa
        # Figures inside glossary terms are the glossary's business; the rest must survive.
        source = seg.text
        for hit, offset in sorted(hits, key=lambda h: -(h[1] + h[0].span.start)):
            start = offset + hit.span.start
            source = source[:start] + " " + source[offset + hit.span.end :]
        dnt = [h.text for h, _ in hits if h.term.do_not_translate]
        verbatim = [s.text for f in frag.walk() for s in f.slots if s.kind is SlotKind.VERBATIM]
        flags = [
            number_mismatch(source, plain),
            untranslated(plain, dnt + verbatim, qa) if seg.text.strip() else None,
            length_ratio(seg.text, plain, qa),
        ]
        loop = repetition(plain, qa)
        if loop is not None:
            again = (
                " after a second decoding with safer settings" if any(f.fid in redecoded for f in frag.walk()) else ""
            )
            flags.append(Flag(loop.code, loop.reason + again))
        return [f for f in flags if f is not None]


def assemble_text(doc: Document, segments: Sequence[AlignedSegment], variant: str) -> str:
    """One variant's full text, in the source's structure and format."""
    by_block: dict[str, list[AlignedSegment]] = {b.id: [] for b in doc.blocks}
    for seg in segments:
        by_block[seg.block_id].append(seg)
    inner = {block_id: _join_block(segs, variant, doc.format) for block_id, segs in by_block.items()}
    return render(doc.format, doc.blocks, inner, tail=doc.tail, page=doc.html, lang=variant)


def _joined(parts: Sequence[str]) -> str:
    """The translations of a sentence's pieces as one: no space between Chinese neighbours, one
    between others (Latin words, figures, placeholders)."""
    out = ""
    for part in (p.strip() for p in parts):
        if out and part and not (CJK_OR_FULL.match(out[-1]) or CJK_OR_FULL.match(part[0])):
            out += " "
        out += part
    return out


def _identity(text: str) -> str:
    return text


def term_target(hit: TermHit, rule: VariantRule) -> str:
    """The glossary's form of a hit in one variant: its own regional form, else its zh-Hans form
    converted for the variant, or the English itself for do-not-translate terms."""
    if hit.term.do_not_translate:
        return hit.text
    own = hit.term.own_target(rule.variant)
    return own if own is not None else localize(hit.term.targets["zh-Hans"], rule)


def render_context(rule: VariantRule, fmt: SourceFormat, *, markup: bool) -> RenderContext:
    """How one variant is rendered: with the source's markup, its text escaped for the format (HTML
    entities, Markdown backslashes), or as plain text."""
    escape: Callable[[str], str] = partial(in_format, fmt=fmt) if markup else _identity
    return RenderContext(
        localize=lambda text: localize(text, rule),
        term_target=lambda hit: escape(term_target(hit, rule)),
        escape=escape,
        # Code inside backticks is taken literally; inside <code> it is HTML like the rest.
        escape_code=html.escape if markup and fmt is SourceFormat.HTML else _identity,
        markup=markup,
    )


def _join_block(segments: Sequence[AlignedSegment], variant: str, fmt: SourceFormat) -> str:
    """Chinese sentences follow each other without spaces; line breaks are kept, as many as the
    source has in HTML (<br><br>), hard ones as hard in Markdown (two spaces before the break), and
    in plain text those that do not only wrap the paragraph (a soft wrap is a space), as CRLF where
    the source has it."""
    soft = soft_wraps("".join(s.ws_before + s.source for s in segments)) if fmt is SourceFormat.TEXT else frozenset()
    out = ""
    pos = 0
    for seg in segments:
        text = seg.targets[variant]
        ws = seg.ws_before
        if any(pos + i not in soft for i, c in enumerate(ws) if c == "\n"):
            if fmt is SourceFormat.HTML:
                ws = "<br>" * ws.count("\n")
            elif fmt is SourceFormat.MARKDOWN:
                ws = "  \n" if "  \n" in ws else "\n"
            else:
                ws = "\r\n" if "\r\n" in ws else "\n"
        elif out and text and (CJK_OR_FULL.match(out[-1]) or CJK_OR_FULL.match(text[0])):
            ws = ""
        elif out:
            ws = " " if ws else ""
        pos += len(seg.ws_before) + len(seg.source)
        out += ws + text
    return out
