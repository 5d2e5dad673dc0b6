"""The `duiyi` command: serve, translate files, build tiny models."""

from __future__ import annotations

import argparse
import errno
import html
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from models.engine import Engine
from models.tiny import HELP as TINY_HELP
from service.config import Settings, unknown_variables
from service.documents import SourceFormat
from service.formats import FORMAT_BY_SUFFIX
from service.schemas import TranslateResponse

if TYPE_CHECKING:
    from service.glossaries import GlossaryStore
    from service.storage.db import Database, Migration


# How long `serve`, told to stop, waits for the requests in flight before it cancels them (their
# callers see the connection close, and retry). Without a limit a request kept it up to
# DUIYI_REQUEST_TIMEOUT_S (120 s), a stalled upload for ever. Then come the runners (the chunk in
# hand: half of DUIYI_JOB_LEASE_S, at most 30 s, then a few seconds to close the engine and hand
# the jobs back) and the webhook dispatcher (at most 10 s): 25 + 30 + 10 s and the hand-back stay
# within the 90 s the README asks to give it (`docker run --stop-timeout 90`).
GRACEFUL_SHUTDOWN_S = 25


def _error(message: str) -> None:
    """A command's line on stderr for a mistake it can name: `duiyi: message`, or with
    DUIYI_LOG_FORMAT=json one JSON object like the log's lines (level `error`, logger `duiyi`), so a
    log collector reading stderr takes it as one entry. The variable is read as it stands, not
    through the settings: the mistake may be in the settings."""
    fmt = next((v for k, v in os.environ.items() if k.upper() == "DUIYI_LOG_FORMAT"), "")
    if fmt.strip().lower() != "json":
        print(f"duiyi: {message}", file=sys.stderr)
        return
    from service.logs import JsonFormatter

    record = logging.makeLogRecord({"name": "duiyi", "levelname": "ERROR", "levelno": logging.ERROR, "msg": message})
    print(JsonFormatter().format(record), file=sys.stderr)


