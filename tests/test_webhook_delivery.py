"""Webhooks end to end: the service's dispatcher posts signed events to a real receiver on
loopback; a receiver that fails twice gets the event on the third attempt; a callback to a host
outside the allow-list, or to a private address without permission, is refused at submission."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service import webhooks
from service.auth import Role
from service.config import Settings
from service.keys import create_key
from service.storage.db import Database
from service.webhooks import DELIVERY_HEADER, EVENT_HEADER, verify
from tests.conftest import REPO, LiveServer, WebhookReceiver, keyed_settings, make_keys, serve


@contextmanager
def keyed_service(
    model: Path, engine: Engine, url: str, **settings: Any
) -> Iterator[tuple[LiveServer, dict[str, tuple[str, str]]]]:
    """The service on database `url` with keys on (one per role: the key and its webhook secret),
    callbacks allowed to loopback (explicitly), fast retries unless `settings` say otherwise."""
    made = make_keys(url, (Role.CMS, Role.TRANSLATOR, Role.ADMIN))
    keys = {role: (key.key, key.row.webhook_secret) for role, key in made.items()}
    defaults: dict[str, Any] = {
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_allow_private": True,
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_cap_s": 0.2,
        "rate_limit_per_minute": 600,
    }
    with serve(keyed_settings(model, url, **(defaults | settings)), engine) as live:
        yield live, keys


@pytest.fixture
def hooked(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path
) -> Iterator[tuple[LiveServer, dict[str, tuple[str, str]]]]:
    """The service with keys on, callbacks allowed to loopback (explicitly), fast retries."""
    with keyed_service(tiny_dirs["marian"], engines["marian"], f"sqlite:///{tmp_path / 'duiyi.db'}") as service:
        yield service


def readme_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    """The verification snippet from the README's Webhooks section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the README's Webhooks section has no Python snippet"
    scope: dict[str, object] = {}
    exec(code.group(1), scope)
    return scope["verify"]  # type: ignore[return-value]


def auth(keys: dict[str, tuple[str, str]], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role][0]}"}


