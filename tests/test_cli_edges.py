"""Edges of the `duiyi` command the README's audit found: a worker without runners, `models tiny`
and bad settings, names in any case on the command line as in the variables, and the warning
`serve` gives for DUIYI_CUDA_GRAPHS where it does nothing, from `translate` too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import _parser
from tests.test_settings_errors import one_line_error, run


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--runners", "-1"), {}, "not -1"),
        (("--runners", "0"), {}, "not 0"),
        ((), {"DUIYI_RUNNERS": "0"}, "not 0"),
        # The flag overrides the variable, as the others do.
        (("--runners", "0"), {"DUIYI_RUNNERS": "3"}, "not 0"),
    ],
)
def test_a_worker_without_runners_is_refused(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], said: str
) -> None:
    """It ran, translated nothing and exited 0 (--runners -1), or quietly ran one runner
    (DUIYI_RUNNERS=0, which in serve means none)."""
    done = run("worker", "--model", "/no/such/model", *args, env={"DUIYI_DATA_DIR": str(tmp_path), **env})
    one_line_error(
        done, "duiyi: setting runners (DUIYI_RUNNERS / --runners): a worker needs at least 1 job runner", said
    )
    assert not (tmp_path / "duiyi.db").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("DUIYI_MAX_CHARS", "0", ("setting max_chars (DUIYI_MAX_CHARS): Input should be greater than 0",)),
        # Its own --family (default marian) is no override of DUIYI_FAMILY's.
        ("DUIYI_FAMILY", "bogus", ("setting family (DUIYI_FAMILY): unknown model family 'bogus'",)),
    ],
)
def test_models_tiny_stops_on_a_bad_setting_like_every_command(
    tmp_path: Path, variable: str, value: str, words: tuple[str, ...]
) -> None:
    out = tmp_path / "tiny"
    one_line_error(run("models", "tiny", str(out), env={variable: value}), *words)
    assert not out.exists()
    made = run("models", "tiny", str(out), "--family", "NLLB", env={})
    assert made.returncode == 0, made.stderr
    assert "tiny random-weight nllb model" in made.stdout


def test_names_on_the_command_line_are_taken_in_any_case() -> None:
    """As DUIYI_FAMILY=NLLB and DUIYI_ENGINE=CTranslate2 are; argparse refused them (usage, then
    `invalid choice`), and still refuses a name that is none in any case."""
    for command in (["serve"], ["worker"], ["translate", "a.txt"]):
        args = _parser().parse_args([*command, "--family", "NLLB", "--engine", "CTranslate2"])
        assert (args.family, args.engine) == ("nllb", "ctranslate2")
    assert _parser().parse_args(["models", "tiny", "out", "--family", "Marian"]).family == "marian"
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--family", "BART"])


def test_translate_warns_of_cuda_graphs_where_they_do_nothing(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """`serve` says at start-up that DUIYI_CUDA_GRAPHS does nothing on the CPU; `translate` said
    nothing (and decodes in whole batches, where it never applies). The same warning, in the log's
    format; and a name given in upper case on the command line works end to end."""
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    model = str(tiny_dirs["marian"])
    args = ("translate", str(article), "--model", model, "--device", "cpu", "--family", "MARIAN", "--to", "zh-Hans")
    env = {"DUIYI_CUDA_GRAPHS": "true", "DUIYI_DATA_DIR": str(tmp_path)}
    done = run(*args, "--engine", "Transformers", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    warned = [line for line in done.stderr.splitlines() if "DUIYI_CUDA_GRAPHS" in line]
    assert len(warned) == 1, done.stderr
    assert "WARNING service.api.app" in warned[0]
    assert (
        "DUIYI_CUDA_GRAPHS has no effect here: it applies to the running batch of the transformers engine"
        in (warned[0])
    )
    assert "duiyi translate decodes in whole batches" in warned[0]
    as_json = run(*args, env={**env, "DUIYI_LOG_FORMAT": "json"})
    assert as_json.returncode == 0, as_json.stderr
    line = next(line for line in as_json.stderr.splitlines() if "DUIYI_CUDA_GRAPHS" in line)
    assert json.loads(line)["level"] == "warning"
    # Without it, nothing: translate logs warnings and errors only.
    quiet = run(*args, env={"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_LOG_LEVEL": "debug"})
    assert quiet.returncode == 0, quiet.stderr
    assert "DUIYI_CUDA_GRAPHS" not in quiet.stderr and " INFO " not in quiet.stderr, quiet.stderr
