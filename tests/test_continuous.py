"""The running batch (models.continuous) on a real tiny Marian model: the same tokens as the batch
path, sentences joining and leaving between steps, the scheduler's admission rules, and the
batching engine's continuous mode under concurrent callers, deadlines and mixed decoding."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from models.batching import output_cap
from models.continuous import Row, Stepper, row_bucket, stepper_for
from models.engine import (
    DEFAULT_DECODE,
    SAFE_DECODE,
    DeadlineExceeded,
    DecodeOptions,
    Engine,
    TransformersEngine,
    Translation,
    load_engine,
)
from models.scheduler import BatchingEngine, Scheduler
from models.tiny import build_marian

SOURCES = [
    "Abe Shinzo met John Kerry in Tokyo.",
    "Futenma.",
    "The SCC met on Monday to discuss the relocation of the base in Okinawa, and much else besides.",
    "Hello world",
    "A much longer sentence about the alliance between two countries, which goes on for a while, and then on.",
    "Short one.",
    "Officials said the talks would continue next week in Washington.",
]


def caps_of(engine: Engine, sources: list[str], options: DecodeOptions = DEFAULT_DECODE) -> list[int]:
    return [
        output_cap(
            engine.count_tokens(s),
            ratio=options.max_length_ratio,
            extra=options.max_length_extra,
            ceiling=engine.max_source_tokens,
        )
        for s in sources
    ]


def test_the_running_batch_gives_the_batch_paths_tokens_while_rows_come_and_go(engines: dict, family: str) -> None:
    """Both decoder layouts: Marian (norm after each block) and NLLB (norm before, a forced language
    token first)."""
    engine: TransformersEngine = engines[family]
    sources = SOURCES * 3
    expected = engine.translate_batch(sources)
    stepper = stepper_for(engine)
    assert isinstance(stepper, Stepper)
    caps = caps_of(engine, sources)
    pending = list(range(len(sources)))
    got: dict[int, Any] = {}
    rng = random.Random(7)
    most = 0
    while pending or stepper.rows:
        take = rng.randint(0, 3)  # 0 to 3 newcomers between two steps
        batch, pending = pending[:take], pending[take:]
        stepper.admit([(i, sources[i], caps[i]) for i in batch])
        most = max(most, len(stepper.rows))
        for row, translation in stepper.step():
            got[row.owner] = translation
    assert most > 3  # rows overlapped: some joined while others were running
    assert [got[i] for i in range(len(sources))] == expected
    assert stepper.capacity == (0, 0, 0)  # an empty batch holds no cache


def test_removed_rows_leave_the_others_untouched(engines: dict, family: str) -> None:
    engine: TransformersEngine = engines[family]
    stepper = stepper_for(engine)
    assert stepper is not None
    caps = caps_of(engine, SOURCES)
    stepper.admit([(i, s, c) for i, (s, c) in enumerate(zip(SOURCES, caps, strict=True))])
    got = {row.owner: t for _ in range(2) for row, t in stepper.step()}
    stepper.remove([i for i, row in enumerate(stepper.rows) if row.owner in (0, 2, 3)])
    assert {row.owner for row in stepper.rows} == {1, 4, 5, 6} - set(got)
    while stepper.rows:
        got.update({row.owner: t for row, t in stepper.step()})
    expected = engine.translate_batch(SOURCES)
    assert set(got) >= {1, 4, 5, 6}
    assert all(got[i] == expected[i] for i in (1, 4, 5, 6))


def test_static_shapes_give_the_exact_shapes_tokens(engines: dict, family: str) -> None:
    """Steps over buckets (what CUDA graphs capture) compute padding rows past the live ones, some
    of them rows that finished or moved away, and attend padded positions: the tokens are still the
    batch path's, and nothing a padding row computes reaches a live one, even after rows came and
    went in slots the cache kept."""
    engine: TransformersEngine = engines[family]
    sources = [f"{s} ({i})" for i, s in enumerate(SOURCES * 4)]
    expected = engine.translate_batch(sources)
    caps = caps_of(engine, sources)
    stepper = Stepper(engine, static_shapes=True, resting_tokens=10**6)
    rng = random.Random(11)
    got: dict[int, Any] = {}
    shapes = set()
    retried: set[int] = set()
    for wave in (sources[:9], sources[9:]):  # the second wave reuses the caches the first left
        pending = [sources.index(s) for s in wave]
        while pending or stepper.rows:
            take = rng.randint(0, 4)
            batch, pending = pending[:take], pending[take:]
            stepper.admit([(i, sources[i], caps[i]) for i in batch])
            if stepper.rows and rng.random() < 0.1:  # a caller gave up: its row leaves mid-decode
                gone = rng.randrange(len(stepper.rows))
                owner = stepper.rows[gone].owner
                if owner not in retried:  # and comes back once, from the start
                    retried.add(owner)
                    pending.append(owner)
                    stepper.remove([gone])
            shapes.add((len(stepper.rows), stepper.capacity))
            for row, translation in stepper.step():
                got[row.owner] = translation
        assert stepper.capacity != (0, 0, 0)  # kept for the next wave: within resting_tokens
    assert retried  # some rows left mid-decode
    assert [got[i] for i in range(len(sources))] == expected
    # Padding rows were computed: steps ran with fewer live rows than the bucket.
    assert any(rows < row_bucket(rows) for rows, _ in shapes if rows)


@pytest.mark.parametrize("static", [False, True], ids=["exact", "static"])
def test_the_running_batch_in_bfloat16_gives_the_batch_paths_tokens(tiny_dirs: dict, family: str, static: bool) -> None:
    """bfloat16 is what the engine loads on a GPU: the stepper's own tensors (position table,
    output bias with -inf, caches) must follow the model's dtype. Checked here on the CPU, which
    runs bfloat16 too."""
    import torch

    engine = load_engine(str(tiny_dirs[family]), engine="transformers", device="cpu")
    assert isinstance(engine, TransformersEngine)
    engine.model.to(torch.bfloat16)
    sources = SOURCES * 2
    expected = engine.translate_batch(sources)
    stepper = Stepper(engine, static_shapes=static)
    assert stepper.dtype == torch.bfloat16
    stepper.admit([(i, s, c) for i, (s, c) in enumerate(zip(sources, caps_of(engine, sources), strict=True))])
    assert stepper._kv is not None and stepper._kv.dtype == torch.bfloat16
    got: dict[int, Any] = {}
    while stepper.rows:
        got.update({row.owner: t for row, t in stepper.step()})
    assert [got[i] for i in range(len(sources))] == expected


def test_static_caches_are_kept_only_within_resting_tokens(engines: dict) -> None:
    engine: TransformersEngine = engines["marian"]
    caps = caps_of(engine, SOURCES)
    for resting, kept in ((0, False), (10**6, True)):
        stepper = Stepper(engine, static_shapes=True, resting_tokens=resting)
        stepper.admit([(i, s, c) for i, (s, c) in enumerate(zip(SOURCES, caps, strict=True))])
        rows, source, positions = stepper.capacity
        assert rows == row_bucket(len(SOURCES)) and source & (source - 1) == 0 and positions & (positions - 1) == 0
        while stepper.rows:
            stepper.step()
        assert (stepper.capacity != (0, 0, 0)) is kept


def test_slots_left_by_finished_rows_are_safe_to_compute(engines: dict, family: str) -> None:
    """A static step also computes the slots past the live rows. A row that ended at its cap left
    its slot pointing one past its last position, which may be the caches' end: the slot is reset,
    so computing it writes inside the caches."""
    engine: TransformersEngine = engines[family]
    stepper = Stepper(engine, static_shapes=True, resting_tokens=10**6)
    # The start token (and NLLB's forced language token) and the outputs fill the 16 positions of
    # the smallest bucket.
    cap = 15 - stepper.prefix
    stepper.admit([(0, SOURCES[0], cap), (1, SOURCES[1], cap)])
    capacity = stepper.capacity
    assert capacity[2] == 16
    done = []
    while stepper.rows:
        done += stepper.step()
    assert len(done) == 2
    stepper.admit([(2, SOURCES[3], 3)])  # one live row; the step computes the two old slots too
    assert stepper.capacity == capacity  # the same caches, old slots and all
    while stepper.rows:
        done += stepper.step()
    assert [row.owner for row, _ in done][-1] == 2


def test_row_buckets_are_two_per_octave() -> None:
    assert [row_bucket(n) for n in (1, 8, 9, 16, 17, 24, 25, 33, 49, 65, 100, 129, 2049, 4096)] == [
        8, 8, 16, 16, 24, 24, 32, 48, 64, 96, 128, 192, 3072, 4096
    ]  # fmt: skip
    assert all(row_bucket(n) >= n and row_bucket(n) <= max(8, n * 3 // 2 + 8) for n in range(1, 5000))
    assert len({row_bucket(n) for n in range(1, 4097)}) == 18  # 8, 16, 24, 32, 48, … 3072, 4096


def test_cuda_graphs_asked_for_on_the_cpu_decode_exact_shapes(engines: dict) -> None:
    stepper = stepper_for(engines["marian"], cuda_graphs=True)
    assert stepper is not None and not stepper.cuda_graphs and not stepper.static_shapes


def test_the_cuda_graphs_setting_says_when_it_has_no_effect(
    all_engines: dict, caplog: pytest.LogCaptureFixture
) -> None:
    from service.api.app import build_batching
    from service.config import Settings

    for key, asked in (
        (("transformers", "marian"), True),
        (("ctranslate2", "marian"), True),
        (("transformers", "marian"), False),
    ):
        caplog.clear()
        batching = build_batching(Settings(device="cpu", cuda_graphs=asked), all_engines[key])
        try:
            said = [r.getMessage() for r in caplog.records if "DUIYI_CUDA_GRAPHS" in r.getMessage()]
            assert len(said) == asked, said
            assert not said or f"on {all_engines[key].device}" in said[0]
        finally:
            batching.close()


def test_transformers_engines_of_both_layouts_get_a_running_batch(all_engines: dict) -> None:
    marian, nllb = (stepper_for(all_engines[("transformers", f)]) for f in ("marian", "nllb"))
    assert marian is not None and not marian.pre_norm and marian.prefix == 0
    assert nllb is not None and nllb.pre_norm and nllb.prefix == 1
    assert stepper_for(all_engines[("ctranslate2", "marian")]) is None


def test_admission_is_oldest_first_within_the_budget() -> None:
    s = Scheduler(max_batch_tokens=300, max_batch_size=4, max_queue=50, max_wait_s=0.0, ceiling=512)
    options = DecodeOptions(max_length_ratio=1.0, max_length_extra=0)
    s.add(["a", "b"], [10, 10], options, now=0.0, deadline=None)
    s.add(["long"], [100], options, now=1.0, deadline=None)
    s.add(["c"], [10], options, now=2.0, deadline=None)
    # One row of 10 + 10 is running: a and b fit (3 × 20), long does not (4 × 200), and c may not
    # overtake it.
    first = s.admit(lambda o: True, [(10, 10)])
    assert [a.source for a in first] == ["a", "b"] and [a.cap for a in first] == [10, 10]
    assert s.admit(lambda o: True, [(10, 10)] * 3) == []
    # Into an empty batch, a sentence over the budget on its own still goes.
    alone = Scheduler(max_batch_tokens=50, max_batch_size=4, max_queue=50, max_wait_s=0.0, ceiling=512)
    alone.add(["huge"], [100], options, now=0.0, deadline=None)
    assert [a.source for a in alone.admit(lambda o: True, [])] == ["huge"]


def test_admission_takes_only_what_the_running_batch_can_decode() -> None:
    s = Scheduler(max_batch_tokens=10_000, max_batch_size=8, max_queue=50, max_wait_s=0.0, ceiling=512)
    s.add(["beam"], [5], SAFE_DECODE, now=0.0, deadline=None)
    s.add(["greedy"], [5], DEFAULT_DECODE, now=1.0, deadline=None)
    admitted = s.admit(lambda o: o.beam_size == 1, [])
    assert [a.source for a in admitted] == ["greedy"]
    batch = s.schedule(lambda o: o.beam_size > 1)
    assert batch is not None and batch.sources == ("beam",)


def test_a_repeat_of_a_sentence_being_decoded_waits_for_that_decoding() -> None:
    s = Scheduler(max_batch_tokens=10_000, max_batch_size=8, max_queue=50, max_wait_s=0.0, ceiling=512)
    first = s.add(["same"], [4], DEFAULT_DECODE, now=0.0, deadline=None)
    (running,) = s.admit(lambda o: True, [])
    repeat = s.add(["same"], [4], DEFAULT_DECODE, now=1.0, deadline=None)
    assert s.queued == 0 and s.admit(lambda o: True, [(4, 18)]) == []  # nothing new to decode
    s.resolve(running.source, running.options, running.requests, Translation("同", 4, 1))
    assert first[0].future.result(timeout=0) is repeat[0].future.result(timeout=0)


def test_a_running_sentence_nobody_waits_for_is_forgotten() -> None:
    s = Scheduler(max_batch_tokens=10_000, max_batch_size=8, max_queue=50, max_wait_s=0.0, ceiling=512)
    (request,) = s.add(["gone"], [4], DEFAULT_DECODE, now=0.0, deadline=None)
    (running,) = s.admit(lambda o: True, [])
    assert not s.abandon(running)  # its caller still waits
    request.future.cancel()
    assert s.abandon(running)
    # Asked for again later, it is decoded afresh rather than joining the dropped row.
    s.add(["gone"], [4], DEFAULT_DECODE, now=1.0, deadline=None)
    assert [a.source for a in s.admit(lambda o: True, [])] == ["gone"]


def test_the_queue_counts_stay_true_as_sentences_come_and_go() -> None:
    s = Scheduler(max_batch_tokens=10_000, max_batch_size=8, max_queue=50, max_wait_s=0.5, ceiling=512)
    greedy = s.add(["a", "b", "a"], [3, 3, 3], DEFAULT_DECODE, now=0.0, deadline=None)
    s.add(["c"], [3], SAFE_DECODE, now=1.0, deadline=None)
    assert s.queued == 4
    assert s.ready_at(lambda o: o.beam_size > 1) == 1.5 and s.ready_at(lambda o: o.beam_size == 1) == 0.5
    greedy[0].future.cancel()
    s.drop_abandoned(now=2.0)
    assert s.queued == 3  # "a" still has its second caller
    assert [a.source for a in s.admit(lambda o: o.beam_size == 1, [])] == ["a", "b"]
    assert s.queued == 1 and s.ready_at(lambda o: o.beam_size == 1) is None
    batch = s.schedule(lambda o: o.beam_size > 1)
    assert batch is not None and batch.sources == ("c",)
    assert s.queued == 0 and s.ready_at() is None


class Watched:
    """Records what the engine worker's running batch does (the real stepper, observed)."""

    def __init__(self, batching: BatchingEngine) -> None:
        stepper = batching.stepper
        assert stepper is not None
        self.admitted: list[str] = []
        self.most_rows = 0
        self.steps_of: dict[str, int] = {}
        admit, step = stepper.admit, stepper.step

        def watched_admit(items: list[tuple[Any, str, int]]) -> None:
            self.admitted.extend(source for _, source, _ in items)
            admit(items)

        def watched_step() -> list[tuple[Row, Any]]:
            self.most_rows = max(self.most_rows, len(stepper.rows))
            for row in stepper.rows:
                self.steps_of[row.owner.source] = self.steps_of.get(row.owner.source, 0) + 1
            return step()

        stepper.admit = watched_admit  # type: ignore[method-assign]
        stepper.step = watched_step  # type: ignore[method-assign]


