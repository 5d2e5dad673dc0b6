"""The contenders, each measured the same way on the same sentences.

Output lengths are pinned identically for all of them: the benchmark model's EOS is biased away,
so every sentence decodes exactly its length cap (1 × its source tokens), which each contender
enforces per sentence (max_new_tokens for one sentence at a time, models.engine.RowLengthCap in
batches, the same cap in CTranslate2). Every contender therefore decodes the same number of tokens.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from models.engine import DecodeOptions, Engine, RowLengthCap, is_greedy
from models.scheduler import BatchingEngine
from models.specs import SPECS, Family

PREFIX = SPECS[Family.MARIAN].source_prefix
# Output cap = 1 × the source's tokens + 0: with EOS biased away, exactly the source's length.
PIN_RATIO, PIN_EXTRA = 1.0, 0


@dataclass
class Result:
    contender: str
    beam: int
    sentences: int
    output_tokens: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list, repr=False)
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None
    note: str = ""

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_s")
        data.update(
            sentences_per_s=round(self.sentences_per_s, 2),
            output_tokens_per_s=round(self.tokens_per_s, 1),
            p50_latency_ms=round(self.percentile(50) * 1000, 1),
            p95_latency_ms=round(self.percentile(95) * 1000, 1),
            seconds=round(self.seconds, 3),
        )
        return data


class _RssSampler:
    """Peak resident memory of this process while a contender runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.005)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


@contextmanager
def measured(result: Result, device: str) -> Iterator[None]:
    import torch

    sampler = _RssSampler()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with sampler.sampling():
        start = time.perf_counter()
        yield
        if device == "cuda":
            torch.cuda.synchronize()
        result.seconds = time.perf_counter() - start
    result.peak_rss_mb = round(sampler.peak / 2**20, 1)
    if device == "cuda":
        result.peak_gpu_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _hf(model_dir: Path, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _decoded(out: Any, eos: int) -> list[int]:
    counts = []
    for row in out.tolist():
        tokens = row[1:]
        counts.append(tokens.index(eos) if eos in tokens else len(tokens))
    return counts


def naive(model_dir: Path, sentences: list[str], *, beam: int, device: str) -> Result:
    """One `generate` call per sentence, as a simple service would do."""
    import torch

    model, tok = _hf(model_dir, device)
    result = Result("naive", beam, len(sentences), 0, 0.0)
    with measured(result, device), torch.inference_mode():
        for sentence in sentences:
            start = time.perf_counter()
            enc = tok([PREFIX + sentence], return_tensors="pt").to(device)
            cap = int(enc["input_ids"].shape[1])
            out = model.generate(**enc, max_new_tokens=cap + 1, num_beams=beam, do_sample=False)
            result.output_tokens += _decoded(out, 0)[0]
            result.latencies_s.append(time.perf_counter() - start)
    return result


def batched_offline(model_dir: Path, sentences: list[str], *, beam: int, device: str, batch_sizes: list[int]) -> Result:
    """Plain transformers, sentences sorted by length, in batches: the best batch size wins."""
    import torch
    from transformers import LogitsProcessorList

    model, tok = _hf(model_dir, device)
    order = sorted(sentences, key=lambda s: len(tok(PREFIX + s)["input_ids"]))
    best: Result | None = None
    for size in batch_sizes:
        result = Result("transformers_batched", beam, len(sentences), 0, 0.0, note=f"batch size {size}")
        with measured(result, device), torch.inference_mode():
            for i in range(0, len(order), size):
                start = time.perf_counter()
                enc = tok([PREFIX + s for s in order[i : i + size]], return_tensors="pt", padding=True).to(device)
                caps = enc["attention_mask"].sum(dim=1).tolist()
                out = model.generate(
                    **enc,
                    max_new_tokens=max(caps) + 1,
                    num_beams=beam,
                    do_sample=False,
                    logits_processor=LogitsProcessorList([RowLengthCap(caps, 1, 0, beam)]),
                )
                result.output_tokens += sum(_decoded(out, 0))
                result.latencies_s.append(time.perf_counter() - start)
        if best is None or result.tokens_per_s > best.tokens_per_s:
            best = result
    assert best is not None
    return best


def _concurrent(
    name: str,
    call: Callable[[list[str]], int],
    requests: list[list[str]],
    *,
    beam: int,
    device: str,
    concurrency: int,
) -> Result:
    """`concurrency` callers take requests from one queue until it is empty."""
    result = Result(
        name,
        beam,
        sum(len(r) for r in requests),
        0,
        0.0,
        note="one request at a time" if concurrency == 1 else f"{concurrency} concurrent callers",
    )
    work: SimpleQueue[list[str]] = SimpleQueue()
    for request in requests:
        work.put(request)
    lock = threading.Lock()

    def caller() -> None:
        while True:
            try:
                request = work.get_nowait()
            except Empty:
                return
            start = time.perf_counter()
            tokens = call(request)
            with lock:
                result.latencies_s.append(time.perf_counter() - start)
                result.output_tokens += tokens

    with measured(result, device), ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(caller) for _ in range(concurrency)]:
            future.result()
    return result


