"""Searches "in any case" beyond ASCII: the translation memory's concordance (`TranslationMemory.search`,
behind /v1/memory/search) and the review app's article list (`find_jobs`) find "Élysée" for
"élysée", "ÖSTERREICH" for "Österreich", Greek with its final sigma, Cyrillic and full-width
letters, on SQLite (whose LIKE folds only A to Z), on PostgreSQL, and on a PostgreSQL database
created with the C locale (whose lower() folds only A to Z); English and Chinese queries keep
their plain LIKE."""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pytest
import sqlalchemy

from service.auth import Role
from service.config import Settings
from service.documents import Article
from service.glossaries import DatabaseGlossaries
from service.jobs.articles import Principal, Submission, submit
from service.memory import Remembered, TranslationMemory, query_pattern
from service.storage.db import Database, any_case_pattern, case_forms, contains_in_any_case, has_unicode_case
from service.storage.tables import MemoryEntry
from service.web.routes import find_jobs
from tests.conftest import POSTGRES_ADMIN_URL, fresh_postgres


@contextmanager
def c_locale_postgres() -> Iterator[str]:
    """A new PostgreSQL database whose LC_CTYPE is C, as `initdb --locale=C` makes them: lower()
    and ILIKE fold only A to Z there. Skipped (or failed in CI) as `fresh_postgres` is."""
    with fresh_postgres():  # only for its check that PostgreSQL is there (skip or fail otherwise)
        pass
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"duiyi_test_c_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(
            sqlalchemy.text(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
            )
        )
    try:
        yield sqlalchemy.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=("sqlite", "postgresql", "postgresql-c-locale"))
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        url_context: AbstractContextManager[str] = nullcontext(f"sqlite:///{tmp_path / 'duiyi.db'}")
    elif request.param == "postgresql":
        url_context = fresh_postgres()
    else:
        url_context = c_locale_postgres()
    with url_context as url:
        database = Database(url)
        database.migrate()
        if request.param == "postgresql-c-locale":
            # What the test is about: this database's own lower() leaves É as it is.
            with database.session() as session:
                assert session.execute(sqlalchemy.text("SELECT lower('ÉΣД')")).scalar() == "ÉΣД"
        yield database
        database.close()


STORED = [
    ("President Macron spoke at the Élysée Palace.", "马克龙总统在爱丽舍宫讲话。"),
    ("The Élyséeville fair opened.", "埃利塞维尔博览会开幕。"),  # "élysée" inside a longer word
    ("ÖSTERREICH WILL VOTE IN MAY.", "奥地利将于五月投票。"),
    ("Flights to São Paulo were cancelled.", "飞往圣保罗的航班被取消。"),
    ("ODYSSEUS, in Greek ΟΔΥΣΣΕΥΣ, sailed home.", "奥德修斯（希腊文ΟΔΥΣΣΕΥΣ）启航回家。"),
    ("Officials in МОСКВА declined to comment.", "莫斯科官员拒绝置评。"),
    ("The brand is written ABC.", "该品牌写作ＡＢＣ。"),  # full-width letters, as Chinese text has them
    ("A café_bar and a cafexbar.", "一家咖啡吧。"),
    ("The Straße was closed; the STRASSE too.", "街道已关闭。"),
]


def _memory(db: Database) -> TranslationMemory:
    memory = TranslationMemory(db)
    for source, target in STORED:  # one at a time: the last is the newest
        memory.remember([Remembered(source, "zh-Hans", target)])
        time.sleep(0.002)
    return memory


def _found(memory: TranslationMemory, query: str, **kwargs: object) -> list[str]:
    return [h.source for h in memory.search(query, **kwargs).hits]  # type: ignore[arg-type]


