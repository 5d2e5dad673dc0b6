"""The service end to end over real HTTP on loopback, with a tiny model of each family."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from service.api.app import max_body_bytes
from service.config import Settings
from tests.conftest import LiveServer, serve

ALL = ["zh-Hans", "zh-Hant", "zh-TW", "zh-HK"]
EXPECTED_TERMS = {
    "abe-shinzo": "Abe Shinzo",
    "futenma": "Futenma",
    "scc": "SCC",
    "two-plus-two": "2+2",
    "john-kerry": "John Kerry",
    "chuck-hagel": "Chuck Hagel",
    "hagel": "Hagel",
    "vladimir-putin": "Vladimir Putin",
    "kurile-islands": "Kurile Islands",
}


@pytest.fixture(scope="module")
def sample_response(server: LiveServer, sample_article: str) -> dict[str, Any]:
    response = server.client.post("/v1/translate", json={"text": sample_article, "targets": ALL})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_structure_matches_the_source(sample_response: dict[str, Any], sample_article: str) -> None:
    paragraphs = [p.strip() for p in sample_article.split("\n\n") if p.strip()]
    blocks = sample_response["blocks"]
    assert len(blocks) == len(paragraphs)
    for block, paragraph in zip(blocks, paragraphs, strict=True):
        assert block["segments"], block["id"]
        # Nothing of the source is lost: the segments rebuild the paragraph exactly.
        assert "".join(s["ws_before"] + s["source"] for s in block["segments"]) == paragraph
        for i, seg in enumerate(block["segments"]):
            assert seg["id"] == f"{block['id']}.s{i}"
            assert set(seg["targets"]) == set(ALL)
    assert sum(len(b["segments"]) for b in blocks) > len(blocks)
    assert set(sample_response["full_text"]) == set(ALL)
    assert sample_response["full_text"]["zh-TW"].count("\n\n") >= len(paragraphs) - 1


def test_glossary_hits_with_spans(sample_response: dict[str, Any]) -> None:
    seen: dict[str, set[str]] = {}
    for block in sample_response["blocks"]:
        for seg in block["segments"]:
            for term in seg["terms"]:
                span = term["source_span"]
                assert seg["source"][span["start"] : span["end"]] == term["source_text"]
                seen.setdefault(term["term_id"], set()).add(term["source_text"])
    for term_id, text in EXPECTED_TERMS.items():
        assert text in seen.get(term_id, set()), term_id
    assert seen["scc"] == {"U.S.-Japan Security Consultative Committee", "SCC"}


def test_every_hit_is_in_each_variant_or_flagged(sample_response: dict[str, Any]) -> None:
    checked = 0
    for block in sample_response["blocks"]:
        for seg in block["segments"]:
            missing = {(f["variant"], f["reason"]) for f in seg["flags"] if f["code"] == "term_missing"}
            for term in seg["terms"]:
                for variant in ALL:
                    span = term["target_spans"][variant]
                    if span is not None:
                        assert seg["targets"][variant][span["start"] : span["end"]] == term["expected"][variant]
                    else:
                        assert any(v == variant and f"({term['term_id']})" in r for v, r in missing), (
                            seg["id"],
                            term["term_id"],
                            variant,
                        )
                    checked += 1
            if missing:
                assert seg["status"] == "needs_review"
    assert checked > 40


def test_regional_forms_come_from_the_glossary(sample_response: dict[str, Any]) -> None:
    expected = {}
    for block in sample_response["blocks"]:
        for seg in block["segments"]:
            for term in seg["terms"]:
                expected[term["term_id"]] = term["expected"]
    assert expected["vladimir-putin"]["zh-TW"] == "弗拉基米爾·普丁"
    assert expected["vladimir-putin"]["zh-Hans"] == "弗拉基米尔·普京"
    assert expected["john-kerry"]["zh-TW"] == "約翰·凱瑞"
    assert expected["john-kerry"]["zh-HK"] == "約翰·克里"
    assert expected["abe-shinzo"]["zh-Hant"] == "安倍晉三"


def test_dateline_is_rendered_by_rule(sample_response: dict[str, Any]) -> None:
    date = next(s for b in sample_response["blocks"] for s in b["segments"] if s["source"] == "Nov 07 , 2013")
    assert date["targets"] == dict.fromkeys(ALL, "2013年11月7日")
    assert date["origin"] == "rule"


def test_structured_article_and_markdown(server: LiveServer) -> None:
    body = "# Futenma\n\nA [link about **Okinawa**](https://example.org/a) today.\n\n- one\n- two\n"
    response = server.client.post(
        "/v1/translate",
        json={
            "article": {"title": "The alliance", "byline": "Stephen Harner", "date": "Nov 07, 2013", "body": body},
            "format": "markdown",
            "targets": ["zh-Hans", "zh-TW"],
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert [b["kind"] for b in data["blocks"]] == [
        "title",
        "byline",
        "date",
        "heading",
        "paragraph",
        "list_item",
        "list_item",
    ]
    for variant in ("zh-Hans", "zh-TW"):
        text = data["full_text"][variant]
        assert "](https://example.org/a)" in text and "**" in text
        assert "\n## " not in text and "\n\n# " in text
        assert "\n- " in text
    futenma = data["blocks"][3]["segments"][0]
    assert futenma["targets"]["zh-TW"] == "普天間" and futenma["origin"] == "rule"


def test_html_markup_survives_into_every_variant(server: LiveServer) -> None:
    page = '<article><h2>Okinawa</h2><p>See <a href="https://example.org/?a=1&amp;b=2">the base</a> now.</p></article>'
    response = server.client.post("/v1/translate", json={"text": page, "format": "html", "targets": ALL})
    assert response.status_code == 200, response.text
    for variant in ALL:
        text = response.json()["full_text"][variant]
        assert text.startswith("<article><h2>")
        assert '<a href="https://example.org/?a=1&amp;b=2">' in text and "</a></p></article>" in text


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = dict(response.json()["error"])
    assert error["code"] == code and error["message"]
    return error


def test_bad_inputs(server: LiveServer) -> None:
    client = server.client
    _error(client.post("/v1/translate", json={"text": " \n "}), 422, "empty_input")
    _error(client.post("/v1/translate", json={}), 422, "invalid_request")
    _error(client.post("/v1/translate", json={"text": "x", "bogus": 1}), 422, "invalid_request")
    too_big = "word " * (server.settings.max_chars // 5 + 1)
    error = _error(client.post("/v1/translate", json={"text": too_big}), 413, "too_large")
    assert f"{server.settings.max_chars:,}" in error["message"]
    headers = {"content-type": "application/json"}
    _error(client.post("/v1/translate", content=b'{"text": "x",', headers=headers), 400, "malformed_json")
    _error(client.post("/v1/translate", content=b'{"text": "\xff\xfe"}', headers=headers), 400, "invalid_utf8")
    error = _error(client.post("/v1/translate", json={"text": "x", "targets": ["zh-SG"]}), 422, "unknown_variant")
    assert error["valid"] == ALL
    error = _error(client.post("/v1/translate", json={"text": "x", "glossaries": ["nope"]}), 422, "unknown_glossary")
    assert error["valid"] == ["news"]
    _error(client.post("/v1/translate", json={"text": "x", "format": "pdf"}), 422, "invalid_request")
    _error(client.get("/v1/glossaries/nope"), 404, "unknown_glossary")
    _error(client.get("/v1/nothing"), 404, "not_found")
    # JSON's escapes can carry half a surrogate pair, which is no character: refused, not a 500.
    lone = b'{"text": "lone \\ud800 half"}'
    error = _error(client.post("/v1/translate", content=lone, headers=headers), 422, "invalid_request")
    assert "text: Value error, holds a lone UTF-16 surrogate (U+D800 at character 5)" in error["message"]
    lone = b'{"body": "Fine.", "title": "\\udc00"}'
    error = _error(client.post("/v1/articles", content=lone, headers=headers), 422, "invalid_request")
    assert error["message"].startswith("title: Value error, holds a lone UTF-16 surrogate")
    nul = b'{"body": "Fine.\\u0000 Not."}'
    error = _error(client.post("/v1/articles", content=nul, headers=headers), 422, "invalid_request")
    assert error["message"].startswith("body: Value error, holds a NUL (U+0000 at character 5)")
    pair = b'{"text": "A whole pair \\ud83d\\ude00 is a character."}'
    assert client.post("/v1/translate", content=pair, headers=headers).status_code == 200


def test_a_body_without_length_is_refused_at_the_limit_not_read_whole(server: LiveServer) -> None:
    """A chunked body (no Content-Length) is answered 413 as soon as it passes the limit, while the
    client is still sending: the service never holds more of it than the limit."""
    url = urlsplit(server.url)
    limit = max_body_bytes(server.settings.max_chars)
    chunk = b"x" * 65_536
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        head = f"POST /v1/translate HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
        sock.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(limit // len(chunk) + 2):  # past the limit, and the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = ""
        while "}}" not in answer and (piece := sock.recv(65_536)):
            answer += piece.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"too_large"' in answer and f"{limit:,}" in answer


class _Broken:
    """The real engine with a bug: what a failure no handler expects looks like to a client."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def translate_batch(self, sources: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_unexpected_failure_answers_json(engines: dict, tiny_dirs: dict) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", continuous_batching=False)
    with serve(settings, _Broken(engines["marian"])) as live:  # type: ignore[arg-type]
        response = live.client.post("/v1/translate", json={"text": "This will fail."})
        error = _error(response, 500, "internal_error")
        assert "a bug" not in error["message"] and "logged" in error["message"]
        assert live.client.get("/healthz").status_code == 200  # the service lives on


