"""Which variant an XLIFF import goes into, through the HTTP service: without `variant`, the one the
file names (its trgLang, as the export wrote it or in a form a CAT tool may write instead); a file
for a variant the article lacks, or one that disagrees with an explicit `variant`, is refused with
422 `invalid_xliff` and nothing is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from models.engine import Engine
from service.config import Settings
from service.interchange.xliff import variant_for
from service.variants import variant_rules
from tests.conftest import LiveServer, serve
from tests.test_files import THREE_SENTENCES, _edit_targets, segments, translated


@pytest.fixture
def live(tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        job_poll_s=0.05,
    )
    with serve(settings, engines["marian"]) as server:
        yield server


ALL_VARIANTS = tuple(variant_rules())


@pytest.mark.parametrize(
    ("language", "variant"),
    [
        *((name, name) for name in ALL_VARIANTS),
        ("zh-tw", "zh-TW"),
        ("ZH-HANS", "zh-Hans"),
        ("zh_HK", "zh-HK"),
        ("zh-Hant-TW", "zh-TW"),
        ("zh-hant-hk", "zh-HK"),
        ("zh_Hant_TW", "zh-TW"),
        ("zh-Hans-CN", None),  # a region added to a script is a guess
        ("zh-Hant-MO", None),
        ("zh-Hans-TW", None),
        ("zh-CN", None),
        ("zh", None),
        ("en", None),
        ("", None),
    ],
)
def test_each_tag_names_one_variant_at_most(language: str, variant: str | None) -> None:
    """Whatever the article's variants, a tag names the same variant or none: never one variant in
    one article and another in the next. So a tag read as a variant in an article that has all of
    them is read as that one, or refused, in every article."""
    assert variant_for(language, ALL_VARIANTS) == variant
    for name in ALL_VARIANTS:
        assert variant_for(language, [name]) == (name if name == variant else None), name


def _export(client: httpx.Client, job: dict, variant: str) -> bytes:
    r = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff", "variant": variant})
    assert r.status_code == 200, r.text
    return r.content


def _import(client: httpx.Client, job: dict, data: bytes, **params: str) -> httpx.Response:
    return client.post(
        f"/v1/articles/{job['id']}/import",
        params={"format": "xliff", **params},
        content=data,
        headers={"Content-Type": "application/xml"},
    )


def _with_language(data: bytes, language: str) -> bytes:
    doc = etree.fromstring(data)
    doc.set("trgLang", language)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")


def _stored(client: httpx.Client, job: dict) -> list[tuple[str, int, dict]]:
    return [(s["id"], s["version"], s["targets"]) for s in segments(client.get(f"/v1/articles/{job['id']}").json())]


def test_a_file_imports_into_the_variant_it_names(live: LiveServer) -> None:
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans", "zh-TW"]})
    first, second, third = segments(job)
    exported = _export(client, job, "zh-TW")

    # Back unchanged, without `variant`: read as the zh-TW file it is, and nothing changes.
    r = _import(client, job, exported)
    assert r.status_code == 200, r.text
    assert r.json() == {"edited": [], "approved": [], "unchanged": [first["id"], second["id"], third["id"]]}

    # A translator's edit goes into zh-TW; zh-Hans stays as it was.
    r = _import(client, job, _edit_targets(exported, {first["id"]: "港口於週一重新開放。"}, "translated"))
    assert r.status_code == 200, r.text
    assert r.json()["edited"] == [first["id"]]
    after = {s["id"]: s for s in segments(client.get(f"/v1/articles/{job['id']}").json())}
    assert after[first["id"]]["targets"]["zh-TW"] == "港口於週一重新開放。"
    assert after[first["id"]]["targets"]["zh-Hans"] == first["targets"]["zh-Hans"]
    assert "zh-TW" in after[first["id"]]["locked_variants"]
    assert [s["targets"] for s in (after[second["id"]], after[third["id"]])] == [second["targets"], third["targets"]]

    # The forms of zh-TW a CAT tool may write instead: another case, a POSIX locale's underscore,
    # the script subtag that Taiwan's Chinese is written in. Each file is exported afresh (the last
    # import changed what the previous file recorded), and its edit lands in zh-TW.
    for language, target, text in (
        ("zh-tw", second, "貿易大幅成長。"),
        ("zh_TW", third, "出口翻倍。"),
        ("zh-Hant-TW", first, "港口週一重開。"),
    ):
        edited = _edit_targets(_export(client, job, "zh-TW"), {target["id"]: text}, "translated")
        data = _with_language(edited, language)
        r = _import(client, job, data)
        assert r.status_code == 200, (language, r.text)
        assert r.json()["edited"] == [target["id"]], language
        now = {s["id"]: s for s in segments(client.get(f"/v1/articles/{job['id']}").json())}
        assert now[target["id"]]["targets"]["zh-TW"] == text, language
        assert now[target["id"]]["targets"]["zh-Hans"] == target["targets"]["zh-Hans"], language

    # An explicit `variant` that agrees with the file is taken as before.
    r = _import(client, job, _export(client, job, "zh-TW"), variant="zh-TW")
    assert r.status_code == 200 and r.json()["edited"] == [], r.text


def test_a_file_for_a_variant_the_article_lacks_is_refused(live: LiveServer) -> None:
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans", "zh-TW"]})
    first = segments(job)[0]
    exported = _edit_targets(_export(client, job, "zh-TW"), {first["id"]: "港口於週一重新開放。"}, "final")
    before = _stored(client, job)
    for language in ("zh-HK", "zh-Hant", "fr"):
        r = _import(client, job, _with_language(exported, language))
        assert r.status_code == 422, (language, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_xliff" and error["valid"] == ["zh-Hans", "zh-TW"], (language, error)
        assert language in error["message"] and "zh-Hans, zh-TW" in error["message"], (language, error)
    # A file that names no target language cannot say which variant it is for.
    root = etree.fromstring(exported)
    del root.attrib["trgLang"]
    r = _import(client, job, etree.tostring(root))
    assert r.status_code == 422 and "trgLang" in r.json()["error"]["message"], r.text
    assert _stored(client, job) == before

    # zh-Hant-TW is zh-TW (Taiwan's Chinese, its script spelled out), never generic zh-Hant: an
    # article with zh-Hant and no zh-TW refuses it rather than guessing.
    hant = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans", "zh-Hant"]})
    data = _with_language(_export(client, hant, "zh-Hant"), "zh-Hant-TW")
    r = _import(client, hant, data)
    assert r.status_code == 422 and r.json()["error"]["valid"] == ["zh-Hans", "zh-Hant"], r.text


def test_an_explicit_variant_that_disagrees_with_the_file_is_refused(live: LiveServer) -> None:
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans", "zh-TW"]})
    first = segments(job)[0]
    exported = _edit_targets(_export(client, job, "zh-TW"), {first["id"]: "港口於週一重新開放。"}, "final")
    before = _stored(client, job)
    r = _import(client, job, exported, variant="zh-Hans")
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_xliff", error
    assert "the file is for zh-TW, not zh-Hans" in error["message"], error
    # The way out: the variant the file names, or no `variant` at all.
    assert "variant=zh-TW" in error["message"], error
    # A variant the article lacks is refused as on the other routes, before the file is read.
    r = _import(client, job, exported, variant="zh-HK")
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_variant", r.text
    assert _stored(client, job) == before


def test_the_import_parameters_are_documented(live: LiveServer) -> None:
    operation = live.client.get("/openapi.json").json()["paths"]["/v1/articles/{job_id}/import"]["post"]
    params = {p["name"]: p.get("description", "") for p in operation["parameters"]}
    assert "trgLang" in params["variant"] and "edited_since_export" in params["overwrite"], params
    for word in ("variant", "overwrite", "trgLang", "invalid_xliff"):
        assert word in operation.get("description", ""), (word, operation.get("description"))
