"""The database handle: one SQLAlchemy engine and session factory per process, and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the API's threads, the job
runner and the webhook dispatcher can share one file. Several processes may share a PostgreSQL
(jobs are claimed with leases, see `service.jobs.runner`).

A PostgreSQL that does not answer must not hang the service: a server that accepts connections but
never replies, or a network that drops everything mid-connection, gives no error of its own, and a
statement would wait for ever. So every wait on PostgreSQL has a limit (see `Limits`): connecting,
each answer on an open connection (checked by the client, which sees a stalled network where the
server's own `statement_timeout` cannot), the pool's liveness check of an idle connection, and a
free connection of the pool. Past a limit the connection is closed and the caller gets an
`OperationalError`, which `database_unavailable` reads as an outage (the API answers 503
`database_unavailable`). A statement that may rightly wait longer (one queueing for a lock that
another transaction holds as long as it runs) is run with `LONG_WAIT`; migrations have no
limits but connecting's.

Text searches "in any case" (`contains_in_any_case`) match the same on both: neither database's
own case folding can be trusted beyond ASCII (SQLite's LIKE and lower() fold only A to Z;
PostgreSQL's lower() and ILIKE fold what the database's LC_CTYPE says, nothing beyond ASCII under
the C locale).

A database that answers but refuses to store (`refused_write`: its storage is full, or it is
read-only) is not down, and is said as such: the API answers 503 `storage_full` or
`database_read_only`, and the log has one ERROR naming the database and where its storage is
(`Outage`), not a "did not answer" for each request. An SQLite database in a directory that cannot
be written is refused when the `Database` is made, naming the directory and why.

Processes that start together (`serve` and `worker` on first boot, or after an upgrade) take turns
to migrate (`Database.migrate`): on PostgreSQL with an advisory lock, on SQLite with a lock file
beside the database. The others wait, saying so once in the log, and then find nothing left to do;
one that waits longer than `MIGRATION_WAIT_S` gives up, naming the process that holds the lock.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import logging
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.abc import PQGen
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    SQLColumnExpression,
    and_,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: the PostgreSQL advisory lock that lets only one process migrate at a time.
_MIGRATION_LOCK = 0x64756979
# How long a process waits for another's migration before it gives up, naming the holder (exit
# status 2 for the commands; run under a supervisor, it is started again and waits again). Several
# minutes: a migration may rewrite a large table (the translation memory's), and a holder that is
# stuck (a hung process keeping its connection, or its lock file, open) should not hang every start
# for ever, silently.
MIGRATION_WAIT_S = 600.0
# How often a waiting process tries the lock again.
_MIGRATION_POLL_S = 0.2
# The SQLite lock file beside the database (`duiyi.db.migration.lock`); it stays there.
_SQLITE_LOCK_SUFFIX = ".migration.lock"


class UnsupportedDatabase(ValueError):
    """A database URL duiyi has no driver for: its message says what to write instead. `url` is
    the URL as given, without its password."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


def supported_url(url: URL) -> URL:
    """`url`, when duiyi can use it: SQLite through Python's sqlite3 (`sqlite:///PATH`), or
    PostgreSQL through psycopg 3 (`postgresql+psycopg://…`; a plain `postgresql://` is taken as
    that, whichever driver the installed SQLAlchemy would pick for it). Otherwise UnsupportedDatabase,
    saying what to write, rather than SQLAlchemy's traceback for a driver that is not installed
    (`No module named 'MySQLdb'`) or its `Can't load plugin` for `postgres://`."""
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgresql" and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return url
    if backend == "postgres":
        why = "postgres:// is not a name SQLAlchemy knows: write postgresql+psycopg://… (the rest of the URL as it is)"
    elif backend == "postgresql":
        why = (
            f"duiyi reaches PostgreSQL through psycopg 3, not {driver}: write postgresql+psycopg://… "
            "(the rest of the URL as it is)"
        )
    elif backend == "sqlite":
        why = f"duiyi opens SQLite through Python's sqlite3, not {driver}: write sqlite:///PATH"
    else:
        why = (
            f"duiyi stores in SQLite (sqlite:///PATH, the default, in DUIYI_DATA_DIR) or PostgreSQL "
            f"(postgresql+psycopg://USER:PASSWORD@HOST/DB), not {url.drivername}"
        )
    raise UnsupportedDatabase(why, url.render_as_string(hide_password=True))


class MigrationRefused(Exception):
    """This process cannot migrate the database, through no fault of the settings: a newer duiyi
    migrated it, or another process has held the migration lock past `MIGRATION_WAIT_S`."""


