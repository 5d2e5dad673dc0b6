"""`duiyi worker`: job runners and a webhook dispatcher without the HTTP API, for scaling the
translation of articles out over processes and machines that share one PostgreSQL."""

from __future__ import annotations

import errno
import logging
import signal
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from models.engine import Engine
from service.config import Settings
from service.jobs.deliveries import Dispatcher
from service.jobs.runner import RunnerPool
from service.memory import TranslationMemory
from service.metrics import EngineMetrics
from service.storage.db import Database

log = logging.getLogger(__name__)


class MetricsPortUnavailable(OSError):
    """The metrics port cannot be listened on (taken, or not allowed), or DUIYI_HOST is not an
    address of this machine; `setting` names which."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class WorkerMetrics:
    """The engine's figures of a worker, served on DUIYI_METRICS_PORT when one is set (a worker has
    no HTTP API; the database's figures are the API's to report). The exporter starts at once, so
    `duiyi worker` makes this before it loads the model: a port it cannot listen on is said in a
    moment, not after minutes of loading, as `duiyi serve` binds its own port first."""

    def __init__(self, settings: Settings) -> None:
        self.engine = EngineMetrics()
        self._server: WSGIServer | None = None
        if not settings.metrics_port:
            return
        where = f"{settings.host}:{settings.metrics_port}"
        try:
            self._server, _ = start_http_server(
                settings.metrics_port, addr=settings.host, registry=self.engine.registry
            )
        except OSError as exc:
            # In use, or below 1024 without the privilege: the port; else the host is not this machine's.
            setting = "metrics_port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
            raise MetricsPortUnavailable(f"cannot serve metrics on {where}: {exc.strerror or exc}", setting) from None
        log.info("worker: metrics on http://%s/metrics", where)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def run_worker(
    settings: Settings,
    engine: Engine,
    stop: threading.Event,
    *,
    runners: int | None = None,
    on_ready: Callable[[], None] | None = None,
    db: Database | None = None,
    metrics: WorkerMetrics | None = None,
) -> None:
    """Translate jobs until `stop` is set; then finish the chunk in hand and hand unfinished jobs back
    (a chunk that takes longer than half a lease, at most 30 s, is abandoned: its job goes back to
    the queue all the same, never failed). `on_ready` is called once the runners are claiming jobs.
    `db`: the database, already migrated (else it is opened and migrated here); `metrics`: the
    figures, their exporter already started (else started here, MetricsPortUnavailable if it
    cannot be); both closed at the end."""
    from service.api.app import build_batching, build_pipeline

    if db is None:
        db = Database(settings.database)
        db.migrate()
    if metrics is None:
        try:
            metrics = WorkerMetrics(settings)
        except MetricsPortUnavailable:
            db.close()
            raise
    batching = build_batching(settings, engine, metrics.engine)
    pipeline = build_pipeline(settings, batching, TranslationMemory(db))
    dispatcher = Dispatcher(db, settings)
    count = runners if runners is not None else max(1, settings.runners)
    pool = RunnerPool(db, pipeline, settings, count, dispatcher)
    dispatcher.start()
    pool.start()
    log.info("worker: %d runner(s) on %s", count, db.describe())
    if on_ready is not None:
        on_ready()
    try:
        stop.wait()
    finally:
        log.info("worker: stopping; unfinished jobs go back to the queue")
        # Closing the engine ends the decoding of a chunk still in hand; its runner hands its job back.
        pool.stop(abandon=batching.close)
        dispatcher.stop()
        batching.close()
        db.close()
        metrics.close()


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the main thread must call this)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("worker: received signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
