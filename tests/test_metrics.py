"""/metrics beyond the engine's: HTTP requests by route template, and the job queue and webhook
outbox as the database holds them, on both databases."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from models.engine import Engine
from service.config import Settings
from service.metrics import StoreCollector
from service.storage.db import Database
from tests.conftest import serve


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels, read with Prometheus' own parser."""
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_are_counted_by_route_template_and_status(
    engines: dict[str, Engine], tiny_dirs: dict[str, Path]
) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0, max_chars=100)
    with serve(settings, engines["marian"]) as live:
        assert live.client.post("/v1/translate", json={"text": "Counted."}).status_code == 200
        for job_id in ("0f8e", "a1b2"):  # two ids, one route: ids are not labels
            assert live.client.get(f"/v1/articles/{job_id}").status_code == 404
        assert live.client.get("/no/such/path").status_code == 404
        # The list with a trailing slash too (an alias, not a redirect): one route, one value.
        assert live.client.get("/v1/articles").status_code == 200
        assert live.client.get("/v1/articles/").status_code == 200
        # Refused at the door, before routing, and still named by its route.
        assert live.client.post("/v1/translate", content=b"x" * 100_000).status_code == 413
        got = samples(live.client)

    def count(method: str, route: str, status: str) -> float:
        key = ("duiyi_http_requests_total", (("method", method), ("route", route), ("status", status)))
        return got.get(key, 0.0)

    assert count("POST", "/v1/translate", "200") == 1
    assert count("GET", "/v1/articles/{job_id}", "404") == 2
    assert count("GET", "unmatched", "404") == 1
    assert count("GET", "/v1/articles", "200") == 2
    assert not any(("route", "/v1/articles/") in labels for _, labels in got)
    assert count("POST", "/v1/translate", "413") == 1
    assert not any("0f8e" in str(labels) for _, labels in got)
    timed = ("duiyi_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/translate")))
    assert got[timed] == 2


def test_every_path_served_is_labelled_by_its_route(engines: dict[str, Engine], tiny_dirs: dict[str, Path]) -> None:
    """The OpenAPI document, its pages and the review app's static files are routes of the app
    like the API's: labelled by their template (one value each, whatever the file), not
    `unmatched`, which is left to paths no route has."""
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0)
    with serve(settings, engines["marian"]) as live:
        for path in ("/openapi.json", "/docs", "/review/static/review.css", "/review/static/review.js"):
            assert live.client.get(path).status_code == 200, path
        assert live.client.get("/review/static/nope.css").status_code == 404
        assert live.client.post("/openapi.json").status_code == 405
        assert live.client.get("/nowhere").status_code == 404
        got = samples(live.client)

    counted = {
        (labels["method"], labels["route"], labels["status"]): value
        for (name, pairs), value in got.items()
        if name == "duiyi_http_requests_total"
        for labels in [dict(pairs)]
    }
    assert counted[("GET", "/openapi.json", "200")] == 1
    assert counted[("GET", "/docs", "200")] == 1
    assert counted[("GET", "/review/static/{path}", "200")] == 2
    assert counted[("GET", "/review/static/{path}", "404")] == 1
    assert counted[("POST", "/openapi.json", "405")] == 1
    assert counted[("GET", "unmatched", "404")] == 1
    assert not any(route.endswith((".css", ".js")) for _, route, _ in counted)


def test_queued_jobs_and_their_age(database_url: str, engines: dict[str, Engine], tiny_dirs: dict[str, Path]) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, runners=0)
    with serve(settings, engines["marian"]) as live:
        before = samples(live.client)
        assert before[("duiyi_jobs", (("status", "queued"),))] == 0
        assert before[("duiyi_oldest_queued_job_age_seconds", ())] == 0
        for i in range(3):
            assert live.client.post("/v1/articles", json={"body": f"Story {i}."}).status_code == 202
        time.sleep(0.2)
        got = samples(live.client)
    assert got[("duiyi_database_up", ())] == 1
    assert got[("duiyi_jobs", (("status", "queued"),))] == 3
    assert got[("duiyi_jobs", (("status", "failed"),))] == 0
    assert 0.2 <= got[("duiyi_oldest_queued_job_age_seconds", ())] < 60


def test_webhooks_waiting_for_a_cms_that_does_not_answer(
    database_url: str, engines: dict[str, Engine], tiny_dirs: dict[str, Path]
) -> None:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=database_url,
        job_poll_s=0.05,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_allow_private=True,
        webhook_timeout_s=1,
        webhook_secret="signing-secret",
    )
    with serve(settings, engines["marian"]) as live:
        submitted = live.client.post(
            "/v1/articles", json={"body": "Nobody listens.", "callback_url": "http://127.0.0.1:1/hook"}
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        deadline = time.monotonic() + 60
        while True:
            got = samples(live.client)
            if (
                got[("duiyi_jobs", (("status", "translated"),))] == 1
                and got[("duiyi_webhook_deliveries", (("state", "pending"),))]
            ):
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        attempts = live.client.get(f"/v1/articles/{job['id']}/deliveries").json()
    assert got[("duiyi_jobs", (("status", "queued"),))] == 0
    assert got[("duiyi_webhook_deliveries", (("state", "pending"),))] == 1
    assert got[("duiyi_webhook_deliveries", (("state", "failed"),))] == 0
    assert got[("duiyi_oldest_pending_webhook_age_seconds", ())] > 0
    assert attempts  # the delivery the gauge counts is the one the API lists


def test_a_database_that_does_not_answer_is_reported_not_raised() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    registry = CollectorRegistry()
    registry.register(StoreCollector(db))
    assert registry.get_sample_value("duiyi_database_up") == 0
    assert registry.get_sample_value("duiyi_jobs", {"status": "queued"}) is None
    db.close()