@dataclass(frozen=True)
class Migration:
    """What `Database.migrate` did: the schema's revision before (None: a new database) and
    after, and how many migrations this process applied (0 when another process had applied them
    while this one waited its turn)."""

    before: str | None
    after: str | None
    applied: int

    def summary(self, database: str) -> str:
        """One line for an operator: `sqlite:///…: schema 0006 → 0013, applied 7 migration(s)`."""
        if self.applied == 0:
            return f"{database}: schema up to date at {self.after}"
        return f"{database}: schema {self.before or 'none'} → {self.after}, applied {self.applied} migration(s)"


class Refusal(StrEnum):
    """Why a database that answers refused a write (`refused_write`); the value is the label of
    `duiyi_database_writes_refused_total`."""

    STORAGE_FULL = "storage_full"
    READ_ONLY = "read_only"

    @property
    def why(self) -> str:
        if self is Refusal.STORAGE_FULL:
            return "its storage is full"
        return "it is read-only"


# SQLite's primary result codes (the low byte of an extended one: SQLITE_READONLY_DBMOVED is 8 too).
_SQLITE_REFUSALS = {13: Refusal.STORAGE_FULL, 8: Refusal.READ_ONLY}  # SQLITE_FULL, SQLITE_READONLY
# PostgreSQL's SQLSTATEs: disk_full (53100: a table, an index, the WAL or a temporary file could not
# grow), read_only_sql_transaction (25006: a hot standby, or default_transaction_read_only). Not the
# rest of class 53: out_of_memory (53200) and too_many_connections (53300) pass, and are outages.
_POSTGRES_REFUSALS = {"53100": Refusal.STORAGE_FULL, "25006": Refusal.READ_ONLY}


def refused_write(exc: BaseException) -> Refusal | None:
    """Why the database refused what `exc` was raised for, when it answered but can store nothing
    at all (its storage full, or read-only), whatever the statement: for an operator to fix, not a
    fault of the statement. None for every other error."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return _SQLITE_REFUSALS.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(orig, psycopg.Error):
        return _POSTGRES_REFUSALS.get(orig.sqlstate or "")
    return None


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be used just now (an outage: no connection, a lost
    one, a lock or a pool with none to spare; or storage that refuses writes, `refused_write`),
    rather than that a statement was wrong: the caller backs off and tries again, and a job is
    never failed for it."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # A read-only PostgreSQL raises an InternalError (25006), which is no bug of the statement.
    return exc.connection_invalidated or refused_write(exc) is not None


# What follows the first line of a database error's message, or ends it, and may quote an article:
# SQLAlchemy's statement and its parameters, PostgreSQL's DETAIL ("Failing row contains (…)").
_QUOTED_TAIL = re.compile(r"\s*(\[SQL[: ]|\[parameters: |DETAIL: ).*", re.S)


def _first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message, without what may quote the data (`_QUOTED_TAIL`)."""
    return _QUOTED_TAIL.sub("", next(iter(str(exc).strip().splitlines()), "")).strip()


def describe_error(exc: BaseException) -> str:
    """`exc` in one line for a log or a job's stored failure: the driver's error (not SQLAlchemy's
    wrapper, which adds the statement and its parameters) and the first line of its message. Never
    the parameters, nor PostgreSQL's DETAIL, which quotes the failing row: a statement's values are
    article text, confidential until published."""
    orig = getattr(exc, "orig", None) or exc
    first = _first_line(orig)
    return f"{type(orig).__name__}: {first}" if first else type(orig).__name__


# Errors whose message may quote what a statement stored: SQLAlchemy's (statement and parameters)
# and the drivers' (PostgreSQL's DETAIL).
_QUOTING_ERRORS: tuple[type[BaseException], ...] = (StatementError, psycopg.Error, sqlite3.Error)


class Redacted(Exception):
    """Stands in a log for an exception whose message may quote a statement's data (`loggable`):
    its class and `describe_error`'s line, with its traceback."""


