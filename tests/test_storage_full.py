"""A database that answers but refuses to store: its storage full, or read-only. It is said as such
(503 `storage_full` or `database_read_only`, with Retry-After, and nothing of the request stored),
not as a database that "did not answer"; the log has one ERROR naming the database and its storage,
however many requests and retries meet it, and one INFO once writes go through again; reads keep
working, /readyz stays ready, /metrics counts the refusals; work accepted before is kept, and a job
runner whose save is refused hands its job back instead of failing it. And a service started on a
data directory it cannot write says that, naming the directory.

The errors are real: SQLite's own SQLITE_FULL, from `PRAGMA max_page_count` (the database may not
grow, as on a full disk, with no small file system to make); PostgreSQL's own disk_full (53100),
raised by the server from a trigger, and read_only_sql_transaction (25006) from a database made
read-only. The read-only data directory is a read-only file system where the tests may mount one
(as root), or a directory without write permission otherwise."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

from models.engine import Engine, load_engine
from models.tiny import build_tiny
from service.api.app import build_pipeline
from service.config import Settings
from service.jobs.runner import JobRunner
from service.storage.db import Database, Outage, Refusal, StorageNotWritable, database_unavailable, refused_write
from service.storage.tables import Job
from tests.conftest import POSTGRES_ADMIN_URL, fresh_postgres, serve
from tests.test_settings_errors import one_line_error, run

# SQLite's own limit on a database's pages, what a connection starts with.
_NO_LIMIT = sqlite3.connect(":memory:").execute("PRAGMA max_page_count").fetchone()[0]
ARTICLE = "\n\n".join(f"Paragraph {p}. " + "The harbour of the old town will reopen in May. " * 30 for p in range(40))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("model") / "marian", "marian")


@pytest.fixture(scope="module")
def engine(model: Path) -> Engine:
    return load_engine(str(model), engine="transformers", device="cpu")


# A refusal is over at the first write that goes through this long after it (60 s in service).
SETTLE_S = 0.5


@pytest.fixture(autouse=True)
def settle_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Outage, "settle_s", SETTLE_S)


@dataclass
class Disk:
    """Whether the SQLite database at `path` is full: no connection may grow it by a page."""

    path: Path
    full: bool = False


@contextmanager
def sqlite_disk(path: Path) -> Iterator[Disk]:
    """Every connection to the SQLite database at `path`, whoever opens it, as it is checked out of
    its pool: `PRAGMA max_page_count` at the database's present size while `full` (SQLite takes 1
    as that), SQLite's own limit otherwise. A write that needs another page gets SQLITE_FULL,
    "database or disk is full", as on a full disk; one that fits in the pages there goes through."""
    disk = Disk(path)

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        main = dbapi_connection.execute("PRAGMA database_list").fetchone()
        if main is not None and main[2] and Path(main[2]) == path:
            dbapi_connection.execute(f"PRAGMA max_page_count = {1 if disk.full else _NO_LIMIT}")

    event.listen(Pool, "checkout", checkout)
    try:
        yield disk
    finally:
        event.remove(Pool, "checkout", checkout)


def storage_lines(records: list[logging.LogRecord]) -> tuple[list[str], list[str]]:
    """The log's ERRORs saying that writes are refused, and its INFOs saying they go through again."""
    mine = [r for r in records if r.name == "service.storage.db"]
    refused = [r.getMessage() for r in mine if r.levelno == logging.ERROR]
    again = [r.getMessage() for r in mine if r.levelno == logging.INFO and "stores again" in r.getMessage()]
    return refused, again


