"""Mistakes in the settings are one line and exit status 2 before anything starts; the README's
promises about settings, errors and segments hold: every error code the API returns is in its
table, every `origin` a segment can have is named, a setting said to take 0 takes it."""

from __future__ import annotations

import ast
import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from models.engine import Engine
from service.cli import _listen
from service.config import Settings
from service.schemas import SegmentOut
from tests.conftest import REPO, serve

DUIYI = str(Path(sys.executable).parent / "duiyi")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Without this environment's DUIYI_* variables, in any case (as settings are read).
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("DUIYI_")} | env
    return subprocess.run([DUIYI, *args], capture_output=True, text=True, timeout=300, check=False, env=environ)


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and a single line on stderr, holding `words`: no traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        # Not JSON: pydantic-settings' own decoding ended in a SettingsError traceback, status 1.
        ("DUIYI_WEBHOOK_ALLOWED_HOSTS", '["cms.example.com"', ("not a JSON list",)),
        ("DUIYI_WEBHOOK_ALLOWED_HOSTS", "https://cms.example.com/hooks", ("not a host pattern",)),
        ("DUIYI_WEBHOOK_ALLOWED_HOSTS", "cms.example.com:8443", ("has a port",)),
        # Names checked now, not when a request or the model load meets them.
        ("DUIYI_DEFAULT_TARGETS", '["zh-XX"]', ("unknown variant 'zh-XX'; valid: zh-Hans, zh-Hant, zh-TW, zh-HK",)),
        ("DUIYI_DEFAULT_TARGETS", "zh-Hans,zh-SG", ("unknown variant 'zh-SG'",)),
        ("DUIYI_DEFAULT_TARGETS", "", ("at least one variant",)),
        ("DUIYI_DEFAULT_GLOSSARIES", "[1]", ("item 1: Input should be a valid string",)),
        ("DUIYI_FAMILY", "bogus", ("unknown model family 'bogus'; valid: marian, nllb, m2m100",)),
        ("DUIYI_ENGINE", "foo", ("unknown engine 'foo'; valid: transformers, ctranslate2",)),
        ("DUIYI_DEVICE", "tpu", ("unknown device 'tpu'", "cuda:N")),
        ("DUIYI_GLOSSARY_DIR", "/no/such/dir", ("/no/such/dir is not a directory",)),
    ],
)
def test_a_bad_setting_stops_every_command_in_one_line(
    tmp_path: Path, variable: str, value: str, words: tuple[str, ...]
) -> None:
    name = variable.removeprefix("DUIYI_").lower()
    done = run("db", "upgrade", env={"DUIYI_DATA_DIR": str(tmp_path), variable: value})
    one_line_error(done, f"duiyi: setting {name} ({variable}): ", *words)
    assert not (tmp_path / "duiyi.db").exists()  # stopped before anything started


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        # The audit's tracebacks: an UnknownFamilyError at translate, torch's RuntimeError at serve.
        (("translate", "{article}"), {"DUIYI_FAMILY": "bogus"}, ("setting family (DUIYI_FAMILY / --family)",)),
        (("serve",), {"DUIYI_DEVICE": "tpu"}, ("setting device (DUIYI_DEVICE / --device)",)),
        (("serve", "--device", "tpu"), {}, ("setting device (DUIYI_DEVICE / --device): unknown device 'tpu'",)),
        (("worker",), {"DUIYI_ENGINE": "foo"}, ("setting engine (DUIYI_ENGINE / --engine)",)),
        (("keys", "list"), {"DUIYI_WEBHOOK_ALLOWED_HOSTS": "[cms"}, ("DUIYI_WEBHOOK_ALLOWED_HOSTS",)),
    ],
)
def test_commands_that_load_a_model_name_the_setting_first(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], words: tuple[str, ...]
) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    argv = [a.replace("{article}", str(article)) for a in args]
    one_line_error(run(*argv, env={"DUIYI_DATA_DIR": str(tmp_path), **env}), *words)


def test_list_settings_take_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUIYI_WEBHOOK_ALLOWED_HOSTS", "cms.example.com, *.desk.example.com,")
    monkeypatch.setenv("DUIYI_DEFAULT_TARGETS", "zh-TW,zh-HK")
    monkeypatch.setenv("DUIYI_DEFAULT_GLOSSARIES", '["news", "desk"]')
    settings = Settings()
    assert settings.webhook_allowed_hosts == ["cms.example.com", "*.desk.example.com"]
    assert settings.default_targets == ["zh-TW", "zh-HK"]
    assert settings.default_glossaries == ["news", "desk"]
    monkeypatch.setenv("DUIYI_WEBHOOK_ALLOWED_HOSTS", "")
    assert Settings().webhook_allowed_hosts == []
    # Names in any case, as the log level.
    chosen = Settings(family="NLLB", engine="CTranslate2", device="CUDA:1")
    assert (chosen.family, chosen.engine, chosen.device) == ("nllb", "ctranslate2", "cuda:1")
    assert Settings(family="").family is None  # empty: from the model's config


