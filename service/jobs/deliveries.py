"""Webhook deliveries: the outbox and the dispatcher that empties it.

`enqueue` writes an event in the caller's transaction (the one that changed the job's state), so
an event exists exactly when its state change does. The dispatcher, a thread in every process that
serves or works, claims due deliveries with a lease (safe with several processes on PostgreSQL),
signs and sends them, records every attempt, and schedules retries with exponential backoff and
jitter on network errors (a host name that does not resolve at send time among them), 429 and 5xx,
up to DUIYI_WEBHOOK_MAX_ATTEMPTS. `redeliver` puts a failed delivery back in the queue.

Each process sends with DUIYI_WEBHOOK_SENDERS threads, and at most one delivery to a callback URL
at a time: a receiver that times out (or a burst of events for one CMS) holds back only its own
deliveries, while the other senders keep serving the other receivers.

A withdrawn article's deliveries are deleted with it (`service.jobs.articles.withdraw`): a pending
one is never sent, and one being sent at that moment is neither recorded nor retried. In their place
the withdrawal writes one `article.withdrawn` event (`enqueue_withdrawn`), which has no job to point
at: it names the article in its payload and the key that signs it in `api_key_id`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.keys import owner_webhook_secrets
from service.storage.db import Database, database_unavailable, loggable
from service.storage.tables import ApiKey, Delivery, DeliveryAttempt, Job, utcnow
from service.webhooks import (
    CallbackRefused,
    CallbackUnresolved,
    backoff_delay,
    check_callback_url,
    deliver_once,
    signed_headers,
)

log = logging.getLogger(__name__)

# Events about a job that exists (`enqueue`); `article.withdrawn` is written as its job is deleted.
# `article.query`: a query on one of its segments asked, answered, resolved or reopened
# (service.jobs.comments, which adds the query's part of the payload).
JOB_EVENTS = ("article.translated", "article.approved", "article.failed", "article.query")
EVENTS = (*JOB_EVENTS, "article.withdrawn")

# The longest pause of a sender that the database failed, before it tries again.
DATABASE_BACKOFF_CAP_S = 30.0


def loggable_url(url: str) -> str:
    """A callback URL as the log shows it: without user info, query or fragment, where a CMS may
    put a token (`https://cms.example/hooks/duiyi?token=…` → `https://cms.example/hooks/duiyi`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "(an unparseable URL)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def links(settings: Settings, job_id: str) -> dict[str, str]:
    base = settings.public_url.rstrip("/")
    return {
        "article": f"{base}/v1/articles/{job_id}",
        "deliveries": f"{base}/v1/articles/{job_id}/deliveries",
    }


def enqueue(
    session: Session,
    job: Job,
    event: str,
    settings: Settings,
    *,
    article: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Delivery | None:
    """Record `event` for `job` in the current transaction; None when the job has no callback.
    `article` adds to (or replaces) fields of the payload's `article`, `extra` adds top-level parts:
    what one event says beyond the article's identifiers and state."""
    if event not in JOB_EVENTS:
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
    if event == "article.failed":
        payload["article"]["failure"] = job.failure  # why, so the CMS can tell its editors at once
    payload["article"].update(article or {})
    payload.update(extra or {})
    delivery = Delivery(
        id=delivery_id,
        job_id=job.id,
        api_key_id=job.api_key_id,
        event=event,
        url=job.callback_url,
        payload=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    )
    session.add(delivery)
    return delivery


def enqueue_withdrawn(session: Session, job: Job, *, by: str) -> Delivery | None:
    """Record `article.withdrawn` for `job`, which the caller's transaction is deleting: the CMS
    learns that the translation is gone (to take it off its pages, when an admin withdrew it for a
    legal takedown, say). The delivery outlives the job (`job_id` null); its payload carries the
    article's identifiers, the status it had and who withdrew it, never its text. No links: there
    is nothing left to read. None when the job has no callback."""
    if not job.callback_url:
        return None
    delivery_id = str(uuid.uuid4())
    payload = {
        "id": delivery_id,
        "event": "article.withdrawn",
        "created_at": utcnow().isoformat(),
        "article": {
            "id": job.id,
            "status": "withdrawn",
            "external_id": job.external_id,
            "revision": job.revision,
            "previous_status": job.status,
            "withdrawn_by": by,
        },
    }
    delivery = Delivery(
        id=delivery_id,
        job_id=None,
        api_key_id=job.api_key_id,
        event="article.withdrawn",
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
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Callback URLs a sender of this process is sending to now, so that no second sender waits
        # on the same receiver; claims are made one at a time under the lock.
        self._claiming = threading.Lock()
        self._sending: set[str] = set()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def start(self) -> None:
        for index in range(self.settings.webhook_senders):
            thread = threading.Thread(target=self._run, name=f"{self.name}-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        timeout = httpx.Timeout(self.settings.webhook_timeout_s)
        poll_s = min(1.0, self.settings.job_poll_s)
        failures = 0  # in a row: each pauses longer, up to DATABASE_BACKOFF_CAP_S
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    busy = self.run_once(client)
                except Exception as exc:  # nothing ends the thread; the outbox keeps the work
                    failures += 1
                    pause = backoff_delay(failures, base_s=poll_s, cap_s=DATABASE_BACKOFF_CAP_S)
                    if database_unavailable(exc):
                        self.db.outage.failed(exc, "webhook dispatcher")  # logged once per outage
                    else:  # a bug (its traceback without what a database error may quote: article text)
                        log.error(
                            "webhook dispatcher: unexpected error; retrying in %.1f s", pause, exc_info=loggable(exc)
                        )
                    self._pause(pause)
                    continue
                failures = 0
                self.db.outage.answered("webhook dispatcher")
                if not busy:
                    self._pause(poll_s)

    def _pause(self, seconds: float) -> None:
        """Wait `seconds`, less if woken (a new event) or stopped."""
        with self._wake:
            self._wake.wait_for(self._stop.is_set, timeout=seconds)

    def _claim(self) -> Delivery | None:
        """A due delivery to a URL that no sender of this process is sending to, leased to this
        process and its URL marked as being sent to (`_sent` clears it); None when there is none."""
        with self._claiming:
            delivery = self._claim_one(sorted(self._sending))
            if delivery is not None:
                self._sending.add(delivery.url)
            return delivery

    def _sent(self, delivery: Delivery) -> None:
        with self._claiming:
            self._sending.discard(delivery.url)

    def _claim_one(self, sending: list[str]) -> Delivery | None:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_s * 3 + 5)
        with self.db.session() as session:
            query = (
                select(Delivery.id)
                .where(
                    Delivery.state == "pending",
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                    Delivery.url.not_in(sending),
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

    def _secrets(self, session: Session, delivery: Delivery) -> list[str]:
        return signing_secrets(session, delivery, self.settings)

    def _retry_in(self, tries: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next try after try number `tries` (of this delivery's current round) failed in a way
        worth retrying; None when the round's DUIYI_WEBHOOK_MAX_ATTEMPTS are spent."""
        if tries >= self.settings.webhook_max_attempts:
            return None
        cap = self.settings.webhook_backoff_cap_s
        retry_in = backoff_delay(tries, base_s=self.settings.webhook_backoff_base_s, cap_s=cap)
        if retry_after_s is not None:
            retry_in = max(retry_in, min(retry_after_s, cap))
        return retry_in

    def run_once(self, client: httpx.Client) -> bool:
        """Try one due delivery; False when none was due."""
        delivery = self._claim()
        if delivery is None:
            return False
        try:
            self._send(client, delivery)
        finally:
            self._sent(delivery)
        return True

    def _send(self, client: httpx.Client, delivery: Delivery) -> None:
        # Tries since the delivery was queued (or queued again by `redeliver`): they set the backoff and the limit.
        tries = delivery.attempts + 1
        with self.db.session() as session:
            if session.get(Delivery, delivery.id) is None:
                log.info("webhook %s %s not sent: its article was withdrawn", delivery.event, delivery.id)
                return
            secrets = self._secrets(session, delivery)
            # Attempts are numbered over the delivery's whole life, across redeliveries.
            last = session.scalar(
                select(func.max(DeliveryAttempt.number)).where(DeliveryAttempt.delivery_id == delivery.id)
            )
        number = (last or 0) + 1
        body = delivery.payload.encode()
        try:
            addresses = check_callback_url(
                delivery.url,
                allowed_hosts=self.settings.webhook_allowed_hosts,
                allow_private=self.settings.webhook_allow_private,
            )
            if not secrets:
                raise CallbackRefused("no signing secret (the API key is gone, or DUIYI_WEBHOOK_SECRET is unset)")
        except CallbackUnresolved as exc:
            # DNS failing now (no answer, a resolver restarting) is a network error like any other: retried.
            self._record(delivery, number, tries, None, str(exc), 0.0, ok=False, retry_in=self._retry_in(tries))
            return
        except CallbackRefused as exc:
            # Refused by policy (scheme, host not allowed, a private address) or unsigned: no retry changes that.
            self._record(delivery, number, tries, None, f"refused: {exc}", 0.0, ok=False, retry_in=None)
            return
        # Several secrets (a rotation's overlap): one signature each in the header, any of which verifies.
        headers = signed_headers(secrets, body, event=delivery.event, delivery_id=delivery.id)
        # To the address just vetted, not to a second lookup of the name (which DNS rebinding could aim elsewhere).
        attempt = deliver_once(client, delivery.url, body, headers, address=addresses[0])
        retry_in = None
        if not attempt.ok and attempt.retryable:
            retry_in = self._retry_in(tries, attempt.retry_after_s)
        self._record(
            delivery,
            number,
            tries,
            attempt.status_code,
            attempt.error,
            attempt.duration_ms,
            ok=attempt.ok,
            retry_in=retry_in,
        )

    def _record(
        self,
        delivery: Delivery,
        number: int,
        tries: int,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
        *,
        ok: bool,
        retry_in: float | None,
    ) -> None:
        now = utcnow()
        with self.db.session() as session:
            # A write first, holding the row (PostgreSQL) or the database (SQLite): withdrawing its
            # article meanwhile waits for this attempt and deletes it too, or went first.
            held = session.execute(update(Delivery).where(Delivery.id == delivery.id).values(lease_until=None))
            if held.rowcount != 1:  # type: ignore[attr-defined]
                # Its article was withdrawn while this try was under way: nothing to record, no retry.
                log.info("webhook %s %s: its article was withdrawn during the attempt", delivery.event, delivery.id)
                return
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
            row = session.get(Delivery, delivery.id, populate_existing=True)
            assert row is not None
            row.attempts = tries
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
            log.info(
                "webhook %s %s delivered to %s (attempt %d)",
                delivery.event,
                delivery.id,
                loggable_url(delivery.url),
                number,
            )
        elif retry_in is not None:
            log.warning("webhook %s attempt %d failed (%s); retrying in %.1f s", delivery.id, number, error, retry_in)
        else:
            log.error(
                "webhook %s to %s failed for good after %d attempt(s): %s",
                delivery.id,
                loggable_url(delivery.url),
                number,
                error,
            )


def forget_withdrawal_notices(db: Database, before: datetime, *, dry_run: bool = False) -> int:
    """Delete the `article.withdrawn` deliveries written before `before` that are finished (delivered,
    or given up), with their attempts: the rest of their article went when it was withdrawn, and a
    retention purge (`duiyi articles purge`) takes these too. How many there were."""
    finished = (Delivery.job_id.is_(None), Delivery.state.in_(["delivered", "failed"]), Delivery.created_at < before)
    with db.session() as session:
        if dry_run:
            return int(session.scalar(select(func.count()).select_from(Delivery).where(*finished)) or 0)
        result = session.execute(delete(Delivery).where(*finished).execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


def signing_secrets(session: Session, delivery: Delivery, settings: Settings) -> list[str]:
    """The secrets that sign `delivery` now, the newest first: those of its job's API key's owner (the
    newest key's, and an older key's still in the overlap of a rotation that replaced the secret:
    `service.keys.owner_webhook_secrets`), or DUIYI_WEBHOOK_SECRET for a job submitted without a key
    (authentication disabled). Decided at each try, not when the delivery was queued, so a retry
    after a rotation's overlap carries only the new secret's signature. Empty when there is none
    (the key row is gone, or the setting is unset)."""
    key_id = delivery.api_key_id
    if key_id is None and delivery.job_id is not None:  # a delivery written before revision 0009
        job = session.get(Job, delivery.job_id)
        key_id = job.api_key_id if job is not None else None
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        return owner_webhook_secrets(session, key) if key is not None else []
    return [settings.webhook_secret] if settings.webhook_secret else []


def signing_secret(session: Session, delivery: Delivery, settings: Settings) -> str | None:
    """The newest of `signing_secrets`; None when there is none."""
    return next(iter(signing_secrets(session, delivery, settings)), None)


class DeliveryNotFound(LookupError):
    def __init__(self, job_id: str, delivery_id: str) -> None:
        super().__init__(f"article job {job_id} has no webhook delivery {delivery_id}")


class AlreadyDelivered(Exception):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"webhook delivery {delivery_id} was delivered already; there is nothing to send again")


def redeliver(db: Database, job_id: str, delivery_id: str, settings: Settings) -> Delivery:
    """Send a delivery of `job_id` again, as soon as a dispatcher is free; the row as it is now.

    A failed delivery goes back in the queue with a fresh round of DUIYI_WEBHOOK_MAX_ATTEMPTS tries (backoff starting
    over from DUIYI_WEBHOOK_BACKOFF_BASE_S); a pending one, waiting for a retry, is tried now rather than at its
    scheduled time. It stays the same delivery, with the same id and body, so a receiver that did process an
    earlier try (one whose answer was lost) drops the copy; its attempts are numbered on from the earlier ones.

    Raises DeliveryNotFound, AlreadyDelivered, and CallbackRefused when the URL is refused as things stand (the
    allowed hosts changed, no signing secret): queueing it would only fail again. A host that does not resolve at
    the moment is no reason to refuse; the dispatcher retries that."""
    with db.session() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.job_id != job_id:
            raise DeliveryNotFound(job_id, delivery_id)
        if row.state == "delivered":
            raise AlreadyDelivered(delivery_id)
        url = row.url
        secret = signing_secret(session, row, settings)
    with contextlib.suppress(CallbackUnresolved):
        check_callback_url(
            url, allowed_hosts=settings.webhook_allowed_hosts, allow_private=settings.webhook_allow_private
        )
    if not secret:
        raise CallbackRefused("no signing secret (the API key is gone, or DUIYI_WEBHOOK_SECRET is unset)")
    now = utcnow()
    with db.session() as session:
        # Conditional updates, so a dispatcher finishing a try meanwhile is never overwritten: a failed row has no
        # lease, and a pending one only has its next try brought forward (one in flight keeps what it records).
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == "failed")
            .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == "pending", Delivery.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        row = session.get(Delivery, delivery_id)
        assert row is not None
        if row.state == "delivered":
            raise AlreadyDelivered(delivery_id)
        log.info("webhook %s to %s: redelivery requested", delivery_id, loggable_url(row.url))
        return row
