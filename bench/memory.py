"""Translation memory at a newsroom's scale: `python -m bench.memory [--entries N]`.

Seeds a fresh translation memory (SQLite in a temporary directory, or `--database-url`) with N
sentences: news-like sentences that resemble nothing being translated, plus a few edited copies of
each sentence of a 50-sentence article (what fuzzy search should find). Then times

- storing them all (`TranslationMemory.remember`, as a TMX import does), then a fifth of them
  again (replacing);
- a process's first lookup (it reads every stored sentence of the variant) and lookups right after
  a write (each reads only what is new);
- the suggestions a translator waits for on opening a segment of the article (one fuzzy lookup:
  p50 and p95 over its sentences, `--repeats` times each), and all of them together (what every
  load of the review page cost before it asked segment by segment).

Prints one line per figure and, last, one JSON object. Not part of the tests' pass/fail.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sentences import news_sentences
from service.memory import Remembered, TranslationMemory
from service.storage.db import Database


def stored_sentences(article: list[str], entries: int, seed: int = 0) -> list[str]:
    """At least `entries` distinct sentences: three edited copies of each article sentence (a word or two
    changed, a clause added), the rest news-like word sequences of 6 to 60 words."""
    rng = random.Random(seed)
    words = " ".join(news_sentences(400)).replace(",", "").replace(".", "").split()
    out: set[str] = set()
    for sentence in article:
        for variant in range(3):
            tokens = sentence.split()
            for _ in range(variant + 1):
                tokens[rng.randrange(len(tokens))] = rng.choice(words)
            if variant == 2:
                tokens += ["officials", "said."]
            out.add(" ".join(tokens))
    while len(out) < entries:
        out.add(" ".join(rng.choice(words) for _ in range(rng.randint(6, 60))).capitalize() + ".")
    return sorted(out)


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="sentences in the memory (default 100,000)")
    parser.add_argument("--sentences", type=int, default=50, help="sentences in the article (default 50)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", help="an empty database to use instead of a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    say: Callable[[str], None] = (lambda _: None) if args.json else print

    article = news_sentences(args.sentences)
    stored = stored_sentences(article, args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.database_url or f"sqlite:///{Path(tmp) / 'memory.db'}")
        db.migrate()
        memory = TranslationMemory(db)
        entries = [Remembered(s, "zh-Hans", f"译文{i}", origin="tmx") for i, s in enumerate(stored)]

        seed_s = _seconds(lambda: memory.remember(entries))
        replace_s = _seconds(lambda: memory.remember(entries[: len(entries) // 5]))  # the same again: replaced
        store = {
            "entries_per_s": round(len(entries) / seed_s),
            "replacing_entries_per_s": round(len(entries) // 5 / replace_s),
        }
        say(
            f"stored {len(entries):,} entries in {seed_s:.1f} s ({store['entries_per_s']:,}/s); "
            f"{len(entries) // 5:,} of them again, replacing, at {store['replacing_entries_per_s']:,}/s"
        )

        # A process's first lookup of a variant reads every stored sentence; later ones only what is new.
        memory = TranslationMemory(db)  # as in a process that has not looked anything up yet
        first_s = _seconds(lambda: memory.fuzzy(article[0], "zh-Hans"))
        after_write: list[float] = []
        for sentence in article[:5]:
            memory.remember([Remembered(f"{sentence} An approval.", "zh-Hans", "新", origin="approved")])
            start = time.perf_counter()
            memory.fuzzy(sentence, "zh-Hans")
            after_write.append(time.perf_counter() - start)
        lookups: list[float] = []
        pages: list[float] = []
        found = 0
        for _ in range(args.repeats):
            page = 0.0
            for sentence in article:
                start = time.perf_counter()
                found += len(memory.fuzzy(sentence, "zh-Hans"))
                lookups.append(time.perf_counter() - start)
                page += lookups[-1]
            pages.append(page)
        ordered = sorted(lookups)
        fuzzy = {
            "sentences": len(article),
            "suggestions": found // args.repeats,
            "segment_p50_ms": round(statistics.median(ordered) * 1000, 1),
            "segment_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "all_segments_ms": round(statistics.median(pages) * 1000, 1),
            "first_lookup_ms": round(first_s * 1000, 1),
            "after_a_write_p50_ms": round(statistics.median(after_write) * 1000, 1),
        }
        say(
            f"suggestions on opening a segment ({fuzzy['suggestions']} found for {len(article)}): "
            f"p50 {fuzzy['segment_p50_ms']:,} ms, p95 {fuzzy['segment_p95_ms']:,} ms; "
            f"all {len(article)} together {fuzzy['all_segments_ms']:,} ms; a process's first lookup "
            f"{fuzzy['first_lookup_ms']:,} ms, one after a write p50 {fuzzy['after_a_write_p50_ms']:,} ms"
        )
        backend = db.url.get_backend_name()
        db.close()
    result = {
        "entries": len(entries),
        "database": backend,
        "store": store,
        "fuzzy": fuzzy,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