def _engine_args(p: argparse.ArgumentParser) -> None:
    # Names in any case, as their DUIYI_* variables take them (argparse applies `type` before `choices`).
    p.add_argument("--model", help="hub id or local directory (default: DUIYI_MODEL or Helsinki-NLP/opus-mt-en-zh)")
    p.add_argument(
        "--family", type=str.lower, choices=["marian", "nllb", "m2m100"], help="model family (default: from its config)"
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--engine",
        type=str.lower,
        choices=["transformers", "ctranslate2"],
        help="inference engine (default transformers)",
    )
    p.add_argument("--cpu-threads", type=int, help="cores the engine uses on the CPU (default: every core)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duiyi", description="English → Chinese translation for newsrooms.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    _engine_args(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")

    tr = sub.add_parser("translate", help="translate files and print the result")
    tr.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _engine_args(tr)
    tr.add_argument("--to", default=None, help="variants, comma-separated (default zh-Hans,zh-Hant)")
    tr.add_argument("--glossary", default=None, help="glossaries, comma-separated, stacked in order (default news)")
    tr.add_argument("--format", choices=["text", "markdown", "html"], help="input format (default: from the file name)")
    tr.add_argument("--output", choices=["json", "text", "html"], default="text", help="what to print (default text)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    worker = sub.add_parser("worker", help="translate article jobs (no HTTP); several may share one PostgreSQL")
    _engine_args(worker)
    worker.add_argument("--runners", type=int, help="job runner threads, at least 1 (default DUIYI_RUNNERS)")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (default: none)")

    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create a key; it is printed once, only its hash is stored")
    kc.add_argument("--role", required=True, choices=["cms", "translator", "admin"])
    kc.add_argument("--name", required=True, help="who uses it, e.g. the CMS's name or a translator's")
    kc.add_argument("--callback-url", help="default webhook URL for this key's articles")
    ksub.add_parser("list", help="list keys (never the keys themselves), with their owner and state")
    kr = ksub.add_parser("revoke", help="revoke a key at once")
    kr.add_argument("key_id", type=int, metavar="ID")
    krot = ksub.add_parser(
        "rotate",
        help="replace a key by a new one for the same owner (its articles stay its own); printed once",
        description="Make a new key with the old one's name, role, callback URL, webhook secret and owner, "
        "so the CMS's corrections and retries carry on from its earlier articles. The old key is revoked "
        "at once, or after --overlap (while the CMS deploys the new one). With --new-webhook-secret the "
        "new key gets a new webhook secret (printed once): webhooks are signed with both secrets during "
        "the overlap, then with the new one alone.",
    )
    krot.add_argument("key_id", type=int, metavar="ID")
    krot.add_argument(
        "--overlap",
        default="0",
        metavar="DURATION",
        help="keep the old key working this long, e.g. 30m, 24h, 7d (at most 30d; default 0: revoke it now)",
    )
    krot.add_argument(
        "--new-webhook-secret",
        action="store_true",
        help="replace the webhook secret too (one that may have leaked); default: keep it",
    )

    articles = sub.add_parser("articles", help="stored articles")
    asub = articles.add_subparsers(dest="articles_command", required=True)
    purge = asub.add_parser(
        "purge",
        help="withdraw every article not changed since a date (a retention policy), as DELETE /v1/articles/{id}",
        description="Withdraw (delete with everything stored for it) every article whose job last changed "
        "before --before: for a retention policy, run from cron. Prints one line per article, then a total.",
    )
    purge.add_argument("--before", required=True, help="ISO 8601 date or time (without a time zone: UTC)")
    purge.add_argument(
        "--status",
        help="only jobs in these states, comma-separated: queued, translating, translated, in_review, approved, failed",
    )
    purge.add_argument("--memory", action="store_true", help="also remove the memory entries only they gave")
    purge.add_argument("--dry-run", action="store_true", help="list what would be withdrawn; change nothing")

    db = sub.add_parser("db", help="database")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser(
        "upgrade",
        help="apply migrations (serve and worker also do this when they start); prints the schema's "
        "revision before and after. There is no downgrade: back the database up first",
    )

    models = sub.add_parser("models", help="model utilities")
    msub = models.add_subparsers(dest="models_command", required=True)
    tiny = msub.add_parser("tiny", help=TINY_HELP, description=TINY_HELP)
    tiny.add_argument("outdir", type=Path, metavar="OUTDIR")
    tiny.add_argument(
        "--family", type=str.lower, choices=["marian", "nllb"], default="marian", help="model family (default marian)"
    )
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """The settings: the environment (DUIYI_*), then the command line's flags. A bad value ends the
    command with exit status 2 and one line per setting saying what is wrong, before anything
    starts (Settings checks the model family, engine, device and default targets by name too)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    keys = ("model", "family", "device", "engine", "cpu_threads", "host", "port", "metrics_port")
    overrides = {k: getattr(args, k, None) for k in keys}

    def refuse(name: str, message: str) -> None:
        # The flag only where this command has it (`keys` and `db` take none of these).
        flag = f" / --{name.replace('_', '-')}" if name in keys and hasattr(args, name) else ""
        _error(f"setting {name} (DUIYI_{name.upper()}{flag}): {message}")

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            name, *within = (str(part) for part in error["loc"])
            where = f"item {int(within[0]) + 1}: " if within and within[0].isdigit() else ""
            refuse(name, where + error["msg"].removeprefix("Value error, "))
        raise SystemExit(2) from None
    except SettingsError as exc:
        # A value pydantic-settings could not decode before validation (list settings decode their
        # own text, so none should reach here): still one line, not a traceback.
        found = re.search(r'field "(\w+)"', str(exc))
        refuse(found.group(1) if found else "?", str(exc.__cause__ or exc))
        raise SystemExit(2) from None


def _load_engine(settings: Settings) -> Engine:
    from models.engine import ModelLoadError, load_engine

    if settings.device.startswith("cuda:"):
        import torch

        # torch only fails at the first tensor moved there, with a traceback.
        index, count = int(settings.device.removeprefix("cuda:")), torch.cuda.device_count()
        if torch.cuda.is_available() and index >= count:
            _error(
                f"setting device (DUIYI_DEVICE / --device): there is no GPU {settings.device} "
                f"here ({count} GPU(s): cuda:0 to cuda:{count - 1})",
            )
            raise SystemExit(2)
    try:
        return load_engine(
            settings.model,
            engine=settings.engine,
            device=settings.device,
            family=settings.family,
            cpu_threads=settings.cpu_threads,
        )
    except ModelLoadError as exc:
        _error(str(exc))
        raise SystemExit(2) from None


def _glossary_files(settings: Settings) -> GlossaryStore:
    """The shipped glossaries and DUIYI_GLOSSARY_DIR's; a file there that cannot be read as a
    glossary ends the command with exit status 2 and one line naming it."""
    from service.glossaries import GlossaryStore

    try:
        return GlossaryStore.load(settings.glossary_dir)
    except (OSError, ValueError) as exc:  # GlossaryFormatError and UnicodeDecodeError are ValueErrors
        _error(f"setting glossary_dir (DUIYI_GLOSSARY_DIR): {exc}")
        raise SystemExit(2) from None


def _listen(settings: Settings) -> socket.socket:
    """The socket `serve` listens on, bound and listening before the model loads, so
    that an address in use or not this machine's is one line and exit status 2 at once, not
    uvicorn's log line and status 3 after the wait for the model."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        # Listening at once: a socket only bound leaves the port to any other process with
        # SO_REUSEADDR that listens on it during the model load, and uvicorn then serves nothing.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        # In use, or below 1024 without the privilege: the port; not this machine's address: the host.
        name = "port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
        _error(
            f"setting {name} (DUIYI_{name.upper()} / --{name}): cannot listen on "
            f"{settings.host}:{settings.port}: {exc.strerror or exc}",
        )
        raise SystemExit(2) from None
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully and exit 0 (`service.serving`). Ctrl+C
    while it starts (the model can take minutes to load) ends it in one line, status 130."""
    from service.api.app import create_app
    from service.serving import serve

    settings = _settings(args)
    _logging(settings)
    # What it cannot use is one line now, before the model loads: the glossary files, the
    # database, the address.
    store = _glossary_files(settings)
    db = _database(settings)
    sock = _listen(settings)
    try:
        app = create_app(settings, _load_engine(settings), store=store, db=db)
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("serve: interrupted while starting; nothing was served")
        return 128 + signal.SIGINT
    host, port = sock.getsockname()[:2]
    # uvicorn logs where it listens only when it binds the socket itself.
    logging.getLogger("uvicorn.error").info("listening on http://%s:%d", f"[{host}]" if ":" in host else host, port)
    # On SIGTERM, requests in flight get GRACEFUL_SHUTDOWN_S to finish, not their own deadline.
    return serve(
        app, sock, log_level=settings.log_level, graceful_s=GRACEFUL_SHUTDOWN_S, runners=app.state.runtime.runners
    )


def _bilingual_html(doc: TranslateResponse) -> str:
    rows = []
    for block in doc.blocks:
        for seg in block.segments:
            cells = "".join(f"<td lang='{v}'>{html.escape(seg.targets[v])}</td>" for v in doc.variants)
            flags = "; ".join(f.reason for f in seg.flags)
            rows.append(
                f"<tr id='{seg.id}'><td>{seg.id}</td><td lang='en'>{html.escape(seg.source)}</td>{cells}"
                f"<td class='flags'>{html.escape(flags)}</td></tr>"
            )
    head = "".join(f"<th>{v}</th>" for v in doc.variants)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>duiyi</title></head><body><table>"
        f"<tr><th>id</th><th>en</th>{head}<th>flags</th></tr>{''.join(rows)}</table></body></html>"
    )


def cmd_translate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from service.api.app import build_pipeline, warn_unused_cuda_graphs
    from service.glossaries import UnknownGlossaryError
    from service.schemas import TranslateRequest, aligned_to_response
    from service.translate import InputError, prepare

    settings = _settings(args)
    # Warnings and errors only: stderr holds the progress bars, and the result goes to stdout.
    _logging(settings, at_least=logging.WARNING)
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        _error(f"no such file: {', '.join(missing)}")
        return 2
    store = _glossary_files(settings)
    requests = []
    for path in args.files:
        try:
            # utf-8-sig: a byte order mark (Windows editors write one) is not part of the first sentence.
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            _error(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
            return 2
        fmt = SourceFormat(args.format or FORMAT_BY_SUFFIX.get(path.suffix.lower(), "text"))
        request = TranslateRequest(
            text=text,
            format=fmt,
            targets=args.to.split(",") if args.to else None,
            glossaries=args.glossary.split(",") if args.glossary else None,
        )
        try:
            requests.append((path, prepare(request, settings, store)))
        except (InputError, UnknownGlossaryError) as exc:
            _error(f"{path}: {exc}")
            return 2
    engine = _load_engine(settings)
    warn_unused_cuda_graphs(settings, engine)
    pipeline = build_pipeline(settings, engine)
    results = []
    quiet = args.no_progress or not sys.stderr.isatty()
    with tqdm(total=len(requests), desc="files", unit="file", disable=quiet, position=0) as files:
        for path, job in requests:
            with tqdm(desc=path.name, unit="sentence", disable=quiet, position=1, leave=False) as bar:

                def progress(done: int, total: int, bar: tqdm = bar) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                aligned = pipeline.translate(
                    job.article,
                    targets=job.targets,
                    glossary=job.glossary,
                    glossary_names=job.glossary_names,
                    progress=progress,
                    parsed=job.parsed,
                )
            results.append((path, aligned_to_response(aligned)))
            files.update(1)
    for path, doc in results:
        if args.output == "json":
            payload = doc.model_dump(mode="json")
            if len(results) > 1:
                payload = {"file": str(path), **payload}
            sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        elif args.output == "html":
            sys.stdout.write(_bilingual_html(doc) + "\n")
        else:
            for variant in doc.variants:
                if len(doc.variants) > 1 or len(results) > 1:
                    sys.stdout.write(f"=== {path.name} · {variant} ===\n")
                sys.stdout.write(doc.full_text[variant].rstrip("\n") + "\n")
    return 0


def _logging(settings: Settings, at_least: int = logging.NOTSET) -> None:
    """The process's logging as the settings have it (`service.logs.configure`), at `at_least`
    or a more severe level."""
    from service.logs import configure

    level = max(logging.getLevelNamesMapping()[settings.log_level.upper()], at_least)
    configure(logging.getLevelName(level), settings.log_format)
    # Alembic's INFO lines at each start ("Context impl SQLiteImpl.", "Running upgrade …"), below
    # DEBUG: `_database` says in one line what the migrations did.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)


def cmd_worker(args: argparse.Namespace) -> int:
    from service.jobs.worker import MetricsPortUnavailable, WorkerMetrics, run_worker, stop_on_signals

    settings = _settings(args)
    # A worker is its runners: with none it would translate nothing (DUIYI_RUNNERS=0 is for serve,
    # an API that leaves the jobs to workers).
    runners = args.runners if args.runners is not None else settings.runners
    if runners < 1:
        _error(
            f"setting runners (DUIYI_RUNNERS / --runners): a worker needs at least 1 job runner, not {runners} "
            "(DUIYI_RUNNERS=0 is for serve: an API that leaves the jobs to workers)"
        )
        return 2
    _logging(settings)
    # What it cannot use is one line now, before the model loads: the database, the metrics port.
    db = _database(settings)
    try:
        metrics = WorkerMetrics(settings)
    except MetricsPortUnavailable as exc:
        db.close()
        flag = " / --metrics-port" if exc.setting == "metrics_port" else ""
        _error(f"setting {exc.setting} (DUIYI_{exc.setting.upper()}{flag}): {exc}")
        return 2
    stop = stop_on_signals()
    run_worker(settings, _load_engine(settings), stop, runners=runners, db=db, metrics=metrics)
    return 0


def _database(settings: Settings) -> Database:
    """The database, migrated, what the migrations did logged in one line. One that cannot be
    opened or migrated (an unparsable URL, or one duiyi has no driver for, a server that does not
    answer, a directory that cannot be made, a schema a newer duiyi migrated) ends the command with
    exit status 2 and one line, naming the setting where a setting is at fault."""
    db, migration = _migrated(settings)
    logging.getLogger(__name__).info("database %s", migration.summary(db.describe()))
    return db


def _migrated(settings: Settings) -> tuple[Database, Migration]:
    """`_database`, with what the migrations did."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from service.storage.db import Database, MigrationRefused, UnsupportedDatabase

    if settings.database_url:
        setting = "database_url (DUIYI_DATABASE_URL)"
    else:
        setting = f"data_dir (DUIYI_DATA_DIR, the SQLite database in {settings.data_dir})"
    db: Database | None = None
    try:
        db = Database(settings.database)
        migration = db.migrate()
    except UnsupportedDatabase as exc:
        _error(f"setting {setting}: cannot use the database {exc.url}: {exc}")
        raise SystemExit(2) from None
    except MigrationRefused as exc:
        # Not the settings' fault: another process, or another version of duiyi.
        assert db is not None
        _error(f"cannot use the database {db.describe()}: {exc}")
        db.close()
        raise SystemExit(2) from None
    except (SQLAlchemyError, CommandError, OSError) as exc:
        # The first line only: SQLAlchemy appends the SQL and a link on further lines. The URL
        # itself is not repeated, since it may hold a password.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        where = f" {db.describe()}" if db is not None else ""
        _error(
            f"setting {setting}: cannot use the database{where}: {reason[0] if reason else type(exc).__name__}",
        )
        raise SystemExit(2) from None
    return db, migration


def cmd_keys(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.auth import Role, parse_overlap
    from service.keys import KeyNameTaken, KeyNotRotatable, create_key, key_state, list_keys, revoke_key, rotate_key
    from service.schemas import KeyIn
    from service.webhooks import CallbackRefused, check_callback_url

    settings = _settings(args)
    if args.keys_command == "create":
        # The same rules as POST /v1/keys, checked before the database is touched.
        try:
            KeyIn(name=args.name, role=args.role, callback_url=args.callback_url)
        except ValidationError as exc:
            error = exc.errors()[0]
            flag = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "the key"
            _error(f"{flag}: {error['msg']}")
            return 2
        if args.callback_url is not None:
            try:
                check_callback_url(
                    args.callback_url,
                    allowed_hosts=settings.webhook_allowed_hosts,
                    allow_private=settings.webhook_allow_private,
                )
            except CallbackRefused as exc:
                _error(f"--callback-url: {exc}")
                return 2
    if args.keys_command == "rotate":
        try:
            overlap = parse_overlap(args.overlap)
        except ValueError as exc:
            _error(f"--overlap: {exc}")
            return 2
    db = _database(settings)
    if args.keys_command == "create":
        try:
            made = create_key(db, name=args.name, role=Role(args.role), callback_url=args.callback_url)
        except KeyNameTaken as exc:
            _error(str(exc))
            return 2
        print(f"key ({made.row.role}, {made.row.name}; shown only now, store it safely):\n{made.key}")
        print(f"webhook secret (verifies Duiyi-Signature on this key's webhooks):\n{made.row.webhook_secret}")
    elif args.keys_command == "list":
        # Keys made by rotation share their predecessor's owner: the same `owner key:N` column.
        for row in list_keys(db):
            print(f"{row.id}\t{row.role}\t{row.name}\tduiyi_{row.lookup}_…\t{key_state(row)}\towner {row.owner}")
    elif args.keys_command == "rotate":
        try:
            rotated = rotate_key(db, args.key_id, overlap=overlap, new_webhook_secret=args.new_webhook_secret)
        except KeyNotRotatable as exc:
            _error(str(exc))
            return 2
        if rotated is None:
            _error(f"no API key with id {args.key_id}")
            return 2
        new, old = rotated.new.row, rotated.old
        print(f"new key {new.id} ({new.role}, {new.name}, owner {new.owner}; shown only now, store it safely):")
        print(rotated.new.key)
        if old.revoked_at is not None:
            print(f"key {old.id} is revoked")
        else:
            assert old.expires_at is not None
            print(f"key {old.id} keeps working until {old.expires_at:%Y-%m-%d %H:%M:%S} UTC; deploy the new one before")
        if not rotated.new_webhook_secret:
            print("the webhook secret is unchanged")
        else:
            print("new webhook secret (verifies Duiyi-Signature; shown only now, store it safely):")
            print(new.webhook_secret)
            if old.revoked_at is not None:
                print("webhooks are signed with the new secret alone from now on")
            else:
                print("until then webhooks are signed with the old and the new secret, then with the new one alone")
    else:
        revoked = revoke_key(db, args.key_id)
        if revoked is None:
            _error(f"no API key with id {args.key_id}")
            return 2
        print(f"revoked key {revoked.id} ({revoked.name})")
    return 0


def cmd_articles(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from service.jobs.articles import JobNotFound, JobStatus, withdraw
    from service.jobs.deliveries import forget_withdrawal_notices
    from service.storage.tables import Job

    try:
        before = datetime.fromisoformat(args.before)
    except ValueError:
        _error(f"--before: {args.before!r} is not an ISO 8601 date or time (e.g. 2026-01-31)")
        return 2
    before = before if before.tzinfo else before.replace(tzinfo=UTC)
    valid = [s.value for s in JobStatus]
    statuses = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else []
    unknown = [s for s in statuses if s not in valid]
    if unknown:
        _error(f"--status: unknown state {unknown[0]!r}; states: {', '.join(valid)}")
        return 2
    db = _database(_settings(args))
    query = select(Job.id, Job.status, Job.external_id, Job.revision, Job.updated_at).where(Job.updated_at < before)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    with db.session() as session:
        found = list(session.execute(query.order_by(Job.updated_at, Job.id)))
    withdrawn = 0
    for job_id, status, external_id, revision, updated_at in found:
        what = f"{job_id}\t{status}\t{external_id or '-'}\t{revision or '-'}\tlast changed {updated_at:%Y-%m-%d %H:%M}"
        if args.dry_run:
            print(f"would withdraw {what}")
            continue
        try:
            # Retention, not a takedown: the CMS is not told (an `article.withdrawn` webhook could make it
            # unpublish its own copy of an old translation).
            done = withdraw(db, job_id, by="duiyi articles purge", memory=args.memory, notify=False)
        except JobNotFound:
            continue  # withdrawn meanwhile by someone else
        withdrawn += 1
        print(f"withdrew {what}\t{done.segments} segment(s), {done.memory_removed} memory entry(ies)")
    verb = "would withdraw" if args.dry_run else "withdrew"
    print(f"{verb} {len(found) if args.dry_run else withdrawn} article(s) last changed before {before.isoformat()}")
    notices = forget_withdrawal_notices(db, before, dry_run=args.dry_run)
    if notices:
        print(f"{'would remove' if args.dry_run else 'removed'} {notices} finished article.withdrawn webhook(s)")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)
    # The log on stderr: a wait for another process's migration is said there.
    _logging(settings)
    db, migration = _migrated(settings)
    print(migration.summary(db.describe()))
    db.close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from models.tiny import build_tiny

    # It uses no setting, but a bad one stops it like every other command (its --family is the
    # tiny model's, not DUIYI_FAMILY's override).
    _settings(argparse.Namespace())
    try:
        out = build_tiny(args.outdir, args.family, seed=args.seed)
    except OSError as exc:
        # An OUTDIR that is a file, a directory that may not be written to, a full disk.
        _error(f"cannot write a model to {args.outdir}: {exc.strerror or exc}")
        return 2
    print(f"wrote a tiny random-weight {args.family} model to {out} (its translations are gibberish)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A mistyped setting (DUIYI_DATABASE_URI) would be ignored, and its default used (SQLite in
    # place of the PostgreSQL it named): refused, before anything starts.
    unknown = unknown_variables(os.environ)
    for message in unknown:
        _error(message)
    if unknown:
        return 2
    commands = {
        "serve": cmd_serve,
        "translate": cmd_translate,
        "worker": cmd_worker,
        "keys": cmd_keys,
        "articles": cmd_articles,
        "db": cmd_db,
        "models": cmd_models,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
