"""Files through the HTTP service: XLIFF 2.0 export validated against the OASIS schemas and round
tripped through an edit, refused imports (another article, a changed source, XXE, billion laughs),
TMX, bilingual HTML and text exports, TBX glossaries, and the translation memory: an exact hit
skips the model (engine calls counted), fuzzy suggestions come ranked by score."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from lxml import etree

from models.engine import Engine
from service.config import Settings
from tests.conftest import LiveServer, serve, shared_file
from tests.worker_harness import RecordingEngine

XLIFF = "urn:oasis:names:tc:xliff:document:2.0"
GLS = "urn:oasis:names:tc:xliff:glossary:2.0"
MDA = "urn:oasis:names:tc:xliff:metadata:2.0"
NS = {"x": XLIFF, "gls": GLS}
HTML_ARTICLE = (
    "<h1>Abe and the alliance</h1>"
    '<p>Abe Shinzo met <a href="https://example.com/kerry?a=1&amp;b=2">John Kerry</a> in Tokyo. '
    "The SCC met on Thursday.</p>"
    "<p>A memo said &lt;script&gt;alert(1)&lt;/script&gt; twice.</p>"
)


@pytest.fixture
def recorded(engines: dict[str, Engine], tmp_path: Path) -> RecordingEngine:
    return RecordingEngine(engines["marian"], tmp_path / "decoded.log", 0.0)


@pytest.fixture
def live(tiny_dirs: dict[str, Path], recorded: RecordingEngine, tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        model=str(tiny_dirs["marian"]),
        device="cpu",
        database_url=f"sqlite:///{tmp_path / 'duiyi.db'}",
        job_poll_s=0.05,
        cache_size=0,  # so that a sentence not decoded again is the memory's doing, not the engine cache's
        redecode_loops=False,
    )
    with serve(settings, recorded) as server:  # type: ignore[arg-type]
        yield server


def translated(client: httpx.Client, body: dict) -> dict:
    job_id = client.post("/v1/articles", json=body).json()["id"]
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/articles/{job_id}").json())["status"] != "translated":
        assert job["status"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def segments(job: dict) -> list[dict]:
    return [s for b in job["document"]["blocks"] for s in b["segments"]]


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_file("xliff", name))))


def test_xliff_export_validates(live: LiveServer) -> None:
    job = translated(live.client, {"body": HTML_ARTICLE, "format": "html", "targets": ["zh-Hans", "zh-TW"]})
    r = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff", "variant": "zh-TW"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xliff+xml")
    doc = etree.fromstring(r.content)
    core = schema("xliff_core_2.0.xsd")
    assert core.validate(doc), core.error_log
    glossary = schema("glossary.xsd")
    entries = doc.findall(".//gls:glossary", NS)
    assert entries, "glossary hits should be in the Glossary module"
    for g in entries:
        assert glossary.validate(etree.ElementTree(g)), glossary.error_log
    assert doc.get("srcLang") == "en" and doc.get("trgLang") == "zh-TW"
    assert doc.find("x:file", NS).get("original") == f"duiyi:article/{job['id']}"
    # One unit per block, one segment per sentence; the link is an inline code, terms are marked.
    assert len(doc.findall(".//x:unit", NS)) == len(job["document"]["blocks"])
    assert len(doc.findall(".//x:segment", NS)) == len(segments(job))
    assert doc.findall(".//x:source//x:pc", NS)
    assert {d.text for d in doc.findall(".//x:originalData/x:data", NS)} >= {
        '<a href="https://example.com/kerry?a=1&amp;b=2">',
        "</a>",
    }
    assert doc.findall(".//x:source//x:mrk[@type='term']", NS)
    texts = "".join(doc.itertext())
    assert "<script>alert(1)</script>" in texts  # text, escaped in the file


def _edit_targets(data: bytes, texts: dict[str, str], state: str) -> bytes:
    doc = etree.fromstring(data)
    for seg in doc.findall(".//x:segment", NS):
        if seg.get("id") in texts:
            target = seg.find("x:target", NS)
            for child in list(target):
                target.remove(child)
            target.text = texts[seg.get("id")]
            seg.set("state", state)
            seg.attrib.pop("subState", None)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")


def test_xliff_round_trip(live: LiveServer) -> None:
    job = translated(
        live.client, {"body": "Abe Shinzo met John Kerry.\n\nTalks resume in May.", "targets": ["zh-Hans", "zh-TW"]}
    )
    segs = segments(job)
    exported = live.client.get(
        f"/v1/articles/{job['id']}/export", params={"format": "xliff", "variant": "zh-Hans"}
    ).content
    edits = {segs[0]["id"]: "安倍晋三会见了约翰·克里。", segs[1]["id"]: "会谈将于五月恢复。"}
    edited = _edit_targets(exported, edits, "final")
    r = live.client.post(
        f"/v1/articles/{job['id']}/import",
        params={"format": "xliff"},
        content=edited,
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["edited"]) == sorted(edits) and sorted(r.json()["approved"]) == sorted(edits)
    after = {s["id"]: s for s in segments(live.client.get(f"/v1/articles/{job['id']}").json())}
    for sid, text in edits.items():
        assert after[sid]["targets"]["zh-Hans"] == text
        assert after[sid]["origin"] == "human" and after[sid]["status"] == "approved"
    assert "約翰·凱瑞" in after[segs[0]["id"]]["targets"]["zh-TW"]  # regenerated from the import
    history = live.client.get(f"/v1/articles/{job['id']}/segments/{segs[0]['id']}/history").json()
    assert history[0]["after"] == edits[segs[0]["id"]] and history[0]["by"] == "local"
    assert history[-1]["status_after"] == "approved"
    # Importing the same file again changes nothing.
    again = live.client.post(
        f"/v1/articles/{job['id']}/import", content=edited, headers={"Content-Type": "application/xml"}
    )
    assert again.json()["edited"] == [] and again.json()["approved"] == []


def test_xliff_imports_refused(live: LiveServer) -> None:
    a = translated(live.client, {"body": "First story here.", "targets": ["zh-Hans"]})
    b = translated(live.client, {"body": "Second story there.", "targets": ["zh-Hans"]})
    for_a = live.client.get(f"/v1/articles/{a['id']}/export", params={"format": "xliff"}).content
    changed = for_a.replace(b"First story here.", b"First story, changed.")
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<xliff xmlns="urn:oasis:names:tc:xliff:document:2.0" version="2.0" srcLang="en">&xxe;</xliff>'
    )
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
        + b"]><l>&j;</l>"
    )
    cases = {
        "another article": (b["id"], for_a, "article"),
        "changed source": (a["id"], changed, "source"),
        "malformed": (a["id"], b"<xliff", "well-formed"),
        "xxe": (a["id"], xxe, "DTD"),
        "billion laughs": (a["id"], laughs, "DTD"),
    }
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for name, (job_id, data, words) in cases.items():
        started = time.monotonic()
        r = live.client.post(f"/v1/articles/{job_id}/import", content=data, headers={"Content-Type": "application/xml"})
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["code"] == "invalid_xliff"
        assert words.lower() in r.json()["error"]["message"].lower(), (name, r.json())
        assert passwd not in r.text
        assert time.monotonic() - started < 2, name
    unchanged = segments(live.client.get(f"/v1/articles/{a['id']}").json())
    assert all(s["version"] == 1 for s in unchanged)


def test_other_exports(live: LiveServer) -> None:
    job = translated(live.client, {"body": HTML_ARTICLE, "format": "html", "targets": ["zh-Hans", "zh-HK"]})
    html = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "html", "variant": "zh-HK"})
    assert html.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.text and "<script>alert" not in html.text
    text = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "text", "variant": "zh-HK"})
    assert text.text == job["document"]["full_text"]["zh-HK"]
    as_json = live.client.get(f"/v1/articles/{job['id']}/export").json()
    assert as_json["full_text"] == job["document"]["full_text"]
    bad = live.client.get(f"/v1/articles/{job['id']}/export", params={"variant": "zh-TW"})
    assert bad.status_code == 422 and bad.json()["error"]["valid"] == ["zh-Hans", "zh-HK"]
    queued = live.client.post("/v1/articles", json={"body": "Later."}).json()["id"]
    r = live.client.get(f"/v1/articles/{queued}/export")
    assert r.status_code in (200, 409)  # 409 while it is not translated yet


def test_memory_exact_hit_skips_the_model(live: LiveServer, recorded: RecordingEngine) -> None:
    sentence = "The harbour will reopen in May after repairs."
    first = translated(live.client, {"body": f"{sentence}\n\nWork began in 2012.", "targets": ["zh-Hans", "zh-TW"]})
    seg = next(s for s in segments(first) if s["source"] == sentence)
    live.client.patch(
        f"/v1/articles/{first['id']}/segments/{seg['id']}",
        json={"text": "港口将在维修后于五月重新开放。", "version": 1},
    )
    approved = live.client.post(f"/v1/articles/{first['id']}/segments/{seg['id']}/approve", json={"version": 2})
    assert approved.status_code == 200
    before = recorded.log.read_text().count("harbour")
    # The same sentence (spaced differently) in a new article comes from memory; the model is not asked.
    second = translated(
        live.client,
        {"body": "The  harbour will reopen   in May after repairs. \n\nA new one.", "targets": ["zh-Hans", "zh-TW"]},
    )
    hit = segments(second)[0]
    assert hit["origin"] == "tm"
    assert hit["targets"]["zh-Hans"] == "港口将在维修后于五月重新开放。"
    assert hit["targets"]["zh-TW"] == "港口將在維修後於五月重新開放。"
    assert recorded.log.read_text().count("harbour") == before
    assert "A new one." in recorded.log.read_text()


def test_fuzzy_suggestions_ranked(live: LiveServer) -> None:
    tmx = b"""<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="t" creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en"
 srclang="en" datatype="plaintext"/><body>
