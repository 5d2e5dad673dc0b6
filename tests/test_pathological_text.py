"""Texts that made the typography and markup patterns backtrack without end: a line of hyphens or
dots (exponential in its length: 40 hyphens took 16 s and stalled the whole server), an unclosed
parenthesis before many spaces (cubic), a run of backticks in a Markdown edit (cubic), unclosed
comments or code elements in an HTML edit (quadratic). Each now takes about its size, and gives
what the patterns gave. Each runs in a child process with a timeout, so that a regression fails
instead of hanging the suite (a regex holds the interpreter until it is done)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.documents import SourceFormat
from service.variants import localize, tidy_hans, variant_rules

HANG_S = 60  # the child process, imports included
BOUND_S = 2.0  # the call itself: milliseconds now, minutes (or for ever) before

TW = variant_rules()["zh-TW"]
MD, HTML = SourceFormat.MARKDOWN, SourceFormat.HTML

# name: (call, input, expected output)
CASES: dict[str, tuple[Callable[[str], str], str, str]] = {
    "hyphens": (tidy_hans, "-" * 2_000, "-" * 2_000),
    "hyphens_after_chinese": (tidy_hans, "中" + "-" * 2_000 + "a", "中——-a"),
    "dots": (tidy_hans, "." * 2_000, "." * 2_000),
    "dots_before_chinese": (tidy_hans, "." * 2_000 + "中", "……中"),
    "parenthesis_and_spaces": (tidy_hans, "(" + " " * 4_000, "(" + " " * 4_000),
    "spaces": (tidy_hans, "a" + " " * 40_000 + "b", "a" + " " * 40_000 + "b"),
    "markdown_backticks": (lambda t: localize(t, TW, typed=MD), '"中"' + "`" * 8_000, "「中」" + "`" * 8_000),
    "html_comments": (
        lambda t: localize(t, TW, typed=HTML),
        '"中"<!--"a"-->' + "<!--" * 15_000,
        '「中」<!--"a"-->' + "<!--" * 15_000,
    ),
    "html_code": (
        lambda t: localize(t, TW, typed=HTML),
        '"中"<code>"a"</code>' + "<code>" * 10_000,
        '「中」<code>"a"</code>' + "<code>" * 10_000,
    ),
}


def run_case(name: str) -> None:
    """In the child: the call's seconds, and whether it gave the expected text."""
    call, text, expected = CASES[name]
    call("warm up")
    began = time.perf_counter()
    out = call(text)
    print(json.dumps({"seconds": time.perf_counter() - began, "right": out == expected, "head": out[:40]}))


def in_child(code: str, limit: float = HANG_S) -> dict[str, object]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {limit} s: {code}")
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("name", CASES)
def test_pathological_text_takes_about_its_size(name: str) -> None:
    result = in_child(f"from tests.test_pathological_text import run_case; run_case({name!r})")
    assert result["right"], result
    assert float(str(result["seconds"])) < BOUND_S, result


def run_http(model: str) -> None:
    """In the child: a paragraph of 200 hyphens and one of 200 dots through POST /v1/translate."""
    from models.engine import load_engine
    from service.config import Settings
    from tests.conftest import serve

    engine = load_engine(model, engine="transformers", device="cpu")
    with serve(Settings(model=model, device="cpu"), engine) as live:
        began = time.perf_counter()
        r = live.client.post("/v1/translate", json={"text": "-" * 200 + "\n\n" + "." * 200, "targets": ["zh-Hans"]})
        seconds = time.perf_counter() - began
        assert r.status_code == 200, r.text
        print(json.dumps({"seconds": seconds, "full_text": r.json()["full_text"]["zh-Hans"]}))


def test_a_line_of_hyphens_through_http_is_answered_at_once(tiny_dirs: dict[str, Path]) -> None:
    model = str(tiny_dirs["marian"])
    result = in_child(f"from tests.test_pathological_text import run_http; run_http({model!r})", limit=120)
    assert result["full_text"] == "-" * 200 + "\n\n" + "." * 200, result
    assert float(str(result["seconds"])) < 5.0, result
