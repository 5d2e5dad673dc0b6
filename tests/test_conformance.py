"""The running service against its own OpenAPI document, with schemathesis: generated requests to
every operation (valid and invalid) never get a 5xx, and every status and content type they get is
documented. A fixed seed keeps the run repeatable; the count is kept small for CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from models.engine import Engine
from service.config import Settings
from tests.conftest import serve


def test_every_answer_is_documented(tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path: Path) -> None:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        data_dir=tmp_path,
        webhook_secret="conformance",
        rate_limit_per_minute=0,
        request_timeout_s=30,
    )
    with serve(settings, engines["marian"]) as live:
        paths = live.client.get("/openapi.json").json()["paths"]
        operations = sum(len(methods) for methods in paths.values())
        cli = Path(sys.executable).parent / "schemathesis"
        run = subprocess.run(
            [
                str(cli),
                "run",
                f"{live.url}/openapi.json",
                "--checks",
                "status_code_conformance,not_a_server_error,content_type_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "10",
                "--seed",
                "1",
                "--workers",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert operations >= 38 and f"{operations}/{operations}" in run.stdout  # every operation was exercised