def test_the_concordance_finds_letters_beyond_ascii_in_any_case(db: Database) -> None:
    memory = _memory(db)
    palace = "President Macron spoke at the Élysée Palace."
    assert _found(memory, "élysée") == [palace]  # a whole word: not inside "Élyséeville"
    assert _found(memory, "ÉLYSÉE PALACE") == [palace]
    assert _found(memory, "Österreich") == ["ÖSTERREICH WILL VOTE IN MAY."]
    assert _found(memory, "SÃO PAULO") == ["Flights to São Paulo were cancelled."]
    # Typed or pasted decomposed (E and a combining accent), the query finds the composed text.
    assert _found(memory, "E\u0301lyse\u0301e") == [palace]
    assert memory.search("sa\u0303o paulo").hits[0].source_matches == ((11, 20),)
    assert _found(memory, "são paulo") == ["Flights to São Paulo were cancelled."]
    # Greek: a final sigma (ς) is a sigma (Σ, σ) in any position; found in the source and the target.
    greek = "ODYSSEUS, in Greek ΟΔΥΣΣΕΥΣ, sailed home."
    assert _found(memory, "Οδυσσευς") == [greek]
    assert _found(memory, "οδυς") == [greek]
    assert _found(memory, "οδυσσευς", side="target") == [greek]
    hit = memory.search("οδυσσευς").hits[0]
    assert hit.source_matches == ((19, 27),) and hit.target_matches == ((8, 16),)
    assert _found(memory, "москва") == ["Officials in МОСКВА declined to comment."]
    assert _found(memory, "Officials in Москва") == ["Officials in МОСКВА declined to comment."]
    # Full-width letters have a case too; the query is not width-folded (NFKC): "ABC" is another text.
    assert _found(memory, "ａｂｃ") == ["The brand is written ABC."]
    assert _found(memory, "abc", side="target") == []
    # Wildcards stay plain text beside such letters; one character never matches two (ß is not "ss").
    assert _found(memory, "CAFÉ_BAR") == ["A café_bar and a cafexbar."]
    assert _found(memory, "café%bar") == []
    assert [h.source_matches for h in memory.search("straße").hits] == [((4, 10),)]
    # English and Chinese, as before.
    assert _found(memory, "PALACE") == [palace]
    assert _found(memory, "爱丽舍宫") == [palace]
    assert _found(memory, "Élysée", side="target") == []


def test_the_article_list_finds_titles_and_cms_ids_beyond_ascii_in_any_case(db: Database) -> None:
    settings = Settings(database_url=db.describe(), default_glossaries=[])
    who = Principal(key_id=None, name="test", role=Role.ADMIN)
    articles = [
        ("Macron receives Merkel at the Élysée", None),
        ("ÖSTERREICH: the vote", "wien-ÜBERSICHT-7"),
        ("Ο ΟΔΥΣΣΕΥΣ στην Ιθάκη", None),
        ("Новости из Москвы", None),
        ("ＡＢＣ annual results", "cms_100%"),
        ("Harbour works resume", None),
    ]
    ids = {}
    for title, external_id in articles:
        article = Article(f"{title}.", title=title)
        sub = Submission(article=article, targets=["zh-Hans"], glossaries=[], external_id=external_id)
        job, _ = submit(db, sub, principal=who, settings=settings, glossaries=DatabaseGlossaries(db))
        ids[job.id] = title

    def titles(q: str) -> list[str]:
        with db.session() as session:
            return sorted(title for _, title in find_jobs(session, statuses=[], q=q, limit=50))

    assert titles("élysée") == ["Macron receives Merkel at the Élysée"]
    assert titles("AT THE ÉLYSÉE") == ["Macron receives Merkel at the Élysée"]
    assert titles("österreich") == ["ÖSTERREICH: the vote"]
    assert titles("o\u0308sterreich") == ["ÖSTERREICH: the vote"]  # decomposed, as typed on some systems
    assert titles("Wien-Übersicht") == ["ÖSTERREICH: the vote"]  # the CMS id
    assert titles("οδυσσευς στην ιθακη") == []  # ί (with tonos) is another letter than ι
    assert titles("οδυσσευς στην ιθάκη") == ["Ο ΟΔΥΣΣΕΥΣ στην Ιθάκη"]
    assert titles("ΝΟΒΟΣΤΙ") == []  # Greek letters that look Cyrillic are not Cyrillic
    assert titles("НОВОСТИ ИЗ МОСКВЫ") == ["Новости из Москвы"]
    assert titles("ａｂｃ") == ["ＡＢＣ annual results"]
    assert titles("CMS_100%") == ["ＡＢＣ annual results"]
    assert titles("harbour") == ["Harbour works resume"]
    assert titles("Ü_") == []  # `_` is no wildcard beside a letter beyond ASCII either
    assert len(ids) == len(articles)