<tu><tuv xml:lang="en"><seg>The harbour will reopen in June after repairs.</seg></tuv>
<tuv xml:lang="zh-CN"><seg>A</seg></tuv></tu>
<tu><tuv xml:lang="en"><seg>The harbour will reopen in June.</seg></tuv><tuv xml:lang="zh-CN"><seg>B</seg></tuv></tu>
<tu><tuv xml:lang="en"><seg>Officials closed the airport.</seg></tuv><tuv xml:lang="zh-CN"><seg>C</seg></tuv></tu>
</body></tmx>"""
    r = live.client.post("/v1/memory/import", content=tmx, headers={"Content-Type": "application/xml"})
    assert r.json() == {"entries": 3, "duplicates": 0}
    job = translated(live.client, {"body": "The harbour will reopen in May after repairs.", "targets": ["zh-Hans"]})
    sid = segments(job)[0]["id"]
    found = live.client.get(f"/v1/articles/{job['id']}/segments/{sid}/suggestions").json()
    assert [s["target"] for s in found] == ["A", "B"]  # C is not similar enough
    assert found[0]["score"] > found[1]["score"] >= 75
    assert ("delete", "June") in [tuple(d) for d in found[0]["diff"]] and ("insert", "May") in [
        tuple(d) for d in found[0]["diff"]
    ]
    exported = live.client.get("/v1/memory/export", params={"variant": "zh-Hans"})
    assert exported.text.count("<tu ") == 3
    bad = live.client.post("/v1/memory/import", content=b"<nope/>", headers={"Content-Type": "application/xml"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_tmx"


def test_tmx_export_of_approved_segments(live: LiveServer) -> None:
    job = translated(live.client, {"body": "One sentence.\n\nTwo sentences.", "targets": ["zh-Hans", "zh-TW"]})
    # Approved by a person (an approval override alone would leave them out, as the memory does).
    for seg in (s for b in job["document"]["blocks"] for s in b["segments"]):
        url = f"/v1/articles/{job['id']}/segments/{seg['id']}/approve"
        assert live.client.post(url, json={"version": seg["version"]}).status_code == 200
    live.client.post(f"/v1/articles/{job['id']}/approve", json={})
    tmx = etree.fromstring(
        live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "tmx", "variant": "zh-TW"}).content
    )
    tus = tmx.findall(".//tu")
    assert len(tus) == 2
    langs = {t.get("{http://www.w3.org/XML/1998/namespace}lang") for tu in tus for t in tu.findall("tuv")}
    assert langs == {"en", "zh-TW"}


def test_glossary_tbx_through_the_api(live: LiveServer) -> None:
    tbx = live.client.get("/v1/glossaries/news/export", params={"format": "tbx"})
    assert tbx.headers["content-type"].startswith("application/x-tbx+xml")
    r = live.client.put("/v1/glossaries/copy", content=tbx.content, headers={"Content-Type": "application/x-tbx+xml"})
    assert r.status_code == 201, r.text
    assert (
        live.client.get("/v1/glossaries/copy").json()["terms"] == live.client.get("/v1/glossaries/news").json()["terms"]
    )
    xxe = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><tbx>&e;</tbx>'
    assert (
        live.client.put("/v1/glossaries/evil", content=xxe, headers={"Content-Type": "application/xml"}).status_code
        == 422
    )


def test_markup_the_source_lacks_is_refused(live: LiveServer) -> None:
    job = translated(live.client, {"body": HTML_ARTICLE, "format": "html", "targets": ["zh-Hans"]})
    linked = next(s for s in segments(job) if "Kerry" in s["source"])
    url = f"/v1/articles/{job['id']}/segments/{linked['id']}"
    evil = live.client.patch(
        url, json={"text": "安倍会见了<script>alert(1)</script>克里。", "version": linked["version"]}
    )
    assert evil.status_code == 422 and evil.json()["error"]["code"] == "markup_not_allowed"
    own = '安倍会见了<a href="https://example.com/kerry?a=1&amp;b=2">克里</a>。'
    assert live.client.patch(url, json={"text": own, "version": linked["version"]}).status_code == 200
    # The same through an XLIFF file whose originalData was tampered with.
    exported = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    tampered = exported.replace(b"&lt;/a&gt;</data>", b"&lt;/a&gt;&lt;img src=x onerror=alert(1)&gt;</data>")
    assert tampered != exported
    r = live.client.post(
        f"/v1/articles/{job['id']}/import", content=tampered, headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == 422 and "onerror" in r.json()["error"]["message"]


def _approve(client: httpx.Client, job: dict, seg: dict, variant: str, text: str) -> dict:
    url = f"/v1/articles/{job['id']}/segments/{seg['id']}"
    edited = client.patch(url, json={"variant": variant, "text": text, "version": seg["version"]})
    assert edited.status_code == 200, edited.text
    approved = client.post(f"{url}/approve", json={"version": edited.json()["version"]})
    assert approved.status_code == 200, approved.text
    return approved.json()


def test_the_memory_holds_plain_text_whatever_the_format(live: LiveServer) -> None:
    """An HTML article's targets are HTML; the memory (and TMX) hold plain text, and a hit is
    escaped again for an HTML article: stored text never becomes markup in a page."""
    sentence = "The ministers & their aides met at noon."
    job = translated(live.client, {"body": "<p>The ministers &amp; their aides met at noon.</p>", "format": "html"})
    seg = segments(job)[0]
    assert seg["source"] == sentence
    _approve(live.client, job, seg, "zh-Hans", "部长们&amp;助手们中午会面。")
    tmx = live.client.get("/v1/memory/export", params={"variant": "zh-Hans"}).content
    assert [s.text for s in etree.fromstring(tmx).iter("seg")] == [sentence, "部长们&助手们中午会面。"]
    as_text = translated(live.client, {"body": sentence, "targets": ["zh-Hans"]})
    assert segments(as_text)[0]["origin"] == "tm"
    assert segments(as_text)[0]["targets"]["zh-Hans"] == "部长们&助手们中午会面。"
    as_html = translated(live.client, {"body": f"<p>{sentence.replace('&', '&amp;')}</p>", "format": "html"})
    assert segments(as_html)[0]["targets"]["zh-Hans"] == "部长们&amp;助手们中午会面。"
    article_tmx = live.client.get(
        f"/v1/articles/{job['id']}/export", params={"format": "tmx", "variant": "zh-Hans"}
    ).content
    assert [s.text for s in etree.fromstring(article_tmx).iter("seg")] == [sentence, "部长们&助手们中午会面。"]
    # A stored translation that looks like markup (imported, or from a text article) stays text.
    tmx = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="t" creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en"
 srclang="en" datatype="plaintext"/><body>
<tu><tuv xml:lang="en"><seg>The memo was short.</seg></tuv>
<tuv xml:lang="zh-CN"><seg>&lt;script&gt;alert(1)&lt;/script&gt;备忘录很短。</seg></tuv></tu></body></tmx>""".encode()
    assert live.client.post("/v1/memory/import", content=tmx, headers={"Content-Type": "application/xml"}).is_success
    page = translated(live.client, {"body": "<p>The memo was short.</p>", "format": "html", "targets": ["zh-Hans"]})
    assert segments(page)[0]["origin"] == "tm"
    assert page["document"]["full_text"]["zh-Hans"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;备忘录很短。</p>"


def test_an_edit_reaches_the_other_variants_without_zh_hans(live: LiveServer) -> None:
    """An article for Taiwan and generic Traditional only: editing zh-TW regenerates zh-Hant from the
    edit (through zh-Hans, each term in its own form), not from a zh-Hans the article lacks."""
    job = translated(live.client, {"body": "Kerry met 3 people.", "targets": ["zh-Hant", "zh-TW"]})
    seg = segments(job)[0]
    r = live.client.patch(
        f"/v1/articles/{job['id']}/segments/{seg['id']}",
        json={"variant": "zh-TW", "text": "凱瑞會見了3個人。", "version": seg["version"]},
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["targets"] == {"zh-Hant": "克里會見了3個人。", "zh-TW": "凱瑞會見了3個人。"}
    assert after["flags"] == []
    assert "zh-Hans" not in after["targets"]


def test_a_term_is_put_in_only_where_it_stands(live: LiveServer) -> None:
    """克里 (Kerry) also begins 克里姆林宫 (the Kremlin): regenerating zh-TW from a zh-Hans edit
    replaces the term where it stands, not inside the other word."""
    job = translated(live.client, {"body": "Kerry flew to Moscow.", "targets": ["zh-Hans", "zh-TW"]})
    seg = segments(job)[0]
    r = live.client.patch(
        f"/v1/articles/{job['id']}/segments/{seg['id']}",
        json={"text": "克里飞往莫斯科，在克里姆林宫开会。", "version": seg["version"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["targets"]["zh-TW"] == "凱瑞飛往莫斯科，在克里姆林宮開會。"


def test_a_memory_hit_takes_regional_terms_without_zh_hans(live: LiveServer) -> None:
    """A hit goes into an article for Taiwan only: its terms take the glossary's Taiwan forms."""
    sentence = "Putin spoke for an hour."
    first = translated(live.client, {"body": sentence, "targets": ["zh-Hans"]})
    _approve(live.client, first, segments(first)[0], "zh-Hans", "普京讲了一个小时。")
    second = translated(live.client, {"body": sentence, "targets": ["zh-TW"]})
    hit = segments(second)[0]
    assert hit["origin"] == "tm"
    assert hit["targets"] == {"zh-TW": "普丁講了一個小時。"} and hit["flags"] == []


LINKED_HTML = '<p>Smith said <a href="https://example.com/?a=1&amp;b=2">yes &amp; no</a> to the plan.</p>'
LINKED_TARGET = '史密斯对计划说<a href="https://example.com/?a=1&amp;b=2">是&amp;否</a>。'


def test_xliff_of_an_html_article_holds_text_as_text(live: LiveServer) -> None:
    """An HTML article's targets are HTML; in the XLIFF file they are text with the source's tags as
    inline codes, as its sources are: `&` is `&` (not `&amp;amp;`), and text imported back is
    escaped again while its codes become the source's tags."""
    job = translated(live.client, {"body": LINKED_HTML, "format": "html", "targets": ["zh-Hans"]})
    seg = segments(job)[0]
    url = f"/v1/articles/{job['id']}/segments/{seg['id']}"
    assert live.client.patch(url, json={"text": LINKED_TARGET, "version": seg["version"]}).status_code == 200
    exported = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    doc = etree.fromstring(exported)
    target = doc.find(f".//x:segment[@id='{seg['id']}']/x:target", NS)
    assert "".join(target.itertext()) == "史密斯对计划说是&否。"
    code = target.find("x:pc", NS)
    assert code is not None and "".join(code.itertext()) == "是&否"
    assert code.get("dataRefStart") == doc.find(f".//x:segment[@id='{seg['id']}']/x:source/x:pc", NS).get(
        "dataRefStart"
    )
    # Imported unchanged, the file changes nothing.
    same = live.client.post(f"/v1/articles/{job['id']}/import", content=exported)
    assert same.status_code == 200 and same.json()["edited"] == [], same.text
    # Text that looks like markup is text: escaped into the page, not refused as a tag.
    target.text = "史密斯说a<b，"
    code.text = "<b>是</b>&否"
    code.tail = "。"
    r = live.client.post(
        f"/v1/articles/{job['id']}/import", content=etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
    )
    assert r.status_code == 200 and r.json()["edited"] == [seg["id"]], r.text
    after = segments(live.client.get(f"/v1/articles/{job['id']}").json())[0]
    assert after["targets"]["zh-Hans"] == (
        '史密斯说a&lt;b，<a href="https://example.com/?a=1&amp;b=2">&lt;b&gt;是&lt;/b&gt;&amp;否</a>。'
    )


MARKDOWN_ARTICLE = "Read [the report](https://example.com/r) today. It is long.\n\n- A list item."


def test_markdown_targets_may_not_bring_new_markup(live: LiveServer) -> None:
    job = translated(live.client, {"body": MARKDOWN_ARTICLE, "format": "markdown", "targets": ["zh-Hans"]})
    linked, plain, item = segments(job)
    refused = {
        linked["id"]: [
            "阅读 [点击](javascript:alert(1)) 报告。",
            "阅读![img](http://evil/x.png)[报告](https://example.com/r)。",
            "阅读<https://evil.example/>报告。",
            "阅读<b>报告</b>。",
        ],
        plain["id"]: [
            "结束\n\n# 新标题\n\n- 新列表",
            "很长。\n# 新标题",
            "# 新标题",
            "很长。\n> 引文",
            "很长。\n- 新列表",
            "很长。\n* 新列表",
            "很长。\n+ 新列表",
            "很长。\n1. 新列表",
            "很长。\n```\n代码\n```",
            "很长。\n---",
            "[x]: https://evil.example/",
            "*很*长。",
            "很__长__。",
            "很~~长~~。",
        ],
        item["id"]: ["一项。\n\n新段落"],
    }
    for sid, texts in refused.items():
        for text in texts:
            r = live.client.patch(f"/v1/articles/{job['id']}/segments/{sid}", json={"text": text, "version": 1})
            assert r.status_code == 422, (text, r.text)
            assert r.json()["error"]["code"] == "markup_not_allowed", (text, r.json())
    message = live.client.patch(
        f"/v1/articles/{job['id']}/segments/{plain['id']}", json={"text": "*很*长。", "version": 1}
    ).json()["error"]["message"]
    assert "＊" in message  # the translator is told what to write instead
    struck = live.client.patch(
        f"/v1/articles/{job['id']}/segments/{plain['id']}", json={"text": "很~~长~~。", "version": 1}
    ).json()["error"]["message"]
    assert "strikethrough" in struck and "～" in struck
    # The source's own link, and `*`, `_` and `#` that cannot be Markdown, are fine.
    fine = {
        linked["id"]: "阅读[报告](https://example.com/r)。",
        plain["id"]: "它很长 * 2，snake_case 和 C# 及 \\*星号\\*，3~5 天。",
        item["id"]: "一项：＊重要＊。",
    }
    for sid, text in fine.items():
        r = live.client.patch(f"/v1/articles/{job['id']}/segments/{sid}", json={"text": text, "version": 1})
        assert r.status_code == 200, (text, r.text)
    exported = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "text"}).text
    assert exported == (
        "阅读[报告](https://example.com/r)。它很长 * 2，snake_case 和 C# 及 \\*星号\\*，3~5 天。"
        "\n\n- 一项：＊重要＊。\n"
    )


def test_xliff_of_html_with_images_and_code_round_trips(live: LiveServer) -> None:
    """An image between two sentences is in the one before it, and code keeps its tag: both are
    inline codes in the file, which imports back unchanged and validates."""
    body = '<p>See the <code>a&lt;b</code> map.<img src="m.png" alt=""> It is big &amp; new.</p>'
    job = translated(live.client, {"body": body, "format": "html", "targets": ["zh-Hans"]})
    first, _ = segments(job)
    assert "<img" in first["targets"]["zh-Hans"] and "<code>a&lt;b</code>" in first["targets"]["zh-Hans"]
    exported = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    doc = etree.fromstring(exported)
    core = schema("xliff_core_2.0.xsd")
    assert core.validate(doc), core.error_log
    target = doc.find(f".//x:segment[@id='{first['id']}']/x:target", NS)
    shown = "".join(target.itertext())
    assert "<img" not in shown and "<code>" not in shown and "a<b" in shown
    r = live.client.post(f"/v1/articles/{job['id']}/import", content=exported)
    assert r.status_code == 200 and r.json()["edited"] == [], r.text
    # A translator's edit that keeps the image is the source's own markup.
    url = f"/v1/articles/{job['id']}/segments/{first['id']}"
    r = live.client.patch(url, json={"text": first["targets"]["zh-Hans"] + "！", "version": first["version"]})
    assert r.status_code == 200, r.text


def test_markdown_text_stays_text_through_the_memory_and_files(live: LiveServer) -> None:
    """A Markdown article's targets are Markdown: the memory and TMX hold their text unescaped, a
    hit is escaped again for a Markdown article (a leading # is no heading, *word* no emphasis), and
    the article's XLIFF file, which holds its Markdown, imports back unchanged."""
    body = "Use the \\*star\\* key. It <span>works</span>."
    job = translated(live.client, {"body": body, "format": "markdown", "targets": ["zh-Hans"]})
    first, second = segments(job)
    assert first["source"] == "Use the *star* key." and second["source"] == "It works."
    assert "<span>" in second["targets"]["zh-Hans"] and "</span>" in second["targets"]["zh-Hans"]
    _approve(live.client, job, first, "zh-Hans", "使用\\*星\\*键。")
    tmx = live.client.get("/v1/memory/export", params={"variant": "zh-Hans"}).content
    assert [s.text for s in etree.fromstring(tmx).iter("seg")] == ["Use the *star* key.", "使用*星*键。"]
    exported = live.client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    doc = etree.fromstring(exported)
    assert schema("xliff_core_2.0.xsd").validate(doc)
    target = doc.find(f".//x:segment[@id='{second['id']}']/x:target", NS)
    assert "<span>" not in "".join(target.itertext()) and len(target.findall(".//x:pc", NS)) == 2  # tags are codes
    r = live.client.post(f"/v1/articles/{job['id']}/import", content=exported)
    assert r.status_code == 200 and r.json()["edited"] == [], r.text
    tmx = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="t" creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en"
 srclang="en" datatype="plaintext"/><body>
<tu><tuv xml:lang="en"><seg>The movement grew.</seg></tuv><tuv xml:lang="zh-CN"><seg>#MeToo运动壮大了。</seg></tuv></tu>
</body></tmx>""".encode()
    assert live.client.post("/v1/memory/import", content=tmx, headers={"Content-Type": "application/xml"}).is_success
    body = "The movement grew.\n\nUse the \\*star\\* key."
    again = translated(live.client, {"body": body, "format": "markdown", "targets": ["zh-Hans"]})
    assert [s["origin"] for s in segments(again)] == ["tm", "tm"]
    full = again["document"]["full_text"]["zh-Hans"]
    assert full == "\\#MeToo运动壮大了。\n\n使用\\*星\\*键。\n"
    as_text = translated(live.client, {"body": "The movement grew.", "targets": ["zh-Hans"]})
    assert segments(as_text)[0]["targets"]["zh-Hans"] == "#MeToo运动壮大了。"


# Imports that are refused, or meet a concurrent edit, apply nothing -----------------------------

TWO_SENTENCES = "The harbour reopened on Monday. Trade rose sharply."


@pytest.fixture
def live_db(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[LiveServer]:
    """The service on SQLite and on PostgreSQL (which refuses NUL in text, where SQLite stores it)."""
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as server:
        yield server


def _import_xliff(client: httpx.Client, job: dict, data: bytes, *, overwrite: bool = False) -> httpx.Response:
    return client.post(
        f"/v1/articles/{job['id']}/import",
        params={"overwrite": "true"} if overwrite else {},
        content=data,
        headers={"Content-Type": "application/xml"},
    )


def _with_code_point(data: bytes, segment_id: str, hex_value: str) -> bytes:
    doc = etree.fromstring(data)
    target = doc.find(f".//x:segment[@id='{segment_id}']/x:target", NS)
    etree.SubElement(target, f"{{{XLIFF}}}cp", hex=hex_value)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")


def _stored(client: httpx.Client, job: dict) -> list[tuple[str, int, str, dict]]:
    return [
        (s["id"], s["version"], s["status"], s["targets"])
        for s in segments(client.get(f"/v1/articles/{job['id']}").json())
    ]


@pytest.mark.parametrize("hex_value", ["D800", "0"])
def test_an_xliff_with_a_code_point_that_cannot_be_stored_applies_nothing(live_db: LiveServer, hex_value: str) -> None:
    """The first segment's new target comes before the second's <cp> of a lone surrogate (which no
    database, nor UTF-8, can hold) or of NUL (which PostgreSQL cannot): 422 naming the segment, and
    the first segment is not edited either."""
    client = live_db.client
    job = translated(client, {"body": TWO_SENTENCES, "targets": ["zh-Hans"]})
    first, second = segments(job)[:2]
    before = _stored(client, job)
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    edited = _edit_targets(exported, {first["id"]: "港口周一重新开放。"}, "final")
    r = _import_xliff(client, job, _with_code_point(edited, second["id"], hex_value))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_xliff"
    assert f"segment {second['id']}" in error["message"] and f"hex='{hex_value}'" in error["message"]
    assert _stored(client, job) == before
    assert client.get(f"/v1/articles/{job['id']}/segments/{first['id']}/history").json() == []
    assert client.get(f"/v1/articles/{job['id']}").json()["status"] == "translated"


def test_an_edit_saved_while_an_import_is_stored_is_a_conflict_and_nothing_is_applied(live_db: LiveServer) -> None:
    """A translator saves the second segment in the review view just as the import starts storing
    the file's changes (its transaction's first statement, which holds the article, before it runs):
    the import answers 409 with the translator's segment, and the file's first change is not stored
    either. Imported again, the file applies. (Once the import holds the article, an edit waits for
    it to finish instead: `articles.hold_job`.)"""
    client = live_db.client
    job = translated(client, {"body": TWO_SENTENCES, "targets": ["zh-Hans"]})
    first, second = segments(job)[:2]
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    texts = {first["id"]: "港口周一重新开放。", second["id"]: "贸易大幅增长。"}
    data = _edit_targets(exported, texts, "final")
    theirs = "另一位译者的译文。"
    started = threading.Event()
    patched: list[httpx.Response] = []

    def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if started.is_set() or not statement.lstrip().upper().startswith("UPDATE JOBS"):
            return
        started.set()  # the PATCH's own UPDATEs come through here too
        url = f"{live_db.url}/v1/articles/{job['id']}/segments/{second['id']}"
        body = {"variant": "zh-Hans", "text": theirs, "version": second["version"]}
        patched.append(httpx.patch(url, json=body, timeout=60))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", meanwhile)
    try:
        r = _import_xliff(client, job, data)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", meanwhile)
    assert [p.status_code for p in patched] == [200], [p.text for p in patched]
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "version_conflict" and "nothing of the file was applied" in error["message"]
    assert error["current"]["id"] == second["id"] and error["current"]["targets"]["zh-Hans"] == theirs
    stored = {sid: (version, status, targets) for sid, version, status, targets in _stored(client, job)}
    assert stored[first["id"]] == (first["version"], first["status"], first["targets"])
    assert stored[second["id"]][0] == second["version"] + 1 and stored[second["id"]][2]["zh-Hans"] == theirs
    assert client.get(f"/v1/articles/{job['id']}/segments/{first['id']}/history").json() == []
    # Imported again, the file names the translator's segment as changed since the export; with
    # overwrite=true it applies over it.
    again = _import_xliff(client, job, data)
    assert again.status_code == 409 and again.json()["error"]["code"] == "edited_since_export", again.text
    assert [c["current"]["id"] for c in again.json()["error"]["segments"]] == [second["id"]]
    again = _import_xliff(client, job, data, overwrite=True)
    assert again.status_code == 200, again.text
    assert sorted(again.json()["edited"]) == sorted(texts) and sorted(again.json()["approved"]) == sorted(texts)
    after = {s["id"]: s for s in segments(client.get(f"/v1/articles/{job['id']}").json())}
    assert {sid: after[sid]["targets"]["zh-Hans"] for sid in texts} == texts
    assert all(after[sid]["status"] == "approved" for sid in texts)


THREE_SENTENCES = "The harbour reopened on Monday. Trade rose sharply. Exports doubled."


def _edit(client: httpx.Client, job: dict, seg: dict, text: str) -> dict:
    url = f"/v1/articles/{job['id']}/segments/{seg['id']}"
    r = client.patch(url, json={"variant": "zh-Hans", "text": text, "version": seg["version"]})
    assert r.status_code == 200, r.text
    return r.json()


def _by_id(client: httpx.Client, job: dict) -> dict[str, dict]:
    return {s["id"]: s for s in segments(client.get(f"/v1/articles/{job['id']}").json())}


def test_an_xliff_import_keeps_edits_made_in_duiyi_since_the_export(live: LiveServer) -> None:
    """A translator exports the article for a CAT tool; meanwhile a reviewer fixes the second
    sentence in the review view. The file comes back with the first sentence edited and the second
    as exported: the first is applied, the reviewer's fix stays (the file's stale text went over it)."""
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans", "zh-TW"]})
    first, second, _ = segments(job)
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    fixed = _edit(client, job, second, "贸易大幅增长。")
    data = _edit_targets(exported, {first["id"]: "港口周一重新开放。"}, "translated")
    r = _import_xliff(client, job, data)
    assert r.status_code == 200, r.text
    assert r.json()["edited"] == [first["id"]] and second["id"] in r.json()["unchanged"]
    after = _by_id(client, job)
    assert after[first["id"]]["targets"]["zh-Hans"] == "港口周一重新开放。"
    assert after[second["id"]]["targets"] == fixed["targets"] and after[second["id"]]["version"] == fixed["version"]


def test_an_xliff_import_over_newer_edits_is_a_conflict_unless_overwrite(live: LiveServer) -> None:
    """The file changes a sentence that was also changed in duiyi since the export: 409
    edited_since_export with the stored segment and the file's text, nothing applied (not even
    the file's other, unconflicting edit). overwrite=true applies the file; the reviewer's text
    stays in the segment's history."""
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans"]})
    first, second, _ = segments(job)
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    theirs = _edit(client, job, second, "贸易大幅增长。")
    mine = {first["id"]: "港口周一重新开放。", second["id"]: "贸易急剧上升。"}
    data = _edit_targets(exported, mine, "final")
    before = _stored(client, job)
    r = _import_xliff(client, job, data)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "edited_since_export" and "overwrite=true" in error["message"]
    assert [(c["current"]["id"], c["current"]["targets"]["zh-Hans"], c["file_target"]) for c in error["segments"]] == [
        (second["id"], theirs["targets"]["zh-Hans"], mine[second["id"]])
    ]
    assert _stored(client, job) == before
    r = _import_xliff(client, job, data, overwrite=True)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["edited"]) == sorted(mine) and sorted(r.json()["approved"]) == sorted(mine)
    after = _by_id(client, job)
    assert {sid: after[sid]["targets"]["zh-Hans"] for sid in mine} == mine
    history = client.get(f"/v1/articles/{job['id']}/segments/{second['id']}/history").json()
    assert theirs["targets"]["zh-Hans"] in {h["before"] for h in history}