def loggable(exc: BaseException) -> BaseException:
    """`exc` as it may be logged with its traceback (`exc_info=`): itself, unless it or an
    exception it was raised from or during is a database error, whose message may hold the
    statement's parameters or the row PostgreSQL quotes back (article text). Then a copy of the
    chain in which each exception is a `Redacted` naming its class and the first line of its
    message, with its traceback: where it happened stays in the log, the data does not."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    if not any(isinstance(link, _QUOTING_ERRORS) for link in chain):
        return exc
    stand_in: BaseException | None = None
    for link in reversed(chain):
        kind = type(link)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        first = describe_error(link) if isinstance(link, StatementError) else _first_line(link)
        outer = Redacted(f"{name}: {first}" if first else name).with_traceback(link.__traceback__)
        outer.__cause__ = stand_in
        outer.__suppress_context__ = True
        stand_in = outer
    assert stand_in is not None
    return stand_in


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'duiyi.db').resolve()}"


@dataclass(frozen=True)
class Limits:
    """How long the service waits on PostgreSQL, in seconds. Past any of them the caller gets an
    OperationalError (an outage: the API answers 503 `database_unavailable`), so a request on a
    database that hangs is answered within about `ping_s + connect_s` (a pooled connection found
    dead, then a new one that does not come), or `wait_s` when the database stops answering in the
    middle of a request, or `pool_s + connect_s` when every pooled connection is held.

    The longest statements the service runs in the ordinary way take well under a second at a
    newsroom's scale (a concordance search of 100,000 memory entries 0.13 to 0.35 s on
    PostgreSQL, a process's first suggestion lookup reading them all about 0.7 s, 500 memory entries
    a statement for a TMX import or an approval about 20 ms: docs/benchmarks.md), a fortieth of
    `statement_s` or less. A wait for a lock another transaction holds for as long as it runs
    (the translation memory's writers take turns) can rightly be longer: `LONG_WAIT`."""

    # Connecting: the TCP connection, TLS and authentication (psycopg's connect_timeout; whole
    # seconds, 2 at least). Milliseconds on a LAN or in one cloud region.
    connect_s: int = 3
    # The server cancels a statement running longer (`statement_timeout`): a query that went wrong
    # or waits for a lock, which the server sees and the connection survives. Well above the
    # longest ordinary statement at a newsroom's scale, with room for a memory ten times the one
    # measured (a concordance search of a million entries, a purge of years of articles): what
    # decides how soon a hung database is answered 503 is `ping_s + connect_s`, not this.
    statement_s: float = 15.0
    # The client waits at most this long for any answer on an open connection: a network or a
    # server that stopped answering in the middle of a request, which no server-side limit sees.
    # Longer than `statement_s`, so that a slow statement is cancelled by the server first (and its
    # connection kept).
    wait_s: float = 20.0
    # A statement run with LONG_WAIT: no statement_timeout, and the client waits this long (the
    # longest an HTTP request may take by default, DUIYI_REQUEST_TIMEOUT_S).
    long_wait_s: float = 120.0
    # The pool's check (`SELECT 1`) of a connection that was idle in it, before handing it out.
    ping_s: float = 2.0
    # Waiting for a free connection of the pool (SQLAlchemy's pool_timeout; it was 30).
    pool_s: float = 3.0
    # TCP keepalives on idle connections (probes after 30 s idle, 10 s apart, 3 unanswered: dead),
    # and unacknowledged data for 30 s ends a connection (tcp_user_timeout): they find connections
    # that a network partition left dead, including those of migrations, which have no other limit.
    keepalives_idle_s: int = 30
    keepalives_interval_s: int = 10
    keepalives_count: int = 3
    tcp_user_timeout_s: int = 30


LIMITS = Limits()

# Execution option: this statement may wait for its answer up to `Limits.long_wait_s`, and the
# server does not cancel it (statement_timeout 0), e.g. `select(func.pg_advisory_xact_lock(k))
# .execution_options(**LONG_WAIT)`. The server-side limit stays off for the rest of its
# transaction; the client's usual one comes back with the transaction's next statement.
LONG_WAIT = {"duiyi_long_wait": True}


# psycopg 3.3 and later: Connection.wait takes a timeout.
_PSYCOPG_WAITS_WITH_TIMEOUT = "timeout" in inspect.signature(psycopg.Connection.wait).parameters


class _LimitedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most `wait_limit_s` for any answer (None: no limit),
    then closes itself and raises OperationalError. `Database` sets the limit: its `Limits.ping_s`
    while the connection idles in the pool (the pool's liveness check), `wait_s` once handed out."""

    wait_limit_s: float | None = None

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = self.wait_limit_s
        if timeout is not None or limit is None:  # psycopg's own limits (cancelling, notifies)
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, limit)
        except psycopg.errors._WaitTimeout:
            # The answer may still come, in the middle of whatever is asked next: the connection is
            # done for (closed, so that SQLAlchemy sees a disconnection and drops it from its pool).
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {limit:g} s; connection closed"
            ) from None


def _postgres_connect_args(url: URL, limits: Limits, *, statement_timeout: bool) -> dict[str, Any]:
    """psycopg's connection parameters for `limits`. Parameters the URL's query sets itself
    (`?connect_timeout=10`) win; its `options` come after ours, so a `-c statement_timeout=…` of
    its own wins too."""
    given = url.query
    args: dict[str, Any] = {
        "connect_timeout": limits.connect_s,
        "keepalives": 1,
        "keepalives_idle": limits.keepalives_idle_s,
        "keepalives_interval": limits.keepalives_interval_s,
        "keepalives_count": limits.keepalives_count,
        "tcp_user_timeout": limits.tcp_user_timeout_s * 1000,
    }
    args = {name: value for name, value in args.items() if name not in given}
    if statement_timeout:
        ours = f"-c statement_timeout={round(limits.statement_s * 1000)}"
        theirs = given.get("options")
        theirs = " ".join(theirs) if isinstance(theirs, tuple) else theirs
        args["options"] = f"{ours} {theirs}" if theirs else ours
    return args


