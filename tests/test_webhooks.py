"""Webhook signing, callback URL vetting, backoff, and one delivery try against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from service.config import Settings
from service.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Attempt,
    CallbackRefused,
    CallbackUnresolved,
    backoff_delay,
    check_callback_url,
    deliver_once,
    sign,
    signed_headers,
    verify,
)

SECRET = "whsec_test-secret"
BODY = b'{"event":"article.translated","job":"j1","title":"\xe7\xbf\xbb\xe8\xaf\x91"}'
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


# --- signing -------------------------------------------------------------------------------------------------------


def test_sign_known_answer() -> None:
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_767_225_600, BODY) == "v1=" + expected
    assert expected == expected.lower() and len(expected) == 64


def test_sign_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign("", 1, BODY)


def test_signed_headers() -> None:
    headers = signed_headers(SECRET, BODY, event="article.translated", delivery_id="d-1", now=NOW + 0.9)
    assert headers[EVENT_HEADER] == "article.translated"
    assert headers[DELIVERY_HEADER] == "d-1"
    assert headers[TIMESTAMP_HEADER] == "1767225600"
    assert headers[SIGNATURE_HEADER] == sign(SECRET, 1_767_225_600, BODY)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "duiyi-webhooks/0.1"


def test_signed_headers_default_to_the_clock() -> None:
    before = int(time.time())
    headers = signed_headers(SECRET, BODY, event="e", delivery_id="d")
    assert before <= int(headers[TIMESTAMP_HEADER]) <= int(time.time())
    assert verify(SECRET, headers, BODY)


def test_verify_round_trip() -> None:
    headers = signed_headers(SECRET, BODY, event="e", delivery_id="d", now=NOW)
    assert verify(SECRET, headers, BODY, now=NOW)
    assert verify(SECRET, headers, BODY, now=NOW + 299)
    assert verify(SECRET, headers, BODY, now=NOW - 299)  # the sender's clock a little ahead


def test_verify_looks_up_headers_in_any_case() -> None:
    headers = signed_headers(SECRET, BODY, event="e", delivery_id="d", now=NOW)
    assert verify(SECRET, {k.lower(): v for k, v in headers.items()}, BODY, now=NOW)
    assert verify(SECRET, {k.upper(): v for k, v in headers.items()}, BODY, now=NOW)
    assert verify(SECRET, httpx.Headers(headers), BODY, now=NOW)


def _with(headers: dict[str, str], **changes: str) -> dict[str, str]:
    names = {"timestamp": TIMESTAMP_HEADER, "signature": SIGNATURE_HEADER}
    return {**headers, **{names[k]: v for k, v in changes.items()}}


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("changed body", lambda h: (SECRET, h, BODY + b" ", NOW)),
        ("changed timestamp", lambda h: (SECRET, _with(h, timestamp=str(int(NOW) + 1)), BODY, NOW)),
        ("wrong secret", lambda h: ("whsec_other", h, BODY, NOW)),
        ("stale timestamp", lambda h: (SECRET, h, BODY, NOW + 301)),
        ("timestamp from the future", lambda h: (SECRET, h, BODY, NOW - 301)),
        ("no signature", lambda h: (SECRET, {k: v for k, v in h.items() if k != SIGNATURE_HEADER}, BODY, NOW)),
        ("no timestamp", lambda h: (SECRET, {k: v for k, v in h.items() if k != TIMESTAMP_HEADER}, BODY, NOW)),
        ("timestamp not digits", lambda h: (SECRET, _with(h, timestamp="+1767225600"), BODY, NOW)),
        ("timestamp garbage", lambda h: (SECRET, _with(h, timestamp="soon"), BODY, NOW)),
        ("timestamp huge", lambda h: (SECRET, _with(h, timestamp="9" * 5000), BODY, NOW)),
        (
            "unknown scheme",
            lambda h: (SECRET, _with(h, signature=h[SIGNATURE_HEADER].replace("v1=", "v0=")), BODY, NOW),
        ),
        ("bare hex", lambda h: (SECRET, _with(h, signature=h[SIGNATURE_HEADER].removeprefix("v1=")), BODY, NOW)),
        ("non-ASCII signature", lambda h: (SECRET, _with(h, signature="v1=签名"), BODY, NOW)),
        ("empty signature", lambda h: (SECRET, _with(h, signature="v1="), BODY, NOW)),
    ],
)
def test_verify_refuses(
    case: str, change: Callable[[dict[str, str]], tuple[str, dict[str, str], bytes, float]]
) -> None:
    headers = signed_headers(SECRET, BODY, event="e", delivery_id="d", now=NOW)
    secret, changed_headers, body, now = change(headers)
    assert not verify(secret, changed_headers, body, now=now), case


def test_verify_tolerance_is_adjustable() -> None:
    headers = signed_headers(SECRET, BODY, event="e", delivery_id="d", now=NOW)
    assert not verify(SECRET, headers, BODY, now=NOW + 30, tolerance_s=10)
    assert verify(SECRET, headers, BODY, now=NOW + 3000, tolerance_s=3600)


def test_verify_accepts_any_of_several_signatures_for_secret_rotation() -> None:
    ts = int(NOW)
    old, new = sign("whsec_old", ts, BODY), sign("whsec_new", ts, BODY)
    headers = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: f"{old}, {new}"}
    assert verify("whsec_old", headers, BODY, now=NOW)
    assert verify("whsec_new", headers, BODY, now=NOW)
    assert not verify("whsec_other", headers, BODY, now=NOW)
    # A scheme the receiver does not know sits beside v1 harmlessly.
    headers[SIGNATURE_HEADER] = f"v2=abc,{new}"
    assert verify("whsec_new", headers, BODY, now=NOW)


# --- callback URLs -------------------------------------------------------------------------------------------------

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
DNS = {
    "hooks.example.com": [PUBLIC_V4, PUBLIC_V6],
    "a.example.com": [PUBLIC_V4],
    "a.b.example.com": [PUBLIC_V4],
    "example.com.evil.net": [PUBLIC_V4],
    "xn--bcher-kva.example": [PUBLIC_V4],
    "mixed.example.com": [PUBLIC_V4, "10.0.0.5"],
    "internal.example.com": ["192.168.1.20"],
    "nothing.example.com": [],
}


def fake_resolve(host: str) -> list[str]:
    name = host.removesuffix(".")  # a trailing dot is the same name, made absolute
    if name not in DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return DNS[name]


def resolve_nothing(host: str) -> list[str]:
    raise AssertionError(f"an IP literal must not be resolved, got {host}")


ALLOW_ALL = ["*"]

# (url, allowed_hosts, refused with a message containing this; None = accepted)
URL_CASES: list[tuple[str, list[str], str | None]] = [
    ("https://hooks.example.com/duiyi", ["hooks.example.com"], None),
    ("http://hooks.example.com:8080/x?y=1", ["hooks.example.com"], None),
    ("https://HOOKS.Example.COM/duiyi", ["hooks.example.com"], None),
    ("https://hooks.example.com./duiyi", ["hooks.example.com"], None),
    ("https://hooks.example.com/duiyi", ["Hooks.Example.com"], None),
    ("https://hooks.example.com/duiyi", ALLOW_ALL, None),
    ("https://a.example.com/", ["*.example.com"], None),
    ("https://a.b.example.com/", ["*.example.com"], None),
    ("https://example.com.evil.net/", ["*.example.com"], "not among the hosts"),
    ("https://a.example.com/", ["other.example.org"], "not among the hosts"),
    ("https://a.example.com/", [], "DUIYI_WEBHOOK_ALLOWED_HOSTS"),
    ("https://a.example.com/", ["  "], "DUIYI_WEBHOOK_ALLOWED_HOSTS"),
    ("https://BÜCHER.example/", ["xn--bcher-kva.example"], None),
    ("https://bücher.example/", ["bücher.example"], None),
    (f"http://{PUBLIC_V4}/hook", [PUBLIC_V4], None),
    (f"http://[{PUBLIC_V6}]/hook", ALLOW_ALL, None),
    (f"http://[::ffff:{PUBLIC_V4}]/hook", ALLOW_ALL, None),
    ("ftp://hooks.example.com/x", ALLOW_ALL, "http:// or https://"),
    ("file:///etc/passwd", ALLOW_ALL, "http:// or https://"),
    ("hooks.example.com/x", ALLOW_ALL, "http:// or https://"),
    ("http:///x", ALLOW_ALL, "no host"),
    ("https://user:pass@hooks.example.com/", ALLOW_ALL, "user name or password"),
    ("https://user@hooks.example.com/", ALLOW_ALL, "user name or password"),
    # Parsers disagree on a backslash; httpx, which sends the request, reads user "hooks.example.com\", host evil.net.
    ("http://hooks.example.com\\@evil.net/", ["hooks.example.com"], "user name or password"),
    ("http://hooks.example.com\\@evil.net/", ["hooks.example.com", "evil.net"], "user name or password"),
    ("http://hooks.example.com:99999/", ALLOW_ALL, "out of range"),
    ("http://exa mple.com/", ALLOW_ALL, "not a valid host name"),
    ("http://exa%2fmple.com/", ALLOW_ALL, "not a valid host name"),
    ("http://[::1/", ALLOW_ALL, "not a valid URL"),
    ("https://nothing.example.com/", ALLOW_ALL, "does not resolve to any address"),
    ("https://unknown.example.com/", ALLOW_ALL, "does not resolve"),
]


@pytest.mark.parametrize(("url", "allowed", "refusal"), URL_CASES)
def test_check_callback_url(url: str, allowed: list[str], refusal: str | None) -> None:
    if refusal is None:
        check_callback_url(url, allowed_hosts=allowed, allow_private=False, resolve=fake_resolve)
    else:
        with pytest.raises(CallbackRefused, match=refusal):
            check_callback_url(url, allowed_hosts=allowed, allow_private=False, resolve=fake_resolve)


PRIVATE_URLS = [
    "http://127.0.0.1:8000/hook",
    "http://127.1.2.3/",
    "http://[::1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[fec0::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2001:db8::1]/",
    "http://internal.example.com/",
    "http://mixed.example.com/",  # one public and one private address: refused, either may be used
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_check_callback_url_refuses_private_addresses(url: str) -> None:
    resolve = fake_resolve if "example.com" in url else resolve_nothing
    with pytest.raises(CallbackRefused, match="DUIYI_WEBHOOK_ALLOW_PRIVATE") as refused:
        check_callback_url(url, allowed_hosts=ALLOW_ALL, allow_private=False, resolve=resolve)
    assert "not a public internet address" in str(refused.value)
    check_callback_url(url, allowed_hosts=ALLOW_ALL, allow_private=True, resolve=resolve)


def test_check_callback_url_allowed_hosts_still_apply_with_allow_private() -> None:
    with pytest.raises(CallbackRefused, match="not among the hosts"):
        check_callback_url("http://10.0.0.1/", allowed_hosts=["127.0.0.1"], allow_private=True)
    check_callback_url("http://127.0.0.1:9/", allowed_hosts=["127.0.0.1"], allow_private=True)


def test_check_callback_url_real_resolver() -> None:
    # .invalid is reserved (RFC 6761): it never resolves anywhere.
    with pytest.raises(CallbackRefused, match="does not resolve"):
        check_callback_url("https://hooks.duiyi.invalid/x", allowed_hosts=ALLOW_ALL, allow_private=True)
    # "localhost" resolves through the real resolver (hosts file) to loopback only.
    with pytest.raises(CallbackRefused, match="DUIYI_WEBHOOK_ALLOW_PRIVATE"):
        check_callback_url("http://localhost:8000/", allowed_hosts=["localhost"], allow_private=False)
    check_callback_url("http://localhost:8000/", allowed_hosts=["localhost"], allow_private=True)


def test_check_callback_url_rejects_a_bare_string_of_hosts() -> None:
    # "*.example.com" iterated is "*", ".", "e", ...: the "*" would allow every host.
    with pytest.raises(TypeError):
        check_callback_url("https://a.example.com/", allowed_hosts="*.example.com", allow_private=False)


def test_callback_refused_is_a_value_error() -> None:
    assert issubclass(CallbackRefused, ValueError)


def _failing(error: OSError) -> Callable[[str], list[str]]:
    def resolve(host: str) -> list[str]:
        raise error

    return resolve


@pytest.mark.parametrize(
    "resolve",
    [
        _failing(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
        _failing(socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution")),
        _failing(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
        _failing(TimeoutError("timed out")),
        lambda host: [],
    ],
)
def test_a_host_that_does_not_resolve_now_is_unresolved(resolve: Callable[[str], list[str]]) -> None:
    """Not resolving is a state of the DNS, which passes: the dispatcher retries it. It is still a
    refusal (a CallbackRefused) for whoever checks a URL once, at submission."""
    with pytest.raises(CallbackUnresolved, match="does not resolve") as raised:
        check_callback_url("https://hooks.example.com/x", allowed_hosts=ALLOW_ALL, allow_private=False, resolve=resolve)
    assert isinstance(raised.value, CallbackRefused)


POLICY_REFUSALS = [case for case in URL_CASES if case[2] is not None and "does not resolve" not in case[2]]


@pytest.mark.parametrize(("url", "allowed", "refusal"), POLICY_REFUSALS)
def test_refusals_by_policy_are_not_unresolved(url: str, allowed: list[str], refusal: str) -> None:
    with pytest.raises(CallbackRefused, match=refusal) as refused:
        check_callback_url(url, allowed_hosts=allowed, allow_private=False, resolve=fake_resolve)
    assert not isinstance(refused.value, CallbackUnresolved)


def test_private_addresses_and_bad_names_are_not_unresolved() -> None:
    with pytest.raises(CallbackRefused) as refused:
        url = "http://internal.example.com/"
        check_callback_url(url, allowed_hosts=ALLOW_ALL, allow_private=False, resolve=fake_resolve)
    assert not isinstance(refused.value, CallbackUnresolved)
    # A label over 63 characters: the IDNA codec refuses it before any lookup, and always will.
    with pytest.raises(CallbackRefused, match="not a valid host name") as refused:
        check_callback_url(f"http://{'a' * 70}.example.com/", allowed_hosts=ALLOW_ALL, allow_private=True)
    assert not isinstance(refused.value, CallbackUnresolved)


# --- backoff -------------------------------------------------------------------------------------------------------


def test_backoff_delay_bounds_and_cap() -> None:
    rng = random.Random(1234)
    for attempt in range(1, 20):
        full = min(600.0, 5.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base_s=5.0, cap_s=600.0, rng=rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), attempt
        # Jitter actually spreads the delays over the upper half.
        assert max(delays) - min(delays) > full / 4
    assert max(backoff_delay(40, base_s=5, cap_s=600, rng=rng) for _ in range(200)) <= 600


def test_backoff_delay_is_reproducible_with_a_seed() -> None:
    first = [backoff_delay(n, base_s=1, cap_s=60, rng=random.Random(7)) for n in range(1, 10)]
    second = [backoff_delay(n, base_s=1, cap_s=60, rng=random.Random(7)) for n in range(1, 10)]
    assert first == second


class _Shortest(random.Random):
    """Jitter that always picks the shortest wait."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_default_retries_outlast_a_long_cms_outage() -> None:
    """With the default settings, a delivery whose receiver stays down is retried for most of a
    day even with the shortest waits the jitter can pick, and a five-minute outage is ridden out
    with attempts to spare (the old defaults, 8 attempts from 2 s, gave up after 2 to 4 minutes)."""
    settings = Settings()
    shortest = _Shortest()
    waits = [
        backoff_delay(n, base_s=settings.webhook_backoff_base_s, cap_s=settings.webhook_backoff_cap_s, rng=shortest)
        for n in range(1, settings.webhook_max_attempts)
    ]
    assert sum(waits) >= 12 * 3600
    # Retries (after the first attempt) before five minutes have surely passed.
    retries = next(n for n in range(1, len(waits) + 1) if sum(waits[:n]) > 300)
    assert retries <= settings.webhook_max_attempts // 2
    # The other way round: not so long that a receiver's fix is never seen, nor hourly probing forever.
    assert sum(2 * w for w in waits) <= 3 * 24 * 3600
    assert settings.webhook_backoff_cap_s <= 2 * 3600


