"""Glossary matching at a newsroom's scale: `python -m bench.glossary [--terms 1000 5000 20000]`.

Finds the terms of the shipped `news` glossary plus N made-up names (two forms each, as a
terminologist's name list has) in a news-length article, with duiyi's matcher
(`glossary.matching.find_terms`: each position tries only the forms that start with its word) and,
side by side, with one regular expression alternating over every form, tried at each word start
(the matcher before 2026-11-29). Both must find the same hits. Prints one line per glossary size
and, last, one JSON object: medians of `--repeats` runs, in milliseconds. Not part of the tests'
pass/fail.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import string
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.sentences import news_sentences
from glossary.matching import TermHit, _compile, _form_pattern, find_terms
from glossary.terms import Glossary, Term
from service.glossaries import GlossaryStore

_WORD_START = re.compile(r"(?<![^\W_])[^\s]")


def one_alternation(text: str, glossary: Glossary) -> list[tuple[str, int, int]]:
    """The hits found with one alternation over every form, longest first (the baseline)."""
    forms = sorted(
        ((len(f), _form_pattern(f, t.case_sensitive), t) for t in glossary.terms for f in t.forms),
        key=lambda a: -a[0],
    )
    pattern = re.compile(rf"(?<![^\W_])(?:{'|'.join(f'({p})' for _, p, _ in forms)})(?![^\W_])")
    terms = [t for _, _, t in forms]
    candidates: list[tuple[str, int, int]] = []
    for start in _WORD_START.finditer(text):
        match = pattern.match(text, start.start())
        if match is not None and match.lastindex is not None:
            candidates.append((terms[match.lastindex - 1].id, match.start(), match.end()))
    chosen: list[tuple[str, int, int]] = []
    for hit in sorted(candidates, key=lambda h: (h[1] - h[2], h[1])):
        if all(hit[2] <= s or hit[1] >= e for _, s, e in chosen):
            chosen.append(hit)
    return sorted(chosen, key=lambda h: h[1])


def _spans(hits: list[TermHit]) -> list[tuple[str, int, int]]:
    return [(h.term.id, h.span.start, h.span.end) for h in hits]


def with_names(base: Glossary, count: int, seed: int = 7) -> Glossary:
    rng = random.Random(seed)

    def name() -> str:
        return " ".join(
            rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase, k=6)) for _ in "ab"
        )

    made = tuple(Term(f"name-{i}", (name(), name()), {"zh-Hans": "某某"}) for i in range(count))
    return Glossary(f"news+{count}", (*base.terms, *made))


def _median_ms(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median of `repeats` runs in milliseconds, and what the last run returned."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terms", type=int, nargs="+", default=[0, 1000, 5000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    news = GlossaryStore.load().stacked(["news"])
    article = " ".join(news_sentences(50)) + " Abe Shinzo met Kerry near Futenma; the SCC agreed."
    results: dict[str, Any] = {"article_chars": len(article), "sizes": {}}
    for extra in args.terms:
        glossary = with_names(news, extra)
        compiled, _ = _median_ms(partial(_compile.__wrapped__, glossary), args.repeats)
        ours, found = _median_ms(partial(find_terms, article, glossary), args.repeats)
        baseline, expected = _median_ms(partial(one_alternation, article, glossary), args.repeats)
        same = _spans(found) == expected
        figures = {
            "terms": len(glossary.terms),
            "duiyi_ms": round(ours, 2),
            "one_alternation_ms": round(baseline, 2),
            "ratio": round(baseline / ours, 1) if ours else None,
            "compile_ms": round(compiled, 2),
            "same_hits": same,
        }
        results["sizes"][str(extra)] = figures
        if not args.json:
            print(
                f"{figures['terms']:>6} terms: duiyi {ours:9.2f} ms  one alternation {baseline:10.2f} ms  "
                f"({figures['ratio']}x)  compile {compiled:7.2f} ms  same hits: {same}"
            )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
