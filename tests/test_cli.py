"""The `duiyi` command as installed (its console script), run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DUIYI = str(Path(sys.executable).parent / "duiyi")


def run(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    return subprocess.run([DUIYI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=environ)


def test_translate_json_to_stdout(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    article = tmp_path / "a.md"
    article.write_text("# Futenma\n\nAbe met Putin. They talked.\n", encoding="utf-8")
    done = run(
        "translate", str(article), "--model", str(tiny_dirs["marian"]), "--to", "zh-Hans,zh-TW", "--output", "json"
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["format"] == "markdown" and data["variants"] == ["zh-Hans", "zh-TW"]
    assert data["blocks"][0]["segments"][0]["targets"]["zh-TW"] == "普天間"
    assert [s["source"] for s in data["blocks"][1]["segments"]] == ["Abe met Putin.", "They talked."]


def test_translate_text_and_html_outputs(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("Nov 07, 2013\n\nOkinawa\n", encoding="utf-8")
    two.write_text("Futenma\n", encoding="utf-8")
    done = run("translate", str(one), str(two), "--model", str(tiny_dirs["nllb"]), "--to", "zh-HK")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "=== one.txt · zh-HK ===\n2013年11月7日\n\n沖繩\n=== two.txt · zh-HK ===\n普天間\n"
    page = run("translate", str(one), "--model", str(tiny_dirs["nllb"]), "--output", "html")
    assert page.returncode == 0, page.stderr
    assert "<td lang='en'>Nov 07, 2013</td><td lang='zh-Hans'>2013年11月7日</td>" in page.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("translate", "/no/such/file.txt"), "no such file: /no/such/file.txt"),
        (("translate", "{article}", "--to", "zh-SG"), "valid: zh-Hans, zh-Hant, zh-TW, zh-HK"),
        (("translate", "{article}", "--glossary", "news,nope"), "unknown glossary 'nope'; valid: news"),
        (("translate", "{article}", "--model", "/no/such/model"), "--model PATH or DUIYI_MODEL=PATH"),
        (("serve", "--model", "/no/such/model"), "cannot load translation model '/no/such/model'"),
        (("serve", "--cpu-threads", "-1"), "setting cpu_threads (DUIYI_CPU_THREADS / --cpu-threads): Input should be"),
    ],
)
def test_clear_errors_and_non_zero_exit(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    done = run(*(a.replace("{article}", str(article)) for a in args))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_setting_from_the_environment_is_named(tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    done = run("translate", str(article), env={"DUIYI_MAX_BATCH_SIZE": "many", "DUIYI_CPU_THREADS": "-2"})
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert "duiyi: setting max_batch_size (DUIYI_MAX_BATCH_SIZE): Input should be a valid integer" in lines[1]
    assert lines[0].startswith("duiyi: setting cpu_threads (DUIYI_CPU_THREADS / --cpu-threads): Input should be")
    assert "Traceback" not in done.stderr
    bad_level = run("translate", str(article), env={"DUIYI_LOG_LEVEL": "verbose"})
    assert bad_level.returncode == 2
    assert "duiyi: setting log_level (DUIYI_LOG_LEVEL): Input should be 'critical', 'error'" in bad_level.stderr
    # A level in capitals is a level: the command goes past the settings, to the next error.
    upper = run("translate", str(article), "--model", "/no/such/model", env={"DUIYI_LOG_LEVEL": "DEBUG"})
    assert upper.returncode == 2 and "--model PATH or DUIYI_MODEL=PATH" in upper.stderr


def test_models_tiny_writes_a_loadable_model(tmp_path: Path) -> None:
    help_text = run("models", "tiny", "--help").stdout
    assert "gibberish" in help_text
    done = run("models", "tiny", str(tmp_path / "m"), "--family", "nllb")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "config.json").is_file()
    translated = run("translate", "--model", str(tmp_path / "m"), "--output", "json", str(_write(tmp_path)))
    assert translated.returncode == 0, translated.stderr
    assert json.loads(translated.stdout)["model"] == str(tmp_path / "m")


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("The alliance is strong.", encoding="utf-8")
    return path


def test_translate_with_the_ctranslate2_engine(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Futenma\n\nThe alliance is strong.\n", encoding="utf-8")
    done = run("translate", str(article), "--model", str(tiny_dirs["marian"]), "--engine", "ctranslate2",
               "--to", "zh-TW", "--output", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["blocks"][0]["segments"][0]["targets"]["zh-TW"] == "普天間"
    assert data["blocks"][1]["segments"][0]["targets"]["zh-TW"]