class Database:
    def __init__(self, url: str, *, echo: bool = False, limits: Limits = LIMITS) -> None:
        # UnsupportedDatabase for a URL duiyi has no driver for.
        self.url = supported_url(make_url(url))
        self.limits = limits
        # Each of the process's loops (job runners, webhook senders, metrics, the API) tells an
        # outage once in the log (`Outage`), and the process tells once that writes are refused.
        self.outage = Outage(self.describe(), self._storage)
        # hide_parameters: a statement's values (article text, confidential until published) are
        # never part of an error's message, nor of SQLAlchemy's own log lines (`echo`).
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True, "hide_parameters": True}
        if self.is_sqlite:
            if (path := self.sqlite_path) is not None:
                _check_writable(path)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif self.is_postgres:
            kwargs["connect_args"] = _postgres_connect_args(self.url, limits, statement_timeout=True)
            kwargs["pool_timeout"] = limits.pool_s
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        elif self.is_postgres and self.url.get_driver_name() == "psycopg":
            if _PSYCOPG_WAITS_WITH_TIMEOUT:
                self._limit_waits()
            else:
                log.warning(
                    "psycopg %s: no limit on waiting for PostgreSQL's answers (3.3 or later has it)",
                    psycopg.__version__,
                )
        event.listen(self.engine, "after_cursor_execute", self._count_write)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.checks = SingleFlight(self.check, name="duiyi-database-check")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database's file; None for PostgreSQL, an in-memory database or a `file:` URI."""
        name = self.url.database
        if not self.is_sqlite or not name or name == ":memory:" or name.startswith("file:"):
            return None
        return Path(name)

    def _storage(self) -> str:
        """Where the database keeps what it stores, for the log's line on a refused write: the
        file system of an SQLite database, with its free space; PostgreSQL's server."""
        path = self.sqlite_path
        if path is None:
            return "the database server's storage" if self.is_postgres else "the database's storage"
        try:
            usage = shutil.disk_usage(path.parent)
        except OSError:
            return f"the file system holding {path.parent}"
        return f"the file system holding {path.parent}: {_size(usage.free)} free of {_size(usage.total)}"

    def _count_write(
        self, _conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _executemany: bool
    ) -> None:
        """While writes are refused (`Outage.refusing`), count the write statements the thread's
        transactions run: `session` tells the refusal over when a transaction that wrote commits."""
        if self.outage.refusing is None:
            return
        if (context is not None and (context.isinsert or context.isupdate or context.isdelete)) or _WRITE.match(
            statement
        ):
            _writes.count += 1

    def _limit_waits(self) -> None:
        """The client-side limits (`_LimitedConnection`): `ping_s` while a connection idles in the
        pool (the only statement it then runs is the pool's check), `wait_s` once handed out,
        `long_wait_s` for a statement run with LONG_WAIT."""
        limits = self.limits

        def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> _LimitedConnection:
            conn = _LimitedConnection.connect(*cargs, **cparams)
            conn.wait_limit_s = limits.wait_s
            return conn

        def idle(dbapi_connection: Any, _record: Any) -> None:
            if isinstance(dbapi_connection, _LimitedConnection):
                dbapi_connection.wait_limit_s = limits.ping_s

        def handed_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if isinstance(dbapi_connection, _LimitedConnection):
                dbapi_connection.wait_limit_s = limits.wait_s

        def before_execute(
            _conn: Any, cursor: Any, _statement: str, _parameters: Any, context: Any, _executemany: bool
        ) -> None:
            dbapi_connection = cursor.connection
            if not isinstance(dbapi_connection, _LimitedConnection):
                return
            if context is not None and context.execution_options.get("duiyi_long_wait"):
                dbapi_connection.execute("SET LOCAL statement_timeout = 0")
                dbapi_connection.wait_limit_s = limits.long_wait_s
            else:
                dbapi_connection.wait_limit_s = limits.wait_s

        event.listen(self.engine, "do_connect", connect)
        event.listen(self.engine, "checkin", idle)
        event.listen(self.engine, "checkout", handed_out)
        event.listen(self.engine, "before_cursor_execute", before_execute)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def describe(self) -> str:
        """The URL without its password, for logs."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        writes = _writes.count
        with self.sessions() as session, session.begin():
            yield session
        if _writes.count != writes:  # a transaction that wrote committed while writes were refused
            self.outage.stored()

    def check(self) -> None:
        """A `SELECT 1`: raises what the database raises when it cannot answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def migrate(self, *, wait_s: float = MIGRATION_WAIT_S) -> Migration:
        """Bring the schema to the newest Alembic revision, and say what this process did.

        Processes starting together take turns instead of racing (`_migration_turn`), and the
        revision before is read once this process has its turn: the others find the schema up to
        date, and report 0 migrations applied. A process that waits says so once in the log, and
        gives up with MigrationRefused after `wait_s`. On PostgreSQL the migration runs on a
        connection of its own with no time limit but connecting's: a migration may rewrite a large
        table. A database at a revision this version does not know (a newer duiyi migrated it) is
        refused with MigrationRefused, before anything is changed."""
        engine = self.engine
        if self.is_postgres:
            connect_args = _postgres_connect_args(self.url, self.limits, statement_timeout=False)
            engine = create_engine(self.url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True)
        cfg = alembic_config(self.url.render_as_string(hide_password=False))
        script = ScriptDirectory.from_config(cfg)
        try:
            with engine.connect() as conn, self._migration_turn(conn, wait_s):
                before = _current_revision(conn)
                _check_known(before, script)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                after = _current_revision(conn)
        finally:
            if engine is not self.engine:
                engine.dispose()
        applied = 0 if before == after else len(list(script.iterate_revisions(after, before or "base")))
        return Migration(before, after, applied)

    def _migration_turn(self, conn: Connection, wait_s: float) -> AbstractContextManager[None]:
        """This process's turn to migrate: PostgreSQL's advisory lock on `conn`, or an SQLite
        database's lock file. Nothing for an SQLite database in memory (no other process sees it)."""
        if self.is_postgres:
            return _postgres_turn(conn, self.describe(), wait_s)
        if (path := self.sqlite_path) is not None:
            return _sqlite_turn(path, self.describe(), wait_s)
        return nullcontext()

    def close(self) -> None:
        self.engine.dispose()


