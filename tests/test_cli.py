"""The `duiyi` command as installed (its console script), run as a user would."""

from __future__ import annotations

import json
import os
import re
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
        # Port 0: serve binds its address before the model loads, and 8000 may be in use here.
        (("serve", "--model", "/no/such/model", "--port", "0"), "cannot load translation model '/no/such/model'"),
        (("serve", "--cpu-threads", "-1"), "setting cpu_threads (DUIYI_CPU_THREADS / --cpu-threads): Input should be"),
    ],
)
def test_clear_errors_and_non_zero_exit(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    # serve opens (and makes) its database before loading the model: not the user's own.
    done = run(*(a.replace("{article}", str(article)) for a in args), env={"DUIYI_DATA_DIR": str(tmp_path)})
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


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and a single line on stderr, holding `words`: no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def test_keys_create_checks_the_callback_url_like_the_api(tmp_path: Path) -> None:
    """A key whose default callback the service would refuse could submit nothing (422 on every
    article): the command refuses it, with the API's reasons, and makes no key."""
    env = {"DUIYI_DATA_DIR": str(tmp_path)}
    create = ("keys", "create", "--role", "cms", "--name", "cms", "--callback-url")
    _one_line_error(run(*create, "ftp://10.0.0.5/hook", env=env), "--callback-url", "DUIYI_WEBHOOK_ALLOWED_HOSTS")
    allowed = {**env, "DUIYI_WEBHOOK_ALLOWED_HOSTS": '["10.0.0.5"]'}
    _one_line_error(run(*create, "ftp://10.0.0.5/hook", env=allowed), "must start with http:// or https://")
    _one_line_error(run(*create, "http://10.0.0.5/hook", env=allowed), "DUIYI_WEBHOOK_ALLOW_PRIVATE")
    listed = run("keys", "list", env=env)
    assert listed.returncode == 0 and listed.stdout == ""
    made = run(*create, "http://10.0.0.5/hook", env={**allowed, "DUIYI_WEBHOOK_ALLOW_PRIVATE": "true"})
    assert made.returncode == 0, made.stderr
    assert "\tcms\tcms\t" in run("keys", "list", env=env).stdout


@pytest.mark.parametrize("name", ["", "   "])
def test_keys_create_refuses_a_blank_name(tmp_path: Path, name: str) -> None:
    env = {"DUIYI_DATA_DIR": str(tmp_path)}
    _one_line_error(run("keys", "create", "--role", "admin", "--name", name, env=env), "--name")
    assert run("keys", "list", env=env).stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (("keys", "list"), {"DUIYI_PORT": "abc"}, ("setting port (DUIYI_PORT): Input should be a valid integer",)),
        (("db", "upgrade"), {"DUIYI_PORT": "abc"}, ("setting port (DUIYI_PORT): Input should be a valid integer",)),
        (("db", "upgrade"), {"DUIYI_DATABASE_URL": "nonsense"}, ("setting database_url (DUIYI_DATABASE_URL)",)),
        (("keys", "list"), {"DUIYI_DATABASE_URL": "nosuchdb://x/y"}, ("DUIYI_DATABASE_URL", "nosuchdb")),
        (
            ("db", "upgrade"),
            {"DUIYI_DATABASE_URL": "postgresql+psycopg://duiyi:hunter2@127.0.0.1:1/duiyi"},
            ("setting database_url (DUIYI_DATABASE_URL)", "127.0.0.1:1/duiyi", "Connection refused"),
        ),
        (
            ("keys", "create", "--role", "cms", "--name", "x"),
            {"DUIYI_DATA_DIR": "{file}/sub"},
            ("setting data_dir (DUIYI_DATA_DIR",),
        ),
        # serve and worker check the database before they spend time loading a model.
        (("worker", "--model", "/no/such/model"), {"DUIYI_DATABASE_URL": "nonsense"}, ("DUIYI_DATABASE_URL",)),
        (("serve", "--model", "/no/such/model"), {"DUIYI_DATA_DIR": "{file}/sub"}, ("DUIYI_DATA_DIR",)),
    ],
)
def test_commands_name_a_bad_setting_or_database(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], words: tuple[str, ...]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory", encoding="utf-8")
    done = run(*args, env={k: v.replace("{file}", str(a_file)) for k, v in env.items()})
    _one_line_error(done, *words)
    assert "hunter2" not in done.stderr


def test_models_tiny_onto_an_existing_file(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("something else", encoding="utf-8")
    _one_line_error(run("models", "tiny", str(taken)), f"cannot write a model to {taken}")
    assert taken.read_text(encoding="utf-8") == "something else"


def test_translate_drops_a_byte_order_mark(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    article = tmp_path / "bom.txt"
    article.write_bytes("\ufeffFutenma\n\nThe alliance is strong.\n".encode())
    done = run("translate", str(article), "--model", str(tiny_dirs["marian"]), "--to", "zh-TW", "--output", "json")
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)["blocks"][0]["segments"][0]
    assert first["source"] == "Futenma"
    assert first["targets"]["zh-TW"] == "普天間"  # the glossary term matched: no BOM in front of it


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DUIYI_MAX_CHARS", "-1"), ("DUIYI_MAX_CHARS", "0"), ("DUIYI_REQUEST_TIMEOUT_S", "0"), ("DUIYI_BEAM_SIZE", "0")],
)
def test_limits_must_be_positive(tmp_path: Path, variable: str, value: str) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    done = run("translate", str(article), env={variable: value})
    name = variable.removeprefix("DUIYI_").lower()
    _one_line_error(done, f"duiyi: setting {name} ({variable}): Input should be greater than")


