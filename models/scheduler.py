"""Cross-request batching: one worker owns the engine; sentences from every caller share batches.

Shaped like vLLM v1's engine step, without its size: the scheduler plans on the CPU
(`schedule() -> ScheduledBatch`), the engine runs the batch on the device (`execute`), and the
scheduler resolves each caller's future from the output (`update`). The Scheduler class does no
I/O and never touches a model, so its decisions are tested on plain data.

Guarantees:
- batches are cut by a token budget (padded source + allowed output), sorted by length, after a
  short bounded wait for company;
- identical sentences (same text, same decoding options) are decoded once, whether they wait
  together or arrive again soon after (a bounded LRU cache);
- the queue is bounded: a caller that would overflow it is refused whole (`QueueFull`, with a
  retry estimate), so nothing accepted is ever dropped;
- a sentence whose caller gave up (deadline passed, or cancelled) is not decoded.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from models.batching import output_cap
from models.engine import DEFAULT_DECODE, DeadlineExceeded, DecodeOptions, Engine, Translation
from models.specs import ModelSpec

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The queue cannot take these sentences now; try again after `retry_after_s`."""

    def __init__(self, queued: int, limit: int, retry_after_s: float) -> None:
        super().__init__(f"the translation queue is full ({queued} of {limit} sentences waiting)")
        self.retry_after_s = retry_after_s


