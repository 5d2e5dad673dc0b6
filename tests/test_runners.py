"""Job runners as separate processes on one PostgreSQL: a runner killed with SIGKILL mid-article
leaves the job to the next runner, which finishes it without redoing saved segments; two runners
never translate the same job. Engine calls are counted by tests/worker_harness.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from service.auth import Role
from service.config import Settings
from service.documents import Article
from service.glossaries import DatabaseGlossaries, GlossaryStore
from service.jobs.articles import Principal, Submission, submit
from service.storage.db import Database
from service.storage.tables import Job, StoredSegment
from tests.conftest import REPO, _free_port

LOCAL = Principal(key_id=None, name="test", role=Role.ADMIN)


def sentences(tag: str, n: int) -> list[str]:
    # Distinct sentences, no glossary terms: what the engine is asked equals each segment's source.
    return [f"Report {tag} item {i} describes harbour works in district {i * 7 + 3}." for i in range(n)]


@pytest.fixture
def setup_db(postgres_url: str) -> Iterator[tuple[Database, Settings]]:
    settings = Settings(database_url=postgres_url, default_glossaries=[])
    db = Database(postgres_url)
    db.migrate()
    DatabaseGlossaries(db).seed(GlossaryStore.load())
    yield db, settings
    db.close()


def add_job(db: Database, settings: Settings, body: list[str]) -> str:
    sub = Submission(article=Article("\n\n".join(body)), targets=["zh-Hans"], glossaries=[])
    job, _ = submit(db, sub, principal=LOCAL, settings=settings, glossaries=DatabaseGlossaries(db))
    return job.id


@contextmanager
def worker(
    log: Path, model: Path, db_url: str, delay_s: float = 0.0, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DUIYI_DATABASE_URL": db_url,
        "DUIYI_MODEL": str(model),
        "DUIYI_DEVICE": "cpu",
        "DUIYI_JOB_CHUNK_SEGMENTS": "4",
        "DUIYI_JOB_LEASE_S": "2",
        "DUIYI_JOB_POLL_S": "0.1",
        # One decoding per sentence, so calls can be counted exactly.
        "DUIYI_REDECODE_LOOPS": "false",
        "DUIYI_CACHE_SIZE": "0",
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.worker_harness", str(log), str(delay_s)],
        cwd=REPO,
        env=env,
        stderr=open(f"{log}.stderr", "wb"),  # noqa: SIM115 - the process owns it
    )
    try:
        wait_until(lambda: Path(f"{log}.ready").exists() or proc.poll() is not None, 120, "worker start")
        assert proc.poll() is None, Path(f"{log}.stderr").read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def decoded(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line).strip() for line in log.read_text(encoding="utf-8").splitlines()]


def job_state(db: Database, job_id: str) -> tuple[str, int, int, int]:
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.segments_done, job.segments_total, job.attempts


def saved_sources(db: Database, job_id: str) -> list[str]:
    with db.session() as session:
        return [s.strip() for s in session.scalars(select(StoredSegment.source).where(StoredSegment.job_id == job_id))]


def test_killed_runner_resumes_without_redoing_saved_segments(
    setup_db: tuple[Database, Settings], tiny_dirs: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    db, settings = setup_db
    body = sentences("k", 40)
    job_id = add_job(db, settings, body)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    with worker(first, tiny_dirs["marian"], postgres_url, delay_s=0.3) as proc:
        wait_until(lambda: job_state(db, job_id)[1] >= 8, 120, "8 segments saved")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    status, done_at_kill, total, _ = job_state(db, job_id)
    assert status == "translating" and 8 <= done_at_kill < total == 40
    saved_at_kill = set(saved_sources(db, job_id))
    assert len(saved_at_kill) == done_at_kill

    with worker(second, tiny_dirs["marian"], postgres_url):
        wait_until(lambda: job_state(db, job_id)[0] == "translated", 120, "the job to finish")
    status, done, total, attempts = job_state(db, job_id)
    # The killed runner's attempt was counted as a lost runner, not an attempt (the second took its
    # number), and the chunks saved after it started that count again.
    assert (status, done, total, attempts) == ("translated", 40, 40, 1)
    with db.session() as session:
        assert session.scalar(select(Job.lost_runners).where(Job.id == job_id)) == 0
    final = saved_sources(db, job_id)
    assert sorted(final) == sorted(body)  # every segment stored once, nothing lost
    by_first, by_second = decoded(first), decoded(second)
    # The second runner decoded exactly the segments not saved at the kill, each once ...
    assert Counter(by_second) == Counter(set(body) - saved_at_kill)
    # ... and the first runner decoded each sentence at most once; what it decoded but did not
    # save was the chunk in flight when it died (at most one chunk of 4).
    assert max(Counter(by_first).values()) == 1
    lost = set(by_first) - saved_at_kill
    assert len(lost) <= 4
    with db.session() as session:
        rows = session.scalar(select(func.count()).where(StoredSegment.job_id == job_id))
    assert rows == 40


def test_two_runners_never_translate_the_same_job(
    setup_db: tuple[Database, Settings], tiny_dirs: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    db, settings = setup_db
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        worker(logs[0], tiny_dirs["marian"], postgres_url, 0.1),
        worker(logs[1], tiny_dirs["marian"], postgres_url, 0.1),
    ):
        jobs = {add_job(db, settings, sentences(f"j{n}", 6)): sentences(f"j{n}", 6) for n in range(12)}
        wait_until(lambda: all(job_state(db, j)[0] == "translated" for j in jobs), 180, "all jobs translated")
    by_runner = [Counter(decoded(log)) for log in logs]
    assert all(by_runner), "both runners should have taken jobs"
    for job_id, body in jobs.items():
        takers = [i for i, seen in enumerate(by_runner) if any(s in seen for s in body)]
        assert len(takers) == 1, f"job {job_id} was translated by runners {takers}"
        assert all(by_runner[takers[0]][s] == 1 for s in body)
        assert job_state(db, job_id)[3] == 1  # claimed once


def test_sigterm_hands_the_job_back(
    setup_db: tuple[Database, Settings], tiny_dirs: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    db, settings = setup_db
    job_id = add_job(db, settings, sentences("t", 40))
    with worker(tmp_path / "w.log", tiny_dirs["marian"], postgres_url, delay_s=0.3) as proc:
        wait_until(lambda: job_state(db, job_id)[1] >= 4, 120, "4 segments saved")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    status, done, total, attempts = job_state(db, job_id)
    # Back in the queue at once (no lease to wait out), its saved segments kept, no attempt used up.
    assert (status, attempts) == ("queued", 0)
    assert 4 <= done < total
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.runner is None and job.lease_until is None


def test_sigterm_while_a_chunk_is_decoding_hands_the_job_back(
    setup_db: tuple[Database, Settings], tiny_dirs: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    """A chunk that outlasts the wait at shutdown (half a lease here, 1 s; 30 s by default) is
    abandoned by closing the engine, and its job goes back to the queue: it is not failed."""
    db, settings = setup_db
    job_id = add_job(db, settings, sentences("s", 40))
    log = tmp_path / "w.log"
    # One sentence a batch, two seconds each: the chunk of 24 takes 48 s, longer than any wait.
    slow = {"DUIYI_JOB_CHUNK_SEGMENTS": "24", "DUIYI_MAX_BATCH_SIZE": "1"}
    with worker(log, tiny_dirs["marian"], postgres_url, delay_s=2.0, **slow) as proc:
        wait_until(lambda: len(decoded(log)) >= 1, 120, "the first chunk to be decoding")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert len(decoded(log)) < 24  # the chunk was cut short
    status, done, total, attempts = job_state(db, job_id)
    assert (status, done, total, attempts) == ("queued", 0, 40, 0)
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.failure, job.runner, job.lease_until) == (None, None, None)


def test_duiyi_worker_command(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The real `duiyi worker` on the embedded SQLite database translates a job and stops on SIGTERM."""
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    settings = Settings(database_url=url, default_glossaries=[])
    db = Database(url)
    db.migrate()
    DatabaseGlossaries(db).seed(GlossaryStore.load())
    job_id = add_job(db, settings, sentences("cli", 5))
    env = {**os.environ, "DUIYI_DATABASE_URL": url, "DUIYI_JOB_POLL_S": "0.1"}
    port = _free_port()
    args = ["worker", "--model", str(tiny_dirs["marian"]), "--device", "cpu", "--metrics-port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: job_state(db, job_id)[0] == "translated" or proc.poll() is not None, 120, "translation")
        assert job_state(db, job_id)[:3] == ("translated", 5, 5)
        # What the worker decoded, on its metrics port (it has no HTTP API).
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        decoded = next(line for line in metrics.splitlines() if line.startswith("duiyi_sentences_total"))
        assert float(decoded.split()[-1]) >= 5
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "worker: stopping" in err
    db.close()


def test_duiyi_worker_says_when_its_metrics_port_is_taken(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "DUIYI_DATABASE_URL": f"sqlite:///{tmp_path / 'duiyi.db'}",
            "DUIYI_METRICS_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "worker", "--model", str(tiny_dirs["marian"]), "--device", "cpu"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert (
        f"duiyi: setting metrics_port (DUIYI_METRICS_PORT / --metrics-port): cannot serve metrics on 127.0.0.1:{port}"
        in done.stderr
    )
