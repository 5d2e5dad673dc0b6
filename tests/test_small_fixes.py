"""Small promises of the command line and the glossary files: a model that cannot be loaded is one
line (README, Command line); `duiyi worker` says its metrics port is taken before it loads the
model, as `duiyi serve` does for its port; a glossary file that replaces a shipped one is stored
as coming from a file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from service.glossaries import SHIPPED, DatabaseGlossaries, GlossaryStore
from service.storage.db import Database
from service.storage.tables import StoredGlossary

DUIYI = str(Path(sys.executable).parent / "duiyi")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUIYI_")} | (env or {})
    return subprocess.run([DUIYI, *args], capture_output=True, text=True, timeout=300, check=False, env=environ)


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and a single line on stderr, holding `words`: no traceback, no second line."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.parametrize("engine", ["transformers", "ctranslate2"])
def test_a_directory_that_is_not_a_model_is_one_line(tmp_path: Path, engine: str) -> None:
    """What failed, which model, the cause in brief and what to do, on one line (it was two: the
    cause, cut at transformers' "one of:", and the advice on a line of its own)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("Not a model.", encoding="utf-8")
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    done = run("translate", str(article), "--model", str(notes), "--engine", engine)
    one_line_error(
        done,
        f"duiyi: cannot load translation model '{notes}'",
        "it holds no config.json, so it is not a saved model",
        "--model PATH or DUIYI_MODEL=PATH",
    )


@pytest.mark.parametrize("engine", ["transformers", "ctranslate2"])
def test_a_model_of_a_family_duiyi_does_not_know_is_one_line(
    tiny_dirs: dict[str, Path], tmp_path: Path, engine: str
) -> None:
    """A sequence-to-sequence model that loads but is of no family duiyi drives (BART here): one
    line naming the model and the way out, not a traceback."""
    from transformers import BartConfig, BartForConditionalGeneration

    bart = tmp_path / "bart"
    shutil.copytree(tiny_dirs["marian"], bart, ignore=shutil.ignore_patterns("ctranslate2", "*.safetensors"))
    marian = json.loads((bart / "config.json").read_text(encoding="utf-8"))
    config = BartConfig(
        vocab_size=marian["vocab_size"],
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        pad_token_id=marian["pad_token_id"],
        eos_token_id=marian["eos_token_id"],
        decoder_start_token_id=marian["decoder_start_token_id"],
    )
    BartForConditionalGeneration(config).save_pretrained(bart)
    article = tmp_path / "a.txt"
    article.write_text("Hello.", encoding="utf-8")
    done = run("translate", str(article), "--model", str(bart), "--engine", engine)
    one_line_error(done, f"duiyi: cannot use translation model '{bart}'", "model_type 'bart'", "name it with --family")


def test_worker_says_its_metrics_port_is_taken_before_loading_the_model(tmp_path: Path) -> None:
    """The port is checked before the model loads (minutes with a real model): with a model that
    cannot load, the line is still about the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "DUIYI_DATABASE_URL": f"sqlite:///{tmp_path / 'duiyi.db'}",
            "DUIYI_LOG_LEVEL": "warning",
        }
        started = time.monotonic()
        done = run("worker", "--model", "/no/such/model", "--device", "cpu", "--metrics-port", str(port), env=env)
        took = time.monotonic() - started
    one_line_error(
        done,
        f"duiyi: setting metrics_port (DUIYI_METRICS_PORT / --metrics-port): cannot serve metrics on 127.0.0.1:{port}",
        "in use",
    )
    assert took < 60, took


def test_a_glossary_file_replacing_a_shipped_one_is_stored_as_a_file(database_url: str, tmp_path: Path) -> None:
    """`origin` says where a stored glossary came from: a DUIYI_GLOSSARY_DIR file named like a
    shipped glossary replaces it (README, Glossaries), so it is "file", not "shipped"."""
    files = tmp_path / "glossaries"
    files.mkdir()
    (files / "news.csv").write_text("id,en,zh-Hans\nharbour,harbour works,港口工程\n", encoding="utf-8")
    (files / "desk.csv").write_text("id,en,zh-Hans\nmayor,Mayor Lee,李市长\n", encoding="utf-8")
    shipped = {p.stem for p in SHIPPED.glob("*.csv")}
    assert "news" in shipped
    db = Database(database_url)
    try:
        db.migrate()
        DatabaseGlossaries(db).seed(GlossaryStore.load(files))
        with db.session() as session:
            origins = {
                name: origin for name, origin in session.execute(select(StoredGlossary.name, StoredGlossary.origin))
            }
        assert origins == {"desk": "file", "news": "file"} | {name: "shipped" for name in shipped - {"news"}}
        # The file's terms, not the shipped ones: it replaced the glossary whole.
        assert [t.id for t in DatabaseGlossaries(db).get("news").terms] == ["harbour"]
    finally:
        db.close()
