"""The OpenAPI document as a CMS developer reads it on /docs, through the real server: every
operation says what it does, every parameter what it takes, the `variant` parameters their four
values (while an unknown one is still the API's 422 `unknown_variant`, not a framework error), and
the glossary upload every content type it takes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glossary.terms import VARIANTS
from models.engine import load_engine
from service.config import Settings
from tests.conftest import LiveServer, serve

# What PUT /v1/glossaries/{name} reads as CSV and as TBX (service.api.routes.glossaries).
GLOSSARY_TYPES = {
    "text/csv",
    "text/plain",
    "application/x-tbx+xml",
    "application/tbx+xml",
    "application/xml",
    "text/xml",
}
# The operations whose `variant` query parameter names one of VARIANTS.
VARIANT_OPERATIONS = {
    ("get", "/v1/articles/{job_id}/export"),
    ("post", "/v1/articles/{job_id}/import"),
    ("get", "/v1/articles/{job_id}/segments/{segment_id}/suggestions"),
    ("get", "/v1/memory/export"),
    ("get", "/v1/memory/search"),
}


@pytest.fixture(scope="module")
def live(tiny_dirs: dict[str, Path]) -> Iterator[LiveServer]:
    engine = load_engine(str(tiny_dirs["marian"]), engine="transformers", device="cpu")
    with serve(Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0), engine) as server:
        yield server


@pytest.fixture(scope="module")
def spec(live: LiveServer) -> dict[str, Any]:
    answer = live.client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_operation_has_a_summary_and_a_description(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for method, path, operation in _operations(spec)
        if not (operation.get("summary") or "").strip() or not (operation.get("description") or "").strip()
    ]
    assert len(list(_operations(spec))) > 40
    assert not missing, "no summary or description: " + ", ".join(missing)


def test_every_parameter_has_a_description(spec: dict[str, Any]) -> None:
    missing = []
    seen = set()
    for method, path, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            seen.add(parameter["in"])
            if not (parameter.get("description") or "").strip():
                missing.append(f"{method.upper()} {path}: {parameter['in']} {parameter['name']}")
    assert {"path", "query", "header"} <= seen
    assert not missing, "no description: " + ", ".join(missing)


def test_the_idempotency_key_and_list_limit_are_described(spec: dict[str, Any]) -> None:
    articles = spec["paths"]["/v1/articles"]
    header = next(p for p in articles["post"]["parameters"] if p["name"] == "idempotency-key")
    assert header["in"] == "header" and "duplicated" in header["description"]
    limit = next(p for p in articles["get"]["parameters"] if p["name"] == "limit")
    assert "next_cursor" in limit["description"]


def test_the_variant_parameters_carry_the_four_variants(spec: dict[str, Any]) -> None:
    found = set()
    for method, path, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "variant" and parameter["in"] == "query":
                if method == "head":
                    continue
                found.add((method, path))
                assert parameter["schema"].get("enum") == list(VARIANTS), (method, path, parameter["schema"])
    assert found == VARIANT_OPERATIONS


@pytest.mark.parametrize(
    "path",
    ["/v1/memory/export?variant=zh-XX", "/v1/memory/search?q=Beijing&variant=zh-XX"],
)
def test_an_unknown_variant_is_still_the_apis_422(live: LiveServer, path: str) -> None:
    """The enum is documentation: the route's own check answers, naming the valid variants."""
    answer = live.client.get(path)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unknown_variant" and error["valid"] == list(VARIANTS)
    assert "zh-XX" in error["message"]


def test_the_glossary_upload_documents_every_type_it_takes(live: LiveServer, spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/glossaries/{name}"]["put"]["requestBody"]
    assert set(body["content"]) == GLOSSARY_TYPES
    csv = live.client.get("/v1/glossaries/news/export", params={"format": "csv"}).content
    tbx = live.client.get("/v1/glossaries/news/export", params={"format": "tbx"}).content
    for media in sorted(GLOSSARY_TYPES):
        data = csv if media.startswith("text/") and "xml" not in media else tbx
        answer = live.client.put("/v1/glossaries/openapi-types", content=data, headers={"content-type": media})
        assert answer.status_code in (200, 201), (media, answer.text[:300])
        assert answer.json()["name"] == "openapi-types"
    refused = live.client.put("/v1/glossaries/openapi-types", content=csv, headers={"content-type": "text/json"})
    assert refused.status_code == 415
    assert all(kind in refused.json()["error"]["message"] for kind in GLOSSARY_TYPES)  # the message names them all


def test_the_format_parameters_are_described(spec: dict[str, Any]) -> None:
    for path, method in (
        ("/v1/articles/{job_id}/export", "get"),
        ("/v1/articles/{job_id}/import", "post"),
        ("/v1/glossaries/{name}/export", "get"),
    ):
        parameter = next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == "format")
        assert "xliff" in parameter["description"] or "csv" in parameter["description"], path
