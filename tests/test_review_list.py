"""The review app's article list, as a desk with many articles uses it: each article under its title,
and a search that finds one by title, CMS id or the id the app shows; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import sqlalchemy

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


def _signed_in(live_url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=live_url, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
    assert token
    assert client.post("/review/login", data={"key": key, "csrf_token": token.group(1)}).status_code == 303
    return client


def test_a_cms_key_sees_only_its_owners_articles_in_the_app(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path
) -> None:
    """As through the API: signed in with a cms key, the list holds its owner's articles only, and
    another owner's article is answered as one that does not exist, page and polls alike; the
    translation memory (every owner's sentences) is for translators. A translator sees both."""
    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR)).items()}
    keys["other"] = make_keys(url, (Role.CMS,), suffix="-other")["cms"].key
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        ids = {}
        for who, title in (("cms", "Harbour works resume"), ("other", "Talks in Geneva")):
            sent = {"title": title, "body": f"{title}.", "targets": ["zh-Hans"]}
            r = live.client.post("/v1/articles", json=sent, headers={"Authorization": f"Bearer {keys[who]}"})
            ids[who] = r.json()["id"]
        cms, translator = _signed_in(live.url, keys["cms"]), _signed_in(live.url, keys["translator"])
        try:
            assert _rows(cms.get("/review").text) == ["Harbour works resume"]
            assert _rows(cms.get("/review", params={"q": "geneva"}).text) == []
            assert set(_rows(translator.get("/review").text)) == {"Harbour works resume", "Talks in Geneva"}

            theirs, mine = ids["other"], ids["cms"]
            page = cms.get(f"/review/articles/{theirs}")
            assert page.status_code == 404 and f"There is no article {theirs}." in page.text
            assert cms.get(f"/review/articles/{mine}").status_code == 200
            assert translator.get(f"/review/articles/{theirs}").status_code == 200
            for path in ("progress", "state", "segments?id=b0.s0"):
                r = cms.get(f"/review/api/articles/{theirs}/{path}")
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
                assert cms.get(f"/review/api/articles/{mine}/{path}").status_code == 200, path
                assert translator.get(f"/review/api/articles/{theirs}/{path}").status_code == 200, path
            suggestions = cms.get(f"/review/api/articles/{mine}/segments/b0.s0/suggestions")
            assert suggestions.status_code == 403, suggestions.text
        finally:
            cms.close()
            translator.close()


def _cell(html: str, job_id: str, cls: str) -> str:
    """The text of the article's cell of class `cls`, tags stripped."""
    row = re.search(rf'<tr data-id="{re.escape(job_id)}">(.*?)</tr>', html, re.S)
    assert row, job_id
    cell = re.search(rf'<td class="{cls}">(.*?)</td>', row.group(1), re.S)
    assert cell, (job_id, cls)
    return re.sub(r"<[^>]+>", "", cell.group(1)).strip()


def test_the_list_counts_each_articles_open_queries_in_one_query(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], database_url: str
) -> None:
    """Beside its flags, each article in the list has the number of open queries on its segments
    (resolved ones not counted), counted for all the listed articles in one SQL query."""
    keys = {role: made.key for role, made in make_keys(database_url, (Role.CMS, Role.TRANSLATOR)).items()}
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        ids = [
            live.client.post(
                "/v1/articles", json={"title": title, "body": body, "targets": ["zh-Hans"]}, headers=cms
            ).json()["id"]
            for title, body in (
                ("Harbour", "The harbour will reopen in May.\n\nWork began in 2012."),
                ("Budget", "The budget was cut."),
                ("Geneva", "Talks resumed in Geneva."),
            )
        ]
        segments = {}
        deadline = time.monotonic() + 60
        for job_id in ids:
            while (job := live.client.get(f"/v1/articles/{job_id}", headers=cms).json())["status"] != "translated":
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            segments[job_id] = [s["id"] for b in job["document"]["blocks"] for s in b["segments"]]
        asked = []
        for job_id, n in ((ids[0], 3), (ids[2], 1)):
            for i in range(n):
                sid = segments[job_id][i % len(segments[job_id])]
                r = live.client.post(
                    f"/v1/articles/{job_id}/segments/{sid}/comments", json={"body": f"Query {i}?"}, headers=cms
                )
                assert r.status_code == 201, r.text
                asked.append((job_id, r.json()["id"]))
        resolved = live.client.post(f"/v1/articles/{ids[0]}/comments/{asked[0][1]}/resolve", headers=cms)
        assert resolved.status_code == 200, resolved.text

        statements: list[str] = []

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        client = _signed_in(live.url, keys["translator"])
        try:
            sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
            try:
                page = client.get("/review")
            finally:
                sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
            assert page.status_code == 200
            assert "<th>Open queries</th>" in page.text
            assert [_cell(page.text, job_id, "queries-count") for job_id in ids] == ["2", "0", "1"]
            assert len([s for s in statements if "segment_comments" in s]) == 1, statements
        finally:
            client.close()


