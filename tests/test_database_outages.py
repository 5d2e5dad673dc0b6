"""A PostgreSQL that hangs or refuses, for real: a TCP relay on loopback in front of the test
PostgreSQL that can stall (connections accepted, nothing forwarded either way: a hung server, a
network partition) or refuse (its listener closed, its connections cut).

With the database stalled, requests get a quick 503 `database_unavailable` (never a hang), /healthz
answers even with every request thread stuck, /metrics says `duiyi_database_up 0` and /readyz is not
ready; once it flows again, everything works. A refused database is told once in the log, not at
every poll of the job runners and webhook senders. And callback URLs reach the log without the
token in their query."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from models.engine import Engine, load_engine
from models.tiny import build_tiny
from service.api.app import build_pipeline
from service.config import Settings
from service.jobs.deliveries import Dispatcher
from service.jobs.runner import JobRunner
from service.logs import configure
from service.storage.db import Database, database_unavailable
from tests.conftest import fresh_postgres, serve, webhook_receiver

# What a request on a database that hangs may take at most before its 503 (the limits make it about
# `service.storage.db.LIMITS`' ping_s + connect_s, 5 s).
BOUND_S = 10.0


class Relay:
    """A TCP relay on 127.0.0.1 to `target`, run by an event loop in a thread of its own."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-relay", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def start(self) -> None:
        self._thread.start()
        self._call(self._flow(True))
        self.accept()

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def stall(self) -> None:
        """Connections (open ones and new ones) stay open, and nothing goes through."""
        self._call(self._flow(False))

    def flow(self) -> None:
        self._call(self._flow(True))

    def refuse(self) -> None:
        """New connections are refused, open ones cut."""
        self._call(self._refuse())

    def accept(self) -> None:
        self._call(self._accept())

    async def _flow(self, on: bool) -> None:
        if on:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _accept(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        """Every connection cut and every handler ended (none left pending when the loop stops)."""
        self._closing = True
        await self._refuse()
        self._flowing.set()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if handlers:
            await asyncio.wait(handlers, timeout=5)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        await self._flowing.wait()
        if self._closing:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.add(server_w)
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        self._writers.discard(client_w)
        self._writers.discard(server_w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@contextmanager
def relayed_postgres() -> Iterator[tuple[Relay, str]]:
    """A fresh PostgreSQL database behind a Relay: the relay, and the database's URL through it."""
    with fresh_postgres() as url:
        parsed = make_url(url)
        relay = Relay(parsed.host or "127.0.0.1", parsed.port or 5432)
        relay.start()
        try:
            yield relay, parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        finally:
            relay.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Marian model (one family is enough here)."""
    return build_tiny(tmp_path_factory.mktemp("model") / "marian", "marian")


@pytest.fixture(scope="module")
def engine(model: Path) -> Engine:
    return load_engine(str(model), engine="transformers", device="cpu")


def timed_get(
    url: str, path: str, timeout: float, client: httpx.Client | None = None
) -> tuple[float, httpx.Response | Exception]:
    """GET `path`: how long it took, and the answer (or the error, a timeout say)."""
    start = time.monotonic()
    try:
        response: httpx.Response | Exception = (client or httpx).get(url + path, timeout=timeout)
    except httpx.HTTPError as exc:
        response = exc
    return time.monotonic() - start, response


def database_up(text: str) -> float | None:
    found = re.search(r"^duiyi_database_up (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def is_database_unavailable(response: httpx.Response | Exception) -> bool:
    return (
        isinstance(response, httpx.Response)
        and response.status_code == 503
        and response.json()["error"]["code"] == "database_unavailable"
        and response.headers.get("retry-after", "").isdigit()
    )


def test_a_stalled_database_gets_quick_503s_and_the_service_stays_up(model: Path, engine: Engine) -> None:
    with relayed_postgres() as (relay, url):
        settings = Settings(model=str(model), device="cpu", database_url=url, runners=0)
        with serve(settings, engine) as live:
            submitted = live.client.post("/v1/articles", json={"body": "The harbour will reopen in May."})
            assert submitted.status_code == 202, submitted.text
            assert live.client.get("/v1/articles").status_code == 200
            assert database_up(live.client.get("/metrics").text) == 1

            relay.stall()
            # A GET and a POST: the pool's check of an idle connection, or a new connection, times out.
            with ThreadPoolExecutor(2) as pool:
                get = pool.submit(timed_get, live.url, "/v1/articles", BOUND_S + 5)
                start = time.monotonic()
                posted = httpx.post(live.url + "/v1/articles", json={"body": "Another one."}, timeout=BOUND_S + 5)
                took_post = time.monotonic() - start
                took_get, alone = get.result()
            assert is_database_unavailable(alone), alone
            assert took_get <= BOUND_S, took_get
            assert is_database_unavailable(posted), posted.text
            assert took_post <= BOUND_S, took_post

            # More requests than request threads (40), all stuck on the database, and more queued for a
            # thread: /healthz, /metrics and /readyz answer all the same.
            with ThreadPoolExecutor(50) as pool:
                stuck = [pool.submit(timed_get, live.url, "/v1/articles", 30) for _ in range(50)]
                # Until the first of them can end (LIMITS.connect_s), every request thread is taken.
                took_health = 0.0
                for _ in range(4):
                    time.sleep(0.5)
                    took, health = timed_get(live.url, "/healthz", timeout=1.5, client=live.client)
                    assert isinstance(health, httpx.Response) and health.status_code == 200, health
                    took_health = max(took_health, took)
                took_metrics, scraped = timed_get(live.url, "/metrics", timeout=BOUND_S)
                assert isinstance(scraped, httpx.Response) and scraped.status_code == 200, scraped
                assert database_up(scraped.text) == 0
                took_ready, ready = timed_get(live.url, "/readyz", timeout=BOUND_S)
                assert isinstance(ready, httpx.Response) and ready.status_code == 503, ready
                assert ready.json()["error"]["code"] == "not_ready"
                assert "database" in ready.json()["error"]["message"]
                answers = [future.result() for future in stuck]
            assert all(is_database_unavailable(response) for _, response in answers), answers
            times = sorted(took for took, _ in answers)
            slowest = times[-1]
            # Queued behind each other for threads and pooled connections, still well short of a hang.
            assert slowest <= 1.5 * BOUND_S, times
            print(
                f"\nstalled: one GET 503 in {took_get:.2f} s, one POST in {took_post:.2f} s; 50 at once: slowest "
                f"{slowest:.2f} s, median {times[25]:.2f} s; /healthz at most {took_health:.3f} s, "
                f"/metrics {took_metrics:.2f} s, /readyz {took_ready:.2f} s"
            )

            relay.flow()
            start = time.monotonic()
            while live.client.get("/v1/articles").status_code != 200:
                assert time.monotonic() - start < BOUND_S, "no recovery"
                time.sleep(0.1)
            recovered = time.monotonic() - start
            assert live.client.post("/v1/articles", json={"body": "After."}).status_code == 202
            assert database_up(live.client.get("/metrics").text) == 1
            while live.client.get("/readyz").status_code != 200:  # its answer is kept a second or two
                assert time.monotonic() - start < BOUND_S, "not ready again"
                time.sleep(0.2)
            print(f"flowing again: requests answered after {recovered:.2f} s")

            # Refused: /readyz says so (the error's class only: /readyz needs no key), /healthz lives on.
            relay.refuse()
            time.sleep(2.5)  # past the readiness check's reuse of its last answer
            refused = live.client.get("/readyz")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["message"] == "the database does not answer (OperationalError)"
            assert live.client.get("/healthz").status_code == 200
            relay.accept()


def test_a_database_that_stops_answering_mid_transaction_is_given_up_on() -> None:
    """A statement on a connection that has answered before, then nothing: the client's own limit
    (the server's statement_timeout never hears of the statement) ends the wait. (Limits of 2 s
    here, to keep the test short; the service's are in the test above.)"""
    with relayed_postgres() as (relay, url):
        from service.storage.db import Limits

        limits = Limits(statement_s=1.5, wait_s=2.0)
        db = Database(url, limits=limits)
        outcome: list[BaseException | None] = []

        def transaction() -> None:
            try:
                with db.session() as session:
                    session.execute(text("SELECT 1"))
                    relay.stall()
                    session.execute(text("SELECT 2"))
                outcome.append(None)
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                outcome.append(exc)

        start = time.monotonic()
        worker = threading.Thread(target=transaction, daemon=True)  # never left hanging in pytest's way
        worker.start()
        worker.join(BOUND_S)
        took = time.monotonic() - start
        assert outcome, f"still waiting after {took:.1f} s"
        error = outcome[0]
        assert isinstance(error, OperationalError) and database_unavailable(error), error
        assert "did not answer within 2 s" in str(error)
        assert limits.wait_s <= took < limits.wait_s + 2, took
        relay.flow()
        with db.engine.connect() as conn:  # a new connection, and on it goes
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
        db.close()
        print(f"\ngiven up on after {took:.2f} s")


def test_migrations_and_long_waits_are_not_cut_short(postgres_url: str) -> None:
    """A migration waits for another process's as long as that takes (here past the service's
    statement_timeout and the client's limit, of 1 and 1.5 s in this test), and a statement run
    with LONG_WAIT is not cancelled."""
    from service.storage.db import _MIGRATION_LOCK, LONG_WAIT, Limits

    limits = Limits(statement_s=1.0, wait_s=1.5)
    db = Database(postgres_url, limits=limits)
    other = Database(postgres_url)
    held = threading.Event()

    def migrating_elsewhere() -> None:
        with other.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(_MIGRATION_LOCK)).execution_options(**LONG_WAIT))
            held.set()
            time.sleep(limits.wait_s + 1)
            conn.execute(select(func.pg_advisory_unlock(_MIGRATION_LOCK)))

    thread = threading.Thread(target=migrating_elsewhere, daemon=True)
    thread.start()
    assert held.wait(10)
    start = time.monotonic()
    db.migrate()
    assert time.monotonic() - start > limits.wait_s
    thread.join(10)
    with db.session() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "1s"
        session.execute(select(func.pg_sleep(limits.wait_s + 0.5)).execution_options(**LONG_WAIT))
        assert session.execute(text("SHOW statement_timeout")).scalar() == "0"  # for the rest of the transaction
    with db.session() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "1s"
    db.close()
    other.close()


def test_a_refused_database_is_logged_once_not_at_every_poll(
    model: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook dispatcher (3 senders) and a job runner, polling every 50 ms, against a closed
    port for 3 s: one warning each, no traceback, and far fewer tries than polls (they back off);
    one line each when the database answers them again."""
    with relayed_postgres() as (relay, url):
        db = Database(url)
        db.migrate()
        tries: list[object] = []  # each failed try to connect
        event.listen(db.engine, "handle_error", tries.append)
        settings = Settings(model=str(model), device="cpu", database_url=url, job_poll_s=0.05, webhook_senders=3)
        dispatcher = Dispatcher(db, settings)
        runner = JobRunner(db, build_pipeline(settings, engine), settings, name="runner-under-test")
        thread = threading.Thread(target=runner.run, daemon=True)
        relay.refuse()
        caplog.set_level(logging.INFO)
        try:
            dispatcher.start()
            thread.start()
            time.sleep(3)
            during = list(caplog.records)
            assert [r.getMessage() for r in during if r.levelno >= logging.ERROR] == []
            warnings = [r.getMessage() for r in during if r.levelno == logging.WARNING]
            assert len(warnings) <= 2, warnings  # at most one each: the dispatcher's senders and the runner
            assert all("the database is unavailable (OperationalError" in w for w in warnings), warnings
            # Polling every 50 ms, the 4 loops would try 240 times in 3 s.
            assert 4 <= len(tries) <= 60, len(tries)
            relay.accept()
            deadline = time.monotonic() + 20
            loops = {w.split(":")[0] for w in warnings}
            while len([r for r in caplog.records if "answers again" in r.getMessage()]) < len(loops):
                assert time.monotonic() < deadline, "the end of the outage was not logged by each loop"
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            runner.stopping.set()
            dispatcher.stop()
            thread.join(10)
            db.close()
    records = list(caplog.records)
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    # One line per loop that told of the outage, naming the same loop (each loop has its own record:
    # the runner's WARNING and the dispatcher's INFO no longer tell of one outage between them).
    after = [r.getMessage() for r in records if r not in during]
    assert all("the database answers again, after" in line for line in after), after
    assert sorted(line.split(":")[0] for line in after) == sorted(w.split(":")[0] for w in warnings), (warnings, after)
    print(f"\n{len(tries)} connection attempts in the 3 s outage")


def outage_lines(records: list[logging.LogRecord], who: str) -> tuple[list[str], list[str]]:
    """The WARNINGs that `who`'s outages started and the INFOs that they ended (`Outage`)."""
    started = [r.getMessage() for r in records if r.levelno == logging.WARNING and r.getMessage().startswith(who)]
    ended = [r.getMessage() for r in records if r.levelno == logging.INFO and r.getMessage().startswith(who)]
    return started, [line for line in ended if "the database answers again" in line]


def test_requests_refused_by_an_outage_are_logged_once_not_each(
    model: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """40 requests on a refused database: 40 answers 503, one WARNING (it was one each), and one
    INFO at the first request answered again; a second outage is told again."""
    with relayed_postgres() as (relay, url):
        settings = Settings(model=str(model), device="cpu", database_url=url, runners=0)
        with serve(settings, engine) as live:
            assert live.client.get("/v1/articles").status_code == 200
            caplog.set_level(logging.INFO)
            for outage in (1, 2):
                relay.refuse()
                answers = [live.client.get("/v1/articles") for _ in range(20)]
                answers += [live.client.post("/v1/articles", json={"body": "Refused."}) for _ in range(20)]
                assert all(is_database_unavailable(a) for a in answers), [a.status_code for a in answers]
                relay.accept()
                deadline = time.monotonic() + BOUND_S
                while live.client.get("/v1/articles").status_code != 200:
                    assert time.monotonic() < deadline, "no recovery"
                    time.sleep(0.1)
                assert live.client.get("/v1/articles").status_code == 200
                started, ended = outage_lines(caplog.records, "the API:")
                assert len(started) == outage and len(ended) == outage, (started, ended)
                assert "the database is unavailable (OperationalError" in started[-1], started
            api = [r for r in caplog.records if r.name == "service.api.errors" and r.levelno >= logging.INFO]
            assert not api, [r.getMessage() for r in api]  # no line per request (DEBUG only)


def test_lease_renewals_in_an_outage_are_logged_once_without_a_traceback(
    model: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A runner's heartbeat renewing its job's lease three times a second through a 2.5 s outage:
    one WARNING, no traceback but at DEBUG (it was a traceback at each beat), and one INFO when a
    renewal goes through again."""
    from tests.test_job_failures import add_job, runner_settings

    with relayed_postgres() as (relay, url):
        db = Database(url)
        db.migrate()
        settings = runner_settings(url, job_lease_s=1.0)
        job_id = add_job(db, settings, ["The harbour will reopen in May."])
        runner = JobRunner(db, build_pipeline(settings, engine), settings, name="beating")
        assert runner.claim() == job_id
        stop = threading.Event()
        beat = threading.Thread(target=runner._heartbeat, args=(job_id, stop), daemon=True)
        caplog.set_level(logging.DEBUG)
        tries: list[object] = []
        event.listen(db.engine, "handle_error", tries.append)
        try:
            relay.refuse()
            beat.start()
            time.sleep(2.5)
            relay.accept()
            deadline = time.monotonic() + BOUND_S
            while not outage_lines(caplog.records, "runner beating:")[1]:
                assert time.monotonic() < deadline, "the end of the outage was not logged"
                time.sleep(0.1)
        finally:
            stop.set()
            beat.join(10)
            db.close()
    assert len(tries) >= 4, tries  # the heartbeat kept trying
    started, ended = outage_lines(caplog.records, "runner beating:")
    assert len(started) == 1 and len(ended) == 1, (started, ended)
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG and (r.exc_info or r.levelno >= logging.ERROR)]
    assert not loud, [r.getMessage() for r in loud]
    quiet = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(quiet) >= 4 and all("lease renewal failed" in r.getMessage() for r in quiet), len(quiet)


def test_loggable_url_drops_what_may_hold_a_secret() -> None:
    from service.jobs.deliveries import loggable_url

    assert loggable_url("https://user:pw@cms.example:8443/hooks/duiyi?token=x&y=1#part") == (
        "https://cms.example:8443/hooks/duiyi"
    )
    assert loggable_url("http://[::1]:8080/h?token=x") == "http://[::1]:8080/h"
    assert loggable_url("http://127.0.0.1:99999999/h?token=x") == "(an unparseable URL)"


@contextmanager
def service_logging() -> Iterator[io.StringIO]:
    """The service's logging (`service.logs.configure`, as `duiyi serve` sets it up), its lines
    also copied to a buffer; pytest's own handlers and the loggers' levels restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    configure("info", "text")
    buffer = io.StringIO()
    copy = logging.StreamHandler(buffer)
    copy.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(copy)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def test_callback_tokens_stay_out_of_the_log(model: Path, engine: Engine, tmp_path: Path) -> None:
    secret = "SUPERSECRETTOKEN"
    with webhook_receiver() as receiver, service_logging() as logged:
        receiver.script = [500]  # the first delivery fails for good (one attempt allowed), the second arrives
        settings = Settings(
            model=str(model),
            device="cpu",
            database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
            job_poll_s=0.05,
            webhook_allowed_hosts=["127.0.0.1"],
            webhook_allow_private=True,
            webhook_secret="s3cret",
            webhook_max_attempts=1,
            max_length_extra=2,  # the tiny model's output: a few tokens, quickly
        )
        with serve(settings, engine) as live:
            callback = f"{receiver.url}?token={secret}"  # (user info is refused at submission)
            for body in ("Yes.", "No."):
                r = live.client.post("/v1/articles", json={"body": body, "callback_url": callback})
                assert r.status_code == 202, r.text
            receiver.wait(2)
            deadline = time.monotonic() + 10
            while "failed for good" not in logged.getvalue() or " delivered to " not in logged.getvalue():
                assert time.monotonic() < deadline, logged.getvalue()
                time.sleep(0.05)
    text = logged.getvalue()
    assert secret not in text, text
    assert f"delivered to {receiver.url} (attempt 1)" in text
    assert f"to {receiver.url} failed for good" in text
    assert "HTTP Request:" not in text  # httpx's own line, with the whole URL


def test_each_loop_tells_its_own_outage(caplog: pytest.LogCaptureFixture) -> None:
    """The record was shared by the process's loops: the runner's WARNING could be ended by the
    dispatcher's INFO, and the runner, still failing, told nothing more. Now each line of an outage
    names the loop it happened to, and each loop's outage ends when that loop is answered."""
    from service.storage.db import Outage

    outage = Outage()
    refused = OperationalError("SELECT 1", None, Exception("connection refused"))
    caplog.set_level(logging.INFO, logger="service.storage.db")
    outage.failed(refused, "runner a")
    outage.failed(refused, "webhook dispatcher")
    outage.failed(refused, "runner a")  # still the same outage
    outage.answered("webhook dispatcher")
    outage.answered("webhook dispatcher")  # no outage of its own any more
    outage.failed(refused, "runner a")
    outage.answered("runner a")
    lines = [(r.levelname, r.getMessage().split(": the database ")[0]) for r in caplog.records]
    assert lines == [
        ("WARNING", "runner a"),
        ("WARNING", "webhook dispatcher"),
        ("INFO", "webhook dispatcher"),
        ("INFO", "runner a"),
    ], lines
