"""`duiyi worker`: job runners and a webhook dispatcher without the HTTP API, for scaling the
translation of articles out over processes and machines that share one PostgreSQL."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

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
    """The metrics port cannot be listened on (taken, or not allowed)."""


def run_worker(
    settings: Settings,
    engine: Engine,
    stop: threading.Event,
    *,
    runners: int | None = None,
    on_ready: Callable[[], None] | None = None,
    db: Database | None = None,
) -> None:
    """Translate jobs until `stop` is set; then finish the chunk in hand and hand unfinished jobs back
    (a chunk that takes longer than half a lease, at most 30 s, is abandoned: its job goes back to
    the queue all the same, never failed). `on_ready` is called once the runners are claiming jobs.
    `db`: the database, already migrated (else it is opened and migrated here); closed at the end."""
    from service.api.app import build_batching, build_pipeline

    if db is None:
        db = Database(settings.database)
        db.migrate()
    metrics = EngineMetrics()
    batching = build_batching(settings, engine, metrics)
    exporter = None
    if settings.metrics_port:
        # The engine's figures (the database's are the API's to report): what a GPU worker decodes.
        try:
            exporter, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=metrics.registry)
        except OSError as exc:
            batching.close()
            db.close()
            raise MetricsPortUnavailable(
                f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {exc.strerror or exc}"
            ) from None
        log.info("worker: metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
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
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the main thread must call this)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("worker: received signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
