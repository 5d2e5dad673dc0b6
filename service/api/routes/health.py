"""Health: /healthz (the process is up: Docker's HEALTHCHECK), /readyz (ready for traffic: the model
answers and the database does) and /metrics.

/healthz runs on the event loop and touches nothing: it answers while every worker thread waits
on a database that hangs, so a database outage never gets the container restarted. /readyz and
/metrics wait on the database for a limited time, each in a thread of its own (never the request
thread pool, which requests stuck on a hanging database may hold)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.schemas import Health, Ready
from service.storage.db import Database

router = APIRouter(tags=["health"])
_PROBE_TTL_S = 10.0
# /readyz's database check: a `SELECT 1` given this long (a healthy database answers in
# milliseconds), its answer reused for _DATABASE_TTL_S, so that probes every second or two from
# several load balancers cost the database one query at most that often.
_DATABASE_CHECK_S = 2.0
_DATABASE_TTL_S = 2.0


@dataclass
class _DatabaseCheck:
    checked_at: float = 0.0  # time.monotonic(); 0: never
    reason: str = ""  # why the database is not ready; empty: it answered


_database_checks: WeakKeyDictionary[Database, _DatabaseCheck] = WeakKeyDictionary()


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    """200 `{"status": "ok"}` while the process runs. It touches neither the model nor the
    database, so it answers during a database outage: Docker's HEALTHCHECK asks it. Load balancers
    should ask /readyz. Needs no key."""
    return Health(status="ok")


async def _database_not_ready(db: Database) -> str:
    """Why the database is not ready ("" when it answered), from a check at most _DATABASE_TTL_S old."""
    state = _database_checks.setdefault(db, _DatabaseCheck())
    if time.monotonic() - state.checked_at > _DATABASE_TTL_S:
        # A check still under way (the database hangs) is waited for, not doubled.
        check = db.checks.start()
        deadline = time.monotonic() + _DATABASE_CHECK_S
        while not check.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not check.done():
            state.reason = f"the database did not answer within {_DATABASE_CHECK_S:g} s"
        elif (error := check.exception()) is not None:
            # The class only: the driver's message names the database's host, and /readyz needs no key.
            state.reason = f"the database does not answer ({type(error).__name__})"
        else:
            state.reason = ""
        state.checked_at = time.monotonic()
    return state.reason


@router.get(
    "/readyz",
    response_model=Ready,
    responses=responses(503),
    summary="The model is loaded and answering, and the database answers",
)
async def readyz(runtime: RuntimeDep) -> Ready:
    """200 with the model's name and device when the service can take traffic: the database
    answered a `SELECT 1` within 2 s (asked at most every 2 s) and the model translated a test
    sentence (asked at most every 10 s); otherwise 503 `not_ready`, saying which failed. Needs no
    key.

    A database that answers but refuses writes (its storage full, or read-only) leaves the instance
    ready: every instance shares that database, so it would take them all out of the load balancer
    at once, turning each refused write's 503 `storage_full` or `database_read_only`, which says
    what is wrong, into the balancer's own error, and losing the reads that still work (finished
    translations, the review app). It is told by the log's ERROR and
    `duiyi_database_writes_refused_total` instead."""
    engine = runtime.engine
    if reason := await _database_not_ready(runtime.db):
        raise ApiError(503, "not_ready", reason)
    state = runtime.readiness
    if time.monotonic() - state.checked_at > _PROBE_TTL_S:

        def probe() -> None:
            # A new sentence each time: a cached answer would not show that the model still runs.
            engine.translate_batch([f"Ready check {time.time_ns()}."], deadline=time.monotonic() + 30)

        try:
            await run_in_threadpool(probe)
            state.ok, state.reason = True, ""
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
            state.ok, state.reason = False, f"{type(exc).__name__}: {exc}"
        state.checked_at = time.monotonic()
    if not state.ok:
        raise ApiError(503, "not_ready", f"the model {engine.name!r} is not answering: {state.reason}")
    return Ready(status="ready", model=engine.name, device=engine.device)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics: the engine, HTTP requests, the job queue and webhooks (README: Monitoring)",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    """Prometheus text format, for a scraper: the engine's figures, HTTP requests, the job queue and
    webhook deliveries (README: Monitoring). Needs no key."""
    # In the event loop's own executor, not the request thread pool: the database figures wait at
    # most StoreCollector.time_limit_s, and the scrape must not queue behind requests that wait longer.
    body = await asyncio.to_thread(generate_latest, runtime.metrics.registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