def test_openapi_documents_every_status(server: LiveServer) -> None:
    spec = server.client.get("/openapi.json").json()
    translate = spec["paths"]["/v1/translate"]["post"]["responses"]
    assert {"200", "400", "413", "422", "500", "503", "504"} <= set(translate)
    assert translate["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    assert "404" in spec["paths"]["/v1/glossaries/{name}"]["get"]["responses"]


def test_health_and_glossaries(server: LiveServer) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["device"] == "cpu"
    listing = server.client.get("/v1/glossaries").json()
    assert listing[0]["name"] == "news" and listing[0]["terms"] >= 25
    news = server.client.get("/v1/glossaries/news").json()
    putin = next(t for t in news["terms"] if t["id"] == "putin")
    assert putin["targets"]["zh-TW"] == "普丁"


def test_busy_service_answers_503_with_retry_after(engines: dict, tiny_dirs: dict) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", max_queue=2)
    with serve(settings, engines["marian"]) as live:
        response = live.client.post("/v1/translate", json={"text": "One here. Two here. Three here."})
        error = _error(response, 503, "busy")
        assert int(response.headers["Retry-After"]) >= 1 and "retry after" in error["message"]
        assert live.client.post("/v1/translate", json={"text": "Just one."}).status_code == 200
        metrics = live.client.get("/metrics").text
        assert "duiyi_rejected_sentences_total 3.0" in metrics


def test_a_request_past_its_timeout_answers_504(engines: dict, tiny_dirs: dict) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", request_timeout_s=0.0001, max_wait_ms=50)
    with serve(settings, engines["marian"]) as live:
        error = _error(live.client.post("/v1/translate", json={"text": "Too slow for this."}), 504, "timeout")
        assert "DUIYI_REQUEST_TIMEOUT_S" in error["message"]


def test_metrics_report_batches_and_queue(server: LiveServer) -> None:
    assert server.client.post("/v1/translate", json={"text": "Metrics please. Another one."}).status_code == 200
    response = server.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "duiyi_queue_depth",
        "duiyi_batch_rows_bucket",
        "duiyi_output_tokens_total",
        "duiyi_tokens_per_second",
        "duiyi_sentence_latency_seconds_count",
    ):
        assert name in text, name
    rows = next(line for line in text.splitlines() if line.startswith("duiyi_batch_rows_count"))
    assert float(rows.split()[-1]) >= 1


def test_concurrent_requests_share_engine_batches(server: LiveServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def passes() -> tuple[float, float]:
        """Engine passes (whole batches, or steps of the running batch): all, and those of ≤ 2 rows."""
        lines = server.client.get("/metrics").text.splitlines()
        total = next(line for line in lines if line.startswith("duiyi_batch_rows_count"))
        small = next(line for line in lines if line.startswith('duiyi_batch_rows_bucket{le="2.0"}'))
        return float(total.split()[-1]), float(small.split()[-1])

    before = passes()
    texts = [f"Request {i} asks about the alliance. It has two sentences {i}." for i in range(8)]
    with httpx.Client(base_url=server.url, timeout=120) as client, ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda t: client.post("/v1/translate", json={"text": t, "targets": ["zh-Hans"]}), texts)
        )
    assert all(r.status_code == 200 for r in responses)
    for text, response in zip(texts, responses, strict=True):
        assert [s["source"] for b in response.json()["blocks"] for s in b["segments"]] == [
            text[: text.index(".") + 1],
            text[text.index(".") + 2 :],
        ]
    after = passes()
    # Each request has two sentences: a pass of more than two rows decoded several requests' together.
    assert after[0] - before[0] > after[1] - before[1]