@pytest.fixture
def continuous(engines: dict) -> Iterator[tuple[BatchingEngine, Watched]]:
    batching = BatchingEngine(engines["marian"], max_wait_s=0.05, max_batch_size=16)
    assert batching.continuous
    yield batching, Watched(batching)
    batching.close()


def test_concurrent_callers_get_exactly_their_own_results_in_order(
    engines: dict, continuous: tuple[BatchingEngine, Watched]
) -> None:
    batching, watched = continuous
    callers = [[f"Caller {c} says sentence {i} about Japan and the alliance." for i in range(c + 1)] for c in range(8)]
    callers.append(["Same sentence.", "Caller 0 says sentence 0 about Japan and the alliance."])
    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        answers = list(pool.map(batching.translate_batch, callers))
    for sources, got in zip(callers, answers, strict=True):
        assert got == engines["marian"].translate_batch(sources)
    assert watched.most_rows > 1  # sentences of different callers shared steps
    # Each distinct sentence was decoded once, however many callers asked for it.
    assert sorted(watched.admitted) == sorted({s for c in callers for s in c})


@pytest.fixture(scope="module")
def endless(tmp_path_factory: pytest.TempPathFactory) -> TransformersEngine:
    """A tiny Marian whose EOS is biased away: every sentence runs to its cap."""
    path = build_marian(tmp_path_factory.mktemp("endless") / "marian", never_eos=True)
    return TransformersEngine.load(str(path), device="cpu")


