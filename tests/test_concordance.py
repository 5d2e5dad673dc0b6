"""Concordance: how a word or phrase was translated before. The translation memory's search on
SQLite and PostgreSQL (whole words in English, substrings in Chinese, any case, `%` and `_` as
plain text, newest first, a variant, a limit), the glossaries' terms, /v1/memory/search (for
translators and admins only: the memory holds every owner's sentences) and the review workspace's
Concordance box in a real browser."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glossary.terms import Glossary, Term
from models.engine import Engine
from service.concordance import search as concordance_search
from service.glossaries import GlossaryStore
from service.memory import SEARCH_MAX, Remembered, TranslationMemory, query_pattern
from service.storage.db import Database
from service.variants import variant_rules
from tests.conftest import LiveServer, keyed_settings, make_keys, serve


@pytest.fixture
def memory(database_url: str) -> Iterator[TranslationMemory]:
    db = Database(database_url)
    db.migrate()
    yield TranslationMemory(db)
    db.close()


def remember(memory: TranslationMemory, *pairs: tuple[str, str], variant: str = "zh-Hans") -> None:
    """Each pair stored on its own, one after the other: the last is the newest."""
    for source, target in pairs:
        memory.remember([Remembered(source, variant, target)])
        time.sleep(0.002)  # distinct times, whatever the clock's resolution


def sources(memory: TranslationMemory, query: str, **kwargs: object) -> list[str]:
    return [h.source for h in memory.search(query, **kwargs).hits]  # type: ignore[arg-type]


def test_search_finds_whole_english_words_in_any_case_newest_first(memory: TranslationMemory) -> None:
    remember(
        memory,
        ("Marines moved to Futenma in 1996.", "海军陆战队于1996年迁往普天间。"),
        ("The database was rebuilt.", "数据库已重建。"),
        ("Two bases will close.", "两个基地将关闭。"),
        ("The base's runway is long.", "该基地的跑道很长。"),
        ("FUTENMA AIR STATION", "普天间航空站"),
        ("The US said it would use the base.", "美国说将使用该基地。"),
        ("Baseline figures were not given.", "未给出基线数字。"),
    )
    assert sources(memory, "futenma") == ["FUTENMA AIR STATION", "Marines moved to Futenma in 1996."]
    # A word, with its plural or possessive ending; not inside another word.
    assert sources(memory, "base") == [
        "The US said it would use the base.",
        "The base's runway is long.",
        "Two bases will close.",
    ]
    assert sources(memory, "US") == ["The US said it would use the base."]
    assert sources(memory, "  Air   station ") == ["FUTENMA AIR STATION"]  # white space as stored
    # A newer approval of a sentence replaces it, and comes first.
    remember(memory, ("Marines moved to Futenma in 1996.", "1996年，海军陆战队迁往普天间。"))
    first = memory.search("Futenma").hits[0]
    assert (first.source, first.target) == ("Marines moved to Futenma in 1996.", "1996年，海军陆战队迁往普天间。")
    assert first.variant == "zh-Hans" and first.origin == "approved" and first.created_at is not None
    assert sources(memory, "Kadena") == []
    with pytest.raises(ValueError):
        memory.search("   ")


def test_search_finds_chinese_anywhere_with_where_it_is(memory: TranslationMemory) -> None:
    remember(
        memory,
        ("Two bases will close.", "两个基地将关闭。"),
        ("The military base near Futenma.", "普天间附近的军事基地。基地很大。"),
        ("A rare name: 𠮷野.", "罕见的名字：𠮷野基地。"),  # a character beyond the BMP before the match
    )
    hits = memory.search("基地").hits
    assert [h.target for h in hits] == [
        "罕见的名字：𠮷野基地。",
        "普天间附近的军事基地。基地很大。",
        "两个基地将关闭。",
    ]
    assert hits[0].target_matches == ((8, 10),)  # code points: 𠮷 is one character
    assert hits[1].target_matches == ((8, 10), (11, 13))
    assert hits[1].source_matches == ()
    near = memory.search("futenma").hits[0]
    at = near.source.index("Futenma")
    assert near.source_matches == ((at, at + 7),)
    # Only the sources, or only the translations.
    assert [h.target for h in memory.search("基地", side="source").hits] == []
    assert [h.source for h in memory.search("Futenma", side="target").hits] == []
    assert [h.source for h in memory.search("Futenma", side="source").hits] == ["The military base near Futenma."]


def test_wildcards_are_plain_text(memory: TranslationMemory) -> None:
    remember(
        memory,
        ("Turnout was 100% in the village.", "该村投票率为100%。"),
        ("Turnout was 1000 in the village.", "该村投票人数为1000。"),
        ("The file is named a_b.", "文件名为a_b。"),
        ("The file is named axb.", "文件名为axb。"),
        ("Use and/or here.", "此处用和/或。"),
        ("Use and or here.", "此处用和或。"),
        ("A backslash \\ stays.", "反斜杠\\保留。"),
    )
    assert sources(memory, "100%") == ["Turnout was 100% in the village."]
    assert sources(memory, "%") == ["Turnout was 100% in the village."]
    assert sources(memory, "a_b") == ["The file is named a_b."]
    assert sources(memory, "_") == ["The file is named a_b."]
    assert sources(memory, "and/or") == ["Use and/or here."]
    assert sources(memory, "和/或") == ["Use and/or here."]
    assert sources(memory, "\\") == ["A backslash \\ stays."]


def test_variant_and_limit(memory: TranslationMemory) -> None:
    remember(memory, *[(f"Futenma report number {i}.", f"普天间报告{i}。") for i in range(1, 8)])
    remember(memory, ("Futenma report number 1.", "普天間報告1。"), variant="zh-TW")
    assert len(memory.search("Futenma").hits) == 8  # every variant
    tw = memory.search("Futenma", variant="zh-TW")
    assert [(h.variant, h.target) for h in tw.hits] == [("zh-TW", "普天間報告1。")] and not tw.more
    assert memory.search("Futenma", variant="zh-HK").hits == []
    three = memory.search("Futenma", variant="zh-Hans", limit=3)
    assert [h.source for h in three.hits] == [f"Futenma report number {i}." for i in (7, 6, 5)] and three.more
    assert not memory.search("Futenma", variant="zh-Hans", limit=7).more
    assert len(memory.search("report", limit=1000).hits) == 8  # at most SEARCH_MAX, not more
    assert len(memory.search("report", limit=0).hits) == 1
    # Only whole-word hits count towards the limit: the "base" inside "database" is read past.
    remember(memory, *[(f"Database {i} failed.", f"数据库{i}故障。") for i in range(5)])
    remember(memory, ("The base failed.", "基地故障。"))
    remember(memory, *[(f"Database {i} failed again.", f"数据库{i}再次故障。") for i in range(5)])
    only = memory.search("base", limit=1)
    assert [h.source for h in only.hits] == ["The base failed."] and not only.more
    assert SEARCH_MAX == 100


def test_query_pattern_boundaries() -> None:
    assert query_pattern("U.S.").search("the U.S. said")
    assert query_pattern("2+2").search("the 2+2 talks")
    assert not query_pattern("2+2").search("the 12+2 talks")
    assert query_pattern("基地").search("军事基地")
    assert query_pattern("Futenma").search("普天间Futenma")  # a Chinese character is no part of an English word


def test_glossary_terms_hold_the_query_in_english_or_chinese(memory: TranslationMemory) -> None:
    rules = variant_rules()
    store = GlossaryStore.load()
    outlet = Glossary(
        "outlet-tw",
        (Term("futenma-tw", ("Futenma base",), {"zh-Hans": "普天间基地", "zh-TW": "普天間基地"}, note="outlet style"),),
    )
    both = GlossaryStore({"news": store.get("news"), "outlet-tw": outlet})

    def terms(query: str, variant: str = "zh-Hans", names: list[str] | None = None) -> list[tuple[str, str, str]]:
        found = concordance_search(memory, both, rules, query, variant=variant, limit=20, glossary_names=names)
        return [(t.glossary, t.term.id, t.form) for t in found.terms]

    assert terms("futenma") == [("news", "futenma", "普天间"), ("outlet-tw", "futenma-tw", "普天间基地")]
    # The form a zh-TW translation must use: the glossary's own, else converted from zh-Hans.
    assert terms("Futenma", "zh-TW") == [("news", "futenma", "普天間"), ("outlet-tw", "futenma-tw", "普天間基地")]
    # Found by a Chinese form, Simplified or (as the variant writes it) Traditional.
    assert terms("普天间", names=["news"]) == [("news", "futenma", "普天间")]
    assert terms("普天間", "zh-TW", names=["news"]) == [("news", "futenma", "普天間")]
    assert terms("Security Consultative Committee", names=["news"])[0][1] == "scc"
    assert terms("Futenma", names=["outlet-tw"]) == [("outlet-tw", "futenma-tw", "普天间基地")]
    assert terms("Futenma", names=["gone", "news"]) == [("news", "futenma", "普天间")]
    assert terms("nothing like it") == []
    hit = concordance_search(memory, both, rules, "futenma", variant="zh-Hans", limit=20).terms[0]
    assert hit.forms == (("Futenma", ((0, 7),)),) and hit.form_matches == ()


# --- the API and the review workspace -------------------------------------------------------------

ARTICLE = "Officials met near Futenma on Tuesday.\n\nThe talks will continue."
STORED = [
    Remembered("Marines left Futenma in 2024.", "zh-Hans", "海军陆战队于2024年离开普天间。"),
    Remembered("Marines left Futenma in 2024.", "zh-TW", "海軍陸戰隊於2024年離開普天間。"),
    Remembered("Futenma <b>closed</b> & reopened.", "zh-Hans", "<img src=x onerror=alert(1)>普天间"),
    Remembered("The database of Futenmaland.", "zh-Hans", "数据库。"),
]


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, dict[str, str]], str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('concordance') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, suffix="-cc").items()}
    db = Database(url)
    for entry in STORED:  # one at a time: the last is the newest
        TranslationMemory(db).remember([entry])
        time.sleep(0.002)
    db.close()
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
        job = live.client.post(
            "/v1/articles", json={"body": ARTICLE, "targets": ["zh-Hans", "zh-TW"]}, headers=auth["cms"]
        )
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while live.client.get(f"/v1/articles/{job_id}", headers=auth["cms"]).json()["status"] != "translated":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield live, {"keys": keys, **auth}, job_id  # type: ignore[dict-item]


def test_the_api_answers_translators_and_admins(site: tuple[LiveServer, dict, str]) -> None:
    live, auth, job_id = site
    r = live.client.get("/v1/memory/search", params={"q": "futenma", "variant": "zh-Hans"}, headers=auth["translator"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "futenma" and body["variant"] == "zh-Hans" and body["more"] is False
    assert [h["target"] for h in body["memory"]] == [
        "<img src=x onerror=alert(1)>普天间",
        "海军陆战队于2024年离开普天间。",
    ]
    assert body["memory"][1]["source_matches"] == [{"start": 13, "end": 20}]
    assert body["memory"][1]["origin"] == "approved" and body["memory"][1]["created_at"]
    assert [(t["glossary"], t["term_id"], t["form"]["text"]) for t in body["glossary"]] == [
        ("news", "futenma", "普天间")
    ]
    every = live.client.get("/v1/memory/search", params={"q": "普天", "limit": 2}, headers=auth["admin"]).json()
    assert len(every["memory"]) == 2 and every["more"] is True and every["variant"] is None
    tw = live.client.get(
        "/v1/memory/search", params={"q": "Futenma", "variant": "zh-TW", "article": job_id}, headers=auth["admin"]
    ).json()
    assert [h["target"] for h in tw["memory"]] == ["海軍陸戰隊於2024年離開普天間。"]
    assert tw["glossary"][0]["form"] == {"text": "普天間", "matches": []}
    assert tw["glossary"][0]["forms"] == [{"text": "Futenma", "matches": [{"start": 0, "end": 7}]}]
    # cms keys never read the memory: it holds every owner's approved sentences.
    denied = live.client.get("/v1/memory/search", params={"q": "Futenma"}, headers=auth["cms"])
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert live.client.get("/v1/memory/search", params={"q": "Futenma"}).status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 422, "invalid_request"),
        ({"q": ""}, 422, "invalid_request"),
        ({"q": "   "}, 422, "invalid_request"),
        ({"q": "x" * 201}, 422, "invalid_request"),
        ({"q": "a\0b"}, 422, "invalid_request"),
        ({"q": "Futenma", "variant": "zh-XX"}, 422, "unknown_variant"),
        ({"q": "Futenma", "limit": 0}, 422, "invalid_request"),
        ({"q": "Futenma", "limit": 101}, 422, "invalid_request"),
        ({"q": "Futenma", "side": "middle"}, 422, "invalid_request"),
        ({"q": "Futenma", "article": "nope"}, 404, "not_found"),
    ],
)
def test_the_api_says_what_is_wrong(site: tuple[LiveServer, dict, str], params: dict, status: int, code: str) -> None:
    live, auth, _ = site
    r = live.client.get("/v1/memory/search", params=params, headers=auth["translator"])
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_the_operation_is_documented(site: tuple[LiveServer, dict, str]) -> None:
    live, _, _ = site
    operation = live.client.get("/openapi.json").json()["paths"]["/v1/memory/search"]["get"]
    assert {"200", "401", "403", "404", "422", "429", "500", "503"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"q", "variant", "limit", "side", "article"}


def _session(live: LiveServer, key: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', live.client.get("/review/login").text)
    assert token
    signed_in = live.client.post("/review/login", data={"key": key, "csrf_token": token.group(1)})
    assert signed_in.status_code == 303


def test_the_workspace_route(site: tuple[LiveServer, dict, str]) -> None:
    live, auth, job_id = site
    url = "/review/api/memory/search"
    try:
        assert live.client.get(url, params={"q": "Futenma"}).status_code == 401
        _session(live, auth["keys"]["translator"])
        r = live.client.get(url, params={"q": "Futenma", "variant": "zh-Hans", "article": job_id})
        assert r.status_code == 200, r.text
        assert len(r.json()["memory"]) == 2 and r.json()["glossary"][0]["term_id"] == "futenma"
        for params, status, code in (
            ({"q": " "}, 422, "invalid_request"),
            ({"q": "y" * 201}, 422, "invalid_request"),
            ({"q": "Futenma", "variant": "zh-XX"}, 422, "unknown_variant"),
            ({"q": "Futenma", "limit": 500}, 422, "invalid_request"),
            ({"q": "Futenma", "article": "nope"}, 404, "not_found"),
        ):
            bad = live.client.get(url, params=params)
            assert bad.status_code == status and bad.json()["error"]["code"] == code, bad.text
        live.client.cookies.clear()
        _session(live, auth["keys"]["cms"])
        denied = live.client.get(url, params={"q": "Futenma"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        # Nor does a cms key's article page offer the box.
        page = live.client.get(f"/review/articles/{job_id}")
        assert page.status_code == 200 and 'id="concordance"' not in page.text
    finally:
        live.client.cookies.clear()


def test_the_concordance_box_in_the_review_workspace(site: tuple[LiveServer, dict, str], browser: object) -> None:
    """A translator selects a word in a source, presses Ctrl+Shift+F, and sees how it was translated
    before: memory entries with the word marked (stored text shown as text, never parsed as HTML)
    and the glossary's term in the page's variant; the count is said in a live region."""
    from tests.test_review_ui import row_of, sign_in

    live, auth, job_id = site
    page = sign_in(browser, live, auth["keys"]["translator"])
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")  # type: ignore[attr-defined]
    box = page.locator("#concordance")  # type: ignore[attr-defined]
    assert box.is_hidden()
    source = row_of(page, "Futenma").locator(".source")
    # Select "Futenma" in the source, as a double click on it would.
    source.evaluate(
        """el => {
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode()) && !node.data.includes("Futenma")) {}
            const range = document.createRange();
            const at = node.data.indexOf("Futenma");
            range.setStart(node, at);
            range.setEnd(node, at + 7);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }"""
    )
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url) as answered:  # type: ignore[attr-defined]
        page.keyboard.press("Control+Shift+F")  # type: ignore[attr-defined]
    assert answered.value.status == 200
    assert "variant=zh-TW" in answered.value.url and f"article={job_id}" in answered.value.url
    assert box.is_visible()
    query = page.get_by_label("Word or phrase, English or Chinese")  # type: ignore[attr-defined]
    assert query.input_value() == "Futenma"
    assert query.evaluate("el => el === document.activeElement")
    hits = box.locator("#concordance-memory li")
    hits.first.wait_for()
    assert hits.count() == 1
    assert hits.first.locator(".cc-target").inner_text() == "海軍陸戰隊於2024年離開普天間。"
    assert hits.first.locator(".cc-source mark").inner_text() == "Futenma"
    count = box.locator("#concordance-count")
    assert count.get_attribute("role") == "status" and count.get_attribute("aria-live") == "polite"
    assert "1 translation memory entry" in count.inner_text() and "1 glossary term" in count.inner_text()
    term = box.locator("#concordance-terms li")
    assert term.locator(".cc-form").inner_text() == "普天間"
    assert term.locator(".cc-form-en mark").inner_text() == "Futenma"
    # Another query typed into the box; stored markup arrives as text.
    page.goto(f"/review/articles/{job_id}")  # type: ignore[attr-defined]
    page.locator("#concordance-open").click()  # type: ignore[attr-defined]
    with page.expect_response(lambda r: "/review/api/memory/search" in r.url):  # type: ignore[attr-defined]
        page.get_by_label("Word or phrase, English or Chinese").fill("closed")  # type: ignore[attr-defined]
    first = box.locator("#concordance-memory li").first
    first.wait_for()
    assert first.locator(".cc-target").inner_text() == "<img src=x onerror=alert(1)>普天间"
    assert first.locator(".cc-source").inner_text() == "Futenma <b>closed</b> & reopened."
    assert box.locator("img, b").count() == 0
    page.keyboard.press("Escape")  # type: ignore[attr-defined]
    assert box.is_hidden()
    page.context.close()  # type: ignore[attr-defined]
