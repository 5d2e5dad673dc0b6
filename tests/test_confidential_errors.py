"""Article text is confidential until it is published, and a database error's message can carry it:
SQLAlchemy appends the statement's parameters ("[parameters: …]"), PostgreSQL's DETAIL quotes the
failing row or key. None of it reaches a log line (message or traceback, at any level) or a failed
job's stored reason, which its API answer and its `article.failed` webhook carry."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from models.engine import Engine
from service.api.app import build_pipeline
from service.documents import AlignedSegment
from service.jobs import runner as runner_module
from service.jobs.codec import segment_row
from service.jobs.runner import JobRunner
from service.logs import redact_database_errors
from service.storage.db import Redacted, describe_error, loggable
from service.storage.tables import StoredSegment
from tests.test_job_failures import add_job, job_row, make_db, runner_settings

MARKER = "CONFIDENTIAL-SCOOP-7731"


def logged_text(record: logging.LogRecord) -> str:
    """Everything a handler could write of `record`: its message and its traceback."""
    parts = [record.getMessage()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


@pytest.mark.parametrize("failure", ["refused", "unavailable"])
def test_a_failing_statement_puts_no_article_text_in_the_log_or_the_job(
    database_url: str,
    engines: dict[str, Engine],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """refused: saving a chunk breaks a constraint (two segments with one id, which holds the
    marker, so that PostgreSQL's DETAIL quotes it too), a bug: the job fails, its only attempt spent.
    unavailable: an OperationalError whose parameters hold the sentence: the job is handed back."""
    settings = runner_settings(database_url, job_max_attempts=1)
    db = make_db(database_url)
    job_id = add_job(db, settings, [f"The minister resigned over {MARKER}. The cabinet met at noon."])

    def duplicate(job: str, position: int, seg: AlignedSegment) -> StoredSegment:
        row = segment_row(job, position, seg)
        row.id = f"dup-{MARKER}"
        return row

    def unavailable(job: str, position: int, seg: AlignedSegment) -> StoredSegment:
        statement = "INSERT INTO segments (job_id, id, source) VALUES (?, ?, ?)"
        raise OperationalError(statement, (job, seg.id, seg.source), sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(runner_module, "segment_row", duplicate if failure == "refused" else unavailable)
    runner = JobRunner(db, build_pipeline(settings, engines["marian"]), settings)
    caplog.set_level(logging.DEBUG)
    assert runner.claim() == job_id
    runner.process(job_id)
    job = job_row(db, job_id)
    if failure == "refused":
        assert job.status == "failed" and job.failure is not None, job.status
        assert "IntegrityError" in job.failure or "UniqueViolation" in job.failure, job.failure
        assert MARKER not in job.failure, job.failure
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)  # the bug's traceback
    else:
        assert (job.status, job.failure, job.attempts) == ("queued", None, 0)
        assert any("disk I/O error" in r.getMessage() for r in caplog.records)
    leaked = [logged_text(r) for r in caplog.records if MARKER in logged_text(r)]
    assert not leaked, leaked[0]
    db.close()


def integrity_error() -> IntegrityError:
    """An IntegrityError as SQLAlchemy raises it from psycopg: the driver's error (with PostgreSQL's
    DETAIL quoting the row) as `orig` and as its cause, the statement and parameters in its message."""
    driver = psycopg.errors.CheckViolation(
        f'new row for relation "segments" violates check constraint "x"\nDETAIL:  Failing row contains ({MARKER}).'
    )
    try:
        try:
            raise driver
        except psycopg.Error as exc:
            raise IntegrityError("INSERT INTO segments VALUES (%(source)s)", {"source": MARKER}, exc) from exc
    except IntegrityError as exc:
        return exc


def test_describe_error_keeps_the_first_line_of_the_drivers_message_only() -> None:
    error = integrity_error()
    assert MARKER in str(error)  # what it was before: the parameters and the DETAIL
    assert describe_error(error) == 'CheckViolation: new row for relation "segments" violates check constraint "x"'
    one_line = OperationalError("SELECT 1", {"a": MARKER}, sqlite3.OperationalError(f"x [parameters: {MARKER}]"))
    assert describe_error(one_line) == "OperationalError: x"
    assert describe_error(ValueError("plain")) == "ValueError: plain"


def test_loggable_keeps_the_traceback_and_drops_the_data() -> None:
    error = integrity_error()
    safe = loggable(error)
    assert isinstance(safe, Redacted) and safe.__traceback__ is error.__traceback__
    text = "".join(logging.Formatter().formatException((type(safe), safe, safe.__traceback__)))
    assert MARKER not in text, text
    assert "sqlalchemy.exc.IntegrityError: CheckViolation: new row" in text
    assert "psycopg.errors.CheckViolation: new row" in text  # the cause, in its place in the chain
    assert "integrity_error" in text  # where it was raised
    plain = ValueError("no database here")
    assert loggable(plain) is plain

    # Raised while handling a database error: the whole chain is redacted.
    try:
        try:
            raise error
        except IntegrityError:
            raise RuntimeError("settling the job failed") from None
    except RuntimeError as outer:
        assert loggable(outer) is outer  # `from None`: the database error is not part of its log
        chained = RuntimeError("settling the job failed")
        chained.__context__ = error
        text = "".join(logging.Formatter().formatException((RuntimeError, loggable(chained), None)))
        assert "RuntimeError: settling the job failed" in text and MARKER not in text, text


def test_the_service_log_redacts_other_loggers_tracebacks_too() -> None:
    """uvicorn's "Exception in ASGI application", a library's line: the handler's filter."""
    error = integrity_error()
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "failed", None, (type(error), error, None))
    assert redact_database_errors(record) is True
    assert MARKER not in logged_text(record) and "IntegrityError" in logged_text(record)
