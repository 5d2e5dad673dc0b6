"""Starting on a database, as an operator meets it: processes that start together (`serve` and
`worker` on first boot or after an upgrade) take turns to migrate, on SQLite too, and each says
what it did; one that waits says so, and gives up after a while naming who holds the lock; a URL
duiyi has no driver for, a database a newer duiyi migrated, a data directory that is a file are one
line each; `~` in a path setting is the home directory; a start logs one line about the schema,
not alembic's chatter. The real `duiyi` command in subprocesses, on real SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.storage.db import _MIGRATION_LOCK, MIGRATIONS, Database, alembic_config
from tests.conftest import REPO, fresh_postgres
from tests.test_settings_errors import DUIYI, one_line_error, run

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
ALL = len(list(ScriptDirectory(str(MIGRATIONS)).iterate_revisions(HEAD, "base")))
FROM_0001 = len(list(ScriptDirectory(str(MIGRATIONS)).iterate_revisions(HEAD, "0001")))
WAITING = "waiting for another process's migration of the database"


def environ(env: dict[str, str]) -> dict[str, str]:
    """This environment without its DUIYI_* variables (in any case), and `env`."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("DUIYI_")} | env


def migrate_to(url: str, revision: str) -> None:
    """The database at `url` left at `revision` by an older duiyi."""
    db = Database(url)
    with db.engine.connect() as conn:
        cfg = alembic_config(db.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
    db.close()


def revision_of(url: str) -> str | None:
    db = Database(url)
    with db.engine.connect() as conn:
        found = MigrationContext.configure(conn).get_current_revision()
    db.close()
    return found


# --- processes starting together -------------------------------------------------------------------

# Each process imports the command first (seconds, and uneven on a busy machine), then, for each
# round, waits until every process is ready and runs `duiyi db upgrade` on that round's database:
# the commands start within milliseconds of each other, as `serve` and `worker` do when a machine
# boots. One JSON line a round: its exit status, stdout and stderr.
TOGETHER = r"""
import contextlib, io, json, os, sys, time
from pathlib import Path
from service.cli import main

barrier, me, count, urls = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
for number, url in enumerate(urls):
    (barrier / f"{number}.{me}").touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.glob(f"{number}.*"))) < count and time.monotonic() < deadline:
        time.sleep(0.002)
    os.environ["DUIYI_DATABASE_URL"] = url
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["db", "upgrade"])
        except SystemExit as exc:
            status = exc.code
        except BaseException as exc:
            status, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"round": number, "status": status, "out": out.getvalue(), "err": err.getvalue()}), flush=True)
"""

PROCESSES = 4


def upgrade_together(tmp_path: Path, urls: list[str]) -> list[list[dict[str, object]]]:
    """`duiyi db upgrade` by PROCESSES processes at once on each of `urls` in turn: for each URL,
    what each process got."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = environ({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TOGETHER, str(barrier), str(me), str(PROCESSES), *urls],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for me in range(PROCESSES)
    ]
    rounds: list[list[dict[str, object]]] = [[] for _ in urls]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        for line in out.splitlines():
            got = json.loads(line)
            rounds[int(got["round"])].append(got)
    return rounds


def check_one_migrated(url: str, got: list[dict[str, object]], start: str | None) -> None:
    """Every process exited 0; exactly one applied the migrations from `start`, and said so; the
    others found the schema up to date; the schema is at the head."""
    assert [g["status"] for g in got] == [0] * PROCESSES, [g["err"] for g in got]
    lines = sorted(str(g["out"]).strip().split(": ", 1)[-1] for g in got)
    count = ALL if start is None else FROM_0001
    applied = f"schema {start or 'none'} → {HEAD}, applied {count} migration(s)"
    assert lines == [applied, *[f"schema up to date at {HEAD}"] * (PROCESSES - 1)], lines
    assert revision_of(url) == HEAD


def test_sqlite_processes_starting_together_take_turns(tmp_path: Path) -> None:
    """The audit: two `db upgrade` at once on a fresh data directory, and one exited 2 with "table
    api_keys already exists" (2 runs in 3); from schema 0001, "index ix_jobs_created already
    exists". Four at once, on new databases and on databases at 0001."""
    starts = [None, "0001", None, "0001"]
    urls = [f"sqlite:///{tmp_path / f'data{n}' / 'duiyi.db'}" for n in range(len(starts))]
    for url, start in zip(urls, starts, strict=True):
        if start is not None:
            migrate_to(url, start)
    for url, start, got in zip(urls, starts, upgrade_together(tmp_path, urls), strict=True):
        check_one_migrated(url, got, start)


def test_postgres_processes_starting_together_report_what_each_did(tmp_path: Path) -> None:
    """The audit: three `db upgrade` at once each printed "schema none → 0013, applied 13
    migration(s)". The second database is named by a plain postgresql:// URL, which is psycopg's."""
    with ExitStack() as stack:
        urls = [stack.enter_context(fresh_postgres()) for _ in range(2)]
        migrate_to(urls[1], "0001")
        urls[1] = urls[1].replace("postgresql+psycopg://", "postgresql://", 1)
        for url, start, got in zip(urls, [None, "0001"], upgrade_together(tmp_path, urls), strict=True):
            check_one_migrated(url, got, start)


# --- waiting for another process's migration -------------------------------------------------------


@contextmanager
def sqlite_lock_held(path: Path) -> Iterator[None]:
    """Another process's migration under way: the lock file beside the database (the README names
    it) held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migration.lock", "a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@contextmanager
def postgres_lock_held(url: str) -> Iterator[int]:
    """Another process's migration under way: PostgreSQL's advisory lock held by a session, whose
    pid is given."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        pid = conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one()
        conn.commit()
        try:
            yield int(pid)
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()
    engine.dispose()


def lines_of(stream: IO[str]) -> queue.Queue[str | None]:
    """The lines of `stream` as they come, then None at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_process_waiting_for_another_migration_says_so(tmp_path: Path, kind: str) -> None:
    """`db upgrade` while another process migrates: one line saying it waits and for whom (on
    PostgreSQL it hung without a word; on SQLite it did not wait), then, once the other is done, it
    migrates and says so."""
    with ExitStack() as stack:
        held = stack.enter_context(ExitStack())
        if kind == "sqlite":
            path = tmp_path / "data" / "duiyi.db"
            url = f"sqlite:///{path}"
            held.enter_context(sqlite_lock_held(path))
            holder = f"{path}.migration.lock"
        else:
            url = stack.enter_context(fresh_postgres())
            holder = f"held by the PostgreSQL session of pid {held.enter_context(postgres_lock_held(url))}"
        proc = stack.enter_context(
            subprocess.Popen(
                [DUIYI, "db", "upgrade"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environ({"DUIYI_DATABASE_URL": url, "HF_HUB_OFFLINE": "1"}),
            )
        )
        assert proc.stderr is not None
        said = lines_of(proc.stderr)
        try:
            line = said.get(timeout=90)
        except queue.Empty:
            line = "(nothing in 90 s)"
        if line is None or WAITING not in line:
            proc.kill()
            pytest.fail(f"a process waiting for another's migration said {line!r}")
        assert holder in line and "giving up after 10 minutes" in line, line
        time.sleep(1)
        assert proc.poll() is None  # it waits its turn
        held.close()  # the other process's migration is done
        proc.wait(timeout=120)
        assert proc.stdout is not None
        out = proc.stdout.read()
        rest = list(iter(lambda: said.get(timeout=30), None))
    assert proc.returncode == 0, (out, rest)
    assert out.strip().endswith(f"schema none → {HEAD}, applied {ALL} migration(s)"), out
    assert len(rest) == 1 and "the other process's migration of the database" in rest[0], rest


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_wait_for_another_migration_has_an_end(tmp_path: Path, kind: str) -> None:
    """A process holding the lock and stuck hung every start for ever: after the wait (10 minutes
    by default; 1.5 s here) the migration gives up, naming who holds the lock, and changes nothing."""
    from service.storage.db import MigrationRefused

    with ExitStack() as stack:
        if kind == "sqlite":
            path = tmp_path / "data" / "duiyi.db"
            url = f"sqlite:///{path}"
            stack.enter_context(sqlite_lock_held(path))
            holder = f"{path}.migration.lock"
        else:
            url = stack.enter_context(fresh_postgres())
            holder = f"held by the PostgreSQL session of pid {stack.enter_context(postgres_lock_held(url))}"
        db = Database(url)
        start = time.monotonic()
        with pytest.raises(MigrationRefused) as refused:
            db.migrate(wait_s=1.5)
        took = time.monotonic() - start
        db.close()
        assert 1.5 <= took < 10, took
        message = str(refused.value)
        assert "waited 1.5 s for another process's migration" in message and holder in message, message
        assert "if it is stuck, stop it" in message, message
        assert revision_of(url) is None


# --- one line for what cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # Tracebacks (exit status 1): No module named 'MySQLdb', 'psycopg2', 'asyncpg', 'oracledb'.
        ("mysql://duiyi:hunter2@localhost/duiyi", ("not mysql",)),
        ("postgresql+psycopg2://duiyi:hunter2@localhost/duiyi", ("through psycopg 3, not psycopg2",)),
        ("postgresql+asyncpg://duiyi:hunter2@localhost/duiyi", ("through psycopg 3, not asyncpg",)),
        ("oracle://duiyi:hunter2@localhost/duiyi", ("not oracle",)),
        # "Can't load plugin: sqlalchemy.dialects:postgres", and no word of what to write.
        ("postgres://duiyi:hunter2@localhost/duiyi", ("postgres:// is not a name SQLAlchemy knows",)),
    ],
)
def test_a_database_url_without_a_driver_is_one_line_naming_what_to_write(url: str, words: tuple[str, ...]) -> None:
    done = run("db", "upgrade", env={"DUIYI_DATABASE_URL": url})
    one_line_error(done, "duiyi: setting database_url (DUIYI_DATABASE_URL): cannot use the database", *words)
    assert "postgresql+psycopg://" in done.stderr
    if not url.startswith("postgres"):
        assert "sqlite:///" in done.stderr
    assert "hunter2" not in done.stderr and "duiyi:***@localhost/duiyi" in done.stderr


@pytest.mark.parametrize(
    ("revision", "words"),
    [
        # alembic's "Can't locate revision identified by '0014'", after the code was rolled back.
        (
            "0014",
            (
                "a newer duiyi migrated this database (schema 0014)",
                f"this version knows schemas up to {HEAD}",
                "run the newer version, or restore the backup taken before the upgrade",
            ),
        ),
        ("a1b2c3d4", ("its schema is at revision 'a1b2c3d4', which is none of duiyi's",)),
    ],
)
def test_a_database_migrated_by_a_newer_duiyi_is_said_so(tmp_path: Path, revision: str, words: tuple[str, ...]) -> None:
    path = tmp_path / "duiyi.db"
    migrate_to(f"sqlite:///{path}", "head")
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path)})
    one_line_error(done, f"duiyi: cannot use the database sqlite:///{path}: ", *words)
    assert "DUIYI_DATA_DIR" not in done.stderr  # no fault of the setting
    assert revision_of(f"sqlite:///{path}") == revision


def test_a_data_directory_that_is_a_file_is_said_so(tmp_path: Path) -> None:
    """It said "[Errno 17] File exists: '…/config.json'"."""
    a_file = tmp_path / "config.json"
    a_file.write_text("{}", encoding="utf-8")
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(a_file)})
    one_line_error(done, "setting data_dir (DUIYI_DATA_DIR", f"{a_file} is a file, not a directory")
    assert "Errno" not in done.stderr


def test_a_home_directory_in_a_path_setting_is_expanded(tmp_path: Path) -> None:
    """systemd's and Docker's env files expand nothing: DUIYI_DATA_DIR=~/duiyi-data made a folder
    named `~` in the current directory, and DUIYI_GLOSSARY_DIR=~/glossaries was "not a directory"."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    (home / "glossaries").mkdir(parents=True)
    cwd.mkdir()
    env = {"HOME": str(home), "DUIYI_DATA_DIR": "~/duiyi-data", "DUIYI_GLOSSARY_DIR": "~/glossaries"}
    done = subprocess.run(
        [DUIYI, "db", "upgrade"], capture_output=True, text=True, timeout=300, check=False, env=environ(env), cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"sqlite:///{home / 'duiyi-data' / 'duiyi.db'}: "), done.stdout
    assert list(cwd.iterdir()) == []


# --- what a start logs -----------------------------------------------------------------------------


def test_a_start_logs_one_line_about_the_schema_not_alembics(tmp_path: Path) -> None:
    """Every serve, worker and db start logged six of alembic's INFO lines ("Context impl
    SQLiteImpl.", "Will assume non-transactional DDL." three times), and one more for each
    migration. A worker whose model is missing stops after the migrations: what it logged."""
    done = run("worker", "--model", str(tmp_path / "no-model"), env={"DUIYI_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert not [line for line in lines if "alembic" in line], done.stderr
    schema = [line for line in lines if "schema" in line]
    assert len(schema) == 1 and " INFO service.cli " in schema[0], done.stderr
    path = tmp_path / "data" / "duiyi.db"
    assert schema[0].endswith(f"database sqlite:///{path}: schema none → {HEAD}, applied {ALL} migration(s)")
