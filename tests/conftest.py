"""Shared fixtures: tiny models of each family built with the real classes, engines loaded through
the production code path, and a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
import uvicorn

from glossary.terms import Glossary
from models.engine import Engine, load_engine
from models.tiny import build_tiny
from service.api.app import build_pipeline, create_app
from service.auth import Role
from service.config import Settings
from service.glossaries import GlossaryStore
from service.keys import CreatedKey, create_key
from service.pipeline import Pipeline
from service.serving import HTTP_OPTIONS
from service.storage.db import Database
from service.webhooks import DELIVERY_HEADER

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DUIYI_SHARED", REPO.parent / "shared"))
FAMILIES = ("marian", "nllb")
ENGINE_KINDS = ("transformers", "ctranslate2")


DATA = REPO / "tests" / "data"


def shared_file(*parts: str) -> Path:
    """A file of the project's shared/ folder (beside the checkout, or DUIYI_SHARED), else its copy
    in tests/data. Missing in CI is a failure; on a developer's clone without shared/, a skip."""
    for path in (SHARED.joinpath(*parts), DATA.joinpath(*parts)):
        if path.exists():
            return path
    message = f"{SHARED.joinpath(*parts)} is missing: set DUIYI_SHARED to the project's shared/ folder"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sample_article() -> str:
    return shared_file("samples", "us-japan-alliance-2013.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {family: build_tiny(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="session")
def all_engines(tiny_dirs: dict[str, Path]) -> dict[tuple[str, str], Engine]:
    """Every engine kind on every family, loaded through load_engine as the service does."""
    return {
        (kind, family): load_engine(str(path), engine=kind, device="cpu")
        for kind in ENGINE_KINDS
        for family, path in tiny_dirs.items()
    }


@pytest.fixture(scope="session")
def engines(all_engines: dict[tuple[str, str], Engine]) -> dict[str, Engine]:
    """The transformers engine of each family."""
    return {family: all_engines[("transformers", family)] for family in FAMILIES}


@pytest.fixture(scope="session", params=ENGINE_KINDS)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def store() -> GlossaryStore:
    return GlossaryStore.load()


@pytest.fixture(scope="session")
def news(store: GlossaryStore) -> Glossary:
    return store.stacked(["news"])


@pytest.fixture(scope="session", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def pipeline(all_engines: dict[tuple[str, str], Engine], engine_kind: str, family: str) -> Pipeline:
    """The pipeline on each engine kind and family: the pipeline tests run against all four."""
    return build_pipeline(Settings(device="cpu"), all_engines[(engine_kind, family)])


@dataclass
class LiveServer:
    url: str
    client: httpx.Client
    settings: Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """The real app under uvicorn on a free loopback port. Unless the settings say otherwise, with
    a database of its own and authentication disabled (the auth tests turn it on)."""
    defaults: dict[str, object] = {}
    if "data_dir" not in settings.model_fields_set:
        defaults["data_dir"] = Path(tempfile.mkdtemp(prefix="duiyi-data-"))
    if "auth_disabled" not in settings.model_fields_set:
        defaults["auth_disabled"] = True
    settings = settings.model_copy(update=defaults)
    app = create_app(settings, engine)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **HTTP_OPTIONS)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield LiveServer(url, client, settings)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def make_keys(
    url: str, roles: Iterable[Role] = tuple(Role), *, suffix: str = "", callback_url: str | None = None
) -> dict[str, CreatedKey]:
    """Migrate the database at `url` and make an API key for each role, named after it (plus
    `suffix`): role name → the key as made (`.key`, shown once; `.row.webhook_secret`)."""
    db = Database(url)
    try:
        db.migrate()
        return {
            role.value: create_key(db, name=f"{role.value}{suffix}", role=role, callback_url=callback_url)
            for role in roles
        }
    finally:
        db.close()


def keyed_settings(model: Path, url: str, **overrides: object) -> Settings:
    """The service on the CPU, on database `url`, with API keys required; no rate limit and jobs
    looked for every 50 ms unless `overrides` say otherwise."""
    settings: dict[str, object] = {"rate_limit_per_minute": 0, "job_poll_s": 0.05} | overrides
    return Settings(model=str(model), device="cpu", database_url=url, auth_disabled=False, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server(
    all_engines: dict[tuple[str, str], Engine], tiny_dirs: dict[str, Path], engine_kind: str, family: str
) -> Iterator[LiveServer]:
    """The service on one engine kind and model family, shared by the API tests."""
    settings = Settings(model=str(tiny_dirs[family]), engine=engine_kind, device="cpu", max_chars=20_000)
    with serve(settings, all_engines[(engine_kind, family)]) as live:
        yield live


# --- a CMS's webhook endpoint on loopback ----------------------------------------------------------


@dataclass
class WebhookReceiver:
    """A CMS's webhook endpoint on loopback (`url`, ending in /hooks/duiyi). Records each request in
    `received`: its headers, names as sent, and its body. Answers `script`'s statuses in turn, then
    `status`. While `hold` is an event not yet set, a request sets `entered` and waits for `hold` (60 s
    at most) before it answers."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    status: int = 200
    hold: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    def lowered(self) -> list[tuple[dict[str, str], bytes]]:
        """The requests so far, with header names in lower case (as frameworks often give them)."""
        return [({k.lower(): v for k, v in headers.items()}, body) for headers, body in list(self.received)]

    def payloads(self) -> list[dict[str, Any]]:
        """The events so far, each request's body parsed."""
        return [json.loads(body) for _, body in list(self.received)]

    def articles(self) -> list[str]:
        """The article of each event so far."""
        return [event["article"]["id"] for event in self.payloads()]

    def events(self) -> list[tuple[str, str]]:
        """Each event so far: its name and its article."""
        return [(event["event"], event["article"]["id"]) for event in self.payloads()]

    def wait(self, count: int, timeout: float = 30) -> None:
        """Until `count` requests arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} webhook(s), expected {count}"
            time.sleep(0.02)

    def wait_event(self, event: str, timeout: float = 30) -> None:
        """Until an `event` webhook arrived."""
        deadline = time.monotonic() + timeout
        while not any(h["duiyi-event"] == event for h, _ in self.lowered()):
            assert time.monotonic() < deadline, f"no {event} webhook"
            time.sleep(0.02)

    def queries(self) -> list[tuple[dict[str, str], bytes, dict[str, Any]]]:
        """The `article.query` requests so far: headers (names in lower case), body, payload."""
        return [(h, b, json.loads(b)) for h, b in self.lowered() if h["duiyi-event"] == "article.query"]

    def wait_queries(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The payloads of the first `count` `article.query` requests, once that many arrived."""
        deadline = time.monotonic() + timeout
        while len(found := self.queries()) < count:
            assert time.monotonic() < deadline, f"got {len(found)} article.query webhook(s), expected {count}"
            time.sleep(0.02)
        return [payload for _, _, payload in found[:count]]

    def last_for(self, delivery_id: str) -> tuple[dict[str, str], bytes]:
        """The latest try of delivery `delivery_id` that reached the receiver (header names as sent)."""
        tries = [(h, b) for h, b in list(self.received) if h[DELIVERY_HEADER] == delivery_id]
        assert tries, f"delivery {delivery_id} never reached the receiver"
        return tries[-1]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A WebhookReceiver serving on a free loopback port until the block ends."""
    state = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            status = state.script.pop(0) if state.script else state.status
            hold = state.hold
            if hold is not None:
                state.entered.set()
                hold.wait(60)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/duiyi"
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A CMS's webhook endpoint on loopback, for one test."""
    with webhook_receiver() as state:
        yield state


# --- databases: every storage and job test runs on SQLite and on PostgreSQL ----------------------

POSTGRES_ADMIN_URL = os.environ.get("DUIYI_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASES = ("sqlite", "postgresql")


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards. Missing PostgreSQL fails
    in CI (.ci/run starts it and sets DUIYI_REQUIRE_POSTGRES) and skips on a developer's machine."""
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"duiyi_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}"
        if os.environ.get("CI") or os.environ.get("DUIYI_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    url = sqlalchemy.engine.make_url(POSTGRES_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'duiyi.db'}"
    else:
        with fresh_postgres() as url:
            yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


# --- the browser: Debian's Chromium through Playwright (never a downloaded browser) ----------------

CHROMIUM = Path(os.environ.get("DUIYI_CHROMIUM", "/usr/bin/chromium"))
# What the project's machines need to start Chromium headless as root, with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium for the review workspace's tests; missing, a failure in CI, else a skip."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: ./scripts/setup --test installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