def test_backoff_delay_edge_cases() -> None:
    assert 30 <= backoff_delay(10_000, base_s=1, cap_s=60) <= 60  # no overflow far past the cap
    assert 0.5 <= backoff_delay(1, base_s=1, cap_s=60) <= 1
    assert backoff_delay(3, base_s=0, cap_s=60) == 0
    with pytest.raises(ValueError):
        backoff_delay(0, base_s=1, cap_s=60)
    with pytest.raises(ValueError):
        backoff_delay(1, base_s=-1, cap_s=60)


# --- one delivery, against a real server ---------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    base: str
    received: list[Received] = field(default_factory=list)


# path -> (status, extra headers); every answer has a body, which deliver_once must not need.
ROUTES: dict[str, tuple[int, dict[str, str]]] = {
    "/ok": (200, {}),
    "/accepted": (202, {}),
    "/busy": (503, {"Retry-After": "7"}),
    "/down": (502, {}),
    "/slow-down": (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    "/gone": (404, {}),
    "/redirect": (302, {"Location": "/ok"}),
}


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.receiver.received.append(Received(self.path, dict(self.headers.items()), body))
        if self.path == "/slow":
            time.sleep(1.0)
        status, extra = ROUTES.get(self.path, (200, {}))
        answer = b"some answer text"
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        try:
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):  # /slow: the client gave up first, as intended
            pass

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with _serving() as state:
        yield state


