"""The database handle: one SQLAlchemy engine and session factory per process, and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the API's threads, the job
runner and the webhook dispatcher can share one file. PostgreSQL needs nothing special; several
processes may share it (jobs are claimed with leases, see `service.jobs.runner`).

Text searches "in any case" (`contains_in_any_case`) match the same on both: neither database's
own case folding can be trusted beyond ASCII (SQLite's LIKE and lower() fold only A to Z;
PostgreSQL's lower() and ILIKE fold what the database's LC_CTYPE says, nothing beyond ASCII under
the C locale).
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Boolean, ColumnElement, Engine, SQLColumnExpression, and_, create_engine, event, func, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: the PostgreSQL advisory lock that lets only one process migrate at a time.
_MIGRATION_LOCK = 0x64756979


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be used just now (an outage: no connection, a lost
    one, a lock or a pool with none to spare), rather than that a statement was wrong."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'duiyi.db').resolve()}"


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def describe(self) -> str:
        """The URL without its password, for logs."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision. On PostgreSQL an advisory lock makes
        processes starting together take turns instead of racing."""
        with self.engine.connect() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
            try:
                cfg = alembic_config(self.url.render_as_string(hide_password=False))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()

    def close(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Each new SQLite connection: its pragmas, and the function `contains_in_any_case` calls."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # What `contains_in_any_case` calls on SQLite for a query with letters beyond ASCII.
    dbapi_connection.create_function("duiyi_contains_any_case", 2, _sqlite_contains, deterministic=True)


# --- text in any case ------------------------------------------------------------------------------
#
# Two characters are the same in any case when str.casefold folds them to the same text: É and é,
# Ö and ö, Σ, σ and ς, Д and д, Ａ and ａ, ß and ẞ (but one character never matches two: ß is not
# "ss"). ASCII letters match only each other (a and A, not the Kelvin sign), as LIKE has it. The
# query is matched as typed otherwise: no NFKC, so "ABC" does not find the full-width "ＡＢＣ" of
# Chinese text (width-folding the query alone would lose exactly those; folding every stored row
# would make every English search pay for it), while "ａｂｃ" does.
#
# A query with no such letter beyond ASCII (English, Chinese, digits) is searched as before, with
# LIKE: SQLite's ignores the case of A to Z, and PostgreSQL's lower() folds A to Z under any locale
# (but a Turkish one, where I becomes ı).
# One with such a letter is matched by a regular expression holding each letter's forms as a
# bracket ("[Éé]lys[Éé]e"), which Python's `re` and PostgreSQL's `~` read alike and which needs no
# locale: on PostgreSQL `~` itself, on SQLite a Python function (`_sqlite_contains`) behind a LIKE
# of the query's other characters.

# Every character with another case is below U+20000 (tests/test_search_case.py checks it against
# the running Python's Unicode tables): the table below is built from those 128 K code points only.
_CASED_BELOW = 0x20000


@functools.cache
def _forms_by_fold() -> dict[str, str]:
    """For each casefolded text that some other character folds to: every character that folds to
    it, and the text itself where it is one character, in code point order."""
    found: dict[str, set[str]] = {}
    for code in range(_CASED_BELOW):
        char = chr(code)
        folded = char.casefold()
        if folded != char:
            found.setdefault(folded, set()).add(char)
    return {
        folded: "".join(sorted(chars | ({folded} if len(folded) == 1 else set()))) for folded, chars in found.items()
    }


def case_forms(char: str) -> str:
    """`char` and the characters equal to it in any case (see above), in code point order: "Éé"
    for "é", "Σςσ" for "σ", "Aa" for "a", "基" for "基"."""
    if char.isascii():
        return "".join(sorted({char.lower(), char.upper()}))
    return _forms_by_fold().get(char.casefold(), char)


def has_unicode_case(text: str) -> bool:
    """Whether `text` holds a character beyond ASCII that has a case: another form (see above), or
    a lower, upper or folded form of its own ("İ", whose lower() is "i̇"), which a database's lower()
    could map otherwise than Python's."""
    return not text.isascii() and any(
        not c.isascii() and (len(case_forms(c)) > 1 or not c.lower() == c.upper() == c.casefold() == c) for c in text
    )


def any_case_pattern(text: str) -> str:
    """A regular expression that matches `text` in any case: each character with other forms as a
    bracket of its forms, every other one as itself (escaped). Python's `re` and PostgreSQL's `~`
    read it alike: the brackets hold only letters, and `re.escape` puts a backslash only before
    characters that are not letters or digits, which both take as the character itself."""
    return "".join(f"[{forms}]" if len(forms := case_forms(c)) > 1 else re.escape(c) for c in text)


def contains_in_any_case(column: SQLColumnExpression[Any], text: str, dialect: str) -> ColumnElement[bool]:
    """Whether `column` holds `text` in any case (see above); `text` is plain text (`%` and `_`
    are no wildcards), composed (NFC) here: a decomposed É (E and a combining accent) finds the
    composed one stored. `dialect`: "sqlite" or "postgresql"."""
    text = unicodedata.normalize("NFC", text)
    if not has_unicode_case(text):
        if dialect == "sqlite" or text.lower() == text.upper():
            return column.contains(text, autoescape=True)  # SQLite's LIKE ignores the case of A to Z
        return func.lower(column).contains(text.lower(), autoescape=True)
    if dialect != "sqlite":
        return column.regexp_match(any_case_pattern(text))
    # A Python function for each row costs 2 to 3 times a LIKE scan of the table (its arguments
    # are read into Python each time); a LIKE of the query's other characters, with `_` (any one
    # character) for each of those letters, leaves it few rows where the query has some to hold on to.
    # (SQLite's LIKE ignores the case of A to Z and no other: other characters are matched as they are.)
    contains = func.duiyi_contains_any_case(column, text, type_=Boolean)
    if not any(c.isalnum() and not _has_forms(c) for c in text):
        return contains
    like = "".join("_" if _has_forms(c) else f"/{c}" if c in "%_/" else c for c in text)
    return and_(column.like(f"%{like}%", escape="/"), contains)


def _has_forms(char: str) -> bool:
    """Whether `char` is a character beyond ASCII with other forms in another case."""
    return not char.isascii() and len(case_forms(char)) > 1


@functools.lru_cache(maxsize=64)
def _matcher(text: str) -> tuple[str, re.Pattern[str]]:
    return text.casefold(), re.compile(any_case_pattern(text))


def _sqlite_contains(value: object, text: object) -> bool | None:
    """SQLite's `duiyi_contains_any_case(value, text)`: whether `value` holds `text` in any case.
    A row is first tested by its casefolded text (quick, and true of every match: no ASCII-only row
    holds a non-ASCII letter), then by the regular expression. Never raises: an exception here
    would reach the caller as an OperationalError, which reads as the database being down."""
    if not isinstance(value, str) or not isinstance(text, str):
        return None
    folded, pattern = _matcher(text)
    if value.isascii() and not folded.isascii():
        return False
    return folded in value.casefold() and pattern.search(value) is not None
