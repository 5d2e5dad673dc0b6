"""Reading an HTML article and writing its translations back costs time in proportion to the page:
shapes that cost the square of their size (a paragraph of many line breaks or of many empty inline
elements, many short paragraphs, many elements that said English, void elements among many end
tags, a structured data script of many headlines) come back within a bound, and what comes back is
what it always was: generated articles that mix those shapes keep their round trips."""

from __future__ import annotations

import hashlib
import html
import json
import random
import subprocess
import sys
import textwrap

import pytest

from service.documents import Article, Block, BlockKind, SourceFormat
from service.formats import parse_blocks, render

WORDS = ["Abe", "visits", "Okinawa", "the", "report", "said.", "It", "rained", "&amp;", "&mdash;", "Tokyo.", "a"]


def _words(r: random.Random, n: int = 0) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n or r.randint(1, 6)))


def _inline(r: random.Random, depth: int = 0) -> str:
    kind = r.randrange(12)
    if kind == 0:
        return r.choice(["<br>", "<br/>", "<BR>", "<br />"])
    if kind == 1:
        return r.choice(["<b></b>", "<span> </span>", "<i>  </i>"])
    if kind == 2:
        return f'<img src="x.png" alt="{_words(r)}"' + (f' title="{_words(r)}"' if r.random() < 0.3 else "") + ">"
    if kind == 3:
        return "<!-- note -->"
    if kind == 4:
        return f"<code>{_words(r)}</code>"
    if kind == 5:
        return f'<a href="/r?a=1&amp;b=2" title="{_words(r)}">{_words(r)}</a>'
    if kind == 6:
        return f'<span lang="{r.choice(["en", "en-GB", "fr"])}">{_words(r)}</span>'
    if kind == 7 and depth < 4:
        return f"<i>{_words(r)} {_inline(r, depth + 1)} </i>"
    if kind == 8:
        return f'<abbr title="{_words(r)}">{_words(r, 1)}</abbr>'
    if kind == 9:
        return "</br>" if r.random() < 0.5 else "  \n "  # an end tag for a void element stands for nothing
    return _words(r)


def _para(r: random.Random) -> str:
    return "".join(_inline(r) if r.random() < 0.5 else f" {_words(r)} " for _ in range(r.randint(1, 10)))


def _block(r: random.Random) -> str:
    kind = r.randrange(10)
    lang = r.choice(["", ' lang="en"', ' lang="en-GB"', ' xml:lang="en"', ' lang="fr"'])
    if kind == 0:
        return f"<div>{_para(r)}<p{lang}>{_para(r)}</p>{_para(r)}</div>"
    if kind == 1:
        return f"<ul><li>{_para(r)}<li>{_para(r)}</ul>"
    if kind == 2:
        return f'<figure><img src="a.png" alt="{_words(r)}"><figcaption>{_para(r)}</figcaption></figure>'
    if kind == 3:
        return f'<p aria-label="{_words(r)}">{_para(r)}'  # never closed
    if kind == 4:
        return f"<noscript><p>{_para(r)}</p><img alt='{_words(r)}'></noscript>"
    if kind == 5:
        return f'<blockquote class="twitter-tweet"><p lang="en">{_para(r)}</p></blockquote>'
    if kind == 6:
        return "<hr>" + _para(r)
    tag = r.choice(["p", "h2", "li", "blockquote", "figcaption", "td"])
    return f"<{tag}{lang}>{_para(r)}</{tag}>\n"


def _structured_data(r: random.Random) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": r.choice(["NewsArticle", "WebPage", "Person"]),
        "headline": _words(r),
        "inLanguage": r.choice(["en", "en-US", "fr"]),
        "description": _words(r),
        "author": {"@type": "Person", "name": _words(r)},
        "hasPart": [
            {"@type": "BlogPosting", "alternativeHeadline": _words(r), "inLanguage": "en"}
            for _ in range(r.randint(0, 3))
        ],
    }
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def _page(seed: int) -> str:
    r = random.Random(seed)
    body = "".join(_block(r) for _ in range(r.randint(1, 12)))
    if r.random() < 0.3:
        return body  # a fragment
    head = (
        f'<head><meta charset="utf-8"><title>{_words(r)}</title><meta name="description" content="{_words(r)}">'
        + (_structured_data(r) if r.random() < 0.7 else "")
        + "</head>"
    )
    return f'<!DOCTYPE html>\n<html lang="en">{head}<body>{body}</body></html>\n'