T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs `fn` in a thread of its own, one call at a time: `start()` is the call under way, or a
    new one. For a check that must answer within a time of its own whatever the database does
    (/metrics, /readyz): the caller waits on the future as long as it likes, and a database that
    hangs holds one thread (until the limits end its wait), however often it is asked."""

    def __init__(self, fn: Callable[[], T], *, name: str) -> None:
        self._fn = fn
        self._name = name
        self._lock = threading.Lock()
        self._current: Future[T] | None = None

    def start(self) -> Future[T]:
        with self._lock:
            if self._current is None or self._current.done():
                future: Future[T] = Future()
                future.set_running_or_notify_cancel()
                threading.Thread(target=self._run, args=(future,), name=self._name, daemon=True).start()
                self._current = future
            return self._current

    def _run(self, future: Future[T]) -> None:
        try:
            future.set_result(self._fn())
        except BaseException as exc:  # noqa: BLE001 - the caller gets it from the future
            future.set_exception(exc)


@dataclass
class _Refused:
    """Writes refused for `refusal` since `since` (time.monotonic()), the last one at `last`."""

    refusal: Refusal
    since: float
    last: float


class Outage:
    """Database outages told once each in the log, however long they last and however often the
    loop that meets them tries again: for each loop (`who`: a job runner, the webhook dispatcher's
    senders, the metrics, the API's requests), a WARNING at its first failure and an INFO, with how
    long it lasted, when that loop uses the database successfully again. Each loop has its own
    record, so that both lines of an outage name the same loop, and a loop that stops asking (no
    more requests, no more scrapes) leaves no outage open for the others. The loops back off
    meanwhile, each on its own.

    A database that answers but refuses writes (`refused_write`: full, read-only) is the process's,
    not a loop's: one ERROR naming the database and its storage (`storage`) at the first refusal,
    whichever loop meets it, and one INFO when a transaction that wrote commits again (`stored`,
    called by `Database.session`) at least `settle_s` after the last refusal. Reads, which a full
    database still answers, end nothing; nor does a small write that finds room (a lease renewal)
    while larger ones (an article, a chunk of segments) are still refused: the line is not repeated
    for each request or chunk of a storage that stays full. `refused` counts the refusals."""

    # A refusal is over once writes go through this long after the last refused one.
    settle_s = 60.0

    def __init__(self, database: str = "the database", storage: Callable[[], str] | None = None) -> None:
        self._lock = threading.Lock()
        # who → time.monotonic() of its first failure, for each loop in an outage.
        self._since: dict[str, float] = {}
        self._database = database
        self._storage = storage or (lambda: "its storage")
        self._refused: _Refused | None = None
        self._counts = dict.fromkeys(Refusal, 0)

    @property
    def refusing(self) -> Refusal | None:
        """Why writes are refused, while they are (since the first refusal, until `stored`)."""
        refused = self._refused
        return refused.refusal if refused is not None else None

    def refused(self) -> dict[Refusal, int]:
        """How many writes each refusal refused since the process started (as the loops met them:
        a request answered 503, a runner's save or lease renewal, a webhook sender's)."""
        with self._lock:
            return dict(self._counts)

    def failed(self, exc: BaseException, who: str) -> None:
        """`who` (a loop) found the database unavailable (`exc`)."""
        if (refusal := refused_write(exc)) is not None:
            self._refuse(refusal, exc, who)
            return
        with self._lock:
            if who in self._since:
                return
            self._since[who] = time.monotonic()
        log.warning(
            "%s: the database is unavailable (%s); retrying with backoff, and saying so once more when it answers",
            who,
            describe_error(exc),
        )

    def _refuse(self, refusal: Refusal, exc: BaseException, who: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._counts[refusal] += 1
            refused = self._refused
            if refused is not None and refused.refusal is refusal:
                refused.last = now
                return
            self._refused = _Refused(refusal, now, now)
        log.error(
            "%s: the database %s refuses writes: %s (%s; %s). Nothing new is stored until that is fixed: "
            "requests that write are answered 503 %s, reads still work, and work accepted before is kept "
            "and carries on once writes go through; saying so once more when they do",
            who,
            self._database,
            refusal.why,
            describe_error(exc),
            self._storage(),
            "storage_full" if refusal is Refusal.STORAGE_FULL else "database_read_only",
        )

    def stored(self) -> None:
        """A transaction that wrote was committed: the refusal, if any, is over once this comes
        `settle_s` after the last refused write."""
        now = time.monotonic()
        with self._lock:
            refused = self._refused
            if refused is None or now - refused.last < self.settle_s:
                return
            self._refused = None
        log.info(
            "the database %s stores again: writes were refused (%s) for %.1f s, the last %.1f s ago",
            self._database,
            refused.refusal.value,
            refused.last - refused.since,
            now - refused.last,
        )

    def answered(self, who: str) -> None:
        """`who` used the database successfully."""
        if not self._since:  # the common case: no outage, no lock
            return
        with self._lock:
            since = self._since.pop(who, None)
        if since is not None:
            log.info("%s: the database answers again, after %.1f s unavailable", who, time.monotonic() - since)


# A statement that changes rows, written as text (SQLAlchemy's own say so in their context).
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.I)


class _Writes(threading.local):
    """Each thread's count of the write statements it ran while writes were refused."""

    count = 0


_writes = _Writes()


def _size(n: int) -> str:
    """`n` bytes for a reader: "512 bytes", "3.9 MiB"."""
    if n < 1024:
        return f"{n} bytes"
    size, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.1f} {unit}"


