"""The benchmark runs (CI-sized) and pins output lengths identically for every contender. Its
speed figures are not asserted: speed is measured in bench/, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import REPO


def run_bench(*args: str) -> dict[str, Any]:
    """`python -m <args>` from the checkout; the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_bench_small_runs_and_every_contender_decodes_the_same_tokens() -> None:
    report = run_bench("bench", "--device", "cpu", "--small", "--json")
    results = report["results"]
    assert set(results) == {
        "naive",
        "transformers_batched",
        "duiyi_engine",
        "duiyi_engine_whole_batches",
        "duiyi_http",
        "duiyi_ctranslate2",
        "duiyi_idle",
        "duiyi_http_article",
    }
    # Greedy only: beam search is whole-batch anyway, and latency is measured at the default.
    for name in ("duiyi_engine_whole_batches", "duiyi_idle", "duiyi_http_article"):
        assert set(results[name]) == {"beam1"}, name
    latency = {"duiyi_idle", "duiyi_http_article"}  # their own sentences, one request at a time
    assert results["duiyi_idle"]["beam1"]["sentences"] == 4
    assert results["duiyi_http_article"]["beam1"]["sentences"] == 50
    assert report["ratios"]["beam1"]["article_50_sentences_http_p50_ms"] > 0
    for beam in ("beam1", "beam4"):
        tokens = {
            name: by_beam[beam]["output_tokens"]
            for name, by_beam in results.items()
            if beam in by_beam and name not in latency
        }
        assert len(tokens) >= 5 and len(set(tokens.values())) == 1, tokens
        for name, by_beam in results.items():
            if beam not in by_beam or name in latency:
                continue
            row = by_beam[beam]
            assert row["sentences"] == report["config"]["sentences"]
            assert row["output_tokens_per_s"] > 0 and row["p95_latency_ms"] >= row["p50_latency_ms"] > 0
    assert set(report["ratios"]["beam1"]) >= {
        "http_vs_naive_sentences_per_s",
        "ctranslate2_vs_batched_tokens_per_s",
        "engine_running_vs_whole_batches_tokens_per_s",
    }
    assert "running batch" in results["duiyi_engine"]["beam1"]["note"]
    assert "whole batches" in results["duiyi_engine_whole_batches"]["beam1"]["note"]


def test_memory_bench_small_runs() -> None:
    """`python -m bench.memory`."""
    report = run_bench("bench.memory", "--entries", "600", "--sentences", "20", "--repeats", "1", "--json")
    assert report["entries"] == 600 and report["fuzzy"]["sentences"] == 20
    # Three edited copies of each sentence were stored; the lookups find at least one of each.
    assert report["fuzzy"]["suggestions"] >= 20
    assert (
        report["store"]["entries_per_s"] > 0
        and 0 < report["fuzzy"]["segment_p50_ms"] <= report["fuzzy"]["segment_p95_ms"]
    )


def test_glossary_bench_small_runs_and_both_matchers_agree() -> None:
    """`python -m bench.glossary`: duiyi's matcher and the one-alternation baseline find the same
    hits in its article, with the shipped glossary alone and with made-up names added."""
    report = run_bench("bench.glossary", "--terms", "0", "200", "--repeats", "1", "--json")
    assert set(report["sizes"]) == {"0", "200"}
    assert all(size["same_hits"] for size in report["sizes"].values())
    assert report["sizes"]["200"]["terms"] == report["sizes"]["0"]["terms"] + 200
