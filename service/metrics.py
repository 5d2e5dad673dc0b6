"""Prometheus metrics for the engine worker (the scheduler's Observer) and the /metrics text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