def test_the_list_keeps_its_order_while_articles_change(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], database_url: str
) -> None:
    """Newest submitted first: an article translating, or one a translator edits, keeps its place."""
    keys = {role: made.key for role, made in make_keys(database_url, (Role.CMS, Role.TRANSLATOR)).items()}
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        cms = {"Authorization": f"Bearer {keys['cms']}"}
        tr = {"Authorization": f"Bearer {keys['translator']}"}
        ids = []
        for title in ("Older article", "Newer article"):
            sent = {"title": title, "body": f"{title} text.", "targets": ["zh-Hans"]}
            ids.append(live.client.post("/v1/articles", json=sent, headers=cms).json()["id"])
            deadline = time.monotonic() + 60
            while live.client.get(f"/v1/articles/{ids[-1]}", headers=cms).json()["status"] != "translated":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        client = _signed_in(live.url, keys["translator"])
        try:
            assert _rows(client.get("/review").text) == ["Newer article", "Older article"]
            doc = live.client.get(f"/v1/articles/{ids[0]}", headers=tr).json()["document"]
            seg = doc["blocks"][0]["segments"][0]
            edited = live.client.patch(
                f"/v1/articles/{ids[0]}/segments/{seg['id']}",
                json={"text": "旧文章。", "version": seg["version"]},
                headers=tr,
            )
            assert edited.status_code == 200, edited.text
            assert _rows(client.get("/review").text) == ["Newer article", "Older article"]
        finally:
            client.close()


def _seed_flagged(url: str, flags_per_job: list[list[list[dict[str, object]]]]) -> list[str]:
    """Translated jobs written straight into the database, one per entry: each entry a list of its
    segments' flags. The jobs' ids, in order."""
    from service.storage.db import Database
    from service.storage.tables import Job, StoredArticle, StoredSegment, utcnow

    db = Database(url)
    db.migrate()
    ids = []
    try:
        with db.session() as session:
            for n, segments in enumerate(flags_per_job):
                article = StoredArticle(format="text", title=f"Flagged {n}", body="Text.")
                session.add(article)
                session.flush()
                job = Job(
                    id=f"{n:032x}",
                    article_id=article.id,
                    owner="local",
                    request_hash="0" * 64,
                    status="translated",
                    targets=["zh-Hans", "zh-TW"],
                    glossaries=[],
                    glossary_terms=[],
                    segments_total=len(segments),
                    segments_done=len(segments),
                    created_at=utcnow(),
                )
                session.add(job)
                session.flush()
                session.add_all(
                    StoredSegment(
                        job_id=job.id,
                        id=f"b{i}.s0",
                        position=i,
                        block_id=f"b{i}",
                        source="Hello.",
                        targets={"zh-Hans": "你好。", "zh-TW": "你好。"},
                        terms=[],
                        flags=flags,
                        origin="mt",
                        status="draft",
                    )
                    for i, flags in enumerate(segments)
                )
                ids.append(job.id)
    finally:
        db.close()
    return ids


def test_the_list_counts_each_articles_flags_in_the_database(engines: dict[str, Engine], database_url: str) -> None:
    """The Flags column is each article's number of flags (every flag of every segment: a segment
    with three counts three), summed by the database in one grouped query rather than loaded into
    the app segment by segment; the same numbers as counting the stored flags in Python."""
    import random

    from service.config import Settings

    rng = random.Random(7)
    codes = ["term_missing", "number_mismatch", "length_ratio", "repetition", "untranslated"]

    def flag() -> dict[str, object]:
        code = rng.choice(codes)
        return {
            "code": code,
            "reason": f'{code}: “安倍” missing, 100% (a quote: " and a [bracket])',
            "variant": rng.choice(["zh-Hans", "zh-TW", None]),
        }

    # No segments at all, segments without flags, and a spread of flagged ones.
    data: list[list[list[dict[str, object]]]] = [[], [[], []], [[flag()]], [[flag(), flag(), flag()], [], [flag()]]]
    data += [
        [[flag() for _ in range(rng.choice([0, 0, 0, 1, 2, 5]))] for _ in range(rng.randint(1, 40))] for _ in range(20)
    ]
    ids = _seed_flagged(database_url, data)
    expected = {job_id: sum(len(flags) for flags in segments) for job_id, segments in zip(ids, data, strict=True)}
    assert len(set(expected.values())) > 5  # varied enough to tell counts apart

    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    settings = Settings(model="unused", device="cpu", database_url=database_url, runners=0)
    with serve(settings, engines["marian"]) as live, httpx.Client(base_url=live.url) as client:
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
        try:
            page = client.get("/review")
        finally:
            sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    assert page.status_code == 200, page.text
    assert {job_id: int(_cell(page.text, job_id, "flags-count")) for job_id in ids} == expected
    on_segments = [s for s in statements if "FROM segments" in s]
    assert len(on_segments) == 1, on_segments
    assert "GROUP BY" in on_segments[0], on_segments[0]