def submit(live: LiveServer, keys: dict[str, tuple[str, str]], callback: str) -> str:
    r = live.client.post(
        "/v1/articles", json={"body": "Abe Shinzo met John Kerry.", "callback_url": callback}, headers=auth(keys, "cms")
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_signed_article_translated(
    hooked: tuple[LiveServer, dict[str, tuple[str, str]]], receiver: WebhookReceiver
) -> None:
    live, keys = hooked
    job_id = submit(live, keys, receiver.url)
    receiver.wait(1)
    headers, body = receiver.received[0]
    secret = keys["cms"][1]
    assert verify(secret, headers, body)
    assert readme_verify()(secret, headers, body)  # the snippet receivers copy works as printed
    assert not readme_verify()(secret, headers, body + b" ")
    assert not verify(keys["translator"][1], headers, body)  # another key's secret does not verify
    event = json.loads(body)
    assert headers[EVENT_HEADER] == event["event"] == "article.translated"
    assert event["article"]["id"] == job_id and event["article"]["status"] == "translated"
    assert event["article"]["links"]["article"] == f"/v1/articles/{job_id}"
    assert live.client.get(f"/v1/articles/{job_id}", headers=auth(keys, "cms")).json()["status"] == "translated"
    deliveries = live.client.get(f"/v1/articles/{job_id}/deliveries", headers=auth(keys, "cms")).json()
    assert len(deliveries) == 1
    assert deliveries[0]["state"] == "delivered" and deliveries[0]["id"] == headers[DELIVERY_HEADER]
    assert [a["status_code"] for a in deliveries[0]["attempts"]] == [200]

    # Approval fires article.approved, signed with the submitting key's secret.
    live.client.post(f"/v1/articles/{job_id}/approve", json={"override": "test"}, headers=auth(keys, "translator"))
    receiver.wait(2)
    headers, body = receiver.received[1]
    assert verify(secret, headers, body)
    assert json.loads(body)["event"] == "article.approved"
    assert json.loads(body)["article"]["status"] == "approved"


def test_retries_until_the_receiver_answers(
    hooked: tuple[LiveServer, dict[str, tuple[str, str]]], receiver: WebhookReceiver
) -> None:
    live, keys = hooked
    receiver.script = [503, 500]
    job_id = submit(live, keys, receiver.url)
    receiver.wait(3)
    ids = {h[DELIVERY_HEADER] for h, _ in receiver.received}
    assert len(ids) == 1  # the same delivery, retried; a receiver can drop duplicates by id
    assert all(verify(keys["cms"][1], h, b) for h, b in receiver.received)
    deadline = time.monotonic() + 10
    while True:
        delivery = live.client.get(f"/v1/articles/{job_id}/deliveries", headers=auth(keys, "cms")).json()[0]
        if delivery["state"] == "delivered" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert delivery["state"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 500, 200]
    assert [a["number"] for a in delivery["attempts"]] == [1, 2, 3]
    assert delivery["attempts"][0]["error"] == "HTTP 503"


def test_gives_up_after_the_limit_and_records_it(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=True,
        webhook_secret="local-secret",
        webhook_backoff_base_s=0.01,
        webhook_max_attempts=3,
        job_poll_s=0.05,
    )
    receiver.script = [500] * 10
    with serve(settings, engines["marian"]) as live:
        job_id = live.client.post("/v1/articles", json={"body": "Hello.", "callback_url": receiver.url}).json()["id"]
        receiver.wait(3)
        time.sleep(0.5)
        delivery = live.client.get(f"/v1/articles/{job_id}/deliveries").json()[0]
    assert len(receiver.received) == 3
    assert delivery["state"] == "failed" and len(delivery["attempts"]) == 3
    assert verify("local-secret", *receiver.received[0])


@pytest.mark.parametrize(
    ("callback", "allow_private", "words"),
    [
        ("https://hooks.evil.example/x", True, "DUIYI_WEBHOOK_ALLOWED_HOSTS"),
        ("http://127.0.0.1:9/hook", False, "DUIYI_WEBHOOK_ALLOW_PRIVATE"),
        ("ftp://127.0.0.1/hook", True, "http"),
    ],
)
def test_disallowed_callbacks_refused_at_submission(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], callback: str, allow_private: bool, words: str
) -> None:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=allow_private,
        webhook_secret="s",
        runners=0,
    )
    with serve(settings, engines["marian"]) as live:
        r = live.client.post("/v1/articles", json={"body": "Hello.", "callback_url": callback})
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "callback_refused"
        assert words in r.json()["error"]["message"]
        assert live.client.get("/v1/articles").json()["items"] == []