def refused_total(metrics: str, reason: str) -> float:
    found = re.search(rf'^duiyi_database_writes_refused_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    assert found, metrics
    return float(found.group(1))


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def is_refused(response: Any, code: str) -> bool:
    return (
        response.status_code == 503
        and response.json()["error"]["code"] == code
        and response.headers.get("retry-after") == "60"
    )


def test_a_full_sqlite_database_is_said_to_be_full_and_recovers(
    model: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It answered 503 `database_unavailable`, "the database did not answer", and logged a WARNING
    at each refused submission (the reads before the write ended the outage each time)."""
    path = tmp_path / "duiyi.db"
    settings = Settings(model=str(model), device="cpu", database_url=f"sqlite:///{path}", runners=0)
    with sqlite_disk(path) as disk, serve(settings, engine) as live:
        kept = live.client.post("/v1/articles", json={"title": "Kept", "body": ARTICLE})
        assert kept.status_code == 202, kept.text
        articles = count(path, "articles")
        caplog.set_level(logging.INFO)

        disk.full = True
        for i in range(3):
            refused = live.client.post("/v1/articles", json={"title": f"Refused {i}", "body": ARTICLE})
            assert is_refused(refused, "storage_full"), (refused.status_code, refused.headers, refused.text)
            message = refused.json()["error"]["message"]
            assert "storage is full" in message and "nothing of it was stored" in message, message
            assert live.client.get(f"/v1/articles/{kept.json()['id']}").status_code == 200  # reads still work
        assert count(path, "articles") == articles  # nothing of the refused ones was stored
        assert live.client.get("/readyz").status_code == 200  # (README: why it stays ready)
        metrics = live.client.get("/metrics").text
        assert refused_total(metrics, "storage_full") == 3 and refused_total(metrics, "read_only") == 0
        assert "duiyi_database_up 1.0" in metrics
        refused_lines, again = storage_lines(caplog.records)
        assert len(refused_lines) == 1 and not again, (refused_lines, again)
        line = refused_lines[0]
        assert line.startswith(f"the API: the database sqlite:///{path} refuses writes: its storage is full"), line
        assert "database or disk is full" in line and f"the file system holding {tmp_path}: " in line, line
        unavailable = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert not unavailable, unavailable

        disk.full = False  # space freed
        time.sleep(SETTLE_S)
        accepted = live.client.post("/v1/articles", json={"title": "After", "body": ARTICLE})
        assert accepted.status_code == 202, accepted.text
        assert count(path, "articles") == articles + 1
        refused_lines, again = storage_lines(caplog.records)
        assert len(refused_lines) == 1 and len(again) == 1, (refused_lines, again)
        assert again[0].startswith(f"the database sqlite:///{path} stores again: writes were refused"), again


def test_a_runner_whose_save_is_refused_hands_the_job_back_and_finishes_it_later(
    model: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_job_failures import add_job, runner_settings

    path = tmp_path / "duiyi.db"
    url = f"sqlite:///{path}"
    with sqlite_disk(path) as disk:
        db = Database(url)
        db.migrate()
        settings = runner_settings(url, job_chunk_segments=32, max_length_extra=2)
        sentences = [f"Sentence {i} says that the harbour of the old town will reopen in May." for i in range(40)]
        job_id = add_job(db, settings, sentences)
        runner = JobRunner(db, build_pipeline(settings, engine), settings, name="saving")
        caplog.set_level(logging.INFO)
        try:
            disk.full = True
            assert runner.claim() == job_id  # (a lease fits in the pages there are)
            runner.process(job_id)
            with db.session() as session:
                job = session.get(Job, job_id)
                assert job is not None and (job.status, job.failure) == ("queued", None)
            assert count(path, "segments") == 0
            refused_lines, again = storage_lines(caplog.records)
            assert len(refused_lines) == 1 and not again, (refused_lines, again)
            assert refused_lines[0].startswith("runner saving: the database ") and "storage is full" in refused_lines[0]
            # The hand-back, a write that fitted, went through at once: the refusal is not over for it.
            assert db.outage.refusing is Refusal.STORAGE_FULL
            assert db.outage.refused()[Refusal.STORAGE_FULL] >= 1

            disk.full = False
            time.sleep(SETTLE_S)
            assert runner.claim() == job_id
            runner.process(job_id)
            with db.session() as session:
                job = session.get(Job, job_id)
                assert job is not None and job.status == "translated", (job and job.status, job and job.failure)
            assert count(path, "segments") == len(sentences)
            refused_lines, again = storage_lines(caplog.records)
            assert len(refused_lines) == 1 and len(again) == 1, (refused_lines, again)
        finally:
            db.close()


def test_sqlite_full_and_read_only_are_refusals_not_bugs(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("PRAGMA max_page_count = 1")
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    assert refused_write(full.value) is Refusal.STORAGE_FULL

    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x TEXT)").connection.close()
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:
        read_only.execute("INSERT INTO t VALUES ('x')")
    assert "readonly" in str(refused.value) and refused_write(refused.value) is Refusal.READ_ONLY

    with pytest.raises(sqlite3.OperationalError) as other:
        conn.execute("SELECT * FROM no_such_table")
    assert refused_write(other.value) is None


def test_postgresql_disk_full_and_read_only_are_said_as_such(
    model: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's disk_full was `database_unavailable`; a read-only database (a standby after a
    failover, or default_transaction_read_only) was a 500 `internal_error` with a traceback at each
    request."""
    with fresh_postgres() as url:
        name = sqlalchemy.engine.make_url(url).database
        admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        owner = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")

        def cut_connections() -> None:
            """The service's connections end (a failover): its next ones take the database's settings."""
            with admin.connect() as conn:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": name}
                )

        settings = Settings(model=str(model), device="cpu", database_url=url, runners=0)
        try:
            with serve(settings, engine) as live:
                assert live.client.post("/v1/articles", json={"body": "Before."}).status_code == 202
                caplog.set_level(logging.INFO)
                with owner.connect() as conn:  # the server's own disk_full, as when a table cannot grow
                    conn.execute(
                        text(
                            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                            "RAISE EXCEPTION 'could not extend file \"base/16384/16385\": No space left on device' "
                            "USING ERRCODE = '53100'; END $$"
                        )
                    )
                    conn.execute(text("CREATE TRIGGER no_space BEFORE INSERT ON articles EXECUTE FUNCTION full_disk()"))
                refused = live.client.post("/v1/articles", json={"body": "Refused."})
                assert is_refused(refused, "storage_full"), (refused.status_code, refused.text)
                assert live.client.get("/v1/articles").status_code == 200
                with owner.connect() as conn:
                    conn.execute(text("DROP TRIGGER no_space ON articles"))
                time.sleep(SETTLE_S)
                assert live.client.post("/v1/articles", json={"body": "Space freed."}).status_code == 202

                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
                cut_connections()
                refused = live.client.post("/v1/articles", json={"body": "Refused, read-only."})
                assert is_refused(refused, "database_read_only"), (refused.status_code, refused.text)
                assert "database is read-only" in refused.json()["error"]["message"]
                assert live.client.get("/v1/articles").status_code == 200
                metrics = live.client.get("/metrics").text
                assert refused_total(metrics, "storage_full") == 1 and refused_total(metrics, "read_only") >= 1

                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
                cut_connections()
                time.sleep(SETTLE_S)
                assert live.client.post("/v1/articles", json={"body": "Writable again."}).status_code == 202
        finally:
            owner.dispose()
            admin.dispose()
    refused_lines, again = storage_lines(caplog.records)
    assert len(refused_lines) == 2 and len(again) == 2, (refused_lines, again)
    assert "refuses writes: its storage is full (DiskFull: could not extend file" in refused_lines[0], refused_lines
    assert "the database server's storage" in refused_lines[0]
    assert "refuses writes: it is read-only (ReadOnlySqlTransaction: " in refused_lines[1], refused_lines
    bugs = [r.getMessage() for r in caplog.records if r.name == "service.api.errors" and r.levelno >= logging.ERROR]
    assert not bugs, bugs


def test_only_disk_full_of_postgresql_resource_errors_is_storage_full() -> None:
    """The server's own errors of class 53: disk_full is a refusal; out_of_memory and
    too_many_connections stay outages (the database cannot be used just now)."""
    with fresh_postgres() as url:
        db = Database(url)
        try:
            for sqlstate, refusal in (("53100", Refusal.STORAGE_FULL), ("53200", None), ("53300", None)):
                with pytest.raises(DBAPIError) as raised, db.session() as session:
                    session.execute(text(f"DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$"))
                assert refused_write(raised.value) is refusal, sqlstate
                assert database_unavailable(raised.value), sqlstate
        finally:
            db.close()


# --- starting on a directory that cannot be written -------------------------------------------------


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory holding a duiyi database that cannot be written any more, and why: a read-only
    file system (root, where mounting is allowed), or no write permission (any other user)."""
    folder = tmp_path / "data"
    folder.mkdir()
    if os.geteuid() != 0:
        assert run("db", "upgrade", env={"DUIYI_DATA_DIR": str(folder)}).returncode == 0
        folder.chmod(0o555)
        yield folder, f"is not writable by this user (uid {os.getuid()})"
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root, and no file system can be mounted here: {mounted.stderr.decode()}")
    try:
        assert run("db", "upgrade", env={"DUIYI_DATA_DIR": str(folder)}).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder, "is on a read-only file system"
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_data_directory_that_cannot_be_written_is_named_at_start(unwritable: tuple[Path, str]) -> None:
    """It was `cannot use the database sqlite:///…: unable to open database file`."""
    folder, why = unwritable
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(folder)})
    one_line_error(done, "DUIYI_DATA_DIR", f"cannot use the database: {folder} {why}", f"{folder / 'duiyi.db'}")
    assert "unable to open" not in done.stderr

    below = folder / "below"
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(below)})
    one_line_error(done, "DUIYI_DATA_DIR", f"the directory {below} cannot be made: {folder} {why}")

    with pytest.raises(StorageNotWritable, match=re.escape(f"{folder} {why}")):
        Database(f"sqlite:///{folder / 'other.db'}")
