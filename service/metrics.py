"""Prometheus metrics for /metrics: the engine worker's (the scheduler's Observer), the HTTP API's
(`RequestMetrics`, an ASGI middleware) and the job queue's and webhook outbox's, read from the
database at each scrape (`StoreCollector`: the same figures from every process sharing it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.storage.db import Database, SingleFlight
from service.storage.tables import Delivery, Job, utcnow

log = logging.getLogger(__name__)


class EngineMetrics:
    """Implements models.scheduler.Observer. One registry per app, so tests can build many apps."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue = Gauge("duiyi_queue_depth", "Sentences waiting for the engine", registry=r)
        self.rows = Histogram(
            "duiyi_batch_rows",
            "Sentences per engine pass: a whole batch, or one decoding step of the running batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "duiyi_batch_seconds", "Time of one engine pass (a whole batch, or one step)", registry=r
        )
        self.tokens = Counter("duiyi_output_tokens", "Output tokens decoded", registry=r)
        self.sentences = Counter("duiyi_sentences", "Sentences decoded", registry=r)
        self.tokens_per_s = Gauge(
            "duiyi_tokens_per_second", "Output tokens per second of the last engine pass", registry=r
        )
        self.latency = Histogram(
            "duiyi_sentence_latency_seconds", "From queueing a sentence to its translation", registry=r
        )
        self.rejected_total = Counter("duiyi_rejected_sentences", "Sentences refused: queue full", registry=r)
        self.expired_total = Counter(
            "duiyi_abandoned_sentences", "Sentences skipped: deadline passed or caller gone", registry=r
        )

    def queue_depth(self, sentences: int) -> None:
        self.queue.set(sentences)

    def batch_done(self, rows: int, output_tokens: int, seconds: float, finished: int) -> None:
        self.rows.observe(rows)
        self.batch_seconds.observe(seconds)
        self.tokens.inc(output_tokens)
        self.sentences.inc(finished)
        if seconds > 0:
            self.tokens_per_s.set(output_tokens / seconds)

    def sentence_done(self, latency_s: float) -> None:
        self.latency.observe(latency_s)

    def rejected(self, sentences: int) -> None:
        self.rejected_total.inc(sentences)

    def expired(self, sentences: int) -> None:
        self.expired_total.inc(sentences)


