"""Request ids and the log format: `duiyi serve` run as a user would, its stderr read line by line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from models.engine import Engine
from service.config import Settings
from tests.conftest import _free_port, serve

DUIYI = str(Path(sys.executable).parent / "duiyi")


def test_a_request_id_is_kept_when_sane_and_made_when_not(
    engines: dict[str, Engine], tiny_dirs: dict[str, Path]
) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0)
    with serve(settings, engines["marian"]) as live:
        given = live.client.get("/healthz", headers={"X-Request-ID": "cms-4711-retry-2"})
        made = live.client.get("/healthz")
        # A line break or a space could forge a log line; a very long id is refused too.
        for bad in ("a" * 200, "two words", 'quote"d'):
            replaced = live.client.get("/v1/articles/nope", headers={"X-Request-ID": bad})
            assert replaced.status_code == 404
            assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"]), bad
    assert given.headers["x-request-id"] == "cms-4711-retry-2"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_line_is_in_the_format_and_access_lines_carry_the_request_id(
    tiny_dirs: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DUIYI_LOG_FORMAT": fmt.upper(),  # any case, like the level
        "DUIYI_AUTH_DISABLED": "true",
        "DUIYI_DATA_DIR": str(tmp_path),
        "DUIYI_RUNNERS": "0",
    }
    args = [DUIYI, "serve", "--model", str(tiny_dirs["marian"]), "--device", "cpu", "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.2)
            named = client.get("/v1/glossaries", headers={"X-Request-ID": "cms-4711"})
            # A search's words are article text: its access line keeps the choices, not the words.
            searched = client.get("/v1/memory/search?q=EMBARGOED%20phrase&side=source&api_key=SECRETKEY")
            assert searched.status_code == 200
            unnamed = client.post("/v1/translate", json={"text": "Logged."})
            assert named.status_code == 200 and unnamed.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    assert not [line for line in lines if "EMBARGOED" in line or "SECRETKEY" in line]
    assert any("GET /v1/memory/search?q=…&side=source&api_key=…" in line for line in lines)
    if fmt == "json":
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
        access = [e for e in entries if e["logger"] == "uvicorn.access"]
        by_id = {e.get("request_id"): e["message"] for e in access}
        assert "GET /v1/glossaries" in by_id["cms-4711"]
        assert "POST /v1/translate" in by_id[unnamed.headers["x-request-id"]]
        assert any(e["message"].startswith("authentication is DISABLED") for e in entries)
    else:
        assert any("[cms-4711]" in line and "GET /v1/glossaries" in line for line in lines)
        assert any(f"[{unnamed.headers['x-request-id']}]" in line and "POST /v1/translate" in line for line in lines)
        assert any(" WARNING service.api.app [-]: authentication is DISABLED" in line for line in lines)
