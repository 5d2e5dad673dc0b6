"""Cross-request batching: the scheduler's decisions on plain data, and the batching engine on a
real tiny model under concurrent callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from models.engine import DEFAULT_DECODE, SAFE_DECODE, DeadlineExceeded, DecodeOptions, Engine, Translation
from models.scheduler import BatchingEngine, QueueFull, RequestStatus, Scheduler


def scheduler(**kwargs: Any) -> Scheduler:
    defaults: dict[str, Any] = {
        "max_batch_tokens": 400,
        "max_batch_size": 8,
        "max_queue": 20,
        "max_wait_s": 0.01,
        "ceiling": 512,
    }
    return Scheduler(**{**defaults, **kwargs})


def test_batches_are_length_sorted_within_the_token_budget() -> None:
    s = scheduler(max_batch_tokens=200)
    lengths = [30, 5, 12, 5, 40, 7]
    s.add([f"s{i}" for i in range(6)], lengths, DEFAULT_DECODE, now=0.0, deadline=None)
    seen = []
    while (batch := s.schedule()) is not None:
        tokens = [r[0].source_tokens for r in batch.requests]
        assert tokens == sorted(tokens)
        assert batch.padded_tokens <= 200 or len(batch.sources) == 1
        seen.extend(tokens)
    assert sorted(seen) == sorted(lengths)


def test_beam_search_batches_count_every_hypothesis() -> None:
    """Beam 4 decodes four rows per sentence: the same budget takes a quarter of the sentences."""
    sizes = {}
    for beams in (1, 4):
        s = scheduler(max_batch_tokens=400, max_batch_size=64, max_queue=100)
        options = DecodeOptions(beam_size=beams, max_length_ratio=1.0, max_length_extra=0)
        s.add([f"s{i}" for i in range(40)], [10] * 40, options, now=0.0, deadline=None)
        assert s.budget_full()
        batch = s.schedule()
        assert batch is not None and batch.padded_tokens <= 400
        sizes[beams] = len(batch.sources)
    assert sizes == {1: 20, 4: 5}


def test_the_oldest_sentence_is_never_passed_over() -> None:
    s = scheduler(max_batch_tokens=200, max_batch_size=4)
    s.add(["long"], [60], DEFAULT_DECODE, now=0.0, deadline=None)
    s.add([f"short {i}" for i in range(10)], [5] * 10, DEFAULT_DECODE, now=1.0, deadline=None)
    batch = s.schedule()
    assert batch is not None and "long" in batch.sources


def test_identical_sentences_wait_once_and_are_cached() -> None:
    s = scheduler()
    first = s.add(["a", "b"], [3, 3], DEFAULT_DECODE, now=0.0, deadline=None)
    second = s.add(["a"], [3], DEFAULT_DECODE, now=0.0, deadline=None)
    batch = s.schedule()
    assert batch is not None and batch.sources == ("a", "b")
    assert [len(r) for r in batch.requests] == [2, 1]
    s.update(batch, [Translation("甲", 3, 1), Translation("乙", 3, 1)], seconds=0.1)
    assert first[0].future.result().text == second[0].future.result().text == "甲"
    again = s.add(["a"], [3], DEFAULT_DECODE, now=1.0, deadline=None)
    assert again[0].status is RequestStatus.FINISHED and again[0].future.result().text == "甲"
    assert s.queued == 0


def test_a_full_queue_refuses_the_whole_call_with_a_retry_estimate() -> None:
    s = scheduler(max_queue=5)
    s.add(["a", "b", "c"], [1, 1, 1], DEFAULT_DECODE, now=0.0, deadline=None)
    with pytest.raises(QueueFull) as info:
        s.add(["d", "e", "f"], [1, 1, 1], DEFAULT_DECODE, now=0.0, deadline=None)
    assert info.value.retry_after_s >= 1
    assert s.queued == 3


def test_abandoned_sentences_are_never_scheduled() -> None:
    s = scheduler()
    late = s.add(["late"], [2], DEFAULT_DECODE, now=0.0, deadline=1.0)
    gone = s.add(["gone"], [2], DEFAULT_DECODE, now=0.0, deadline=None)
    kept = s.add(["kept"], [2], DEFAULT_DECODE, now=0.0, deadline=None)
    gone[0].future.cancel()
    dropped = s.drop_abandoned(now=2.0)
    assert {r.status for r in dropped} == {RequestStatus.EXPIRED, RequestStatus.CANCELLED}
    with pytest.raises(DeadlineExceeded):
        late[0].future.result(timeout=0)
    batch = s.schedule()
    assert batch is not None and batch.sources == ("kept",)
    assert kept[0].status is RequestStatus.RUNNING


def test_one_batch_holds_one_kind_of_decoding() -> None:
    s = scheduler()
    s.add(["a"], [2], DEFAULT_DECODE, now=0.0, deadline=None)
    s.add(["b"], [2], SAFE_DECODE, now=0.0, deadline=None)
    s.add(["c"], [2], DEFAULT_DECODE, now=0.0, deadline=None)
    first, second = s.schedule(), s.schedule()
    assert first is not None and first.sources == ("a", "c") and first.options == DEFAULT_DECODE
    assert second is not None and second.sources == ("b",) and second.options == SAFE_DECODE


class Recording:
    """The real engine, with each batch it runs recorded and an optional gate to hold it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.spec, self.device = engine.name, engine.spec, engine.device
        self.max_source_tokens = engine.max_source_tokens
        self.batches: list[list[str]] = []
        self.results: dict[str, Translation] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def translate_batch(self, sources: Sequence[str], **kwargs: Any) -> list[Translation]:
        self.entered.set()
        self.gate.wait(timeout=30)
        out = self.engine.translate_batch(sources, **kwargs)
        self.batches.append(list(sources))
        self.results.update(zip(sources, out, strict=True))
        return out


