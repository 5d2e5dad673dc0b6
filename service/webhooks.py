"""Signed webhooks: the pure pieces (signing, verifying, vetting a callback URL, backoff, one delivery try).

The database outbox and the dispatcher that drives these live elsewhere; nothing here touches the database.

Signing scheme
--------------
Every delivery is a POST whose body is JSON, with these headers::

    Duiyi-Event:     article.translated
    Duiyi-Delivery:  <delivery id; the same on every retry, so a receiver can drop duplicates>
    Duiyi-Timestamp: <unix seconds when this try was signed, an integer as text>
    Duiyi-Signature: v1=<lowercase hex HMAC-SHA256(secret, b"<timestamp>." + body)>

The timestamp is part of the signed bytes, not just a header beside them, so a captured request cannot be replayed
later: changing the timestamp breaks the signature, and keeping it makes the receiver refuse it once it falls outside
the tolerance window (five minutes by default). The body is signed as the exact bytes sent, never re-serialised,
because two JSON encoders rarely agree byte for byte. The "v1=" prefix leaves room for another scheme, and a receiver
accepts a header holding several comma-separated signatures so a secret can be rotated without a gap: during the
change the sender signs with both the old and the new secret, "v1=<new>,v1=<old>" (a rotation with
`--new-webhook-secret` and an overlap; `service.keys.owner_webhook_secrets` says which secrets sign).

Callback URLs are checked before the service will call them (`check_callback_url`): a translation service that POSTs
to any URL a client names is a request forger for the client's benefit, aimed at the service's own network (cloud
metadata at 169.254.169.254, the database, admin ports on loopback).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import math
import random
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

EVENT_HEADER = "Duiyi-Event"
DELIVERY_HEADER = "Duiyi-Delivery"
TIMESTAMP_HEADER = "Duiyi-Timestamp"
SIGNATURE_HEADER = "Duiyi-Signature"
USER_AGENT = "duiyi-webhooks/0.1"

_SCHEME = "v1"
# More digits than any timestamp for millennia; the cap keeps int() away from pathological header values.
_MAX_TIMESTAMP_DIGITS = 15
# Error texts end up in a database column and in front of a person; a receiver's Location header can be anything.
_MAX_ERROR_CHARS = 300

# Letters, digits, hyphens (and underscores, which DNS allows outside host names and some services use), in labels.
# httpx percent-encodes rather than rejects odd characters in a host, so "exa mple.com" arrives as "exa%20mple.com".
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_RNG = random.Random()


# --- signing -------------------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`: "v1=<hex HMAC-SHA256>"."""
    if not secret:
        # An empty key still yields a valid-looking HMAC that anyone can compute: refuse rather than sign with it.
        raise ValueError("webhook secret is empty")
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"{_SCHEME}={digest}"


def signed_headers(
    secret: str | Sequence[str], body: bytes, *, event: str, delivery_id: str, now: float | None = None
) -> dict[str, str]:
    """Every header of one delivery try. Call it again for each retry: a fresh timestamp keeps a late retry inside the
    receiver's tolerance window.

    Several secrets (while a secret is being replaced) give one signature each, comma-separated in that order; a
    receiver holding any one of them verifies the request."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret to sign with")
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: ",".join(sign(each, timestamp, body) for each in secrets),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Plain dicts are case-sensitive, and proxies and frameworks change the case of header names freely.
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Whether `body` with `headers` was signed with `secret` within `tolerance_s` of `now` (the receiver's side).

    Any missing or malformed header is simply False: a receiver answers 401 either way, and telling an attacker which
    check failed helps nobody else."""
    raw_timestamp = _header(headers, TIMESTAMP_HEADER)
    raw_signatures = _header(headers, SIGNATURE_HEADER)
    if raw_timestamp is None or raw_signatures is None:
        return False
    raw_timestamp = raw_timestamp.strip()
    # int() alone would also take "+5", " 5", "1_000" and "٥"; the signed text must be plain ASCII digits.
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= _MAX_TIMESTAMP_DIGITS):
        return False
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).partition("=")[2].encode("ascii")
    matched = False
    for candidate in raw_signatures.split(","):
        scheme, sep, value = candidate.strip().partition("=")
        if sep and scheme.strip() == _SCHEME:
            # Bytes, not str: compare_digest raises TypeError on non-ASCII str. No early exit, so the time taken does
            # not say which of several signatures matched.
            matched |= hmac.compare_digest(expected, value.strip().lower().encode("utf-8"))
    return matched


# --- callback URLs -------------------------------------------------------------------------------------------------


class CallbackRefused(ValueError):
    """A callback URL the service will not call; str(exc) says why, for a person (it becomes a 422 message)."""


