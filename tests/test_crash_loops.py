"""Runners lost with their jobs (a process killed: out of memory, a restart, an article that crashes
it), on SQLite and on PostgreSQL, at the level of claims and leases: a lost runner is what a killed
process leaves, a job still `translating` under a lease nobody renews, and the tests lapse that
lease at once instead of waiting for it.

A job taken over from lost runners is not failed by a handful of them, nor by them and its engine
errors together (those keep their own DUIYI_JOB_MAX_ATTEMPTS); a job whose runners keep dying
without saving anything fails after DUIYI_JOB_MAX_LOST_RUNNERS, saying so; a job taken over runs
alone in its process, so that an article that kills its process each time kills it alone and the
jobs beside it at the first crash are translated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.jobs.runner import JobRunner, Neighbours
from service.metrics import StoreCollector
from service.pipeline import Pipeline
from service.storage.db import Database
from service.storage.tables import Delivery, Job, utcnow
from tests.test_job_failures import FaultyEngine, add_job, events, job_row, make_db, runner_settings, sentences

CALLBACK = "http://127.0.0.1:9/hooks"  # never called here: the deliveries are only read


class Killed(BaseException):
    """What a process's death is to a runner's thread: nothing of it handles it."""


@contextmanager
def setup(
    database_url: str, engine: Engine | FaultyEngine, **extra: Any
) -> Iterator[tuple[Database, Settings, Pipeline]]:
    settings = runner_settings(database_url, **{"job_chunk_segments": 32, **extra})
    db = make_db(database_url)
    try:
        yield db, settings, build_pipeline(settings, engine)  # type: ignore[arg-type]
    finally:
        db.close()


def process_runners(db: Database, settings: Settings, pipeline: Pipeline, count: int = 1) -> list[JobRunner]:
    """The runners of one (new) process: they share its jobs in hand."""
    neighbours = Neighbours()
    return [JobRunner(db, pipeline, settings, neighbours=neighbours) for _ in range(count)]


def lose(db: Database, *job_ids: str) -> None:
    """The process translating `job_ids` is gone: their leases lapse with nobody to renew them."""
    with db.session() as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(lease_until=utcnow() - timedelta(seconds=1)))


def with_callback(db: Database, job_id: str) -> None:
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.callback_url = CALLBACK


def state(db: Database, job_id: str) -> tuple[str, int, int, str | None]:
    job = job_row(db, job_id)
    return job.status, job.attempts, job.lost_runners, job.failure


def test_a_job_whose_runner_died_three_times_is_translated(database_url: str, engines: dict[str, Engine]) -> None:
    with setup(database_url, engines["marian"]) as (db, settings, pipeline):
        assert (settings.job_max_attempts, settings.job_max_lost_runners) == (3, 10)  # the defaults
        job_id = add_job(db, settings, sentences("three", 3))
        with_callback(db, job_id)
        for died in range(3):
            [runner] = process_runners(db, settings, pipeline)
            assert runner.claim() == job_id
            assert state(db, job_id) == ("translating", 1, died, None)
            lose(db, job_id)
        [runner] = process_runners(db, settings, pipeline)
        assert runner.claim() == job_id  # it was failed here: "gave up after 3 attempts"
        assert state(db, job_id) == ("translating", 1, 3, None)
        runner.process(job_id)
        assert state(db, job_id) == ("translated", 1, 0, None)
        assert events(db, job_id) == ["article.translated"]


def test_a_job_whose_runners_keep_dying_fails_saying_so(database_url: str, engines: dict[str, Engine]) -> None:
    with setup(database_url, engines["marian"], job_max_lost_runners=4) as (db, settings, pipeline):
        job_id = add_job(db, settings, sentences("poison", 3))
        with_callback(db, job_id)
        for died in range(4):
            [runner] = process_runners(db, settings, pipeline)
            assert runner.claim() == job_id
            assert state(db, job_id) == ("translating", 1, died, None)
            lose(db, job_id)
        [runner] = process_runners(db, settings, pipeline)
        assert runner.claim() is None  # the fifth runner finds it failed, and nothing else to do
        status, attempts, lost, failure = state(db, job_id)
        assert (status, attempts, lost) == ("failed", 1, 4)
        assert failure is not None and "runner was lost 4 times in a row" in failure, failure
        assert "kept dying" in failure and "attempts" not in failure, failure
        job = job_row(db, job_id)
        assert (job.runner, job.lease_until) == (None, None)
        # Its webhook and the queue's metrics say the same.
        assert events(db, job_id) == ["article.failed"]
        with db.session() as session:
            payload = json.loads(session.scalars(select(Delivery.payload).where(Delivery.job_id == job_id)).one())
        assert payload["article"]["status"] == "failed" and payload["article"]["failure"] == failure
        counts = {
            s.labels["status"]: s.value
            for family in StoreCollector(db)._read()
            if family.name == "duiyi_jobs"
            for s in family.samples
        }
        assert counts["failed"] == 1 and counts["translating"] == 0, counts


def test_a_runner_lost_after_saving_a_chunk_is_not_held_against_the_job(
    database_url: str, engines: dict[str, Engine]
) -> None:
    engine = FaultyEngine(engines["marian"])
    with setup(database_url, engine, job_max_lost_runners=3, job_chunk_segments=2) as (db, settings, pipeline):
        body = sentences("progress", 6)  # three chunks
        job_id = add_job(db, settings, body)
        [runner] = process_runners(db, settings, pipeline)
        assert runner.claim() == job_id
        lose(db, job_id)  # the first runner is lost before it saves anything

        def die_after_first_chunk(call: int) -> None:
            if call == 2:  # the first chunk is saved; the process dies decoding the second
                raise Killed

        engine.after = die_after_first_chunk
        [runner] = process_runners(db, settings, pipeline)
        assert runner.claim() == job_id
        assert state(db, job_id)[2] == 1
        with pytest.raises(Killed):
            runner.process(job_id)
        assert state(db, job_id) == ("translating", 1, 0, None)  # a chunk saved: none lost in a row
        assert job_row(db, job_id).segments_done == 2
        engine.after = None
        lose(db, job_id)
        for lost in (1, 2):  # two more lost without saving anything: 2 in a row, and 4 in all
            [runner] = process_runners(db, settings, pipeline)
            assert runner.claim() == job_id
            assert state(db, job_id) == ("translating", 1, lost, None)
            if lost == 1:
                lose(db, job_id)
        runner.process(job_id)
        assert state(db, job_id) == ("translated", 1, 0, None)
        # One call a chunk: the first, saved before the death, was not decoded again; the second was.
        assert engine.calls == 4
        assert job_row(db, job_id).segments_done == len(body)


def test_engine_errors_still_fail_after_the_max_attempts_beside_lost_runners(
    database_url: str, engines: dict[str, Engine]
) -> None:
    engine = FaultyEngine(engines["marian"])
    engine.fail_calls = None  # every call fails
    with setup(database_url, engine, job_max_attempts=2) as (db, settings, pipeline):
        job_id = add_job(db, settings, sentences("oom", 2))
        with_callback(db, job_id)
        for _ in range(2):
            [runner] = process_runners(db, settings, pipeline)
            assert runner.claim() == job_id
            lose(db, job_id)
        [runner] = process_runners(db, settings, pipeline)
        assert runner.claim() == job_id
        runner.process(job_id)  # an engine error: the first counted attempt of two
        job = job_row(db, job_id)
        assert (job.status, job.attempts, job.lost_runners, job.failure) == ("queued", 1, 2, None)
        assert job.lease_until is not None  # waiting out its backoff
        with db.session() as session:  # its backoff is over
            session.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
        assert runner.claim() == job_id
        runner.process(job_id)
        status, attempts, _, failure = state(db, job_id)
        assert (status, attempts) == ("failed", 2)
        assert failure is not None and failure.startswith("translation failed on 2 attempt(s)"), failure
        assert "CUDA out of memory" in failure
        assert engine.failures == 2
        assert events(db, job_id) == ["article.failed"]


def test_an_article_that_kills_its_process_takes_no_other_job_with_it(
    database_url: str, engines: dict[str, Engine]
) -> None:
    with setup(database_url, engines["marian"], job_max_lost_runners=3) as (db, settings, pipeline):
        poison = add_job(db, settings, sentences("poison", 3))
        innocent = add_job(db, settings, sentences("innocent", 3))
        # The first crash: both were in hand, and neither was a suspect yet.
        first, second = process_runners(db, settings, pipeline, 2)
        assert (first.claim(), second.claim()) == (poison, innocent)
        lose(db, poison, innocent)
        # Each process after it takes the poison (the older) alone, and dies with it alone.
        for lost in (1, 2):
            first, second = process_runners(db, settings, pipeline, 2)
            assert first.claim() == poison
            assert second.claim() is None  # a suspect is in hand: it has no neighbours
            assert state(db, poison)[2] == lost
            lose(db, poison)
        assert state(db, innocent) == ("translating", 1, 0, None)  # not charged for the later crashes
        first, second = process_runners(db, settings, pipeline, 2)
        assert first.claim() == innocent  # the poison failed on the way
        assert second.claim() is None
        status, _, lost, failure = state(db, poison)
        assert (status, lost) == ("failed", 3) and failure is not None and "kept dying" in failure
        assert state(db, innocent) == ("translating", 1, 1, None)
        first.process(innocent)
        assert state(db, innocent) == ("translated", 1, 0, None)


def test_a_runner_with_busy_neighbours_leaves_a_suspect_until_its_process_is_idle(
    database_url: str, engines: dict[str, Engine]
) -> None:
    with setup(database_url, engines["marian"]) as (db, settings, pipeline):
        suspect = add_job(db, settings, sentences("suspect", 2))
        plain = add_job(db, settings, sentences("plain", 2))
        later = add_job(db, settings, sentences("later", 2))
        [dead] = process_runners(db, settings, pipeline)
        assert dead.claim() == suspect
        first, second = process_runners(db, settings, pipeline, 2)
        assert second.claim() == plain
        lose(db, suspect)
        # The oldest job waiting is the suspect: not beside `plain`, and nothing newer jumps it.
        assert first.claim() is None
        assert state(db, suspect)[:3] == ("translating", 1, 0)
        second.process(plain)
        assert state(db, plain)[0] == "translated"
        assert first.claim() == suspect  # alone now
        assert second.claim() is None
        first.process(suspect)
        assert state(db, suspect) == ("translated", 1, 0, None)
        assert second.claim() == later
        second.process(later)
        assert state(db, later) == ("translated", 1, 0, None)