@contextmanager
def _serving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on a loopback port of its own (over TLS with `tls`), with a handler class of its own."""
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    handler.receiver = Receiver(f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as c:
        yield c


def _deliver(client: httpx.Client, url: str) -> tuple[Attempt, dict[str, str]]:
    headers = signed_headers(SECRET, BODY, event="article.translated", delivery_id="d-42")
    return deliver_once(client, url, BODY, headers), headers


def test_deliver_ok_and_the_receiver_can_verify(receiver: Receiver, client: httpx.Client) -> None:
    attempt, sent = _deliver(client, receiver.base + "/ok")
    assert attempt == Attempt(True, False, 200, None, attempt.duration_ms)
    assert attempt.duration_ms > 0
    got = receiver.received[-1]
    assert got.path == "/ok"
    assert got.body == BODY
    assert verify(SECRET, got.headers, got.body)
    assert not verify("whsec_other", got.headers, got.body)
    assert not verify(SECRET, got.headers, got.body + b"x")
    lower = {k.lower(): v for k, v in got.headers.items()}
    assert lower["duiyi-event"] == "article.translated"
    assert lower["duiyi-delivery"] == "d-42"
    assert lower["duiyi-signature"] == sent[SIGNATURE_HEADER]
    assert lower["content-type"] == "application/json"
    assert lower["user-agent"] == "duiyi-webhooks/0.1"


def test_deliver_any_2xx_is_ok(receiver: Receiver, client: httpx.Client) -> None:
    attempt, _ = _deliver(client, receiver.base + "/accepted")
    assert attempt.ok and attempt.status_code == 202 and attempt.error is None


def test_deliver_503_is_retryable_with_retry_after(receiver: Receiver, client: httpx.Client) -> None:
    attempt, _ = _deliver(client, receiver.base + "/busy")
    assert (attempt.ok, attempt.retryable, attempt.status_code, attempt.error) == (False, True, 503, "HTTP 503")
    assert attempt.retry_after_s == 7.0


def test_deliver_other_5xx_and_429_are_retryable(receiver: Receiver, client: httpx.Client) -> None:
    down, _ = _deliver(client, receiver.base + "/down")
    assert (down.ok, down.retryable, down.status_code, down.retry_after_s) == (False, True, 502, None)
    # An HTTP-date Retry-After is ignored, not misread.
    slow_down, _ = _deliver(client, receiver.base + "/slow-down")
    assert (slow_down.ok, slow_down.retryable, slow_down.status_code) == (False, True, 429)
    assert slow_down.retry_after_s is None


def test_deliver_404_is_final(receiver: Receiver, client: httpx.Client) -> None:
    attempt, _ = _deliver(client, receiver.base + "/gone")
    assert (attempt.ok, attempt.retryable, attempt.status_code, attempt.error) == (False, False, 404, "HTTP 404")
    assert attempt.retry_after_s is None


def test_deliver_does_not_follow_redirects(receiver: Receiver, client: httpx.Client) -> None:
    before = len(receiver.received)
    attempt, _ = _deliver(client, receiver.base + "/redirect")
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, False, 302)
    assert attempt.error is not None and "redirected to /ok" in attempt.error
    assert [r.path for r in receiver.received[before:]] == ["/redirect"]


def test_deliver_does_not_follow_redirects_even_on_a_following_client(receiver: Receiver) -> None:
    before = len(receiver.received)
    with httpx.Client(follow_redirects=True, timeout=5.0) as following:
        attempt, _ = _deliver(following, receiver.base + "/redirect")
    assert attempt.status_code == 302 and not attempt.ok
    assert [r.path for r in receiver.received[before:]] == ["/redirect"]


def test_deliver_connection_refused_is_retryable(client: httpx.Client) -> None:
    # A bound socket that never listens: the port stays ours, and connecting to it is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        attempt, _ = _deliver(client, f"http://127.0.0.1:{port}/hook")
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, None)
    assert attempt.error == "connection refused"


def test_deliver_timeout_is_retryable(receiver: Receiver) -> None:
    with httpx.Client(timeout=httpx.Timeout(0.2)) as impatient:
        attempt, _ = _deliver(impatient, receiver.base + "/slow")
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, None)
    assert attempt.error is not None and "timed out" in attempt.error
    assert attempt.duration_ms < 1000


def test_deliver_unresolvable_host_is_retryable(client: httpx.Client) -> None:
    attempt, _ = _deliver(client, "http://hooks.duiyi.invalid/x")
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, None)
    assert attempt.error


def test_deliver_unsupported_scheme_is_final(client: httpx.Client) -> None:
    attempt, _ = _deliver(client, "ftp://127.0.0.1/x")
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, False, None)
    assert attempt.error is not None and "cannot be called" in attempt.error


# --- a delivery goes to the address that was vetted, not to a second lookup (DNS rebinding) --------------------------


def test_check_callback_url_returns_the_addresses_it_vetted() -> None:
    assert check_callback_url(
        "https://hooks.example.com/x", allowed_hosts=ALLOW_ALL, allow_private=False, resolve=fake_resolve
    ) == [ipaddress.ip_address(a) for a in DNS["hooks.example.com"]]
    assert check_callback_url(
        "http://[2606:2800:220:1::1]:8080/x", allowed_hosts=ALLOW_ALL, allow_private=False, resolve=resolve_nothing
    ) == [ipaddress.ip_address("2606:2800:220:1::1")]


def test_deliver_to_a_pinned_address_names_the_host(receiver: Receiver, client: httpx.Client) -> None:
    """The name does not resolve at all (.invalid): the POST arrives only because it goes to the
    pinned address, and the receiver still sees the URL's host in the Host header."""
    port = httpx.URL(receiver.base).port
    url = f"http://Hooks.Duiyi.invalid:{port}/ok?job=1"
    unpinned, _ = _deliver(client, url)
    assert not unpinned.ok and unpinned.retryable
    headers = signed_headers(SECRET, BODY, event="article.translated", delivery_id="d-pinned")
    attempt = deliver_once(client, url, BODY, headers, address=ipaddress.ip_address("127.0.0.1"))
    assert attempt.ok, attempt.error
    got = receiver.received[-1]
    lower = {k.lower(): v for k, v in got.headers.items()}
    assert got.path == "/ok?job=1"
    assert lower["host"] == f"hooks.duiyi.invalid:{port}"
    assert lower["connection"] == "close"
    assert verify(SECRET, got.headers, got.body)


def test_deliver_over_tls_to_a_pinned_address_checks_the_hosts_certificate() -> None:
    """TLS to the pinned address still sends the host name as SNI and checks the certificate against
    it: a certificate for the host is accepted, one for another name is not."""
    ca = trustme.CA()
    good = ca.issue_cert("hooks.duiyi.invalid")
    wrong = ca.issue_cert("elsewhere.duiyi.invalid")
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    for cert, accepted in ((good, True), (wrong, False)):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        with _serving(context) as tls_receiver, httpx.Client(verify=trust, timeout=httpx.Timeout(5.0)) as tls:
            url = f"https://hooks.duiyi.invalid:{httpx.URL(tls_receiver.base).port}/ok"
            headers = signed_headers(SECRET, BODY, event="article.translated", delivery_id="d-tls")
            attempt = deliver_once(tls, url, BODY, headers, address=ipaddress.ip_address("127.0.0.1"))
        assert attempt.ok is accepted, attempt.error
        if not accepted:
            assert attempt.error is not None and "certificate" in attempt.error