def test_an_xliff_import_approves_only_what_the_translator_saw(live: LiveServer) -> None:
    """Segment one was approved when exported, then reopened and changed in duiyi: the file's
    untouched final state does not approve the newer text. Segment two, changed in duiyi since,
    is set to final in the file without an edit: that would approve text the translator never saw,
    so the import is a conflict. Segment three, unchanged in duiyi, set to final: approved."""
    client = live.client
    job = translated(client, {"body": THREE_SENTENCES, "targets": ["zh-Hans"]})
    first, second, third = segments(job)
    first = _approve(client, job, first, "zh-Hans", "港口周一重新开放。")
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    reopened = _edit(client, job, first, "港口于周一重新开放。")
    assert reopened["status"] != "approved"
    changed = _edit(client, job, second, "贸易大幅增长。")

    def finals(*sids: str) -> bytes:
        doc = etree.fromstring(exported)
        for sid in sids:
            doc.find(f".//x:segment[@id='{sid}']", NS).set("state", "final")
        return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")

    r = _import_xliff(client, job, finals(third["id"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"edited": [], "approved": [third["id"]], "unchanged": [first["id"], second["id"]]}
    after = _by_id(client, job)
    assert after[first["id"]]["status"] == reopened["status"] and after[first["id"]]["version"] == reopened["version"]
    assert after[second["id"]]["version"] == changed["version"]
    r = _import_xliff(client, job, finals(second["id"]))
    assert r.status_code == 409 and [c["current"]["id"] for c in r.json()["error"]["segments"]] == [second["id"]]


def test_an_xliff_file_without_its_export_record_is_taken_as_it_is(live: LiveServer) -> None:
    """A file exported before duiyi recorded the export (or from a tool that drops the Metadata
    module) has nothing to compare with: every target that differs from the stored one is an edit,
    as before. A damaged record is refused (422), since it cannot be compared either."""
    client = live.client
    job = translated(client, {"body": TWO_SENTENCES, "targets": ["zh-Hans"]})
    second = segments(job)[1]
    exported = client.get(f"/v1/articles/{job['id']}/export", params={"format": "xliff"}).content
    doc = etree.fromstring(exported)
    records = doc.findall(".//mda:metadata", {"mda": MDA})
    assert len(records) == len(doc.findall(".//x:unit", NS))
    damaged = etree.fromstring(exported)
    damaged.find(".//mda:meta[@type='target-sha256']", {"mda": MDA}).text = "not a digest"
    r = _import_xliff(client, job, etree.tostring(damaged))
    assert r.status_code == 422 and "export record" in r.json()["error"]["message"], r.text
    for record in records:
        record.getparent().remove(record)
    _edit(client, job, second, "贸易大幅增长。")
    r = _import_xliff(client, job, etree.tostring(doc))
    assert r.status_code == 200, r.text
    assert r.json()["edited"] == [second["id"]]
    assert _by_id(client, job)[second["id"]]["targets"]["zh-Hans"] == second["targets"]["zh-Hans"]


def test_tmx_import_counts_what_it_stored(live: LiveServer) -> None:
    """The same English sentence three times for zh-CN (once with other white space) is one entry,
    the last translation; the answer says so, and how many were merged into it."""
    tu = '<tu><tuv xml:lang="en"><seg>{}</seg></tuv><tuv xml:lang="zh-CN"><seg>{}</seg></tuv></tu>'
    body = (
        tu.format("Prices rose again.", "一")
        + tu.format("Prices  rose again.", "二")
        + tu.format("Prices rose again.", "三")
        + tu.format("Rates fell.", "利率下降。")
    )
    tmx = (
        '<?xml version="1.0" encoding="UTF-8"?><tmx version="1.4"><header srclang="en" creationtool="t" '
        'creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en" datatype="plaintext"/>'
        f"<body>{body}</body></tmx>"
    ).encode()
    r = live.client.post("/v1/memory/import", content=tmx, headers={"Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"entries": 2, "duplicates": 2}
    exported = etree.fromstring(live.client.get("/v1/memory/export", params={"variant": "zh-Hans"}).content)
    assert len(exported.findall(".//tu")) == 2
    assert [t for t in exported.xpath(".//tuv[@xml:lang='zh-Hans']/seg/text()")] == ["三", "利率下降。"]


@pytest.mark.parametrize(
    ("csv_text", "fragments"),
    [
        # csv's own field limit (128 KiB) was a 500.
        ("id,en,zh-Hans,note\nt1,Foo,福," + "n" * 200_000 + "\n", ("row 2", "131,072 characters")),
        # An unquoted comma: the note's second half would have been lost.
        (
            "id,en,zh-Hans,note\nt1,Obama,奥巴马,former president, of the USA\n",
            ("row 2", "column 5 (E)", "of the USA"),
        ),
        # Only the second zh-Hans was kept.
        ("id,en,zh-Hans,zh-Hans\nt1,Foo,福,吧\n", ("'zh-Hans'", "columns 3 (C) and 4 (D)")),
        # The open quote took the next row into t1's note.
        ('id,en,zh-Hans,note\nt1,Foo,福,"a note\nt2,Bar,吧,x\n', ("row 2", "quote left open")),
        ('id,en,zh-Hans,note\nt1,Foo,福,"a note\nt2,Bar,吧,12"\nt3,Baz,巴,z\n', ("row 2", "quote left open")),
        ("id,en,zh-Hans,case\nt1,Foo,福,maybe\n", ("row 2: case must be",)),
    ],
    ids=["huge field", "extra field", "repeated column", "open quote", "open quote closed later", "bad case"],
)
def test_glossary_csv_that_would_lose_data_is_refused(live: LiveServer, csv_text: str, fragments: tuple) -> None:
    csv = {"Content-Type": "text/csv"}
    put = live.client.put("/v1/glossaries/desk", content="id,en,zh-Hans\nt0,Desk,编辑部\n".encode(), headers=csv)
    assert put.status_code == 201, put.text
    r = live.client.put("/v1/glossaries/desk", content=csv_text.encode(), headers=csv)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_glossary"
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    assert "row 2: row 2" not in error["message"]
    assert [t["id"] for t in live.client.get("/v1/glossaries/desk").json()["terms"]] == ["t0"]


def test_a_markdown_autolink_may_stay_in_an_edit(live: LiveServer) -> None:
    """The source's own autolink is its markup: an edit keeps it; another address in angle brackets
    is new markup."""
    job = translated(live.client, {"body": "Write to <desk@example.org> today.", "format": "markdown"})
    (seg,) = segments(job)
    assert "<desk@example.org>" in seg["targets"]["zh-Hans"]
    url = f"/v1/articles/{job['id']}/segments/{seg['id']}"
    refused = live.client.patch(url, json={"text": "今天写信给<https://evil.example/>。", "version": 1})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "markup_not_allowed"
    kept = live.client.patch(url, json={"text": "今天写信给<desk@example.org>。", "version": 1})
    assert kept.status_code == 200, kept.text
