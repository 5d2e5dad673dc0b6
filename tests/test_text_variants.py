"""Quotes in the variants derived from a person's edit: straight double quotes a translator types
in zh-Hans become “ ” in zh-Hant and 「 」 in zh-TW and zh-HK, as the model's do, while quotes in
the article's inline markup (an HTML attribute, a Markdown link's title) are left as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.engine import Engine
from service.config import Settings
from service.documents import AlignedSegment, SourceFormat
from service.qa import QASettings
from service.retarget import realign
from service.variants import localize, variant_rules

RULES = variant_rules()
VARIANTS = ("zh-Hans", "zh-Hant", "zh-TW", "zh-HK")


def edited(text: str, fmt: SourceFormat) -> dict[str, str]:
    """The segment's targets after a translator's zh-Hans edit, as review.edit_segment derives them."""
    seg = AlignedSegment("b0.s0", "b0", "He said we will go.", "", dict.fromkeys(VARIANTS, "他说我们去。"), (), ())
    return realign(seg, {"zh-Hans": text}, set(), [RULES[v] for v in VARIANTS], QASettings(), fmt=fmt).targets


def test_straight_quotes_typed_in_zh_hans_are_the_variants_quotes_in_derived_text() -> None:
    targets = edited('他说"我们会去"，然后离开。', SourceFormat.TEXT)
    assert targets["zh-Hans"] == '他说"我们会去"，然后离开。'  # the translator's own text, as typed
    assert targets["zh-Hant"] == "他說“我們會去”，然後離開。"
    assert targets["zh-TW"] == "他說「我們會去」，然後離開。"
    assert targets["zh-HK"] == "他説「我們會去」，然後離開。"
    # Curly quotes typed, as before.
    assert edited("他说“我们会去”。", SourceFormat.TEXT)["zh-TW"] == "他說「我們會去」。"


def test_straight_quotes_around_latin_text_follow_the_models_rule() -> None:
    """As `tidy_hans` has it: a pair beside Chinese is Chinese quotation marks, one in Latin text stays."""
    assert edited('首次"2+2"会议', SourceFormat.TEXT)["zh-TW"] == "首次「2+2」會議"
    assert edited('命令 echo "hello world" -n 不变', SourceFormat.TEXT)["zh-TW"] == '命令 echo "hello world" -n 不變'


def test_quotes_in_html_markup_are_left_alone() -> None:
    tag = '<a href="https://example.org/x" title="“Hello”">'
    text = f'他说{tag}"我们会去"</a>，<code>x="1"</code>。'
    targets = edited(text, SourceFormat.HTML)
    assert targets["zh-TW"] == f'他說{tag}「我們會去」</a>，<code>x="1"</code>。'
    assert targets["zh-Hant"] == f'他說{tag}“我們會去”</a>，<code>x="1"</code>。'


def test_quotes_in_markdown_markup_are_left_alone() -> None:
    link = '](https://example.org/x "The “a” and "b"")'
    text = f'他说[“官方”{link}"我们会去"，`x="1"`，\\"引号\\"。'
    targets = edited(text, SourceFormat.MARKDOWN)
    assert targets["zh-TW"] == f'他說[「官方」{link}「我們會去」，`x="1"`，\\"引號\\"。'


def test_quotes_around_markup_pair_across_it() -> None:
    assert edited('他说"<b>我们</b>会去"。', SourceFormat.HTML)["zh-TW"] == "他說「<b>我們</b>會去」。"


def test_the_models_output_is_localized_as_before() -> None:
    """The pipeline's localize (no `typed`): tidied text, whose straight quotes are not Chinese ones."""
    assert localize('他说“我们”，x="1"', RULES["zh-TW"]) == '他說「我們」，x="1"'
    assert localize('他说“我们”，x="1"', RULES["zh-TW"], typed=SourceFormat.TEXT) == '他說「我們」，x="1"'


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_translators_edit_of_an_html_article_over_http(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    from tests.conftest import serve
    from tests.test_jobs import wait_for

    body = '<p>He said <a href="https://example.org/x">we will go</a>.</p>'
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as live:
        job = live.client.post("/v1/articles", json={"body": body, "format": "html", "targets": ["zh-Hans", "zh-TW"]})
        assert job.status_code == 202, job.text
        done = wait_for(live.client, job.json()["id"], "translated")
        (seg,) = [s for b in done["document"]["blocks"] for s in b["segments"] if "<a " in s["targets"]["zh-Hans"]]
        tag = seg["targets"]["zh-Hans"][seg["targets"]["zh-Hans"].index("<a ") :].split(">")[0] + ">"
        assert 'href="https://example.org/x"' in tag
        r = live.client.patch(
            f"/v1/articles/{done['id']}/segments/{seg['id']}",
            json={"variant": "zh-Hans", "text": f'他说{tag}"我们会去"</a>。', "version": seg["version"]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["targets"]["zh-TW"] == f"他說{tag}「我們會去」</a>。"
