"""Webhook deliveries: the outbox and the dispatcher that empties it.

`enqueue` writes an event in the caller's transaction (the one that changed the job's state), so
an event exists exactly when its state change does. The dispatcher, a thread in every process that
serves or works, claims due deliveries with a lease (safe with several processes on PostgreSQL),
signs and sends them, records every attempt, and schedules retries with exponential backoff and
jitter on network errors, 429 and 5xx, up to DUIYI_WEBHOOK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.storage.db import Database
from service.storage.tables import ApiKey, Delivery, DeliveryAttempt, Job, utcnow
from service.webhooks import CallbackRefused, backoff_delay, check_callback_url, deliver_once, signed_headers

log = logging.getLogger(__name__)

EVENTS = ("article.translated", "article.approved")


def links(settings: Settings, job_id: str) -> dict[str, str]:
    base = settings.public_url.rstrip("/")
    return {
        "article": f"{base}/v1/articles/{job_id}",
        "deliveries": f"{base}/v1/articles/{job_id}/deliveries",
    }


def enqueue(session: Session, job: Job, event: str, settings: Settings) -> Delivery | None:
    """Record `event` for `job` in the current transaction; None when the job has no callback."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    if not job.callback_url:
        return None
    delivery_id = str(uuid.uuid4())
    payload: dict[str, Any] = {
        "id": delivery_id,
        "event": event,
        "created_at": utcnow().isoformat(),
        "article": {
            "id": job.id,
            "status": job.status,
            "external_id": job.external_id,
            "revision": job.revision,
            "links": links(settings, job.id),
        },
    }
    delivery = Delivery(
        id=delivery_id,
        job_id=job.id,
        event=event,
        url=job.callback_url,
        payload=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    )
    session.add(delivery)
    return delivery


class Dispatcher:
    """Sends due deliveries until stopped. `wake()` makes it look at once (a new event)."""

    def __init__(self, db: Database, settings: Settings, *, name: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.name = name or f"dispatcher-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        timeout = httpx.Timeout(self.settings.webhook_timeout_s)
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    busy = self.run_once(client)
                except Exception:  # a database hiccup must not end the thread; the outbox keeps the work
                    log.exception("webhook dispatcher: unexpected error; retrying shortly")
                    busy = False
                if not busy:
                    self._wake.wait(min(1.0, self.settings.job_poll_s))
                    self._wake.clear()

    def _claim(self) -> Delivery | None:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_s * 3 + 5)
        with self.db.session() as session:
            query = (
                select(Delivery.id)
                .where(
                    Delivery.state == "pending",
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(1)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            delivery_id = session.scalar(query)
            if delivery_id is None:
                return None
            claimed = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.state == "pending",
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                )
                .values(lease_until=lease)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return session.get(Delivery, delivery_id)

    def _secret(self, session: Session, delivery: Delivery) -> str | None:
        job = session.get(Job, delivery.job_id)
        if job is not None and job.api_key_id is not None:
            key = session.get(ApiKey, job.api_key_id)
            return key.webhook_secret if key is not None else None
        return self.settings.webhook_secret

    def run_once(self, client: httpx.Client) -> bool:
        """Try one due delivery; False when none was due."""
        delivery = self._claim()
        if delivery is None:
            return False
        number = delivery.attempts + 1
        with self.db.session() as session:
            secret = self._secret(session, delivery)
        body = delivery.payload.encode()
        try:
            addresses = check_callback_url(
                delivery.url,
                allowed_hosts=self.settings.webhook_allowed_hosts,
                allow_private=self.settings.webhook_allow_private,
            )
            if not secret:
                raise CallbackRefused("no signing secret (the API key is gone, or DUIYI_WEBHOOK_SECRET is unset)")
        except CallbackRefused as exc:
            self._record(delivery, number, None, f"refused: {exc}", 0.0, ok=False, retry_in=None)
            return True
        headers = signed_headers(secret, body, event=delivery.event, delivery_id=delivery.id)
        # To the address just vetted, not to a second lookup of the name (which DNS rebinding could aim elsewhere).
        attempt = deliver_once(client, delivery.url, body, headers, address=addresses[0])
        retry_in = None
        if not attempt.ok and attempt.retryable and number < self.settings.webhook_max_attempts:
            retry_in = backoff_delay(
                number, base_s=self.settings.webhook_backoff_base_s, cap_s=self.settings.webhook_backoff_cap_s
            )
            if attempt.retry_after_s is not None:
                retry_in = max(retry_in, min(attempt.retry_after_s, self.settings.webhook_backoff_cap_s))
        error = attempt.error
        self._record(
            delivery, number, attempt.status_code, error, attempt.duration_ms, ok=attempt.ok, retry_in=retry_in
        )
        return True

    def _record(
        self,
        delivery: Delivery,
        number: int,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
        *,
        ok: bool,
        retry_in: float | None,
    ) -> None:
        now = utcnow()
        with self.db.session() as session:
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    number=number,
                    at=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            row = session.get(Delivery, delivery.id)
            assert row is not None
            row.attempts = number
            row.lease_until = None
            row.last_error = error
            if ok:
                row.state = "delivered"
                row.delivered_at = now
            elif retry_in is not None:
                row.next_attempt_at = now + timedelta(seconds=retry_in)
            else:
                row.state = "failed"
        if ok:
            log.info("webhook %s %s delivered to %s (attempt %d)", delivery.event, delivery.id, delivery.url, number)
        elif retry_in is not None:
            log.warning("webhook %s attempt %d failed (%s); retrying in %.1f s", delivery.id, number, error, retry_in)
        else:
            log.error(
                "webhook %s to %s failed for good after %d attempt(s): %s", delivery.id, delivery.url, number, error
            )