@pytest.fixture
def recording(engines: dict[str, Engine]) -> Recording:
    return Recording(engines["marian"])


def test_concurrent_callers_share_batches_and_get_their_own_results(recording: Recording) -> None:
    batching = BatchingEngine(recording, max_wait_s=0.2, max_batch_size=64)
    callers = [[f"Caller {c} says sentence {i} about Japan." for i in range(c + 1)] for c in range(6)]
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(batching.translate_batch, callers))
    finally:
        batching.close()
    assert len(recording.batches) < len(callers)
    for sources, got in zip(callers, answers, strict=True):
        assert got == [recording.results[s] for s in sources]


def test_identical_sentences_across_callers_are_decoded_once(recording: Recording) -> None:
    batching = BatchingEngine(recording, max_wait_s=0.2)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(batching.translate_batch, [["Same sentence.", f"Own {i}."] for i in range(4)]))
        again = batching.translate_batch(["Same sentence."])
    finally:
        batching.close()
    decoded = [s for batch in recording.batches for s in batch]
    assert decoded.count("Same sentence.") == 1
    assert len({a[0] for a in answers}) == 1 and again[0] == answers[0][0]


def test_queue_full_refuses_and_keeps_what_was_accepted(recording: Recording) -> None:
    batching = BatchingEngine(recording, max_wait_s=0.0, max_queue=3, max_batch_size=1)
    recording.gate.clear()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            accepted = pool.submit(batching.translate_batch, ["One.", "Two.", "Three."])
            assert recording.entered.wait(timeout=10)  # the worker holds "One."; two still wait
            with pytest.raises(QueueFull) as info:
                batching.translate_batch(["Four.", "Five."])
            assert info.value.retry_after_s > 0
            recording.gate.set()
            assert len(accepted.result(timeout=60)) == 3
    finally:
        recording.gate.set()
        batching.close()
    decoded = sorted(s for b in recording.batches for s in b)
    assert decoded == ["One.", "Three.", "Two."]


def test_a_caller_past_its_deadline_is_not_decoded(recording: Recording) -> None:
    batching = BatchingEngine(recording, max_wait_s=0.0, max_batch_size=1)
    recording.gate.clear()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(batching.translate_batch, ["Blocking sentence."])
            assert recording.entered.wait(timeout=10)
            with pytest.raises(DeadlineExceeded):
                batching.translate_batch(["Too late."], deadline=time.monotonic() + 0.1)
            recording.gate.set()
            first.result(timeout=60)
            batching.translate_batch(["After."])
    finally:
        recording.gate.set()
        batching.close()
    decoded = [s for b in recording.batches for s in b]
    assert "Too late." not in decoded and "After." in decoded


def test_decode_options_pass_through(recording: Recording) -> None:
    batching = BatchingEngine(recording, max_wait_s=0.0)
    try:
        out = batching.translate_batch(
            ["Hello there."], options=DecodeOptions(max_length_ratio=0.5, max_length_extra=1)
        )
    finally:
        batching.close()
    assert out[0].output_tokens <= int(out[0].source_tokens * 0.5) + 1
