"""Running duiyi in production: a mistyped or nonsensical setting stops every command in one line
(in JSON too, with DUIYI_LOG_FORMAT=json), `db upgrade` says what it did, `serve` stops within the
time the README gives it, the image's health check works for serve on any port and for a worker,
./scripts/serve restarts without a package index, and the README's synopsis has every option."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from service.cli import GRACEFUL_SHUTDOWN_S
from service.config import TOOL_VARIABLES, Settings
from service.jobs.worker import WorkerMetrics
from service.storage.db import MIGRATIONS, Database, alembic_config
from tests.conftest import REPO
from tests.test_settings_errors import DUIYI, one_line_error, run

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("db", "upgrade"), ("keys", "list"), ("articles", "purge", "--before", "2020-01-01"), ("models", "tiny", "{out}")],
)
def test_a_mistyped_variable_stops_every_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The audit's case: DUIYI_DATABASE_URI was ignored, and the command used SQLite instead."""
    argv = [a.replace("{out}", str(tmp_path / "model")) for a in args]
    env = {"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_DATABASE_URI": "postgresql+psycopg://x@127.0.0.1:9/y"}
    done = run(*argv, env=env)
    one_line_error(done, "duiyi: DUIYI_DATABASE_URI is not a setting", "did you mean DUIYI_DATABASE_URL?")
    assert not list(tmp_path.iterdir())  # stopped before anything started


def test_the_projects_own_variables_are_not_refused(tmp_path: Path) -> None:
    env = {"DUIYI_DATA_DIR": str(tmp_path), **dict.fromkeys(TOOL_VARIABLES, "1")}
    done = run("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    far = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_QWERTY": "1"})
    one_line_error(far, "DUIYI_QWERTY is not a setting", "Configuration")


def test_every_duiyi_variable_the_repository_uses_is_known() -> None:
    """The tests, scripts, CI, benchmarks, Dockerfile and README set no DUIYI_* variable that the
    command would refuse: each is a setting or one of TOOL_VARIABLES."""
    # The README's example of a mistyped name is the one exception.
    known = {f"DUIYI_{name.upper()}" for name in Settings.model_fields} | TOOL_VARIABLES | {"DUIYI_DATABASE_URI"}
    files = [REPO / "Dockerfile", REPO / "README.md", *(REPO / "tests").glob("*.py"), *(REPO / "bench").glob("*")]
    files += [*(REPO / "scripts").iterdir(), *(REPO / ".ci").iterdir()]
    used: dict[str, set[str]] = {}
    for path in files:
        if path.name == Path(__file__).name or "__pycache__" in path.parts:
            continue
        for name in re.findall(r"\bDUIYI_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert "DUIYI_SHARED" in used and "DUIYI_DATABASE_URL" in used  # the scan found them
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, unknown


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("DUIYI_PUBLIC_URL", "not a url", ("is not an http(s) URL with a host",)),
        ("DUIYI_PUBLIC_URL", "ftp://duiyi.example.com", ("is not an http(s) URL",)),
        ("DUIYI_PUBLIC_URL", "https://duiyi.example.com/?a=1", ("has a query or fragment",)),
        ("DUIYI_PUBLIC_URL", "https://duiyi.example.com:https/", ("is not a URL",)),
        ("DUIYI_REQUEST_TIMEOUT_S", "inf", ("Input should be a finite number",)),
        ("DUIYI_WEBHOOK_TIMEOUT_S", "nan", ("Input should be a finite number",)),
        ("DUIYI_JOB_LEASE_S", "0.001", ("greater than or equal to 1",)),
    ],
)
def test_values_that_make_no_sense_are_refused(tmp_path: Path, variable: str, value: str, words: tuple[str]) -> None:
    name = variable.removeprefix("DUIYI_").lower()
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path), variable: value})
    one_line_error(done, f"duiyi: setting {name} ({variable}): ", *words)
    assert not (tmp_path / "duiyi.db").exists()


def test_a_public_url_with_a_path_is_kept() -> None:
    assert Settings(public_url=" https://news.example.com/duiyi/ ").public_url == "https://news.example.com/duiyi/"
    assert Settings(public_url="http://10.0.0.5:8000").public_url == "http://10.0.0.5:8000"
    assert Settings(public_url="").public_url == ""
    assert Settings(job_lease_s=1).job_lease_s == 1  # the tests' short leases stay possible


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DUIYI_PORT": "abc"}, "setting port (DUIYI_PORT): Input should be a valid integer"),
        ({"DUIYI_RUNNER": "2"}, "DUIYI_RUNNER is not a setting of duiyi (did you mean DUIYI_RUNNERS?)"),
        ({"DUIYI_DATABASE_URL": "postgresql+psycopg://duiyi:pw@127.0.0.1:9/none"}, "cannot use the database"),
    ],
)
def test_with_json_logs_the_one_line_is_json(tmp_path: Path, env: dict[str, str], message: str) -> None:
    """A log collector reading stderr as JSON lines takes the command's last word as one entry."""
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_LOG_FORMAT": "JSON", **env})
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    entry = json.loads(done.stderr)
    assert (entry["level"], entry["logger"]) == ("error", "duiyi") and "time" in entry
    assert message in entry["message"] and not entry["message"].startswith("duiyi:"), entry
    assert "pw" not in done.stderr


