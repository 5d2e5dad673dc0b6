"""The database layer on SQLite and PostgreSQL: migrations build exactly the tables the code
declares and carry stored data forward, times come back as aware UTC, and glossary edits made
through the API persist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.orm import Session

from models.engine import Engine
from service.config import Settings
from service.glossaries import DatabaseGlossaries, GlossaryStore
from service.jobs.deliveries import signing_secret
from service.storage.db import Database, alembic_config
from service.storage.tables import Base, Delivery, DeliveryAttempt, Job, MemoryEntry, StoredArticle
from tests.conftest import serve


def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    db.migrate()  # a second run is a no-op
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == []
    assert set(Base.metadata.tables) <= tables
    db.close()


def _stored_job(session: Session, job_id: str, fmt: str, **fields: Any) -> None:
    """A job, through the model's columns (their types and defaults) that the database has: it may
    be at an older revision, which lacks the columns added since."""
    article = StoredArticle(format=fmt, body="x")
    session.add(article)
    session.flush()
    present = {c["name"] for c in inspect(session.connection()).get_columns("jobs")}
    jobs = Table("jobs", MetaData(), *(c._copy() for c in Job.__table__.c if c.name in present))
    values = {"owner": "local", "request_hash": "h", "targets": ["zh-Hans"], "glossaries": [], "glossary_terms": []}
    session.execute(insert(jobs).values(id=job_id, article_id=article.id, **values, **fields))


def test_memory_entries_from_html_articles_become_plain_text(database_url: str) -> None:
    """Revision 0003: entries approved in HTML articles were stored HTML-escaped; they are unescaped,
    and entries from other articles or imports are left as they are."""
    db = Database(database_url)
    command.upgrade(alembic_config(db.url.render_as_string(hide_password=False)), "0002")
    stored = {"html": "部长们&amp;助手们&lt;中午&gt;会面。", "text": "甲&amp;乙", None: "丙&amp;丁"}
    with db.session() as session:
        for i, (fmt, target) in enumerate(stored.items()):
            job_id = None
            if fmt is not None:
                job_id = f"j{i}"
                _stored_job(session, job_id, fmt)
            session.add(
                MemoryEntry(
                    variant="zh-Hans",
                    source_key=f"k{i}",
                    source=f"s{i}",
                    source_length=2,
                    target=target,
                    origin="approved" if fmt else "tmx",
                    job_id=job_id,
                )
            )
    db.migrate()
    with db.session() as session:
        targets = {e.source_key: e.target for e in session.scalars(select(MemoryEntry))}
    assert targets == {"k0": "部长们&助手们<中午>会面。", "k1": "甲&amp;乙", "k2": "丙&amp;丁"}
    db.close()


def test_times_are_aware_utc(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    local = datetime(2026, 1, 2, 12, 0, tzinfo=UTC).astimezone()
    with db.session() as session:
        _stored_job(session, "j1", "text", lease_until=local + timedelta(hours=1))
    with db.session() as session:
        job = session.get(Job, "j1")
        assert job is not None and job.lease_until is not None
        assert job.lease_until.tzinfo is not None
        assert job.lease_until == datetime(2026, 1, 2, 13, 0, tzinfo=UTC)
    db.close()


def test_glossary_seed_never_overwrites_edits(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    glossaries = DatabaseGlossaries(db)
    files = GlossaryStore.load()
    assert "news" in glossaries.seed(files)
    shipped = glossaries.get("news")
    term = next(t for t in shipped.terms if t.id == "putin")
    assert glossaries.delete_term("news", term.id, by="t")
    assert glossaries.seed(files) == []  # already there: the edit stands
    assert "putin" not in {t.id for t in glossaries.get("news").terms}
    # Another process (another handle) sees the edit at once.
    other = DatabaseGlossaries(Database(database_url))
    assert len(other.get("news").terms) == len(shipped.terms) - 1
    db.close()


CSV = "id,en,zh-Hans,zh-TW,note\nnhk,NHK,日本广播协会,日本放送協會,broadcaster\n"


def test_glossary_edits_through_the_api_persist(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, runners=0)
    with serve(settings, engines["marian"]) as live:
        c = live.client
        r = c.put("/v1/glossaries/outlet-tw", content=CSV, headers={"Content-Type": "text/csv"})
        assert r.status_code == 201, r.text
        assert c.put("/v1/glossaries/outlet-tw", content=CSV, headers={"Content-Type": "text/csv"}).status_code == 200
        term = {"forms": ["Vladimir Putin", "Putin"], "targets": {"zh-Hans": "普京", "zh-TW": "蒲亭"}}
        assert c.put("/v1/glossaries/outlet-tw/terms/putin-tw", json=term).status_code == 201
        bad = c.put("/v1/glossaries/outlet-tw/terms/x", json={"forms": ["X"], "targets": {"zh-XX": "x"}})
        assert bad.status_code == 422
        assert (
            c.put("/v1/glossaries/broken", content="what,ever\n1,2\n", headers={"Content-Type": "text/csv"}).status_code
            == 422
        )
        assert c.put("/v1/glossaries/x", json={"a": 1}).status_code == 415
        assert c.delete("/v1/glossaries/news/terms/no-such-term").status_code == 404
    # A new process on the same database: the edits are there, and they translate.
    with serve(settings, engines["marian"]) as live:
        g = live.client.get("/v1/glossaries/outlet-tw").json()
        assert {t["id"] for t in g["terms"]} == {"nhk", "putin-tw"}
        csv = live.client.get("/v1/glossaries/outlet-tw/export", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv") and "日本放送協會" in csv.text
        r = live.client.post(
            "/v1/translate",
            json={"text": "Putin spoke to NHK.", "targets": ["zh-TW"], "glossaries": ["news", "outlet-tw"]},
        ).json()
        terms = {t["term_id"]: t["expected"]["zh-TW"] for b in r["blocks"] for s in b["segments"] for t in s["terms"]}
        assert terms == {"putin-tw": "蒲亭", "nhk": "日本放送協會"}


def test_upgrading_keeps_webhook_deliveries_and_their_attempts(database_url: str) -> None:
    """Revision 0009 rebuilds `webhook_deliveries` on SQLite (a column becomes nullable, one is
    added), where dropping the old table would cascade to every attempt: each delivery and attempt
    is still there afterwards, and a delivery from before (no `api_key_id`) is still signed with its
    job's key."""
    db = Database(database_url)
    url = db.url.render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "0008")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (name, role, lookup, key_hash, webhook_secret, owner, created_at) "
                "VALUES ('cms', 'cms', 'l', 'h', 'the-cms-secret', 'key:1', CURRENT_TIMESTAMP)"
            )
        )
        key_id = conn.scalar(text("SELECT id FROM api_keys"))
        conn.execute(
            text(
                "INSERT INTO articles (id, format, title, subtitle, byline, date, body, received_at) "
                "VALUES (1, 'text', '', '', '', '', 'x', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, article_id, owner, api_key_id, request_hash, targets, glossaries, "
                "glossary_terms, status, attempts, segments_total, segments_done, created_at, updated_at) "
                "VALUES ('j1', 1, 'key:1', :key, 'h', '[]', '[]', '{}', 'translated', 0, 1, 1, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"key": key_id},
        )
        conn.execute(
            text(
                "INSERT INTO webhook_deliveries (id, job_id, event, url, payload, state, attempts, "
                "next_attempt_at, created_at) VALUES ('d1', 'j1', 'article.translated', "
                "'https://cms.example/hook', '{}', 'pending', 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for number in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO webhook_attempts (delivery_id, number, at, status_code, duration_ms) "
                    "VALUES ('d1', :n, CURRENT_TIMESTAMP, 503, 1.5)"
                ),
                {"n": number},
            )
    db.migrate()  # as the service does: on SQLite with foreign keys on
    with db.session() as session:
        delivery = session.get(Delivery, "d1")
        assert delivery is not None and (delivery.job_id, delivery.api_key_id, delivery.attempts) == ("j1", None, 2)
        numbers = session.scalars(select(DeliveryAttempt.number).where(DeliveryAttempt.delivery_id == "d1"))
        assert sorted(numbers) == [1, 2]
        assert signing_secret(session, delivery, Settings(webhook_secret="not-this-one")) == "the-cms-secret"
    db.close()