def test_a_caller_that_gives_up_stops_costing_steps(endless: TransformersEngine) -> None:
    engine = endless
    batching = BatchingEngine(engine, max_wait_s=0.0)
    watched = Watched(batching)
    long_run = DecodeOptions(max_length_ratio=100.0)
    cap = caps_of(engine, ["Give up on me."], long_run)[0]
    try:
        with pytest.raises(DeadlineExceeded):
            batching.translate_batch(["Give up on me."], options=long_run, deadline=time.monotonic() + 0.05)
        stepper = batching.stepper
        assert stepper is not None
        for _ in range(200):
            if not stepper.rows:
                break
            time.sleep(0.01)
        assert not stepper.rows
        assert watched.steps_of["Give up on me."] < cap
        assert batching.translate_batch(["Still serving."])[0].output_tokens > 0
    finally:
        batching.close()


def test_beam_requests_run_whole_batches_beside_the_running_one(
    engines: dict, continuous: tuple[BatchingEngine, Watched]
) -> None:
    batching, watched = continuous
    beam = DecodeOptions(beam_size=3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        greedy = [pool.submit(batching.translate_batch, [s]) for s in SOURCES[:3]]
        beamed = pool.submit(batching.translate_batch, SOURCES[3:5], options=beam)
        answers = [f.result(timeout=60) for f in greedy]
        beam_answer = beamed.result(timeout=60)
    assert answers == [engines["marian"].translate_batch([s]) for s in SOURCES[:3]]
    assert beam_answer == engines["marian"].translate_batch(SOURCES[3:5], options=beam)
    assert batching.batches >= 1 and not set(SOURCES[3:5]) & set(watched.admitted)


def test_rows_stay_within_the_row_limit(engines: dict) -> None:
    batching = BatchingEngine(engines["marian"], max_wait_s=0.0, max_batch_size=2)
    watched = Watched(batching)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda s: batching.translate_batch([s]), SOURCES))
    finally:
        batching.close()
    assert watched.most_rows == 2
    assert len(watched.admitted) == len(SOURCES)


