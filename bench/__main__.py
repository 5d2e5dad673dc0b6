"""python -m bench: duiyi's engine against plain transformers, side by side in one process.

Builds a random-weight model of opus-mt-en-zh's architecture (65,001 vocab, 6+6 layers, d_model
512) and runs every contender on the same sentences with pinned output lengths, greedy and
beam 4. Prints a table, then one JSON object (the last line). Not part of the test suite's
pass/fail: `--small` is the CI-sized run that only shows it works.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.contenders import Result, batched_offline, engine_concurrent, http_concurrent, naive
from bench.sentences import news_sentences, requests_of

SMALL_DIMS = {
    "d_model": 128,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_ffn_dim": 256,
    "max_position_embeddings": 512,
}
SMALL_VOCAB = 4000
CONTENDERS = (
    "naive",
    "transformers_batched",
    "duiyi_engine",
    "duiyi_engine_whole_batches",
    "duiyi_http",
    "duiyi_ctranslate2",
    "duiyi_idle",
    "duiyi_http_article",
    "duiyi_engine_cuda_graphs",
    "duiyi_idle_cuda_graphs",
)
# The running batch's steps replayed as CUDA graphs (DUIYI_CUDA_GRAPHS), beside the same contender
# without them: skipped on the CPU.
CUDA_ONLY = {"duiyi_engine_cuda_graphs", "duiyi_idle_cuda_graphs"}
# Contenders that differ from another only in greedy decoding, or measure latency at the service's
# default (greedy): skipped with beam search.
GREEDY_ONLY = {"duiyi_engine_whole_batches", "duiyi_idle", "duiyi_http_article"} | CUDA_ONLY
# Latency contenders: one caller, one request at a time, on sentences none of the others decode.
IDLE_SENTENCES = {"small": 4, "cpu": 12, "cuda": 64}
ARTICLES = {"small": 1, "cpu": 2, "cuda": 8}
ARTICLE_SENTENCES = 50


def _machine(device: str) -> dict[str, Any]:
    import ctranslate2
    import torch
    import transformers

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "ctranslate2": ctranslate2.__version__,
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--small", action="store_true", help="CI-sized: a few sentences, to show it runs")
    p.add_argument("--sentences", type=int, help="how many sentences (default: 48 on CPU, 4096 on CUDA)")
    p.add_argument("--concurrency", type=int, help="concurrent callers/clients (default: 8 on CPU, 128 on CUDA)")
    p.add_argument("--request-size", type=int, help="sentences per request (default: 4 on CPU, 16 on CUDA)")
    p.add_argument("--beams", default="1,4", help="beam sizes to run (default 1,4)")
    p.add_argument("--batch-sizes", help="batch sizes tried for transformers_batched (comma-separated)")
    p.add_argument("--max-batch-tokens", type=int, help="duiyi engine's token budget per batch")
    p.add_argument("--max-batch-size", type=int, help="duiyi engine's rows per batch")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(CONTENDERS)}")
    p.add_argument(
        "--naive-limit", type=int, help="sentences for the naive contender (default: all on CPU, 256 on CUDA)"
    )
    p.add_argument("--model-dir", type=Path, help="where to build (or find) the benchmark model (keep it per size)")
    return p.parse_args(argv)


def _table(results: list[Result]) -> str:
    head = (
        f"{'contender':<28}{'beam':>5}{'sent':>7}{'sent/s':>10}{'tok/s':>11}{'p50 ms':>10}{'p95 ms':>10}"
        f"{'RSS MB':>9}{'GPU MB':>9}  note"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        gpu = f"{r.peak_gpu_mb:.0f}" if r.peak_gpu_mb is not None else "-"
        lines.append(
            f"{r.contender:<28}{r.beam:>5}{r.sentences:>7}{r.sentences_per_s:>10.2f}{r.tokens_per_s:>11.1f}"
            f"{r.percentile(50) * 1000:>10.1f}{r.percentile(95) * 1000:>10.1f}{r.peak_rss_mb:>9.0f}{gpu:>9}  {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.WARNING)
    cuda = args.device == "cuda"
    count = args.sentences or (8 if args.small else 4096 if cuda else 48)
    # On CUDA, 256 callers × 16 sentences keep about 4,096 sentences in flight: a saturating load.
    concurrency = args.concurrency or (4 if args.small else 256 if cuda else 8)
    request_size = args.request_size or (16 if cuda and not args.small else 4)
    beams = [int(b) for b in args.beams.split(",")]
    batch_sizes = (
        [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else ([256, 1024, 4096] if cuda else [8, 32])
    )
    batch_sizes = sorted({min(b, count) for b in batch_sizes})
    max_batch_tokens = args.max_batch_tokens or (1 << 20 if cuda else 8192)
    max_batch_size = args.max_batch_size or (4096 if cuda else 64)
    chosen = args.only.split(",") if args.only else list(CONTENDERS)
    unknown = [c for c in chosen if c not in CONTENDERS]
    if unknown:
        print(f"unknown contender {', '.join(unknown)}; valid: {', '.join(CONTENDERS)}", file=sys.stderr)
        return 2

    from models.engine import load_engine
    from models.tiny import OPUS_MT_DIMS, OPUS_MT_VOCAB, build_marian

    # --small shows the harness works in CI time; its model is smaller than opus-mt, its figures
    # say nothing about speed.
    dims = SMALL_DIMS if args.small else OPUS_MT_DIMS
    vocab = SMALL_VOCAB if args.small else OPUS_MT_VOCAB

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or Path(tmp) / "opus-mt-sized"
        if not (model_dir / "config.json").is_file():
            say(f"building a random opus-mt-en-zh-sized model in {model_dir} …")
            build_marian(model_dir, dims=dims, vocab_size=vocab, never_eos=True)
        size_key = "small" if args.small else args.device
        sentences = news_sentences(count)
        # Distinct from `sentences`, so no contender finds them in a cache.
        extra = IDLE_SENTENCES[size_key] + ARTICLES[size_key] * ARTICLE_SENTENCES
        spare = news_sentences(count + extra)[count:]
        requests = requests_of(sentences, request_size)
        naive_n = args.naive_limit or (count if not cuda else min(count, 256))
        engines: dict[str, Any] = {}
        results: list[Result] = []
        for beam in beams:
            for name in chosen:
                if (beam > 1 and name in GREEDY_ONLY) or (not cuda and name in CUDA_ONLY):
                    continue
                say(f"{name}, beam {beam} …")
                started = time.perf_counter()
                if name == "naive":
                    result = naive(model_dir, sentences[:naive_n], beam=beam, device=args.device)
                elif name == "transformers_batched":
                    result = batched_offline(
                        model_dir, sentences, beam=beam, device=args.device, batch_sizes=batch_sizes
                    )
                else:
                    kind = "ctranslate2" if name == "duiyi_ctranslate2" else "transformers"
                    if kind not in engines:
                        engines[kind] = load_engine(str(model_dir), engine=kind, device=args.device)
                    common = {
                        "beam": beam,
                        "device": args.device,
                        "concurrency": concurrency,
                        "max_batch_tokens": max_batch_tokens,
                        "max_batch_size": max_batch_size,
                    }
                    if name == "duiyi_http":
                        result = http_concurrent(model_dir, engines[kind], requests, **common)
                    elif name in ("duiyi_idle", "duiyi_idle_cuda_graphs"):
                        # One sentence at a time, each waiting for the last: latency with nothing queued.
                        alone = [[s] for s in spare[: IDLE_SENTENCES[size_key]]]
                        graphs = name == "duiyi_idle_cuda_graphs"
                        result = engine_concurrent(
                            name, engines[kind], alone, **{**common, "concurrency": 1}, cuda_graphs=graphs
                        )
                    elif name == "duiyi_http_article":
                        # Whole 50-sentence articles through POST /v1/translate, one after another.
                        start = IDLE_SENTENCES[size_key]
                        articles = [
                            spare[start + i * ARTICLE_SENTENCES : start + (i + 1) * ARTICLE_SENTENCES]
                            for i in range(ARTICLES[size_key])
                        ]
                        result = http_concurrent(
                            model_dir, engines[kind], articles, **{**common, "concurrency": 1}, name=name
                        )
                    else:
                        whole = name == "duiyi_engine_whole_batches"
                        graphs = name == "duiyi_engine_cuda_graphs"
                        result = engine_concurrent(
                            name, engines[kind], requests, continuous=not whole, cuda_graphs=graphs, **common
                        )
                # Each contender's figures as soon as it ends, so a run cut short (a time limit, a
                # crash on a device) still leaves what it measured on stderr.
                say(f"  {result.tokens_per_s:.1f} tok/s in {time.perf_counter() - started:.1f} s")
                say(f"  {json.dumps(result.summary(), ensure_ascii=False)}")
                results.append(result)

    by_beam: dict[str, dict[str, Any]] = {}
    for r in results:
        by_beam.setdefault(r.contender, {})[f"beam{r.beam}"] = r.summary()
    ratios: dict[str, Any] = {}
    for beam in beams:
        key = f"beam{beam}"
        get = {c: by_beam.get(c, {}).get(key) for c in CONTENDERS}

        def ratio(a: str, b: str, metric: str, get: dict[str, Any] = get) -> float | None:
            if get[a] and get[b] and get[b][metric]:
                return round(get[a][metric] / get[b][metric], 2)
            return None

        ratios[key] = {
            "http_vs_naive_sentences_per_s": ratio("duiyi_http", "naive", "sentences_per_s"),
            "engine_vs_naive_sentences_per_s": ratio("duiyi_engine", "naive", "sentences_per_s"),
            "engine_vs_batched_tokens_per_s": ratio("duiyi_engine", "transformers_batched", "output_tokens_per_s"),
            "idle_sentence_p50_ms": (get["duiyi_idle"] or {}).get("p50_latency_ms"),
            "article_50_sentences_http_p50_ms": (get["duiyi_http_article"] or {}).get("p50_latency_ms"),
            "engine_running_vs_whole_batches_tokens_per_s": ratio(
                "duiyi_engine", "duiyi_engine_whole_batches", "output_tokens_per_s"
            ),
            "cuda_graphs_vs_engine_tokens_per_s": ratio(
                "duiyi_engine_cuda_graphs", "duiyi_engine", "output_tokens_per_s"
            ),
            "idle_sentence_cuda_graphs_p50_ms": (get["duiyi_idle_cuda_graphs"] or {}).get("p50_latency_ms"),
            "ctranslate2_vs_batched_tokens_per_s": ratio(
                "duiyi_ctranslate2", "transformers_batched", "output_tokens_per_s"
            ),
        }
    report = {
        "machine": _machine(args.device),
        "config": {
            "sentences": count,
            "naive_sentences": naive_n,
            "concurrency": concurrency,
            "request_size": request_size,
            "beams": beams,
            "batch_sizes_tried": batch_sizes,
            "max_batch_tokens": max_batch_tokens,
            "max_batch_size": max_batch_size,
            "output_length": "pinned to each sentence's source token count",
            "model": "small (CI-sized, not opus-mt)" if args.small else "opus-mt-en-zh architecture, random weights",
        },
        "results": by_beam,
        "ratios": ratios,
    }
    if not args.json:
        print(_table(results))
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
