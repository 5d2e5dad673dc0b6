"""The review app's article list, as a desk with many articles uses it: each article under its title,
and a search that finds one by title, CMS id or the id the app shows; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from models.engine import Engine
from service.auth import Role
from tests.conftest import keyed_settings, make_keys, serve


def _rows(html: str) -> list[str]:
    """The article rows' link texts, in order."""
    return [
        re.sub(r"\s+", " ", m).strip() for m in re.findall(r'<td><a href="/review/articles/[^"]+">([^<]*)</a>', html)
    ]


def test_the_list_names_articles_by_title_and_finds_them(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], database_url: str
) -> None:
    keys = {role: made.key for role, made in make_keys(database_url, (Role.CMS, Role.TRANSLATOR)).items()}
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        sent = [
            {"title": "Harbour works resume", "body": "The harbour will reopen in May."},
            {"title": "Budget: 100% of <b>cuts</b>", "body": "The budget was cut.", "external_id": "cms-4711"},
            {"title": "", "body": "Untitled copy from the wire.", "external_id": "wire_0042", "revision": "3"},
            {"title": "Talks in Geneva", "body": "Talks resumed in Geneva."},
        ]
        ids = [
            live.client.post("/v1/articles", json={**a, "targets": ["zh-Hans"]}, headers=cms).json()["id"] for a in sent
        ]
        with httpx.Client(base_url=live.url, follow_redirects=False) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
            assert token
            login = client.post("/review/login", data={"key": keys["translator"], "csrf_token": token.group(1)})
            assert login.status_code == 303

            page = client.get("/review")
            assert page.status_code == 200
            # Each under its title (escaped), else its CMS id; never a bare hex id when it has a name.
            assert set(_rows(page.text)) == {
                "Harbour works resume",
                "Budget: 100% of &lt;b&gt;cuts&lt;/b&gt;",
                "wire_0042",
                "Talks in Geneva",
            }
            assert "cms-4711" in page.text  # the CMS id beside its title

            def found(q: str, **params: str) -> list[str]:
                r = client.get("/review", params={"q": q, **params})
                assert r.status_code == 200
                return _rows(r.text)

            assert found("harbour") == ["Harbour works resume"]  # any case, any part of the title
            assert found("CMS-47") == ["Budget: 100% of &lt;b&gt;cuts&lt;/b&gt;"]  # the CMS id
            assert found(ids[3][:8]) == ["Talks in Geneva"]  # the id the app shows in URLs
            # Wildcards are plain characters: "%" finds the title that has one, "_" the id that has one.
            assert found("100%") == ["Budget: 100% of &lt;b&gt;cuts&lt;/b&gt;"]
            assert found("_") == ["wire_0042"]
            assert found("nothing like this") == []
            assert "No articles match." in client.get("/review", params={"q": "nothing like this"}).text
            # With the status filter, and the search kept in the form.
            assert found("talks", status="approved") == []
            assert 'value="talks"' in client.get("/review", params={"q": "talks"}).text

            # The article's own page is headed by its title, while translating and after.
            heading = re.search(r"<h1>([^<]*)", client.get(f"/review/articles/{ids[0]}").text)
            assert heading and heading.group(1).strip() == "Harbour works resume"
