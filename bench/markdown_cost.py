"""Reading Markdown pages: `python -m bench.markdown_cost [--chars 100000]`.

Reads a newsroom's Markdown article and pages made to be costly (each `[` asks markdown-it where
its label ends, and each asking walks the text after it up to 20 brackets deep), each as large as
`--chars` (the default: DUIYI_MAX_CHARS's), with markdown-it's own `parseLinkLabel` and with
duiyi's (`service.formats.markdown._link_label_end`: the same tokens, walked once), then parses the
page as an article is parsed (`parse_blocks`, read afresh). Prints one line per page and, last, one
JSON object: the least CPU time of `--repeats` runs, in seconds. A synchronous translation reads
its page once (it was read once to check it, once to parse it and twice for each variant written).
Not part of the tests' pass/fail.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import markdown_it.helpers
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bench.sentences import news_sentences
from service.documents import Article, SourceFormat
from service.formats import parse_blocks
from service.formats.markdown import _markdown_parser, _md_page


def newsroom_article(chars: int) -> str:
    """A Markdown article of about `chars` characters: headings, paragraphs with emphasis and
    links (titled), a quote, a list, an image, reference links and their definitions."""
    sentences = news_sentences(max(8, chars // 60))
    parts: list[str] = []
    for n in range(0, len(sentences), 4):
        words = " ".join(sentences[n : n + 4]).split()
        if len(words) > 12:
            words[2] = f"*{words[2]}*"
            words[6] = f'[{words[6]}](https://example.com/{n} "More on {words[6]}")'
            words[9] = f"[{words[9]}][ref{n % 5}]"
        text = " ".join(words)
        kind = n // 4 % 9
        if kind == 0:
            parts.append(f"## {' '.join(words[:6])}")
        if kind == 4:
            text = "> " + text
        elif kind == 6:
            text = "- " + text.replace(". ", ".\n- ", 2)
        elif kind == 8:
            text += f'\n\n![{" ".join(words[:4])}](https://example.com/{n}.jpg "Photo {n}")'
        parts.append(text)
    definitions = [f'[ref{i}]: https://example.com/ref/{i} "Reference {i}"' for i in range(5)]
    page = "\n\n".join(parts)[: max(0, chars - 300)].rsplit(" ", 1)[0]
    return page + "\n\n" + "\n".join(definitions) + "\n"


def pages(chars: int) -> dict[str, str]:
    """The article, and pages of one pattern repeated to `chars` characters."""
    half = chars // 2
    patterns = {"[": "[", "![": "![", "[a": "[a", "[a][": "[a][", "[](": "[](", "[a](": "[a](", "[\\n": "[\n"}
    out = {"newsroom article": newsroom_article(chars)}
    out |= {name: (pattern * chars)[:chars] for name, pattern in patterns.items()}
    out["[[…]]"] = "[" * half + "]" * half
    out["> ["] = "> " + "[" * (chars - 2)
    out["*a (no brackets)"] = ("*a" * chars)[:chars]
    return out


def _read(md: MarkdownIt, page: str) -> list[Token]:
    return md.parse(page, {})


def _dump(tokens: list[Token]) -> list[Any]:
    return [(t.type, t.content, t.map, sorted(t.attrs.items()), dict(t.meta), _dump(t.children or [])) for t in tokens]


def _best_s(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Each of `runs` `repeats` times, taking turns: the least CPU time each took, in seconds (CPU
    time, and the least, so that other work on the machine counts as little as it can), and what its
    last run returned."""
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            result = run()
            took = time.process_time() - start
            best[name] = (min(took, best[name][0]) if name in best else took, result)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    ours = _markdown_parser()
    theirs = _markdown_parser()
    theirs.helpers = markdown_it.helpers  # type: ignore[assignment]  # markdown-it's own parseLinkLabel
    results: dict[str, Any] = {"chars": args.chars, "pages": {}}
    for name, page in pages(args.chars).items():

        def parse(page: str = page) -> None:
            _md_page.cache_clear()
            parse_blocks(Article(page, SourceFormat.MARKDOWN))

        best = _best_s(
            {"before": partial(_read, theirs, page), "after": partial(_read, ours, page), "parse": parse}, args.repeats
        )
        (before, expected), (after, got), (parsed, _) = best["before"], best["after"], best["parse"]
        figures = {
            "chars": len(page),
            "markdown_it_labels_s": round(before, 3),
            "duiyi_labels_s": round(after, 3),
            "ratio": round(before / after, 1) if after else None,
            "parse_blocks_s": round(parsed, 3),
            "same_tokens": _dump(got) == _dump(expected),
        }
        results["pages"][name] = figures
        if not args.json:
            print(
                f"{name:>18}: markdown-it's labels {before:7.3f} s  duiyi's {after:7.3f} s  ({figures['ratio']}x)  "
                f"parse_blocks {parsed:7.3f} s  same tokens: {figures['same_tokens']}",
                flush=True,
            )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
