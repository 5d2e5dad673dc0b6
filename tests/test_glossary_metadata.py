"""Where a glossary came from and who last changed it, through the real server on SQLite and
PostgreSQL: the list and the glossary both say `origin` (shipped, file, api), `revision`,
`updated_at` and `updated_by` (the editing key's name), as the database keeps them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine, load_engine
from service.auth import Role
from tests.conftest import keyed_settings, make_keys, serve

CSV = "id,en,zh-Hans,zh-TW\nnhk,NHK,日本广播协会,日本放送協會\n"
STORED = {"name", "origin", "revision", "updated_at", "updated_by"}


@pytest.fixture(scope="module")
def engine(tiny_dirs: dict[str, Path]) -> Engine:
    return load_engine(str(tiny_dirs["marian"]), engine="transformers", device="cpu")


def _listed(client: httpx.Client, name: str) -> dict[str, Any]:
    answer = client.get("/v1/glossaries")
    assert answer.status_code == 200, answer.text
    return dict(next(g for g in answer.json() if g["name"] == name))


def _read(client: httpx.Client, name: str) -> dict[str, Any]:
    answer = client.get(f"/v1/glossaries/{name}")
    assert answer.status_code == 200, answer.text
    glossary = dict(answer.json())
    # The list and the glossary agree on everything but the terms (a count in one, the terms in the other).
    listed = _listed(client, name)
    assert {k: glossary[k] for k in STORED} == {k: listed[k] for k in STORED}
    assert listed["terms"] == len(glossary["terms"])
    return glossary


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, value
    return moment


def test_a_glossary_says_where_it_came_from_and_who_changed_it(
    database_url: str, tiny_dirs: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    keys = make_keys(database_url, (Role.ADMIN, Role.CMS), suffix="-desk")
    files = tmp_path / "glossaries"
    files.mkdir()
    (files / "outlet.csv").write_text(CSV, encoding="utf-8")
    settings = keyed_settings(tiny_dirs["marian"], database_url, runners=0, glossary_dir=files)
    admin = {"Authorization": f"Bearer {keys['admin'].key}"}
    cms = {"Authorization": f"Bearer {keys['cms'].key}"}

    with serve(settings, engine) as live:
        c = live.client
        c.headers.update(cms)  # any key reads them
        news = _read(c, "news")
        assert (news["origin"], news["revision"], news["updated_by"]) == ("shipped", 1, None)
        seeded_at = _when(news["updated_at"])
        assert len(news["terms"]) >= 25
        outlet = _read(c, "outlet")
        assert (outlet["origin"], outlet["revision"], outlet["updated_by"]) == ("file", 1, None)

        # A cms key may not edit: refused, and nothing about the glossary changes.
        term = {"forms": ["Vladimir Putin", "Putin"], "targets": {"zh-Hans": "普京", "zh-TW": "蒲亭"}}
        assert c.put("/v1/glossaries/news/terms/putin", json=term).status_code == 403
        assert _read(c, "news") == news

        c.headers.update(admin)
        assert c.put("/v1/glossaries/news/terms/putin", json=term).status_code == 200
        edited = _read(c, "news")
        assert (edited["origin"], edited["revision"], edited["updated_by"]) == ("api", 2, "admin-desk")
        assert _when(edited["updated_at"]) > seeded_at
        assert len(edited["terms"]) == len(news["terms"])  # replaced in place

        assert c.delete("/v1/glossaries/news/terms/putin").status_code == 204
        removed = _read(c, "news")
        assert (removed["origin"], removed["revision"], removed["updated_by"]) == ("api", 3, "admin-desk")
        assert len(removed["terms"]) == len(news["terms"]) - 1

        # A PUT's answer carries them too: a new glossary is revision 1, each replacement one more.
        csv = {"Content-Type": "text/csv"}
        created = c.put("/v1/glossaries/desk", content=CSV.encode(), headers=csv)
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["origin"], body["revision"], body["updated_by"]) == ("api", 1, "admin-desk")
        assert [t["id"] for t in body["terms"]] == ["nhk"]
        replaced = c.put("/v1/glossaries/outlet", content=CSV.encode(), headers=csv)
        assert replaced.status_code == 200, replaced.text
        assert (replaced.json()["origin"], replaced.json()["revision"]) == ("api", 2)
        assert {k: replaced.json()[k] for k in STORED} == {k: _read(c, "outlet")[k] for k in STORED}

    # The next start seeds nothing over them: the edits, and what is said of them, stay.
    with serve(settings, engine) as live:
        live.client.headers.update(cms)
        again = _read(live.client, "news")
        assert {k: again[k] for k in STORED} == {k: removed[k] for k in STORED}
        assert _read(live.client, "outlet")["origin"] == "api"


def test_the_openapi_document_describes_them(tiny_dirs: dict[str, Path], engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    settings = keyed_settings(tiny_dirs["marian"], url, runners=0)
    with serve(settings, engine) as live:
        schemas = live.client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("GlossarySummary", "GlossaryOut"):
        properties = schemas[model]["properties"]
        assert STORED | {"terms"} <= properties.keys(), model
        assert properties["origin"]["enum"] == ["shipped", "file", "api"]
        for field in STORED - {"name"}:
            assert properties[field]["description"], (model, field)