def engine_concurrent(
    name: str,
    engine: Engine,
    requests: list[list[str]],
    *,
    beam: int,
    device: str,
    concurrency: int,
    max_batch_tokens: int,
    max_batch_size: int,
    continuous: bool = True,
    cuda_graphs: bool = False,
) -> Result:
    """The duiyi engine in-process: the batching engine under concurrent callers (with its running
    batch where the engine has one, or whole batches only; its steps replayed as CUDA graphs with
    `cuda_graphs`)."""
    options = DecodeOptions(beam_size=beam, max_length_ratio=PIN_RATIO, max_length_extra=PIN_EXTRA)
    batching = BatchingEngine(
        engine,
        max_batch_tokens=max_batch_tokens,
        max_batch_size=max_batch_size,
        max_queue=1_000_000,
        continuous=continuous,
        cuda_graphs=cuda_graphs,
    )
    try:
        result = _concurrent(
            name,
            lambda req: sum(t.output_tokens for t in batching.translate_batch(req, options=options)),
            requests,
            beam=beam,
            device=device,
            concurrency=concurrency,
        )
        running = batching.continuous and is_greedy(options)
        result.note += ", running batch" if running else ", whole batches"
        if running and batching.stepper is not None and batching.stepper.cuda_graphs:
            result.note += f", CUDA graphs ({batching.stepper.captures} captured)"
        return result
    finally:
        batching.close()


def http_concurrent(
    model_dir: Path,
    engine: Engine,
    requests: list[list[str]],
    *,
    beam: int,
    device: str,
    concurrency: int,
    max_batch_tokens: int,
    max_batch_size: int,
    name: str = "duiyi_http",
) -> Result:
    """The duiyi HTTP service on loopback under concurrent clients (server and clients share this
    process, as the benchmark runs in one)."""
    import httpx
    import uvicorn

    from service.api.app import create_app
    from service.auth import Role
    from service.config import Settings
    from service.keys import create_key
    from service.storage.db import Database

    # As deployed: API keys on (each request is authenticated against the database), a database of
    # its own, no job runners, and no rate limit (it would measure the limit, not the service).
    data_dir = Path(tempfile.mkdtemp(prefix="duiyi-bench-"))
    settings = Settings(
        data_dir=data_dir,
        runners=0,
        rate_limit_per_minute=0,
        model=str(model_dir),
        device=device,
        beam_size=beam,
        max_batch_tokens=max_batch_tokens,
        max_batch_size=max_batch_size,
        max_queue=1_000_000,
        redecode_loops=False,
        max_length_ratio=PIN_RATIO,
        max_length_extra=PIN_EXTRA,
    )
    app = create_app(settings, engine)
    db = Database(settings.database)
    key = create_key(db, name="bench", role=Role.CMS).key
    db.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=concurrency)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits, headers=auth) as client:

            def tokens_so_far() -> float:
                text = client.get("/metrics").text
                return float(re.search(r"^duiyi_output_tokens_total (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]

            def call(request: list[str]) -> int:
                body = {"text": " ".join(request), "targets": ["zh-Hans"], "glossaries": []}
                response = client.post("/v1/translate", json=body)
                response.raise_for_status()
                return 0

            before = tokens_so_far()
            result = _concurrent(name, call, requests, beam=beam, device=device, concurrency=concurrency)
            result.output_tokens = int(tokens_so_far() - before)
            return result
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
