"""Cross-request batching: one worker owns the engine; sentences from every caller share batches.

Shaped like vLLM v1's engine step, without its size: the scheduler plans on the CPU, the engine
runs on the device, and the scheduler resolves each caller's future from the output. The
Scheduler class does no I/O and never touches a model, so its decisions are tested on plain data.

Two ways to run the engine, chosen per sentence by its decoding options:
- continuous (greedy decoding, where the engine offers a running batch, models.continuous): the
  worker keeps one batch running; between two decoding steps new sentences join (`admit`) and
  finished ones leave, resolving their callers at once;
- whole batches (beam search, penalties, and engines without a running batch): `schedule` cuts a
  batch, the engine decodes it from first step to last, `update` resolves it. These run between
  two steps of the running batch.

Guarantees:
- batches are cut by a token budget (padded source + allowed output, times the beam size: each
  hypothesis is a decoder row; for the running batch, rows × (longest source + longest cap)); a
  whole batch waits a few milliseconds at most for company, the running batch none (newcomers
  join it at the next step);
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
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from models.batching import output_cap
from models.engine import (
    DEFAULT_DECODE,
    DeadlineExceeded,
    DecodeOptions,
    Engine,
    Translation,
    check_lengths,
    is_greedy,
)
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
    requests: tuple[list[Request], ...]
    # Padded tokens the batch may use (rows × beams × (longest source + its output cap)).
    padded_tokens: int


def _settle(
    future: Future[Translation], *, result: Translation | None = None, error: BaseException | None = None
) -> None:
    """Give a caller its outcome, unless it has given up (a cancel may race with this)."""
    try:
        if error is not None:
            future.set_exception(error)
        elif result is not None:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled by its caller in the meantime


@dataclass(frozen=True)
class Admission:
    """A distinct sentence joining the running batch, and the requests it resolves."""

    source: str
    options: DecodeOptions
    requests: list[Request]  # grows while it runs if the same sentence is asked for again
    source_tokens: int
    cap: int


Select = Callable[[DecodeOptions], bool]


class Observer(Protocol):
    """Hooks for metrics; the service implements them with Prometheus."""

    def queue_depth(self, sentences: int) -> None: ...
    def batch_done(self, rows: int, output_tokens: int, seconds: float, finished: int) -> None:
        """One engine pass: a whole batch, or one decoding step of the running batch. `rows`
        sentences were decoded together; `finished` of them are done."""
        ...

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
        # Sentences being decoded, with every request waiting for each: a repeat joins them.
        self.running: dict[tuple[str, DecodeOptions], list[Request]] = {}
        self.cache_size = cache_size
        # Kept as requests come and go, so the worker's per-step questions cost no scan of the queue:
        # requests waiting, and waiting sentences per kind of decoding.
        self._queued = 0
        self._kinds: Counter[DecodeOptions] = Counter()
        self._ids = itertools.count()
        # Recent throughput, for Retry-After: sentences per second, smoothed.
        self.rate = 0.0

    @property
    def queued(self) -> int:
        return self._queued

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
        fresh = sum(1 for s in sources if (s, options) not in self.cache and (s, options) not in self.running)
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
            elif request.key in self.running:  # being decoded now: this caller shares the result
                request.status = RequestStatus.RUNNING
                self.running[request.key].append(request)
            else:
                if request.key not in self.waiting:
                    self._kinds[options] += 1
                self.waiting.setdefault(request.key, []).append(request)
                self._queued += 1
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
                    _settle(req.future, error=DeadlineExceeded("the deadline passed before decoding started"))
                    dropped.append(req)
                else:
                    keep.append(req)
            if keep:
                self.waiting[key] = keep
            else:
                del self.waiting[key]
                self._kinds[key[1]] -= 1
        self._queued -= len(dropped)
        return dropped

    def take_all(self) -> list[list[Request]]:
        """Empty the queue; what was waiting."""
        waiting = list(self.waiting.values())
        self.waiting.clear()
        self._queued = 0
        self._kinds.clear()
        return waiting

    def _waiting(self, select: Select | None) -> Iterator[tuple[str, DecodeOptions]]:
        """Waiting sentences that `select` takes, in the order their first request arrived."""
        if select is not None and not any(n and select(kind) for kind, n in self._kinds.items()):
            return
        for key in self.waiting:
            if select is None or select(key[1]):
                yield key

    def ready_at(self, select: Select | None = None) -> float | None:
        """When the first waiting sentence (of those `select` takes; sentences wait in the order
        they were first asked for) has waited long enough to go without more company."""
        oldest = next(self._waiting(select), None)
        return None if oldest is None else self.waiting[oldest][0].arrival + self.max_wait_s

    def budget_full(self, select: Select | None = None) -> bool:
        """Enough is waiting to fill a batch: no reason to wait for more."""
        keys = list(self._waiting(select))
        if len(keys) >= self.max_batch_size:
            return True
        if not keys:
            return False
        longest = max(self.waiting[k][0].source_tokens for k in keys)
        options = keys[0][1]
        return len(keys) * options.beam_size * (longest + self._cap(longest, options)) >= self.max_batch_tokens

    def schedule(self, select: Select | None = None) -> ScheduledBatch | None:
        """The next batch, built around the oldest waiting sentence (so none waits forever): with
        its decoding options, it and the sentences closest to it in length, while the batch fits
        the row and token budgets."""
        keys = list(self._waiting(select))
        if not keys:
            return None
        anchor = keys[0]
        options = anchor[1]
        size = {k: self.waiting[k][0].source_tokens for k in keys if k[1] == options}
        order = sorted(size, key=lambda k: abs(size[k] - size[anchor]))
        chosen: list[tuple[str, DecodeOptions]] = []
        longest = size[anchor]
        for key in order:
            high = max(longest, size[key])
            rows = len(chosen) + 1
            if chosen and (
                rows > self.max_batch_size
                or rows * options.beam_size * (high + self._cap(high, options)) > self.max_batch_tokens
            ):
                continue
            chosen.append(key)
            longest = high
        chosen.sort(key=lambda k: size[k])
        requests = [self._start(key) for key in chosen]
        padded = len(chosen) * options.beam_size * (longest + self._cap(longest, options))
        return ScheduledBatch(tuple(k[0] for k in chosen), options, tuple(requests), padded)

    def _start(self, key: tuple[str, DecodeOptions]) -> list[Request]:
        reqs = self.waiting.pop(key)
        self._queued -= len(reqs)
        self._kinds[key[1]] -= 1
        for req in reqs:
            req.status = RequestStatus.RUNNING
        self.running[key] = reqs
        return reqs

    def admit(self, select: Select, running: Sequence[tuple[int, int]]) -> list[Admission]:
        """Sentences to add to a running batch whose rows have these (source tokens, output cap):
        the oldest first (strictly, so a long sentence is not overtaken for ever), while rows ×
        (longest source + longest cap) stays within the token budget and the rows within the row
        limit. A sentence over the budget on its own is admitted into an empty batch."""
        rows = len(running)
        longest_source = max((s for s, _ in running), default=0)
        longest_cap = max((c for _, c in running), default=0)
        chosen: list[tuple[tuple[str, DecodeOptions], int, int]] = []
        for key in self._waiting(select):
            tokens = self.waiting[key][0].source_tokens
            cap = self._cap(tokens, key[1])
            high_source, high_cap = max(longest_source, tokens), max(longest_cap, cap)
            if rows + 1 > self.max_batch_size or (
                rows and (rows + 1) * (high_source + high_cap) > self.max_batch_tokens
            ):
                break
            chosen.append((key, tokens, cap))
            rows, longest_source, longest_cap = rows + 1, high_source, high_cap
        return [Admission(key[0], key[1], self._start(key), tokens, cap) for key, tokens, cap in chosen]

    def resolve(self, source: str, options: DecodeOptions, requests: Sequence[Request], result: Translation) -> None:
        """One decoded sentence: its callers get the result, and the cache remembers it."""
        self.running.pop((source, options), None)
        self.cache[(source, options)] = result
        self.cache.move_to_end((source, options))
        for req in requests:
            req.status = RequestStatus.FINISHED
            _settle(req.future, result=result)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def update(self, batch: ScheduledBatch, outputs: Sequence[Translation], *, seconds: float) -> list[Request]:
        """Resolve the batch's requests from the engine's output; remember the results."""
        for source, reqs, result in zip(batch.sources, batch.requests, outputs, strict=True):
            self.resolve(source, batch.options, reqs, result)
        self.observe_rate(len(batch.sources), seconds)
        return [req for reqs in batch.requests for req in reqs]

    def observe_rate(self, sentences: int, seconds: float) -> None:
        """Sentences decoded in `seconds`, for the Retry-After estimate."""
        if seconds > 0:
            current = sentences / seconds
            self.rate = current if self.rate == 0 else 0.8 * self.rate + 0.2 * current

    def abandon(self, running: Admission) -> bool:
        """Whether every caller of a running sentence has given up; if so it is forgotten, and
        the engine may stop decoding it."""
        if not all(req.future.cancelled() for req in running.requests):
            return False
        self.running.pop((running.source, running.options), None)
        for req in running.requests:
            req.status = RequestStatus.CANCELLED
        return True

    def fail(self, requests: Sequence[Sequence[Request]], error: BaseException) -> None:
        for reqs in requests:
            for req in reqs:
                self.running.pop(req.key, None)
                req.status = RequestStatus.FINISHED
                _settle(req.future, error=error)


class BatchingEngine:
    """An Engine whose calls from many threads are merged into shared batches by one worker thread.

    Drop-in for the pipeline: `translate_batch` queues the caller's sentences and waits for them.
    `continuous=False` turns the running batch off (every sentence goes in whole batches);
    `cuda_graphs` replays its steps as CUDA graphs on a CUDA device (models.continuous).
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
        continuous: bool = True,
        cuda_graphs: bool = False,
    ) -> None:
        from models.continuous import stepper_for

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
        # With CUDA graphs, caches within the token budget stay allocated between bursts, so the
        # graphs captured over them are reused.
        self.stepper = (
            stepper_for(engine, cuda_graphs=cuda_graphs, resting_tokens=max_batch_tokens) if continuous else None
        )
        self.batches = 0  # whole batches executed, for tests and logs
        self.steps = 0  # decoding steps of the running batch
        self._finished, self._busy_s = 0, 0.0
        self._swept = 0.0
        self._cond = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="duiyi-engine", daemon=True)
        self._worker.start()

    @property
    def continuous(self) -> bool:
        return self.stepper is not None

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
        check_lengths(lengths, self.max_source_tokens)  # refused before queueing, not in the worker
        with self._cond:
            if self._stop:
                raise RuntimeError("the translation engine has been closed")
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
                req.future.cancel()  # sentences not started are skipped; running rows are dropped
            raise

    def close(self) -> None:
        """Stop the worker; callers still waiting get an error rather than waiting for ever."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._worker.join(timeout=30)

    def _observe_queue(self) -> None:
        if self.observer:
            self.observer.queue_depth(self.scheduler.queued)

    def _steppable(self, options: DecodeOptions) -> bool:
        return self.stepper is not None and is_greedy(options)

    def _whole(self, options: DecodeOptions) -> bool:
        return not self._steppable(options)

    def _next(self) -> tuple[ScheduledBatch | None, list[Admission]] | None:
        """What the worker does next: a whole batch, sentences to admit into the running batch
        (possibly none, to take a step), or None to stop. Waits while there is nothing to do."""
        stepper = self.stepper
        with self._cond:
            while True:
                if self._stop:
                    return None
                now = time.monotonic()
                running = bool(stepper and stepper.rows)
                # A scan of the whole queue: between steps of a running batch, every 10 ms at most.
                if not running or now - self._swept >= 0.01:
                    self._swept = now
                    dropped = self.scheduler.drop_abandoned(now)
                    if dropped and self.observer:
                        self.observer.expired(len(dropped))
                ready = self.scheduler.ready_at(self._whole)
                if ready is not None and (now >= ready or self.scheduler.budget_full(self._whole)):
                    batch = self.scheduler.schedule(self._whole)
                    self._observe_queue()
                    return batch, []
                # The running batch takes newcomers at once, idle or not: company that arrives a
                # moment later joins at the next step, so waiting for it would only add latency.
                if stepper is not None and (running or self.scheduler.ready_at(self._steppable) is not None):
                    rows = [(r.source_tokens, r.cap) for r in stepper.rows]
                    admitted = self.scheduler.admit(self._steppable, rows)
                    if admitted:
                        self._observe_queue()
                    return None, admitted
                self._cond.wait(timeout=None if ready is None else max(0.0, ready - now))

    def _run(self) -> None:
        try:
            while True:
                work = self._next()
                if work is None:
                    return
                batch, admitted = work
                if batch is not None:
                    self._execute(batch)
                else:
                    self._step(admitted)
        finally:
            self._abandon_all()

    def _execute(self, batch: ScheduledBatch) -> None:
        """Decode a whole batch and resolve its callers."""
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
                self.scheduler.fail(batch.requests, exc)
            return
        seconds = time.monotonic() - started
        if self.observer:  # before the callers wake, so their next look at the metrics sees it
            rows = len(batch.sources)
            self.observer.batch_done(rows, sum(o.output_tokens for o in outputs), seconds, rows)
        with self._cond:
            finished = self.scheduler.update(batch, outputs, seconds=seconds)
            self.batches += 1
        self._observe_latency(finished)

    def _step(self, admitted: list[Admission]) -> None:
        """Admit newcomers into the running batch, drop rows nobody waits for, take one step."""
        stepper = self.stepper
        assert stepper is not None
        started = time.monotonic()
        try:
            stepper.admit([(a, a.source, a.cap) for a in admitted])
            if self.steps % 8 == 0:
                with self._cond:  # so no repeat of the sentence joins a row being dropped
                    gone = [i for i, row in enumerate(stepper.rows) if self.scheduler.abandon(row.owner)]
                if gone:
                    stepper.remove(gone)
                    if self.observer:
                        self.observer.expired(len(gone))
            rows = len(stepper.rows)
            done = stepper.step()
        except Exception as exc:  # the callers get the error; the worker lives on with an empty batch
            log.exception("running batch of %d sentences failed", len(stepper.rows))
            with self._cond:
                self.scheduler.fail([a.requests for a in admitted], exc)
                self.scheduler.fail([row.owner.requests for row in stepper.clear()], exc)
            return
        seconds = time.monotonic() - started
        self.steps += 1
        if not done:
            self._busy_s += seconds
        if self.observer and rows:
            emitted = rows - len(done)  # a finishing row's last step emits EOS, not a token
            self.observer.batch_done(rows, emitted, seconds, len(done))
        if not done:
            return
        with self._cond:
            for row, result in done:
                owner: Admission = row.owner
                self.scheduler.resolve(owner.source, owner.options, owner.requests, result)
            self._finished += len(done)
            self._busy_s += seconds
            if self._busy_s >= 1.0:  # Retry-After's rate: sentences finished per second of stepping
                self.scheduler.observe_rate(self._finished, self._busy_s)
                self._finished, self._busy_s = 0, 0.0
        self._observe_latency([req for row, _ in done for req in row.owner.requests])

    def _observe_latency(self, finished: Sequence[Request]) -> None:
        if self.observer:
            end = time.monotonic()
            for req in finished:
                self.observer.sentence_done(end - req.arrival)

    def _abandon_all(self) -> None:
        """The worker stopped: fail whatever still waits or runs, so no caller waits for ever."""
        error = RuntimeError("the translation engine stopped")
        with self._cond:
            self._stop = True
            self.scheduler.fail(self.scheduler.take_all(), error)
            if self.stepper is not None:
                self.scheduler.fail([row.owner.requests for row in self.stepper.clear()], error)