class CallbackUnresolved(CallbackRefused):
    """The callback's host name did not resolve to an address just now (no answer, a resolver failure, no such name).

    A CallbackRefused, so a submission naming such a host is refused like any other URL that cannot be called. It is
    not a judgement on the URL, though: DNS failures are usually passing (a resolver restarting, a zone being
    redeployed), so the dispatcher treats one at send time as a network error and retries, whereas the other
    refusals (scheme, host not allowed, a private address) stand until someone changes the URL or the settings."""


def _default_resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address: judge it, not the wrapper (::ffff:127.0.0.1 is
        # loopback; ::ffff:93.184.216.34 is public even though ipaddress calls the whole ::ffff:0:0/96 block reserved).
        if address.ipv4_mapped is not None:
            return _is_public(address.ipv4_mapped)
        if address in _NAT64:
            return _is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not _is_public(address.sixtofour):
            return False
        if address.teredo is not None or address.is_site_local:
            return False
    # is_global alone is not enough: Python counts multicast (224.0.0.0/4, ff00::/8) as global, and what it counts as
    # private has changed between patch releases; any one of these flags is reason to refuse.
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _host_allowed(host: str, ascii_host: str, allowed_hosts: Sequence[str]) -> bool:
    for pattern in allowed_hosts:
        normal = pattern.strip().lower().removesuffix(".")
        if normal and (fnmatch.fnmatchcase(ascii_host, normal) or fnmatch.fnmatchcase(host, normal)):
            return True
    return False


def check_callback_url(
    url: str,
    *,
    allowed_hosts: Sequence[str],
    allow_private: bool,
    resolve: Callable[[str], list[str]] | None = None,
) -> list[IPAddress]:
    """Raise CallbackRefused unless the service may POST to `url`; the addresses it was vetted for.

    A host name that does not resolve now raises CallbackUnresolved, the one refusal that may pass by itself.

    The URL is parsed with httpx, the library that will send the request, so the host checked here is the host
    called: two URL parsers disagree on inputs like "http://a.example.com\\@evil.net/".

    This checks the addresses the host resolves to now. A host whose DNS changes afterwards (rebinding) could point
    a second lookup elsewhere, so a delivery connects to one of the addresses returned here (`deliver_once`'s
    `address`) instead of resolving the name again, and the dispatcher checks again before each try."""
    if isinstance(allowed_hosts, str):
        # A bare string is a Sequence of one-character patterns, and one of them may well be "*".
        raise TypeError("allowed_hosts must be a list of host patterns, not a string")
    if not any(pattern.strip() for pattern in allowed_hosts):
        raise CallbackRefused(
            "webhook callbacks are disabled on this service: an operator must set DUIYI_WEBHOOK_ALLOWED_HOSTS "
            "to the hosts it may call"
        )
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise CallbackRefused(f"the callback URL is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise CallbackRefused(f"the callback URL must start with http:// or https://, not {parsed.scheme or '(none)'}")
    if not parsed.raw_host:
        raise CallbackRefused("the callback URL has no host")
    if parsed.userinfo:
        # Credentials in a URL end up in logs and in the delivery table; the signature is the authentication.
        raise CallbackRefused("the callback URL must not contain a user name or password")
    if port is not None and not 0 < port < 65536:
        raise CallbackRefused(f"the callback URL's port {port} is out of range")

    ascii_host = parsed.raw_host.decode("ascii").lower()
    if not _host_allowed(parsed.host.lower(), ascii_host.removesuffix("."), allowed_hosts):
        raise CallbackRefused(
            f"the host {ascii_host} is not among the hosts this service may call (DUIYI_WEBHOOK_ALLOWED_HOSTS)"
        )

    try:
        addresses = [ipaddress.ip_address(ascii_host)]
    except ValueError:
        addresses = []
        if _HOST_NAME.fullmatch(ascii_host) is None:
            raise CallbackRefused(f"the callback URL's host {ascii_host} is not a valid host name") from None
    if not addresses:
        try:
            resolved = (resolve or _default_resolve)(ascii_host)
        except UnicodeError as exc:  # the IDNA codec: a label over 63 characters, an empty one; no lookup fixes that
            reason = f"the callback URL's host {ascii_host} is not a valid host name: {exc}"
            raise CallbackRefused(_clip(reason)) from exc
        except OSError as exc:  # socket.gaierror is an OSError
            raise CallbackUnresolved(_clip(f"the host {ascii_host} does not resolve: {exc}")) from exc
        try:
            addresses = [ipaddress.ip_address(address) for address in resolved]
        except ValueError as exc:
            raise CallbackUnresolved(f"the host {ascii_host} resolved to something that is not an address") from exc
        if not addresses:
            raise CallbackUnresolved(f"the host {ascii_host} does not resolve to any address")

    if allow_private:
        return addresses
    # Every address, not just the first: the connection may use any of them, and an attacker controls the order.
    for address in addresses:
        if not _is_public(address):
            what = (
                f"the address {address}"
                if str(address) == ascii_host
                else f"the host {ascii_host} resolves to {address}, which"
            )
            raise CallbackRefused(
                f"{what} is not a public internet address; "
                "an operator can allow such addresses with DUIYI_WEBHOOK_ALLOW_PRIVATE=true"
            )
    return addresses


# --- retries and one delivery try ----------------------------------------------------------------------------------


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1 = after the first failure).

    Exponential, capped, with "equal jitter": half the delay is fixed, half random. The fixed half keeps retries from
    hammering a struggling receiver; the random half keeps deliveries that failed together from retrying together."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    try:
        delay = min(cap_s, math.ldexp(base_s, attempt - 1))
    except OverflowError:
        # 2**(attempt-1) beyond a float's range: long since capped.
        delay = cap_s
    return delay / 2 + (rng or _RNG).uniform(0, delay / 2)


@dataclass(frozen=True)
class Attempt:
    ok: bool  # a 2xx answer
    retryable: bool  # network error, timeout, 429 or 5xx
    status_code: int | None  # None on a network error
    error: str | None  # short human-readable reason when not ok, e.g. "HTTP 503" or "connection refused"
    duration_ms: float
    retry_after_s: float | None = None  # from a Retry-After header (seconds form) on 429/503, when present


def _clip(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    lowered = text.lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(exc, httpx.WriteTimeout):
        return "timed out sending the request"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        if "refused" in lowered:
            return "connection refused"
        if any(s in lowered for s in ("name or service not known", "nodename nor servname", "name resolution")):
            return "could not resolve the host"
        if "certificate" in lowered:
            return _clip(f"TLS certificate not accepted: {text}")
        return _clip(f"could not connect: {text or type(exc).__name__}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return _clip(f"the receiver broke the connection or the HTTP protocol: {text or type(exc).__name__}")
    return _clip(f"network error: {text or type(exc).__name__}")


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form; the HTTP-date form depends on clocks agreeing, and receivers rarely send it.
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS:
        return float(int(value))
    return None


def deliver_once(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], *, address: IPAddress | None = None
) -> Attempt:
    """One POST of `body` to `url`, judged. Timeouts are the client's: build it with an httpx.Timeout.

    With `address` (one that `check_callback_url` vetted), the connection goes to that address rather than to
    whatever the host name resolves to by now, so a rebound DNS name cannot turn a vetted URL into a request to the
    service's own network. The request still names the host: in its Host header and, over TLS, as the server name
    the certificate is checked against. It asks for the connection to be closed after the answer, so a pooled
    connection opened for one host name is never reused for another that shares its address.

    Never raises for network problems; they come back as a retryable Attempt. Redirects are not followed: the URL was
    vetted, the place it redirects to was not, and a POST silently turned into a GET is no delivery anyway. The
    answer's body is never read, so a receiver cannot make the dispatcher download anything."""
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000

    target: str | httpx.URL = url
    sent = dict(headers)
    extensions: dict[str, str] = {}
    if address is not None:
        parsed = httpx.URL(url)
        target = parsed.copy_with(host=str(address))
        sent["Host"] = parsed.netloc.decode("ascii")
        sent["Connection"] = "close"
        extensions["sni_hostname"] = parsed.raw_host.decode("ascii")
    try:
        with client.stream(
            "POST", target, content=body, headers=sent, follow_redirects=False, extensions=extensions
        ) as response:
            status = response.status_code
            location = response.headers.get("location")
            retry_after = _retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
    except httpx.UnsupportedProtocol as exc:
        # A TransportError, but no retry will change the URL's scheme.
        return Attempt(False, False, None, _clip(f"the URL cannot be called: {exc}"), elapsed_ms())
    except httpx.TransportError as exc:
        return Attempt(False, True, None, _describe(exc), elapsed_ms())
    except httpx.InvalidURL as exc:
        return Attempt(False, False, None, _clip(f"the URL cannot be called: {exc}"), elapsed_ms())
    duration = elapsed_ms()

    if 200 <= status < 300:
        return Attempt(True, False, status, None, duration)
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        return Attempt(
            False,
            False,
            status,
            _clip(f"HTTP {status}: the receiver redirected{where}; redirects are not followed"),
            duration,
        )
    if status == 429 or 500 <= status < 600:
        return Attempt(False, True, status, f"HTTP {status}", duration, retry_after)
    return Attempt(False, False, status, f"HTTP {status}", duration)