class StorageNotWritable(PermissionError):
    """The SQLite database's directory or files cannot be written (a read-only file system, or
    permissions): the service could not store anything there."""


def _check_writable(path: Path) -> None:
    """Make `path`'s directory if it is missing, and raise StorageNotWritable when SQLite could not
    write there: it needs the directory too, for the -wal and -shm files beside the database (WAL
    mode), even where the file itself exists. SQLite itself would say only "unable to open
    database file", at the first statement."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            # The directory, or one above it, is a file: mkdir says only "[Errno 17] File exists".
            file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
            raise NotADirectoryError(f"{file} is a file, not a directory") from None
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        ancestor = next((p for p in folder.parents if p.exists()), folder)
        raise StorageNotWritable(
            f"the directory {folder} cannot be made: {ancestor} {_not_writable(ancestor)}"
        ) from None
    for target, mode in (
        (folder, os.W_OK | os.X_OK),
        *((p, os.W_OK) for p in (path, *_sqlite_companions(path)) if p.exists()),
    ):
        if not os.access(target, mode):
            raise StorageNotWritable(
                f"{target} {_not_writable(target)}; the SQLite database {path} and its -wal, -shm and "
                f"{_SQLITE_LOCK_SUFFIX} files beside it must be writable"
            )


def _sqlite_companions(path: Path) -> tuple[Path, ...]:
    """The files SQLite and duiyi keep beside the database `path`: WAL mode's, and the migration lock."""
    return Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}{_SQLITE_LOCK_SUFFIX}")


def _not_writable(target: Path) -> str:
    """Why `target` cannot be written, as the end of a sentence naming it."""
    try:
        read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "is on a read-only file system" if read_only else f"is not writable by this user (uid {os.getuid()})"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _current_revision(conn: Connection) -> str | None:
    """The schema's Alembic revision (None: a database without one), read on `conn`, whose
    transaction is then ended (alembic begins its own)."""
    revision = MigrationContext.configure(conn).get_current_revision()
    conn.commit()
    return revision


def _check_known(revision: str | None, script: ScriptDirectory) -> None:
    """MigrationRefused for a database at a revision this version's migrations do not have, rather
    than alembic's "Can't locate revision identified by '0014'" after a rollback of the code."""
    if revision is None or any(known.revision == revision for known in script.walk_revisions()):
        return
    head = script.get_current_head()
    if re.fullmatch(r"\d{4}", revision) and head is not None and revision > head:
        raise MigrationRefused(
            f"a newer duiyi migrated this database (schema {revision}), and this version knows schemas up "
            f"to {head}: run the newer version, or restore the backup taken before the upgrade to go back "
            "to this one (there is no downgrade)"
        )
    raise MigrationRefused(
        f"its schema is at revision {revision!r}, which is none of duiyi's (this version knows schemas up to "
        f"{head}): is it another application's database?"
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} s"