def test_a_comma_separated_host_list_lets_a_key_have_its_callback(tmp_path: Path) -> None:
    """The operator's natural spelling works end to end (it was a traceback before)."""
    env = {
        "DUIYI_DATA_DIR": str(tmp_path),
        "DUIYI_WEBHOOK_ALLOWED_HOSTS": "10.0.0.5,10.0.0.6",
        "DUIYI_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    made = run("keys", "create", "--role", "cms", "--name", "cms", "--callback-url", "http://10.0.0.6/hook", env=env)
    assert made.returncode == 0, made.stderr
    refused = run("keys", "create", "--role", "cms", "--name", "cms2", "--callback-url", "http://10.0.0.7/", env=env)
    one_line_error(refused, "--callback-url", "DUIYI_WEBHOOK_ALLOWED_HOSTS")


def test_serve_on_a_port_in_use_says_so_before_loading_the_model(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A model that cannot load: the address is checked before it (uvicorn said it after, status 3).
        done = run(
            "serve",
            "--model",
            "/no/such/model",
            "--port",
            str(port),
            env={"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_LOG_LEVEL": "warning"},
        )
    one_line_error(done, f"setting port (DUIYI_PORT / --port): cannot listen on 127.0.0.1:{port}", "in use")


def test_serve_holds_its_port_while_the_model_loads() -> None:
    """The socket `serve` takes before loading the model (`_listen`) is listening at once: no other
    process can listen on the port during the load, even one with SO_REUSEADDR (Python's
    http.server sets it). Only bound, it let such a process take the port, and duiyi then logged
    that it listened and served nothing."""
    sock = _listen(Settings(host="127.0.0.1", port=0))
    try:
        port = sock.getsockname()[1]
        with socket.socket() as rival:
            rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as refused:
                rival.bind(("127.0.0.1", port))
                rival.listen()
            assert refused.value.errno == errno.EADDRINUSE
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # and a client that comes during the load waits in its queue
    finally:
        sock.close()


def test_a_glossary_file_that_is_not_a_glossary_is_named(tmp_path: Path) -> None:
    glossaries = tmp_path / "glossaries"
    glossaries.mkdir()
    (glossaries / "desk.csv").write_text("id,en,zh-Hans,dnt\nx,Foo,富,perhaps\n", encoding="utf-8")
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    env = {"DUIYI_DATA_DIR": str(tmp_path), "DUIYI_GLOSSARY_DIR": str(glossaries), "DUIYI_LOG_LEVEL": "warning"}
    for args in (("translate", str(article)), ("serve", "--port", "0")):
        one_line_error(run(*args, "--model", "/no/such/model", env=env), "setting glossary_dir (DUIYI_GLOSSARY_DIR)")


def test_a_ctranslate2_conversion_that_cannot_be_written_is_one_line(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """`--engine ctranslate2` converts the model into its folder, or under ~/.cache/duiyi; where
    neither can be written (here: a file stands where each folder would be), the command stops with
    one line naming the folder and the way out, not a traceback."""
    model = tmp_path / "model"
    shutil.copytree(tiny_dirs["marian"], model, ignore=shutil.ignore_patterns("ctranslate2"))  # not converted yet
    (model / "ctranslate2").write_text("not a folder", encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_text("not a folder", encoding="utf-8")
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    env = {"DUIYI_DATA_DIR": str(tmp_path), "HOME": str(home), "DUIYI_LOG_LEVEL": "error"}
    done = run("translate", str(article), "--model", str(model), "--engine", "ctranslate2", env=env)
    one_line_error(
        done, "cannot convert translation model", "to CTranslate2", str(home / ".cache"), "--engine transformers"
    )


def test_a_body_without_a_json_content_type_is_told_so(engines: dict[str, Engine], tiny_dirs: dict[str, Path]) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", runners=0)
    with serve(settings, engines["marian"]) as live:
        # What `curl -d '{...}'` sends.
        form = live.client.post(
            "/v1/translate",
            content=b'{"text": "Hello."}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        bare = live.client.post("/v1/translate", content=b'{"text": "Hello."}')
        right = live.client.post("/v1/translate", json={"text": "Hello."})
        # A method the path does not take: 405 with Allow, as HTTP has it.
        wrong_method = live.client.delete("/v1/translate")
    for answer, sent in ((form, "application/x-www-form-urlencoded"), (bare, "no Content-Type")):
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["code"] == "invalid_request"
        assert "Content-Type: application/json" in error["message"] and sent in error["message"]
    assert right.status_code == 200
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"


# --- the README ------------------------------------------------------------------------------

README = REPO / "README.md"
_CODE = re.compile(r"[a-z][a-z0-9_]*")


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _error_table() -> dict[str, set[int]]:
    """The README's error table: code → the statuses it is listed under."""
    section = _section("HTTP API")
    table = section[section.index("Errors are JSON") :]
    listed: dict[str, set[int]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for code in re.findall(r"`([a-z][a-z0-9_]*)`", cells[1]):
                listed.setdefault(code, set()).add(int(cells[0]))
    return listed


def _codes_in_the_code() -> dict[str, set[int | None]]:
    """Every error code the API's code can answer with, read from the source: `ApiError(status,
    code)` and `error_json(status, code)`, the codes of InputError, BadQuery and NotReleasable (their status set
    where they are caught), `"code": …` in bodies built by hand, and the handlers' status → code
    mappings. Status None: not written beside the code."""
    files = [*sorted((REPO / "service" / "api").rglob("*.py")), REPO / "service" / "translate.py"]
    files += [REPO / "service" / "concordance.py", REPO / "service" / "jobs" / "review.py"]
    found: dict[str, set[int | None]] = {}

    def add(code: object, status: object = None) -> None:
        if isinstance(code, str) and _CODE.fullmatch(code):
            found.setdefault(code, set()).add(status if isinstance(status, int) else None)

    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                values = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
                if name in ("ApiError", "error_json") and len(values) >= 2:
                    add(values[1], values[0])
                elif name in ("InputError", "BadQuery", "NotReleasable") and values:
                    add(values[0])
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if not (isinstance(key, ast.Constant) and isinstance(value, ast.Constant)):
                        continue
                    if key.value == "code":
                        add(value.value)
                    elif isinstance(key.value, int) and 400 <= key.value < 600:
                        add(value.value, key.value)
    # The handler's fallback for a status no mapping names (none the service answers with).
    found.pop("http_error", None)
    return found


def test_every_error_code_is_in_the_readme_table_under_its_status() -> None:
    listed = _error_table()
    found = _codes_in_the_code()
    assert {"not_rotatable", "invalid_comment", "method_not_allowed", "internal_error"} <= found.keys()
    missing = sorted(set(found) - set(listed))
    assert not missing, f"error codes the API returns but the README's table lacks: {missing}"
    wrong = {c: (s, listed[c]) for c, s in found.items() if not {x for x in s if x is not None} <= listed[c]}
    assert not wrong, f"codes listed under another status than the code's: {wrong}"
    stale = sorted(set(listed) - set(found))
    assert not stale, f"codes in the README's table that the API never returns: {stale}"


def test_the_readme_names_every_glossary_type_a_glossary_upload_takes() -> None:
    from service.api.routes.glossaries import _TBX_TYPES

    row = next(line for line in _section("HTTP API").splitlines() if line.startswith("| 415 |"))
    for media in ("text/csv", "text/plain", *_TBX_TYPES):
        assert f"`{media}`" in row, media


def test_the_readme_names_every_origin_a_segment_can_have() -> None:
    section = _section("HTTP API")
    described = section[section.index("The response holds") : section.index("Errors are JSON")]
    where = described[described.index("`origin`") :]
    where = where[: where.index("`status`")]
    for origin in typing.get_args(SegmentOut.model_fields["origin"].annotation):
        assert f"`{origin}`" in where, origin


def test_a_setting_the_readme_says_takes_0_takes_it() -> None:
    """A row of the configuration table that gives 0 a meaning ("0 disables", "0: …") holds only
    settings that accept 0 (it once said so of DUIYI_RATE_LIMIT_BURST too, which has no 0)."""
    rows = [line for line in _section("Configuration").splitlines() if line.startswith("| `DUIYI_")]
    checked = []
    for row in rows:
        names, _default, meaning = (c.strip() for c in row.strip().strip("|").split("|")[:3])
        if not re.search(r"\b0(:| disables|, none)", meaning):
            continue
        for variable in re.findall(r"`DUIYI_([A-Z_]+)`", names):
            if Settings.model_fields[variable.lower()].annotation not in (int, float):
                continue  # a number's row beside another kind (DUIYI_HOST, DUIYI_PORT)
            Settings.model_validate({variable.lower(): 0})  # raises if 0 is refused
            checked.append(variable)
    assert {"RATE_LIMIT_PER_MINUTE", "RUNNERS", "PORT"} <= set(checked)
    burst = next(row for row in rows if row.startswith("| `DUIYI_RATE_LIMIT_BURST`"))
    assert "at least 1" in burst