# --- db upgrade ----------------------------------------------------------------------------------


def test_db_upgrade_says_from_which_revision_to_which(tmp_path: Path) -> None:
    """An operator upgrading sees what changed (it printed only "schema up to date" after applying six)."""
    env = {"DUIYI_DATA_DIR": str(tmp_path / "new")}
    fresh = run("db", "upgrade", env=env)
    count = len(list(ScriptDirectory(str(MIGRATIONS)).iterate_revisions(HEAD, "base")))
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip().endswith(f": schema none → {HEAD}, applied {count} migration(s)"), fresh.stdout

    old = tmp_path / "old"
    db = Database(f"sqlite:///{old / 'duiyi.db'}")
    with db.engine.connect() as conn:  # a database left at revision 0006 by an older duiyi
        cfg = alembic_config(db.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.commit()
    db.close()
    newer = len(list(ScriptDirectory(str(MIGRATIONS)).iterate_revisions(HEAD, "0006")))
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(old)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sqlite:///{old / 'duiyi.db'}: schema 0006 → {HEAD}, applied {newer} migration(s)"
    again = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(old)})
    assert again.stdout.strip() == f"sqlite:///{old / 'duiyi.db'}: schema up to date at {HEAD}", again.stdout


# --- serve: health check and stopping --------------------------------------------------------------


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.TransportError:  # listening already while the model loads
        return False


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, as Docker runs it (in the image, with its environment);
    -S: without site-packages, since it is to import nothing but the standard library."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUIYI_")} | env
    return subprocess.run(
        [sys.executable, "-S", "-m", "service.healthcheck"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_image_runs_the_health_check_tested_here() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    check = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert 'CMD ["python3", "-m", "service.healthcheck"]' in check
    assert "8000" not in check  # not one port for every container
    assert "--stop-timeout 90" in text


@contextmanager
def serving(
    tiny_dirs: dict[str, Path], tmp_path: Path, log_level: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real `duiyi serve` (a tiny model, one job runner, its log in tmp_path/serve.log), ready:
    the process and its port. Killed at the end if it is still running."""
    port = free_port()
    env = {
        "DUIYI_MODEL": str(tiny_dirs["marian"]),
        "DUIYI_DEVICE": "cpu",
        "DUIYI_PORT": str(port),
        "DUIYI_DATA_DIR": str(tmp_path),
        "DUIYI_AUTH_DISABLED": "true",
        "DUIYI_LOG_LEVEL": log_level,
        "DUIYI_RUNNERS": "1",
    }
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUIYI_")} | env
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen([DUIYI, "serve"], env=environ, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not ready(f"http://127.0.0.1:{port}/readyz"):
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
            yield server, port
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def stopped_cleanly(server: subprocess.Popen[bytes], log: Path) -> str:
    """The log of a `serve` that has exited: status 0 and no traceback. uvicorn raised the signal
    it had caught again once stopped, so the process ended with 143 (SIGTERM) or a KeyboardInterrupt
    traceback after asyncio's CancelledError (SIGINT), and a request cut short at the end of the
    graceful stop logged a CancelledError traceback."""
    text = log.read_text()
    assert server.returncode == 0, (server.returncode, text)
    assert "Traceback" not in text and "CancelledError" not in text, text
    return text


def test_serve_on_any_port_is_healthy_and_stops_in_time_with_an_upload_in_flight(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """On a port other than 8000 the image's check asks the right one. Told to stop while a client
    is still uploading (a slow or stalled CMS), `serve` waited for it without end; now the upload
    is cut after GRACEFUL_SHUTDOWN_S, answered 503 `shutting_down` with Retry-After, and the process
    is gone well within the 90 s Docker gives it, with status 0."""
    with serving(tiny_dirs, tmp_path, "warning") as (server, port), socket.socket() as upload:
        healthy = healthcheck({"DUIYI_PORT": str(port), "DUIYI_HOST": "0.0.0.0"})
        assert healthy.returncode == 0, healthy.stdout
        assert healthcheck({"DUIYI_PORT": str(free_port())}).returncode == 1

        head = (
            "POST /v1/translate HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            "content-length: 100000\r\n\r\n"
        )
        upload.connect(("127.0.0.1", port))
        upload.sendall(head.encode() + b'{"text": "Abe met')  # and nothing more
        time.sleep(1.0)
        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=GRACEFUL_SHUTDOWN_S + 30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {GRACEFUL_SHUTDOWN_S + 30} s after SIGTERM, waiting for the upload")
        took = time.monotonic() - stopped_at
        # The upload had its time; then the idle runner and the dispatcher stop at once.
        assert GRACEFUL_SHUTDOWN_S - 1 <= took <= GRACEFUL_SHUTDOWN_S + 15, took
        upload.settimeout(5)
        answer = upload.recv(65536).decode()
    stopped_cleanly(server, tmp_path / "serve.log")
    assert answer.startswith("HTTP/1.1 503 "), answer
    assert "retry-after: 5" in answer.lower() and '"code":"shutting_down"' in answer, answer


def test_serve_stopped_by_ctrl_c_finishes_the_request_in_flight_and_exits_0(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """SIGINT (Ctrl+C) with a request still arriving: the request is answered, the runner stopped,
    one line says how the stop went, and the exit status is 0 (it was a KeyboardInterrupt traceback)."""
    with serving(tiny_dirs, tmp_path, "info") as (server, port), socket.socket() as client:
        body = b'{"text": "Abe met Putin in Tokyo.", "targets": ["zh-Hans"]}'
        head = (
            "POST /v1/translate HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        client.connect(("127.0.0.1", port))
        client.sendall(head.encode() + body[:10])
        time.sleep(0.5)
        server.send_signal(signal.SIGINT)
        time.sleep(1.0)  # the server is stopping, the request still in flight
        assert server.poll() is None
        client.sendall(body[10:])
        client.settimeout(60)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        server.wait(timeout=60)
    text = stopped_cleanly(server, tmp_path / "serve.log")
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    stops = [line for line in text.splitlines() if "serve: stopped" in line]
    assert len(stops) == 1, text
    assert "stopped on SIGINT in " in stops[0] and "the requests in flight finished" in stops[0], stops
    assert "the job runners stopped" in stops[0], stops


def test_a_worker_with_a_metrics_port_is_healthy_and_one_without_is_not() -> None:
    """A `duiyi worker` container has no /healthz: the check asks its metrics port."""
    port, closed = free_port(), str(free_port())  # the image's DUIYI_PORT: nothing answers it in a worker's
    metrics = WorkerMetrics(Settings(host="127.0.0.1", metrics_port=port))
    try:
        worker = healthcheck({"DUIYI_HOST": "0.0.0.0", "DUIYI_PORT": closed, "DUIYI_METRICS_PORT": str(port)})
        assert worker.returncode == 0, worker.stdout
        assert f":{port}/metrics: 200" in worker.stdout
        bare = healthcheck({"DUIYI_PORT": closed})
        assert bare.returncode == 1 and bare.stdout.startswith("unhealthy: "), bare.stdout
    finally:
        metrics.close()
    gone = healthcheck({"DUIYI_PORT": closed, "DUIYI_METRICS_PORT": str(port)})
    assert gone.returncode == 1 and "/metrics" in gone.stdout, gone.stdout


# --- ./scripts/serve --------------------------------------------------------------------------------


def test_scripts_serve_restarts_without_a_package_index(tmp_path: Path) -> None:
    """Once set up, ./scripts/serve starts with no package index (the README's offline recipe; it
    ran setup, which upgraded pip and reinstalled, every time); after a change to what setup
    installs from it runs setup again. A copy of the checkout's scripts and package files, whose
    .venv holds this environment's `duiyi` (serve --help: no model needed) and an unreachable index."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("serve", "setup"):
        shutil.copy2(REPO / "scripts" / name, repo / "scripts" / name)
    shutil.copy2(REPO / "pyproject.toml", repo / "pyproject.toml")
    shutil.copytree(REPO / "requirements", repo / "requirements")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "duiyi").symlink_to(DUIYI)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUIYI_", "PIP_"))} | {
        "PIP_CONFIG_FILE": os.devnull,  # no find-links or extra indexes from this machine's pip.conf
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PYTHON": sys.executable,
    }

    def serve_help() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["./scripts/serve", "--help"], cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False
        )

    # Never set up (no stamp): setup runs, and needs the index.
    first = serve_help()
    assert first.returncode != 0 and "usage: duiyi serve" not in first.stdout, first.stdout + first.stderr
    assert "No matching distribution found for torch" in first.stderr, first.stderr
    # Set up: the stamp a finished setup leaves.
    stamp = subprocess.run(
        ["./scripts/setup", "--stamp"], cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert stamp.returncode == 0 and "requirements/torch.txt" in stamp.stdout, stamp.stdout + stamp.stderr
    (repo / ".venv" / ".setup-stamp").write_text(stamp.stdout)
    done = serve_help()
    assert done.returncode == 0 and "usage: duiyi serve" in done.stdout, done.stdout + done.stderr
    # A new pin: setup must run again.
    with (repo / "requirements" / "torch.txt").open("a") as pins:
        pins.write("# changed\n")
    again = serve_help()
    assert again.returncode != 0 and "No matching distribution found for torch" in again.stderr, again.stderr


# --- README ----------------------------------------------------------------------------------------


def test_the_readme_downloads_with_the_installed_hub_cli() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "huggingface-cli" not in readme
    assert "hf download Helsinki-NLP/opus-mt-en-zh --local-dir opus-mt-en-zh" in readme
    assert (Path(sys.executable).parent / "hf").exists()  # huggingface_hub's CLI is `hf` now