def _wait_for_turn(take: Callable[[], bool], holder: Callable[[], str], database: str, wait_s: float) -> None:
    """Take the migration lock (`take`: whether it was taken, without waiting), waiting for
    another process's turn, once said in the log, for `wait_s` at most. `holder`: who holds it,
    for the log and the error."""
    if take():
        return
    start = time.monotonic()
    log.info(
        "waiting for another process's migration of the database %s to end (the migration lock is %s); "
        "giving up after %s",
        database,
        holder(),
        _duration(wait_s),
    )
    while not take():
        if time.monotonic() - start >= wait_s:
            raise MigrationRefused(
                f"waited {_duration(wait_s)} for another process's migration, which has not ended (the migration "
                f"lock is {holder()}): it may be migrating a large database still; if it is stuck, stop it, "
                "then start this one again"
            )
        time.sleep(_MIGRATION_POLL_S)
    log.info(
        "the other process's migration of the database %s ended after %.1f s; going on",
        database,
        time.monotonic() - start,
    )


@contextmanager
def _postgres_turn(conn: Connection, database: str, wait_s: float) -> Iterator[None]:
    """This process's turn to migrate a PostgreSQL database: the session's advisory lock on `conn`
    (the other processes' `pg_try_advisory_lock` fails until it is released, or the session ends)."""

    def take() -> bool:
        taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _MIGRATION_LOCK}).scalar())
        conn.commit()
        return taken

    _wait_for_turn(take, lambda: _postgres_holder(conn), database, wait_s)
    try:
        yield
    finally:
        try:
            conn.rollback()  # a migration that failed left its transaction aborted
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()
        except SQLAlchemyError:
            pass  # the connection is lost, and its lock with it