def test_a_keys_default_callback_is_used(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    made = make_keys(url, (Role.CMS,), suffix="-with-hook", callback_url=receiver.url)["cms"]
    settings = keyed_settings(
        tiny_dirs["marian"],
        url,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=True,
        rate_limit_per_minute=600,
    )
    with serve(settings, engines["marian"]) as live:
        headers = {"Authorization": f"Bearer {made.key}"}
        job = live.client.post("/v1/articles", json={"body": "No callback named here."}, headers=headers).json()
        assert job["callback_url"] == receiver.url
        receiver.wait(1)
    assert verify(made.row.webhook_secret, *receiver.received[0])
    assert json.loads(receiver.received[0][1])["article"]["id"] == job["id"]


def test_the_dispatcher_connects_to_the_address_it_vetted(
    tiny_dirs: dict[str, Path],
    engines: dict[str, Engine],
    tmp_path: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The callback's host resolves (for the service's check) to the receiver's loopback address and
    nowhere else: the system resolver does not know it (.invalid). The event arrives, so the
    dispatcher connected to the vetted address instead of looking the name up again, which is
    what a DNS name rebound between check and connection would exploit."""
    seen: list[str] = []

    def resolve(host: str) -> list[str]:
        seen.append(host)
        assert host == "hooks.duiyi.invalid"
        return ["127.0.0.1"]

    monkeypatch.setattr(webhooks, "_default_resolve", resolve)
    callback = receiver.url.replace("127.0.0.1", "hooks.duiyi.invalid")
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        webhook_allowed_hosts=["hooks.duiyi.invalid"],
        webhook_allow_private=True,
        webhook_secret="local-secret",
        job_poll_s=0.05,
    )
    with serve(settings, engines["marian"]) as live:
        r = live.client.post("/v1/articles", json={"body": "Hello.", "callback_url": callback})
        assert r.status_code == 202, r.text
        receiver.wait(1)
        delivery = live.client.get(f"/v1/articles/{r.json()['id']}/deliveries").json()[0]
    headers, body = receiver.received[0]
    assert verify("local-secret", headers, body)
    assert headers["Host"] == httpx.URL(callback).netloc.decode()
    assert delivery["url"] == callback
    assert len(seen) >= 2  # vetted at submission, and again before the attempt


def _deliveries(live: LiveServer, job_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    r = live.client.get(f"/v1/articles/{job_id}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json())


def _until(
    live: LiveServer,
    job_id: str,
    state: str,
    headers: dict[str, str] | None = None,
    *,
    attempts: int = 0,
    timeout: float = 20,
) -> dict[str, Any]:
    """The job's only delivery, once it is in `state` with at least `attempts` attempts recorded."""
    deadline = time.monotonic() + timeout
    while True:
        found = _deliveries(live, job_id, headers)
        delivery = found[0] if found else {"state": "(not yet written)", "attempts": []}
        if delivery["state"] == state and len(delivery["attempts"]) >= attempts:
            return delivery
        assert time.monotonic() < deadline, f"the delivery is still {delivery['state']}: {delivery}"
        time.sleep(0.05)


def test_a_dns_failure_at_send_time_is_retried(
    tiny_dirs: dict[str, Path],
    engines: dict[str, Engine],
    tmp_path: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resolver fails with EAI_AGAIN ("Temporary failure in name resolution") when the
    dispatcher looks the host up for its first try, and answers again afterwards: a network error,
    retried, and the event arrives. (A real passing DNS failure cannot be had on demand; the
    system resolver is what is replaced, and everything after it is real.)"""
    lookups: list[str] = []

    def resolve(host: str) -> list[str]:
        assert host == "hooks.duiyi.invalid"
        lookups.append(host)
        if len(lookups) == 2:  # 1: the check at submission; 2: the dispatcher's, before its first try
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return ["127.0.0.1"]

    monkeypatch.setattr(webhooks, "_default_resolve", resolve)
    callback = receiver.url.replace("127.0.0.1", "hooks.duiyi.invalid")
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        webhook_allowed_hosts=["hooks.duiyi.invalid"],
        webhook_allow_private=True,
        webhook_secret="local-secret",
        webhook_backoff_base_s=0.05,
        webhook_backoff_cap_s=0.2,
        job_poll_s=0.05,
    )
    with serve(settings, engines["marian"]) as live:
        r = live.client.post("/v1/articles", json={"body": "Hello.", "callback_url": callback})
        assert r.status_code == 202, r.text
        receiver.wait(1)
        delivery = _until(live, r.json()["id"], "delivered")
    first, second = delivery["attempts"]
    assert first["status_code"] is None
    assert "does not resolve" in first["error"] and "Temporary failure in name resolution" in first["error"]
    assert not first["error"].startswith("refused")
    assert (second["number"], second["status_code"]) == (2, 200)
    assert len(receiver.received) == 1 and verify("local-secret", *receiver.received[0])


def test_a_callback_refused_by_policy_at_send_time_fails_at_once(
    tiny_dirs: dict[str, Path],
    engines: dict[str, Engine],
    tmp_path: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host resolves to a public address at submission and to a private one when the
    dispatcher checks it (DNS rebinding, or a CMS moved inside): no retry can make that allowed."""
    answers = iter([["93.184.216.34"], ["10.0.0.1"]])
    monkeypatch.setattr(webhooks, "_default_resolve", lambda host: next(answers, ["10.0.0.1"]))
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        webhook_allowed_hosts=["hooks.duiyi.invalid"],
        webhook_secret="local-secret",
        webhook_backoff_base_s=0.05,
        job_poll_s=0.05,
    )
    with serve(settings, engines["marian"]) as live:
        r = live.client.post("/v1/articles", json={"body": "Hello.", "callback_url": "http://hooks.duiyi.invalid/x"})
        assert r.status_code == 202, r.text
        delivery = _until(live, r.json()["id"], "failed")
    assert len(delivery["attempts"]) == 1
    assert delivery["last_error"].startswith("refused: ") and "not a public internet address" in delivery["last_error"]
    assert receiver.received == []


def test_a_failed_delivery_can_be_redelivered(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], database_url: str, receiver: WebhookReceiver
) -> None:
    receiver.script = [500, 502]
    with keyed_service(tiny_dirs["marian"], engines["marian"], database_url, webhook_max_attempts=2) as (live, keys):
        job_id = submit(live, keys, receiver.url)
        failed = _until(live, job_id, "failed", auth(keys, "cms"))
        assert [a["status_code"] for a in failed["attempts"]] == [500, 502]
        path = f"/v1/articles/{job_id}/deliveries/{failed['id']}/redeliver"

        # A translator may read deliveries, not have them sent; no key at all is 401.
        r = live.client.post(path, headers=auth(keys, "translator"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert live.client.post(path).status_code == 401
        assert _deliveries(live, job_id, auth(keys, "cms"))[0]["state"] == "failed"

        r = live.client.post(path, headers=auth(keys, "cms"))
        assert r.status_code == 202, r.text
        assert r.json()["id"] == failed["id"] and r.json()["state"] in ("pending", "delivered")
        receiver.wait(3)
        delivered = _until(live, job_id, "delivered", auth(keys, "cms"))
        # The same delivery, attempts numbered on; the same id and body reach the receiver.
        assert [(a["number"], a["status_code"]) for a in delivered["attempts"]] == [(1, 500), (2, 502), (3, 200)]
        assert {h[DELIVERY_HEADER] for h, _ in receiver.received} == {failed["id"]}
        assert len({b for _, b in receiver.received}) == 1
        assert verify(keys["cms"][1], *receiver.received[2])

        r = live.client.post(path, headers=auth(keys, "admin"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "already_delivered"
        for wrong in (
            f"/v1/articles/{job_id}/deliveries/no-such-delivery/redeliver",
            f"/v1/articles/no-such-job/deliveries/{failed['id']}/redeliver",
        ):
            r = live.client.post(wrong, headers=auth(keys, "cms"))
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert len(receiver.received) == 3

        operation = live.client.get("/openapi.json").json()["paths"][
            "/v1/articles/{job_id}/deliveries/{delivery_id}/redeliver"
        ]["post"]
    assert {"202", "401", "403", "404", "409", "422", "429", "500"} <= set(operation["responses"])
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("401", "403", "404", "409", "422", "429", "500"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == error_ref


def test_a_redelivery_gets_a_fresh_round_of_attempts(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """A redelivered delivery that keeps failing is tried DUIYI_WEBHOOK_MAX_ATTEMPTS times again,
    not once: the limit counts the tries since it was queued."""
    receiver.script = [500] * 4 + [200]
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    with keyed_service(tiny_dirs["marian"], engines["marian"], url, webhook_max_attempts=2) as (live, keys):
        job_id = submit(live, keys, receiver.url)
        failed = _until(live, job_id, "failed", auth(keys, "cms"))
        path = f"/v1/articles/{job_id}/deliveries/{failed['id']}/redeliver"
        assert live.client.post(path, headers=auth(keys, "cms")).status_code == 202
        again = _until(live, job_id, "failed", auth(keys, "cms"))
        assert [a["status_code"] for a in again["attempts"]] == [500] * 4
        assert live.client.post(path, headers=auth(keys, "cms")).status_code == 202
        done = _until(live, job_id, "delivered", auth(keys, "cms"))
    assert [a["number"] for a in done["attempts"]] == [1, 2, 3, 4, 5]


def test_a_pending_delivery_is_sent_at_once_when_redelivered(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """A CMS back from an outage need not wait out the backoff (up to an hour by default)."""
    receiver.script = [503]
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    with keyed_service(
        tiny_dirs["marian"], engines["marian"], url, webhook_backoff_base_s=600, webhook_backoff_cap_s=600
    ) as (live, keys):
        job_id = submit(live, keys, receiver.url)
        pending = _until(live, job_id, "pending", auth(keys, "cms"), attempts=1)
        assert pending["next_attempt_at"] is not None  # 5 to 10 minutes away
        r = live.client.post(f"/v1/articles/{job_id}/deliveries/{pending['id']}/redeliver", headers=auth(keys, "cms"))
        assert r.status_code == 202, r.text
        receiver.wait(2, timeout=10)
        done = _until(live, job_id, "delivered", auth(keys, "cms"))
    assert [a["status_code"] for a in done["attempts"]] == [503, 200]


def test_a_redelivery_to_a_url_no_longer_allowed_is_refused(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """The operator has since taken the receiver's host off DUIYI_WEBHOOK_ALLOWED_HOSTS: 422 at
    once, rather than a queued delivery that can only fail."""
    receiver.script = [500]
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    with keyed_service(tiny_dirs["marian"], engines["marian"], url, webhook_max_attempts=1) as (live, keys):
        job_id = submit(live, keys, receiver.url)
        failed = _until(live, job_id, "failed", auth(keys, "cms"))
    db = Database(url)
    try:
        # An admin: a new cms key would be another owner, to whom the article is a 404.
        made = create_key(db, name="operator after the change", role=Role.ADMIN)
    finally:
        db.close()
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=url,
        auth_disabled=False,
        webhook_allowed_hosts=["cms.example.com"],
    )
    with serve(settings, engines["marian"]) as live:
        r = live.client.post(
            f"/v1/articles/{job_id}/deliveries/{failed['id']}/redeliver",
            headers={"Authorization": f"Bearer {made.key}"},
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "callback_refused"
        assert "DUIYI_WEBHOOK_ALLOWED_HOSTS" in r.json()["error"]["message"]
        assert _deliveries(live, job_id, {"Authorization": f"Bearer {made.key}"})[0]["state"] == "failed"
    assert len(receiver.received) == 1


def test_a_receiver_that_hangs_holds_back_only_its_own_webhooks(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """One CMS's receiver hangs past the timeout while events for it pile up; another receiver's
    webhook still arrives at once (a second sender takes it), and the hanging receiver is never
    sent two webhooks at a time by the process."""
    hanging = {"now": 0, "most": 0, "calls": 0}
    lock = threading.Lock()

    class Hangs(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with lock:
                hanging["now"] += 1
                hanging["calls"] += 1
                hanging["most"] = max(hanging["most"], hanging["now"])
            time.sleep(8)  # past the 4 s timeout
            with lock:
                hanging["now"] -= 1

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hangs)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow_url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        url = f"sqlite:///{tmp_path / 'duiyi.db'}"
        with keyed_service(tiny_dirs["marian"], engines["marian"], url, webhook_timeout_s=4.0) as (live, keys):
            for _ in range(3):
                submit(live, keys, slow_url)
            deadline = time.monotonic() + 30
            while not hanging["calls"]:
                assert time.monotonic() < deadline, "the hanging receiver was never called"
                time.sleep(0.02)
            started = time.monotonic()
            submit(live, keys, receiver.url)
            receiver.wait(1, timeout=30)
            waited = time.monotonic() - started
            assert waited < 3.0, f"the healthy receiver waited {waited:.1f} s behind the hanging one"
            assert hanging["most"] == 1
    finally:
        server.shutdown()