def _with_markup(block: Block) -> str:
    """The block's text with its inline markup put back, as the pipeline writes a target (see
    tests/test_formats_html_fidelity.py): its source, untranslated."""
    events = sorted(
        [(i.end, 0, -n, i.close) for n, i in enumerate(block.inlines)]
        + [(i.start, 1, n, i.open) for n, i in enumerate(block.inlines)]
    )
    out, at = [], 0
    for pos, _, _, markup in events:
        out += [html.escape(block.text[at:pos]).replace("\n", "<br>"), markup]
        at = pos
    return "".join([*out, html.escape(block.text[at:]).replace("\n", "<br>")])


_TEXTS = (BlockKind.PARAGRAPH, BlockKind.HEADING, BlockKind.LIST_ITEM, BlockKind.QUOTE, BlockKind.TITLE)
# What the generated articles below read as and came back as (their blocks, and each variant written
# back untranslated and translated), as recorded before reading and writing back were made to cost in
# proportion to a page's size: the same, byte for byte.
_RECORDED = "2a3005727d3f2745cdacd37a0fb9c5d94879781aea2d32e777f000b04ebf3d83"


def test_generated_articles_read_and_come_back_as_they_did() -> None:
    digest = hashlib.sha256()
    for seed in range(60):
        page = _page(seed)
        blocks, tail, kept = parse_blocks(Article(body=page, format=SourceFormat.HTML))
        assert kept == page
        assert all(0 <= i.start <= i.end <= len(b.text) for b in blocks for i in b.inlines)
        digest.update(repr((blocks, tail)).encode())
        untranslated = {b.id: _with_markup(b) for b in blocks}
        translated = {b.id: ("译" + _with_markup(b) if b.kind in _TEXTS else _with_markup(b)) for b in blocks}
        for lang in ("zh-Hans", "zh-TW"):
            for inner in (untranslated, translated):
                digest.update(render(SourceFormat.HTML, tuple(blocks), inner, page=page, lang=lang).encode())
    assert digest.hexdigest() == _RECORDED


# Each shape (a page of n of something), at sizes where the square of it took 10 s or more as read
# before, and what is timed: reading the page, or the step of writing back that cost the square.
_SHAPES = {
    "line breaks in one paragraph": ("'<p>' + 'w<br>' * n + '</p>'", 6_000, "parse"),
    "empty inline elements in one paragraph": ("'<p>x' + '<b> </b>' * n + 'y</p>'", 6_000, "parse"),
    "many elements that said English": ("'<p lang=\"en\">x</p>' * n", 6_000, "written_back"),
    "void elements among end tags": ("'<p>a<br>b</p>' * n", 8_000, "tokens"),
    "structured data of many headlines": (
        "'<script type=\"application/ld+json\">' + json.dumps([{'@type': 'NewsArticle', 'headline': f'Head {i}.'}"
        " for i in range(n)]) + '</script><p>x.</p>'",
        8_000,
        "rewrite_ld",
    ),
}

_RUN = """
import json, time
from bs4 import BeautifulSoup
from service.formats import html as F
from service.formats.structured import _ld_scripts, _ld_texts, _rewrite_ld

def timed(n):
    page = {page}
    step = {step!r}
    if step == "parse":
        t = time.perf_counter()
        F._html_blocks(page, 0)
    elif step == "tokens":
        t = time.perf_counter()
        tokens = F._Tokens(page, BeautifulSoup("", "html.parser").builder.can_be_empty_element)
        tokens.feed(page)
        tokens.close()
    elif step == "rewrite_ld":
        soup = BeautifulSoup(page, "html.parser")
        values = {{n: "译" for _, n, _ in _ld_texts(soup)}}
        t = time.perf_counter()
        _rewrite_ld(_ld_scripts(soup)[0], values, "zh-Hans")
    else:  # the language declared in tags outside the units' contents
        soup = BeautifulSoup(page, "html.parser")
        spans = F._spans(soup, page)
        covered = [F._content(unit, spans, page) for _, unit in F._html_units(soup)]
        attributes = {{id(el): dict(el.attrs) for el in soup.find_all(True)}}
        F._declare_language(soup, "zh-Hans")
        t = time.perf_counter()
        F._written_back(soup, page, spans, [], covered, attributes, {{}}, [])
    return time.perf_counter() - t

print(timed({small}), timed({large}))
"""


@pytest.mark.parametrize("shape", _SHAPES)
def test_large_pages_of_costly_shapes_cost_in_proportion_to_their_size(shape: str) -> None:
    page, n, step = _SHAPES[shape]
    code = textwrap.dedent(_RUN).format(page=page, step=step, small=n, large=4 * n)
    # In a process of its own, so that a regression fails at the timeout rather than hangs the suite.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    small, large = map(float, done.stdout.split())
    # Four times the size: about four times the time (the square would be sixteen), on a busy machine too.
    assert large < 8 * max(small, 0.05), f"{shape}: {small:.2f} s for {n}, {large:.2f} s for {4 * n}"
