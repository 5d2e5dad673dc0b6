"""The HTTP layer every route shares, through the real server: 405 with every method a path takes,
HEAD answered as GET, the request guard (bodies, their size in bytes against the character limit),
the message for JSON that cannot be parsed, the OpenAPI document's account of all of these, and the
limit on a request's head in the HTTP server `duiyi serve` runs."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute

from models.engine import load_engine
from service.api.app import max_body_bytes
from service.api.errors import BODY_METHODS
from service.config import Settings
from tests.conftest import LiveServer, serve

MAX_CHARS = 100_000  # the default, which the README documents
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def live(tiny_dirs: dict[str, Path]) -> Iterator[LiveServer]:
    engine = load_engine(str(tiny_dirs["marian"]), engine="transformers", device="cpu")
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0)
    assert settings.max_chars == MAX_CHARS
    with serve(settings, engine) as server:
        yield server


@pytest.fixture(scope="module")
def spec(live: LiveServer) -> dict[str, Any]:
    answer = live.client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _error(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text[:500]
    error = answer.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


# --- 405 and HEAD -----------------------------------------------------------------------------


def test_405_allow_names_every_method_of_the_path(live: LiveServer, spec: dict[str, Any]) -> None:
    """OPTIONS, which no path takes, on every path of the document: Allow, and the message, name
    every method the document gives the path (routing alone names only the first route's)."""
    checked = 0
    for template, item in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        answer = live.client.options(path)
        message = _error(answer, 405, "method_not_allowed")
        methods = [m.upper() for m in item]
        assert sorted(answer.headers["allow"].split(", ")) == sorted(methods), template
        assert message == f"this path does not take OPTIONS; it takes {answer.headers['allow']}"
        checked += 1
    assert checked > 30
    # The ones the audit found, as a client reads them (HTTP's order).
    assert live.client.options("/v1/articles/x").headers["allow"] == "GET, HEAD, DELETE"
    assert live.client.post("/v1/keys/x").headers["allow"] == "DELETE"
    assert live.client.patch("/v1/keys").headers["allow"] == "GET, HEAD, POST"
    assert live.client.post("/v1/glossaries/news").headers["allow"] == "GET, HEAD, PUT"
    assert live.client.get("/v1/glossaries/news/terms/t").headers["allow"] == "PUT, DELETE"
    assert live.client.get("/v1/memory/entries/1").headers["allow"] == "PATCH, DELETE"
    assert live.client.delete("/v1/translate").headers["allow"] == "POST"
    # Routes beside the API's: the document's own, and the review app's static files.
    assert live.client.post("/openapi.json").headers["allow"] == "GET, HEAD"
    static = live.client.post("/review/static/review.js")
    _error(static, 405, "method_not_allowed")
    assert static.headers["allow"] == "GET, HEAD"


def test_head_is_answered_as_get_without_the_body(live: LiveServer) -> None:
    for path in ("/healthz", "/v1/glossaries", "/v1/glossaries/news/export", "/openapi.json"):
        got = live.client.get(path)
        head = live.client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert int(head.headers["content-length"]) == len(got.content) > 0
    # Its errors as GET has them, headers and all.
    missing = live.client.head("/v1/articles/nope")
    assert missing.status_code == 404 and missing.content == b""
    assert missing.headers["content-type"] == "application/json"
    # A path that takes no GET takes no HEAD.
    post_only = live.client.head("/v1/translate")
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"
    # The review app's static files answered HEAD before, and still do.
    assert live.client.head("/review/static/review.js").status_code == 200


# --- the request guard --------------------------------------------------------------------------


def test_a_body_sent_with_get_or_delete_is_not_read(live: LiveServer) -> None:
    """No GET or DELETE route takes a body: one sent with them is ignored, not refused as too large
    or as not UTF-8 (statuses those operations do not list)."""
    big = b"x" * 600_000 * 4  # over the byte limit
    assert len(big) > max_body_bytes(MAX_CHARS)
    assert live.client.request("GET", "/v1/glossaries", content=big).status_code == 200
    assert live.client.request("GET", "/healthz", content=b"\xff\xfe not UTF-8").status_code == 200
    _error(live.client.request("DELETE", "/v1/keys/999", content=big), 404, "not_found")
    # A POST's body is read: not UTF-8 is a 400, which the document lists for every POST.
    _error(live.client.post("/v1/articles/x/review", content=b"\xff", headers=JSON), 400, "invalid_utf8")


def _with_escapes(text: str) -> bytes:
    """What Python's json.dumps sends by default: every character beyond ASCII as \\uXXXX (a
    surrogate pair, 12 bytes, for one beyond U+FFFF)."""
    return json.dumps({"text": text, "targets": ["zh-SG"]}).encode("ascii")


def test_a_text_within_the_character_limit_is_never_too_large_for_its_escapes(live: LiveServer) -> None:
    """The byte limit leaves room for the character limit at the most JSON takes a character (12
    bytes), so the character count decides. An unknown variant, checked after the count, answers
    422 without translating anything."""
    for char, size in (("中", 6), ("😀", 12)):
        body = _with_escapes(char * (MAX_CHARS - 1_000))
        assert len(body) > (MAX_CHARS - 1_000) * size
        message = _error(live.client.post("/v1/translate", content=body, headers=JSON), 422, "unknown_variant")
        assert "zh-SG" in message
    # One character over: the character limit says so, in characters.
    body = _with_escapes("😀" * (MAX_CHARS + 1))
    message = _error(live.client.post("/v1/translate", content=body, headers=JSON), 413, "too_large")
    assert f"the input has {MAX_CHARS + 1:,} characters; the limit is {MAX_CHARS:,}" in message


def test_a_body_over_the_byte_limit_is_refused_before_it_is_sent(live: LiveServer) -> None:
    """A Content-Length over the limit is answered at once: the service waits for none of it."""
    url = urlsplit(live.url)
    length = max_body_bytes(MAX_CHARS) + 1
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        head = f"POST /v1/translate HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
        sock.sendall(head.encode() + f"Content-Length: {length}\r\n\r\n".encode())
        answer = ""
        while "}}" not in answer and (piece := sock.recv(65_536)):
            answer += piece.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    message = json.loads(answer[answer.index("\r\n\r\n") + 4 :])["error"]["message"]
    assert message == (
        f"the request body has {length:,} bytes; the limit is {length - 1:,} bytes, more than any request "
        f"within DUIYI_MAX_CHARS ({MAX_CHARS:,} characters) takes"
    )


def test_malformed_json_says_why_and_where(live: LiveServer) -> None:
    answer = live.client.post("/v1/translate", content=b'{"text": "abc', headers=JSON)
    message = _error(answer, 400, "malformed_json")
    assert message == "the request body is not valid JSON: unterminated string starting at character 9"
    answer = live.client.post("/v1/translate", content=b'{"text": "x",}', headers=JSON)
    message = _error(answer, 400, "malformed_json")
    assert message == (
        "the request body is not valid JSON: expecting property name enclosed in double quotes at character 13"
    )


# --- the OpenAPI document -----------------------------------------------------------------------


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_openapi_document_lists_the_shared_statuses_and_their_headers(spec: dict[str, Any]) -> None:
    for path, method, operation in _operations(spec):
        where = f"{method.upper()} {path}"
        answers = operation["responses"]
        assert "Allow" in answers["405"]["headers"], where
        for status, header in (("401", "WWW-Authenticate"), ("429", "Retry-After"), ("503", "Retry-After")):
            if status in answers:
                assert header in answers[status]["headers"], where
        # The request guard answers 400 and 413 for the methods that carry a body, and only those.
        assert ({"400", "413"} <= answers.keys()) == (method.upper() in BODY_METHODS), where
        for status, answer in answers.items():
            assert answer["description"] != "Successful Response", (where, status)
    assert {"401", "429", "503"} <= spec["paths"]["/v1/translate"]["post"]["responses"].keys()
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids)) > 40
    submit = spec["paths"]["/v1/articles"]["post"]["responses"]
    assert "Location" in submit["202"]["headers"] and "Location" in submit["200"]["headers"]
    # HEAD beside every GET, as the app answers it: its statuses and headers, no bodies.
    for path, item in spec["paths"].items():
        assert ("get" in item) == ("head" in item), path
        if "get" in item:
            assert item["head"]["responses"].keys() == item["get"]["responses"].keys()
            assert not any("content" in r for r in item["head"]["responses"].values())