class RequestMetrics:
    """Counts and times every HTTP request by method, route template (`/v1/articles/{job_id}`, so
    that article ids do not become labels; a mount's `/review/static/{path}`; `unmatched` for
    paths no route has) and status. The label set is bounded: one value per route of the app, plus
    `unmatched`. A pure ASGI middleware, outermost, so that every answer is counted, refusals by
    the other middleware included, and a streamed body is not buffered."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        # The API's routes, to name a request refused before routing (a 413 at the door). Routes
        # the app has beside them (the OpenAPI document and its pages, mounts) are read from the
        # app at each request, since they are added after this middleware.
        self.routes = routes
        self.requests = Counter(
            "duiyi_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.seconds = Histogram(
            "duiyi_http_request_duration_seconds",
            "From a request's arrival to the end of its answer",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception that escapes every handler answers 500
        # The request as it came, to match routes against: routing rewrites the scope's paths
        # (a mount moves its prefix into root_path).
        arrived = dict(scope)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # FastAPI puts its own routes (APIRoute) in the scope; others (the OpenAPI document,
            # /docs, a mount's files) and requests refused before routing are matched here.
            route = _template(scope.get("route")) or self._route(arrived)
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.seconds.labels(method, route).observe(time.perf_counter() - start)

    def _route(self, scope: Scope) -> str:
        """The template of the route that routing picks for `scope`: the first full match, else the
        first partial one (the path with another method: a 405)."""
        # The app's list holds FastAPI's included routers too, which have no template of their
        # own: their routes are those given.
        app_routes: Sequence[BaseRoute] = getattr(scope.get("app"), "routes", None) or ()
        partial = None
        for route in (*self.routes, *app_routes):
            template = _template(route)
            if template is None:
                continue
            match = route.matches(scope)[0]
            if match is Match.FULL:
                return template
            if match is Match.PARTIAL and partial is None:
                partial = template
        return partial or "unmatched"


def _template(route: object) -> str | None:
    """A route's path as a template without converters (`/v1/articles/{job_id}`; a mount's
    `/review/static/{path}`), without a trailing slash: a route that only repeats another with one
    (`/v1/articles/`, which answers as `/v1/articles` does rather than redirecting) counts under it."""
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return None
    return str(path).rstrip("/") or "/"


# Job states counted at each scrape: all but `approved`, which only grows (an index range each).
JOB_STATES = ("queued", "translating", "translated", "in_review", "failed")
DELIVERY_STATES = ("pending", "failed")


class StoreCollector(Collector):
    """The job queue and the webhook outbox as they stand in the database, read at each scrape with
    a few indexed queries: jobs per state, the age of the oldest queued job (runners falling behind)
    and of the oldest webhook not yet delivered (a CMS that does not answer), webhooks waiting and
    given up. `duiyi_database_up` is 0 when the database does not answer within `time_limit_s`
    (the queries run in a thread of their own, one read at a time: a scrape while an earlier read
    still hangs waits for that one); the scrape still succeeds, well within Prometheus' default
    10 s scrape timeout."""

    def __init__(self, db: Database, *, time_limit_s: float = 3.0) -> None:
        self.db = db
        self.time_limit_s = time_limit_s
        self._reads = SingleFlight(self._read, name="duiyi-metrics-database")

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # no query at registration

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # This process's own count (`Outage.refused`), not the database's: no query.
        refused = CounterMetricFamily(
            "duiyi_database_writes_refused",
            "Writes the database answered but refused, by reason (storage_full, read_only), in this process",
            labels=["reason"],
        )
        for reason, count in self.db.outage.refused().items():
            refused.add_metric([reason.value], count)
        yield refused
        up = GaugeMetricFamily("duiyi_database_up", "Whether the database answered this scrape's queries")
        error: Exception | None = None
        try:
            families = self._reads.start().result(timeout=self.time_limit_s)
        except TimeoutError:
            error = TimeoutError(f"no answer within {self.time_limit_s:g} s")
        except SQLAlchemyError as e:
            error = e
        if error is not None:
            self.db.outage.failed(error, "metrics")  # said once per outage, not at every scrape
            up.add_metric([], 0)
            yield up
            return
        self.db.outage.answered("metrics")
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        now = utcnow()
        with self.db.session() as session:
            jobs = dict.fromkeys(JOB_STATES, 0) | dict(
                session.execute(
                    select(Job.status, func.count()).where(Job.status.in_(JOB_STATES)).group_by(Job.status)
                ).all()
            )
            oldest_job = session.scalar(select(func.min(Job.created_at)).where(Job.status == "queued"))
            deliveries = dict.fromkeys(DELIVERY_STATES, 0) | dict(
                session.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.state.in_(DELIVERY_STATES))
                    .group_by(Delivery.state)
                ).all()
            )
            oldest_delivery = session.scalar(select(func.min(Delivery.created_at)).where(Delivery.state == "pending"))
        by_state = GaugeMetricFamily(
            "duiyi_jobs", "Article jobs in each state (approved ones are not counted)", labels=["status"]
        )
        for state, count in jobs.items():
            by_state.add_metric([state], count)
        outbox = GaugeMetricFamily(
            "duiyi_webhook_deliveries", "Webhook deliveries waiting to be sent, and given up", labels=["state"]
        )
        for state, count in deliveries.items():
            outbox.add_metric([state], count)
        return [
            by_state,
            GaugeMetricFamily(
                "duiyi_oldest_queued_job_age_seconds",
                "Since the oldest queued job was submitted (0 when none waits)",
                value=_age(now, oldest_job),
            ),
            outbox,
            GaugeMetricFamily(
                "duiyi_oldest_pending_webhook_age_seconds",
                "Since the oldest webhook not yet delivered was written (0 when none waits)",
                value=_age(now, oldest_delivery),
            ),
        ]


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0