class RequestStatus(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    EXPIRED = "expired"  # deadline passed while waiting: never decoded
    CANCELLED = "cancelled"  # the caller gave up: never decoded


@dataclass(eq=False)
class Request:
    """One sentence of one caller."""

    id: int
    source: str
    source_tokens: int
    options: DecodeOptions
    arrival: float  # time.monotonic() when queued
    deadline: float | None  # monotonic; None: no deadline
    future: Future[Translation] = field(default_factory=Future)
    status: RequestStatus = RequestStatus.WAITING

    @property
    def key(self) -> tuple[str, DecodeOptions]:
        return (self.source, self.options)


@dataclass(frozen=True)
class ScheduledBatch:
    # Distinct sentences to decode, shortest first; each may stand for several waiting requests.
    sources: tuple[str, ...]
    options: DecodeOptions
    # The requests each source resolves, in the same order as `sources`.
    requests: tuple[tuple[Request, ...], ...]
    # Padded tokens the batch may use (rows × (longest source + its output cap)).
    padded_tokens: int


class Observer(Protocol):
    """Hooks for metrics; the service implements them with Prometheus."""

    def queue_depth(self, sentences: int) -> None: ...
    def batch_done(self, rows: int, output_tokens: int, seconds: float) -> None: ...
    def sentence_done(self, latency_s: float) -> None: ...
    def rejected(self, sentences: int) -> None: ...
    def expired(self, sentences: int) -> None: ...


class Scheduler:
    """Waiting sentences and the rules for choosing the next batch. Not thread-safe by itself:
    BatchingEngine holds its lock around every call."""

    def __init__(
        self,
        *,
        max_batch_tokens: int,
        max_batch_size: int,
        max_queue: int,
        max_wait_s: float,
        ceiling: int,
        cache_size: int = 4096,
    ) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.ceiling = ceiling
        self.waiting: OrderedDict[tuple[str, DecodeOptions], list[Request]] = OrderedDict()
        self.cache: OrderedDict[tuple[str, DecodeOptions], Translation] = OrderedDict()
        self.cache_size = cache_size
        self._ids = itertools.count()
        # Recent throughput, for Retry-After: sentences per second, smoothed.
        self.rate = 0.0

    @property
    def queued(self) -> int:
        return sum(len(reqs) for reqs in self.waiting.values())

    def _cap(self, tokens: int, options: DecodeOptions) -> int:
        return output_cap(tokens, ratio=options.max_length_ratio, extra=options.max_length_extra, ceiling=self.ceiling)

    def add(
        self,
        sources: Sequence[str],
        lengths: Sequence[int],
        options: DecodeOptions,
        *,
        now: float,
        deadline: float | None,
    ) -> list[Request]:
        """Queue one caller's sentences, all or none. Cached ones resolve at once."""
        fresh = sum(1 for s in sources if (s, options) not in self.cache)
        if fresh and self.queued + fresh > self.max_queue:
            backlog = self.queued + fresh
            retry = max(1.0, backlog / self.rate) if self.rate > 0 else 5.0
            raise QueueFull(self.queued, self.max_queue, round(min(retry, 300.0), 1))
        requests = []
        for source, tokens in zip(sources, lengths, strict=True):
            request = Request(next(self._ids), source, tokens, options, now, deadline)
            hit = self.cache.get(request.key)
            if hit is not None:
                self.cache.move_to_end(request.key)
                request.status = RequestStatus.FINISHED
                request.future.set_result(hit)
            else:
                self.waiting.setdefault(request.key, []).append(request)
            requests.append(request)
        return requests

    def drop_abandoned(self, now: float) -> list[Request]:
        """Remove waiting requests whose deadline passed or whose caller cancelled."""
        dropped: list[Request] = []
        for key in list(self.waiting):
            keep = []
            for req in self.waiting[key]:
                if req.future.cancelled():
                    req.status = RequestStatus.CANCELLED
                    dropped.append(req)
                elif req.deadline is not None and now >= req.deadline:
                    req.status = RequestStatus.EXPIRED
                    req.future.set_exception(DeadlineExceeded("the deadline passed before decoding started"))
                    dropped.append(req)
                else:
                    keep.append(req)
            if keep:
                self.waiting[key] = keep
            else:
                del self.waiting[key]
        return dropped

    def ready_at(self) -> float | None:
        """When the oldest waiting sentence has waited long enough to go without more company."""
        if not self.waiting:
            return None
        oldest = min(reqs[0].arrival for reqs in self.waiting.values())
        return oldest + self.max_wait_s

    def budget_full(self) -> bool:
        """Enough is waiting to fill a batch: no reason to wait for more."""
        if len(self.waiting) >= self.max_batch_size:
            return True
        longest = max((reqs[0].source_tokens for reqs in self.waiting.values()), default=0)
        options = next(iter(self.waiting))[1] if self.waiting else DecodeOptions()
        return len(self.waiting) * (longest + self._cap(longest, options)) >= self.max_batch_tokens

    def schedule(self) -> ScheduledBatch | None:
        """The next batch, built around the oldest waiting sentence (so none waits forever): with
        its decoding options, it and the sentences closest to it in length, while the batch fits
        the row and token budgets."""
        if not self.waiting:
            return None
        anchor = next(iter(self.waiting))
        options = anchor[1]
        size = {k: v[0].source_tokens for k, v in self.waiting.items() if k[1] == options}
        order = sorted(size, key=lambda k: abs(size[k] - size[anchor]))
        chosen: list[tuple[str, DecodeOptions]] = []
        longest = size[anchor]
        for key in order:
            high = max(longest, size[key])
            rows = len(chosen) + 1
            if chosen and (
                rows > self.max_batch_size or rows * (high + self._cap(high, options)) > self.max_batch_tokens
            ):
                continue
            chosen.append(key)
            longest = high
        chosen.sort(key=lambda k: size[k])
        requests = []
        for key in chosen:
            reqs = self.waiting.pop(key)
            for req in reqs:
                req.status = RequestStatus.RUNNING
            requests.append(tuple(reqs))
        padded = len(chosen) * (longest + self._cap(longest, options))
        return ScheduledBatch(tuple(k[0] for k in chosen), options, tuple(requests), padded)

    def update(self, batch: ScheduledBatch, outputs: Sequence[Translation], *, seconds: float) -> list[Request]:
        """Resolve the batch's requests from the engine's output; remember the results."""
        finished: list[Request] = []
        for source, reqs, result in zip(batch.sources, batch.requests, outputs, strict=True):
            self.cache[(source, batch.options)] = result
            self.cache.move_to_end((source, batch.options))
            for req in reqs:
                req.status = RequestStatus.FINISHED
                if not req.future.cancelled():
                    req.future.set_result(result)
                finished.append(req)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        if seconds > 0:
            current = len(batch.sources) / seconds
            self.rate = current if self.rate == 0 else 0.8 * self.rate + 0.2 * current
        return finished

    def fail(self, batch: ScheduledBatch, error: BaseException) -> None:
        for reqs in batch.requests:
            for req in reqs:
                req.status = RequestStatus.FINISHED
                if not req.future.cancelled():
                    req.future.set_exception(error)


class BatchingEngine:
    """An Engine whose calls from many threads are merged into shared batches by one worker thread.

    Drop-in for the pipeline: `translate_batch` queues the caller's sentences and waits for them.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        max_queue: int = 4096,
        max_wait_s: float = 0.005,
        cache_size: int = 4096,
        observer: Observer | None = None,
    ) -> None:
        self.engine = engine
        self.name = engine.name
        self.spec: ModelSpec = engine.spec
        self.device = engine.device
        self.max_source_tokens = engine.max_source_tokens
        self.scheduler = Scheduler(
            max_batch_tokens=max_batch_tokens,
            max_batch_size=max_batch_size,
            max_queue=max_queue,
            max_wait_s=max_wait_s,
            ceiling=engine.max_source_tokens,
            cache_size=cache_size,
        )
        self.observer = observer
        self.batches = 0  # batches executed, for tests and logs
        self._cond = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="duiyi-engine", daemon=True)
        self._worker.start()

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def translate_batch(
        self,
        sources: Sequence[str],
        *,
        options: DecodeOptions = DEFAULT_DECODE,
        max_batch_tokens: int = 0,
        max_batch_size: int = 0,
        deadline: float | None = None,
    ) -> list[Translation]:
        """Translate `sources` in shared batches. Raises QueueFull without queueing anything, or
        DeadlineExceeded when `deadline` (time.monotonic()) passes first; what was not yet decoded
        then never is."""
        lengths = [self.engine.count_tokens(s) for s in sources]
        with self._cond:
            try:
                requests = self.scheduler.add(sources, lengths, options, now=time.monotonic(), deadline=deadline)
            except QueueFull:
                if self.observer:
                    self.observer.rejected(len(sources))
                raise
            self._observe_queue()
            self._cond.notify()
        try:
            results = []
            for req in requests:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    results.append(req.future.result(timeout=timeout))
                except (FutureTimeout, CancelledError) as exc:
                    raise DeadlineExceeded("the deadline passed before the translation was done") from exc
            return results
        except BaseException:
            for req in requests:
                req.future.cancel()  # sentences not started are skipped by the worker
            raise

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._worker.join(timeout=30)

    def _observe_queue(self) -> None:
        if self.observer:
            self.observer.queue_depth(self.scheduler.queued)

    def _next_batch(self) -> ScheduledBatch | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                now = time.monotonic()
                dropped = self.scheduler.drop_abandoned(now)
                if dropped and self.observer:
                    self.observer.expired(len(dropped))
                ready = self.scheduler.ready_at()
                if ready is not None and (now >= ready or self.scheduler.budget_full()):
                    batch = self.scheduler.schedule()
                    self._observe_queue()
                    return batch
                self._cond.wait(timeout=None if ready is None else max(0.0, ready - now))

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            try:
                outputs = self.engine.translate_batch(
                    list(batch.sources),
                    options=batch.options,
                    max_batch_tokens=max(batch.padded_tokens, 1),
                    max_batch_size=len(batch.sources),
                )
            except Exception as exc:  # the callers get the error; the worker lives on
                log.exception("batch of %d sentences failed", len(batch.sources))
                with self._cond:
                    self.scheduler.fail(batch, exc)
                continue
            seconds = time.monotonic() - started
            if self.observer:  # before the callers wake, so their next look at the metrics sees it
                self.observer.batch_done(len(batch.sources), sum(o.output_tokens for o in outputs), seconds)
            with self._cond:
                finished = self.scheduler.update(batch, outputs, seconds=seconds)
                self.batches += 1
            if self.observer:
                end = time.monotonic()
                for req in finished:
                    self.observer.sentence_done(end - req.arrival)