def test_articles_purge_withdraws_what_was_not_changed_since_the_date(tmp_path: Path) -> None:
    # A retention policy run from cron: articles not changed since --before go, with everything
    # stored for them; newer ones, and states not asked for, stay.
    from datetime import UTC, datetime

    from sqlalchemy import func, select, update

    from service.auth import Role
    from service.config import Settings
    from service.documents import Article
    from service.glossaries import DatabaseGlossaries
    from service.jobs.articles import Principal, Submission, submit
    from service.storage.db import Database
    from service.storage.tables import Job, StoredArticle

    url = f"sqlite:///{tmp_path / 'duiyi.db'}"
    db = Database(url)
    db.migrate()
    settings = Settings(database_url=url, default_glossaries=[])
    who = Principal(key_id=None, name="test", role=Role.ADMIN)
    ids = []
    for text in ("Old and approved.", "Old and failed.", "New."):
        sub = Submission(article=Article(text), targets=["zh-Hans"], glossaries=[])
        ids.append(submit(db, sub, principal=who, settings=settings, glossaries=DatabaseGlossaries(db))[0].id)
    old, failed, new = ids
    with db.session() as session:
        session.execute(
            update(Job).where(Job.id == old).values(status="approved", updated_at=datetime(2025, 1, 5, tzinfo=UTC))
        )
        session.execute(
            update(Job).where(Job.id == failed).values(status="failed", updated_at=datetime(2025, 3, 1, tzinfo=UTC))
        )
    env = {"DUIYI_DATABASE_URL": url}

    dry = run("articles", "purge", "--before", "2026-01-01", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would withdraw {old}" in dry.stdout and f"would withdraw {failed}" in dry.stdout
    assert new not in dry.stdout and dry.stdout.splitlines()[-1].startswith("would withdraw 2 article(s)")

    only_approved = run("articles", "purge", "--before", "2026-01-01", "--status", "approved", env=env)
    assert only_approved.returncode == 0, only_approved.stderr
    assert f"withdrew {old}" in only_approved.stdout and failed not in only_approved.stdout
    with db.session() as session:
        assert set(session.scalars(select(Job.id))) == {failed, new}
        assert session.scalar(select(func.count()).select_from(StoredArticle)) == 2

    bad = run("articles", "purge", "--before", "last year", env=env)
    assert bad.returncode == 2 and "--before" in bad.stderr
    bad = run("articles", "purge", "--before", "2026-01-01", "--status", "done", env=env)
    assert bad.returncode == 2 and "unknown state 'done'" in bad.stderr
    db.close()


def test_the_readme_synopsis_has_every_option_of_each_command() -> None:
    """Each command's line in the README's "Command line" synopsis names every option its
    --help lists, and `--device` its forms; so do the `keys` lines of "API keys and roles" (the
    `keys` commands were once left out, and the synopsis lacked `--callback-url` and
    `--new-webhook-secret`)."""
    import argparse

    from service.cli import _parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

    def block_of(title: str) -> str:
        section = readme[readme.index(f"\n## {title}\n") :]
        return section[section.index("```sh\n") + 6 : section.index("\n```\n")].replace("\\\n", " ")

    def command_of(line: str) -> str:
        """`duiyi models tiny OUTDIR [--family …]` → `models tiny`."""
        words = []
        for word in line.split()[1:]:
            if word.startswith(("[", "-")) or not word.islower():
                break
            words.append(word)
        return " ".join(words)

    def synopses(title: str) -> dict[str, str]:
        return {command_of(line): line for line in block_of(title).splitlines() if line.startswith("duiyi ")}

    lines = synopses("Command line")

    def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
        found: dict[str, argparse.ArgumentParser] = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found |= commands(sub, f"{prefix} {name}".strip())
        return found or {prefix: parser}

    checked = []
    keys_lines = synopses("API keys and roles")
    for command, parser in commands(_parser()).items():
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
        for where, found in (("Command line", lines), ("API keys and roles", keys_lines)):
            if where != "Command line" and not command.startswith("keys"):
                continue
            assert command in found, f"{where}: no synopsis line for duiyi {command}"
            missing = [o for o in options if not re.search(rf"{re.escape(o)}\b(?!-)", found[command])]
            assert not missing, f"{where}: duiyi {command}: options missing from the synopsis: {missing}"
        checked.append(command)
    expected = {"serve", "translate", "worker", "models tiny", "db upgrade", "articles purge", "keys rotate"}
    assert expected <= set(checked)
    assert "cuda:N" in lines["serve"]