def _postgres_holder(conn: Connection) -> str:
    """Who holds the migration lock: the PostgreSQL session's pid, client and application."""
    row = conn.execute(
        text(
            "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :high AND l.objid::bigint = :low "
            "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"high": _MIGRATION_LOCK >> 32, "low": _MIGRATION_LOCK & 0xFFFFFFFF},
    ).first()
    conn.commit()
    if row is None:
        return "held by a session this user cannot see"
    pid, client, application = row
    who = f"held by the PostgreSQL session of pid {pid}"
    if client is not None:
        who += f", client {client}"
    return f"{who}, application {application!r}" if application else who


@contextmanager
def _sqlite_turn(path: Path, database: str, wait_s: float) -> Iterator[None]:
    """This process's turn to migrate an SQLite database: an exclusive `flock` on the lock file
    beside it, which says which process holds it. A lock of the kernel's, not of SQLite's: alembic
    runs SQLite's DDL outside any transaction (a batch migration copies a table and renames it in
    several statements, each committed), so no transaction of ours could hold the others off for
    the whole migration; and the lock covers reading the revision before, too. The kernel releases
    it when its process ends, however it ends. The file stays (removing it would let a process
    that opened it before lock a file no longer there)."""
    lock = Path(f"{path}{_SQLITE_LOCK_SUFFIX}")
    with open(lock, "a+", encoding="utf-8") as file:

        def take() -> bool:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        def holder() -> str:
            try:
                note = lock.read_text(encoding="utf-8").strip()
            except OSError:
                note = ""
            return f"{lock}, held by {note}" if note else str(lock)

        _wait_for_turn(take, holder, database, wait_s)
        try:
            file.seek(0)
            file.truncate()
            file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            file.flush()
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Each new SQLite connection: its pragmas, and the function `contains_in_any_case` calls."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # What `contains_in_any_case` calls on SQLite for a query with letters beyond ASCII.
    dbapi_connection.create_function("duiyi_contains_any_case", 2, _sqlite_contains, deterministic=True)


# --- text in any case ------------------------------------------------------------------------------
#
# Two characters are the same in any case when str.casefold folds them to the same text: É and é,
# Ö and ö, Σ, σ and ς, Д and д, Ａ and ａ, ß and ẞ (but one character never matches two: ß is not
# "ss"). ASCII letters match only each other (a and A, not the Kelvin sign), as LIKE has it. The
# query is matched as typed otherwise: no NFKC, so "ABC" does not find the full-width "ＡＢＣ" of
# Chinese text (width-folding the query alone would lose exactly those; folding every stored row
# would make every English search pay for it), while "ａｂｃ" does.
#
# A query with no such letter beyond ASCII (English, Chinese, digits) is searched as before, with
# LIKE: SQLite's ignores the case of A to Z, and PostgreSQL's lower() folds A to Z under any locale
# (but a Turkish one, where I becomes ı).
# One with such a letter is matched by a regular expression holding each letter's forms as a
# bracket ("[Éé]lys[Éé]e"), which Python's `re` and PostgreSQL's `~` read alike and which needs no
# locale: on PostgreSQL `~` itself, on SQLite a Python function (`_sqlite_contains`) behind a LIKE
# of the query's other characters.

# Every character with another case is below U+20000 (tests/test_search_case.py checks it against
# the running Python's Unicode tables): the table below is built from those 128 K code points only.
_CASED_BELOW = 0x20000


@functools.cache
def _forms_by_fold() -> dict[str, str]:
    """For each casefolded text that some other character folds to: every character that folds to
    it, and the text itself where it is one character, in code point order."""
    found: dict[str, set[str]] = {}
    for code in range(_CASED_BELOW):
        char = chr(code)
        folded = char.casefold()
        if folded != char:
            found.setdefault(folded, set()).add(char)
    return {
        folded: "".join(sorted(chars | ({folded} if len(folded) == 1 else set()))) for folded, chars in found.items()
    }


def case_forms(char: str) -> str:
    """`char` and the characters equal to it in any case (see above), in code point order: "Éé"
    for "é", "Σςσ" for "σ", "Aa" for "a", "基" for "基"."""
    if char.isascii():
        return "".join(sorted({char.lower(), char.upper()}))
    return _forms_by_fold().get(char.casefold(), char)


def has_unicode_case(text: str) -> bool:
    """Whether `text` holds a character beyond ASCII that has a case: another form (see above), or
    a lower, upper or folded form of its own ("İ", whose lower() is "i̇"), which a database's lower()
    could map otherwise than Python's."""
    return not text.isascii() and any(
        not c.isascii() and (len(case_forms(c)) > 1 or not c.lower() == c.upper() == c.casefold() == c) for c in text
    )


def any_case_pattern(text: str) -> str:
    """A regular expression that matches `text` in any case: each character with other forms as a
    bracket of its forms, every other one as itself (escaped). Python's `re` and PostgreSQL's `~`
    read it alike: the brackets hold only letters, and `re.escape` puts a backslash only before
    characters that are not letters or digits, which both take as the character itself."""
    return "".join(f"[{forms}]" if len(forms := case_forms(c)) > 1 else re.escape(c) for c in text)


def contains_in_any_case(column: SQLColumnExpression[Any], text: str, dialect: str) -> ColumnElement[bool]:
    """Whether `column` holds `text` in any case (see above); `text` is plain text (`%` and `_`
    are no wildcards), composed (NFC) here: a decomposed É (E and a combining accent) finds the
    composed one stored. `dialect`: "sqlite" or "postgresql"."""
    text = unicodedata.normalize("NFC", text)
    if not has_unicode_case(text):
        if dialect == "sqlite" or text.lower() == text.upper():
            return column.contains(text, autoescape=True)  # SQLite's LIKE ignores the case of A to Z
        return func.lower(column).contains(text.lower(), autoescape=True)
    if dialect != "sqlite":
        return column.regexp_match(any_case_pattern(text))
    # A Python function for each row costs 2 to 3 times a LIKE scan of the table (its arguments
    # are read into Python each time); a LIKE of the query's other characters, with `_` (any one
    # character) for each of those letters, leaves it few rows where the query has some to hold on to.
    # (SQLite's LIKE ignores the case of A to Z and no other: other characters are matched as they are.)
    contains = func.duiyi_contains_any_case(column, text, type_=Boolean)
    if not any(c.isalnum() and not _has_forms(c) for c in text):
        return contains
    like = "".join("_" if _has_forms(c) else f"/{c}" if c in "%_/" else c for c in text)
    return and_(column.like(f"%{like}%", escape="/"), contains)


def _has_forms(char: str) -> bool:
    """Whether `char` is a character beyond ASCII with other forms in another case."""
    return not char.isascii() and len(case_forms(char)) > 1


@functools.lru_cache(maxsize=64)
def _matcher(text: str) -> tuple[str, re.Pattern[str]]:
    return text.casefold(), re.compile(any_case_pattern(text))


def _sqlite_contains(value: object, text: object) -> bool | None:
    """SQLite's `duiyi_contains_any_case(value, text)`: whether `value` holds `text` in any case.
    A row is first tested by its casefolded text (quick, and true of every match: no ASCII-only row
    holds a non-ASCII letter), then by the regular expression. Never raises: an exception here
    would reach the caller as an OperationalError, which reads as the database being down."""
    if not isinstance(value, str) or not isinstance(text, str):
        return None
    folded, pattern = _matcher(text)
    if value.isascii() and not folded.isascii():
        return False
    return folded in value.casefold() and pattern.search(value) is not None