def test_only_the_body_methods_have_routes_that_take_a_body() -> None:
    """What lets the request guard leave the bodies of GET and DELETE unread."""
    from service.api.routes import articles, comments, files, glossaries, health, keys, memory, translate
    from service.web import routes as web

    modules = (articles, comments, files, glossaries, health, keys, memory, translate, web)
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 40
    for route in routes:
        if route.body_field is not None:
            assert route.methods and route.methods <= BODY_METHODS, route.path


def _ask(port: int, *pieces: bytes) -> bytes:
    """Send `pieces` on a new connection, a pause between them, and read the answer until the
    server closes the connection (the requests say `Connection: close`; a connection it held would
    end the test in a timeout). A server that closes while a piece is still being sent has refused
    it: what it answered, if anything."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(0.3)  # the server reads what came: an incomplete head
                sock.sendall(piece)
        except OSError:
            pass  # closed on us: refused while it arrived
        try:
            while piece := sock.recv(65_536):
                answer += piece
        except ConnectionResetError:
            pass
    return answer


def _refused(answer: bytes) -> None:
    """The HTTP server's own 400 (the README's error table), or a connection reset before it could
    be read: anything but an answer from the service."""
    if not answer:
        return
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head[:200]
    assert b"content-type: text/plain" in head.lower()
    assert b"Invalid HTTP request received." in body  # h11 sends it chunked


def test_duiyi_serve_holds_a_request_head_to_16_kib_however_it_arrives(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """What the README's error table says of the one error that is no JSON: `duiyi serve` refuses
    a URL and headers over 16 KiB together with a plain-text 400 and closes the connection, whether
    the head came whole or in pieces. It served them before, up to megabytes of headers (uvicorn
    chose httptools, which has no limit; h11 alone checks only a head still arriving). And it
    refuses a control character in a header or the URL, as httptools did and h11 does not."""
    from tests.test_operations import serving

    def get(header_bytes: int) -> bytes:
        padding = b"X-Padding: " + b"p" * header_bytes
        return b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + padding + b"\r\n\r\n"

    with serving(tiny_dirs, tmp_path, "warning") as (_, port):
        fine = _ask(port, get(15 * 1024))
        assert fine.startswith(b"HTTP/1.1 200"), fine[:200]
        whole = _ask(port, get(17 * 1024))
        assert whole.startswith(b"HTTP/1.1 400"), whole[:200]
        _refused(whole)
        head = get(17 * 1024)
        arriving = _ask(port, head[:10_000], head[10_000:])  # whole once the second piece is read
        assert arriving.startswith(b"HTTP/1.1 400"), arriving[:200]
        _refused(arriving)
        _refused(_ask(port, head[:16_500], head[16_500:]))  # over the limit while still arriving
        # A URL alone over the limit, coming in pieces.
        url = b"GET /v1/articles?external_id=" + b"a" * 20_000
        _refused(_ask(port, url, b"a" * 80_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        # Megabytes of headers are not read to their end: refused within a second or so.
        started = time.monotonic()
        _refused(_ask(port, get(5_000_000)))
        assert time.monotonic() - started < 10
        # A control character in a header or the URL, as httptools refused them (h11 lets them by).
        for request_line, header, status in (
            (b"GET /healthz", b"X-Odd: a\x01b", b"400"),
            (b"GET /healthz", b"X-Odd: a\x1bb", b"400"),
            (b"GET /healthz", b"X-Odd: a\x7fb", b"400"),
            (b"GET /healthz?q=\x01", b"X-Odd: x", b"400"),
            (b"GET /healthz", b"X-Tab: a\tb", b"200"),  # a tab is white space in a header, not refused
        ):
            answer = _ask(port, request_line + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 " + status), (request_line, header, answer[:200])
            if status == b"400":
                _refused(answer)
        # And the service is as it was.
        assert _ask(port, get(100)).startswith(b"HTTP/1.1 200")