def test_the_database_finds_exactly_what_the_pattern_says(db: Database) -> None:
    """`contains_in_any_case` in SQL agrees with `any_case_pattern` in Python, row by row, on texts
    that hold each query in several cases, inside words, and with look-alike letters."""
    texts = [
        "élysée",
        "ÉLYSÉE",
        "Elysee",
        "ΟΔΥΣΣΕΥΣ",
        "οδυσσευς",
        "Οδυσσεύς",
        "МОСКВА",
        "MOCKBA",
        "ＡＢＣ",
        "ABC",
        "STRASSE",
        "straẞe",
        "İstanbul",
        "istanbul",
        "ǅemal",
        "ǆemal",
        "DŽemal",
        "θεός",
        "ϑεός",
        "基地",
        "a_b%c",
        "Élysée-Palast & Co. (1+1)? #2 ~ $x ^y |z [w] {v} \\u .*",
    ]
    memory = TranslationMemory(db)
    memory.remember([Remembered(t, "zh-Hans", "译") for t in texts])
    queries = ["élysée", "ÉlYsÉe", "οδυσσευσ", "ΟΔΥΣ", "москва", "ａｂｃ", "STRAßE", "İSTANBUL", "ǆ", "ΘΕΌΣ"]
    queries += ["基地", "A_B%", "abc", "elysee", "élysée-palast & co. (1+1)? #2 ~ $x ^y |z [w] {v} \\u .*"]
    for query in queries:
        pattern = re.compile(any_case_pattern(query))
        with db.session() as session:
            dialect = session.get_bind().dialect.name
            holds = contains_in_any_case(MemoryEntry.source, query, dialect)
            got = set(session.scalars(sqlalchemy.select(MemoryEntry.source).where(holds)))
        assert got == {t for t in texts if pattern.search(t)}, query
        assert got, query  # each query finds something
    assert {t for t in texts if re.search(any_case_pattern("ΟΔΥΣ"), t)} == {"ΟΔΥΣΣΕΥΣ", "οδυσσευς", "Οδυσσεύς"}


def test_case_forms_and_the_word_matcher_agree() -> None:
    """Every character equal to another in any case (the database's test) is equal to it under
    `re.IGNORECASE` too (the word matcher's, `query_pattern`): the memory never drops a row the
    database found for its case. And the table of forms covers every character with a case."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if code >= 0x20000:
            assert char.casefold() == char and char.upper() == char, hex(code)
            continue
        forms = case_forms(char)
        assert char in forms
        for other in forms:
            assert re.fullmatch(re.escape(char), other, re.IGNORECASE), (char, other)
            # The same forms from each of them, but that A to Z match only each other (as LIKE has
            # it): "k" is not the Kelvin sign, while the Kelvin sign is "k".
            assert case_forms(other) == forms or char.isascii() or other.isascii(), (char, other)
    assert case_forms("é") == "Éé" and case_forms("ς") == "Σςσ" and case_forms("k") == "Kk"
    assert case_forms("ß") == "ßẞ" and case_forms("基") == "基" and case_forms("Ａ") == "Ａａ"
    assert has_unicode_case("Élysée") and has_unicode_case("ａ") and not has_unicode_case("Futenma 基地 100%")
    assert any_case_pattern("São 1+1") == r"[Ss][Ãã][Oo]\ 1\+1"
    assert query_pattern("élysée").search("the ÉLYSÉE's gates")
    assert not query_pattern("élysée").search("Élyséeville")