def test_cache_memory_follows_the_token_budget_not_the_queue(engines: dict) -> None:
    budget = 1200
    sentences = [f"Report {i}: " + "the alliance met again " * (1 + i % 6) for i in range(60)]
    for queued in (12, 60):
        batching = BatchingEngine(engines["marian"], max_wait_s=0.0, max_batch_tokens=budget, max_batch_size=64)
        stepper = batching.stepper
        assert stepper is not None
        held: list[tuple[int, int, int]] = []
        step = stepper.step

        def watched_step(step: Any = step, stepper: Stepper = stepper, held: list = held) -> Any:
            held.append(stepper.capacity)
            return step()

        stepper.step = watched_step  # type: ignore[method-assign]
        try:
            batching.translate_batch(sentences[:queued])
        finally:
            batching.close()
        largest = max(rows * (source + positions) for rows, source, positions in held)
        # Rows × (source + output) stays within the budget; the caches add rounding (rows to 8,
        # positions to 16), whatever the queue holds.
        assert largest <= 2 * budget, (queued, max(held))


def test_closing_fails_waiting_callers_instead_of_leaving_them(endless: TransformersEngine) -> None:
    batching = BatchingEngine(endless, max_wait_s=0.0)
    outcome: list[BaseException | None] = []
    started = threading.Event()

    def call() -> None:
        started.set()
        try:
            batching.translate_batch(["A long wait."], options=DecodeOptions(max_length_ratio=100.0))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test records whatever arrives
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert started.wait(5)
    time.sleep(0.05)
    batching.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    with pytest.raises(RuntimeError, match="closed"):
        batching.translate_batch(["After closing."])
