"""TMX 1.4b export and import: round trips, files as CAT tools write them, and hostile input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from service.interchange import safexml
from service.interchange.tmx import XML_LANG, TMEntry, TMXError, export_tmx, import_tmx, variant_for_tag

SUMMIT = "Abe met Kerry & Hagel <script>alert(1)</script> in Tokyo."
T1 = datetime(2013, 10, 3, 9, 15, 0, tzinfo=UTC)
T2 = datetime(2013, 10, 4, 18, 0, 30, tzinfo=UTC)


def _tmx(body: str, *, srclang: str = "en-US", version: str = "1.4") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<tmx version="{version}">'
        f'<header creationtool="SDL Language Platform" creationtoolversion="8.0" o-tmf="SDL TM8 Format"'
        f' datatype="xml" segtype="sentence" adminlang="en-US" srclang="{srclang}"/>'
        f"<body>{body}</body></tmx>"
    ).encode()


def test_round_trip_groups_variants_and_escapes() -> None:
    entries = [
        TMEntry(
            SUMMIT, "zh-Hans", "安倍会见了克里和哈格尔 <script>alert(1)</script> & 东京。", T1, "article 17 / seg 3"
        ),
        TMEntry(SUMMIT, "zh-TW", "安倍會見了凱瑞和哈格爾 <script>alert(1)</script> & 東京。", T2, "article 17 / seg 3"),
        TMEntry("Okinawa hosts Futenma.", "zh-HK", "沖繩設有普天間。", None, ""),
        TMEntry(SUMMIT, "zh-Hant", "安倍會見了克里和哈格爾。", T1, "article 17 / seg 3"),
        TMEntry("Okinawa hosts Futenma.", "zh-Hans", "冲绳设有普天间。", None, ""),
    ]
    data = export_tmx(entries, tool_version="9.9")

    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b"<script>" not in data
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in data
    assert b"&amp; Hagel" in data

    root = safexml.parse(data)
    assert root.tag == "tmx" and root.get("version") == "1.4"
    header = root.find("header")
    assert header is not None
    assert dict(header.attrib) == {
        "creationtool": "duiyi",
        "creationtoolversion": "9.9",
        "segtype": "sentence",
        "o-tmf": "duiyi",
        "adminlang": "en",
        "srclang": "en",
        "datatype": "plaintext",
    }
    tus = root.findall("body/tu")
    assert len(tus) == 2  # one per source sentence
    assert [[tuv.get(XML_LANG) for tuv in tu.findall("tuv")] for tu in tus] == [
        ["en", "zh-Hans", "zh-Hant", "zh-TW"],  # English first, then the variants in duiyi's order
        ["en", "zh-Hans", "zh-HK"],
    ]
    assert tus[0].get("creationdate") == "20131004T180030Z"  # the newest of its translations
    assert tus[0].findtext("note") == "article 17 / seg 3"
    assert tus[1].get("creationdate") is None
    assert len({tu.get("tuid") for tu in tus}) == 2

    # Grouped by source, variants in order; nothing lost or changed.
    expected = [entries[0], entries[3], entries[1], entries[4], entries[2]]
    assert import_tmx(data) == expected


def test_tuids_are_stable_across_exports() -> None:
    entries = [TMEntry("Xi met Obama.", "zh-Hans", "习近平会见了奥巴马。")]
    first = safexml.parse(export_tmx(entries)).find("body/tu")
    again = safexml.parse(export_tmx([TMEntry("Other.", "zh-Hans", "其他。"), *entries])).findall("body/tu")[1]
    assert first is not None and first.get("tuid") == again.get("tuid")


@pytest.mark.parametrize(
    ("dates", "kept"),
    [
        ((T1, T2), 1),  # the later date wins
        ((T2, T1), 0),  # whatever the order in the input
        ((None, T1), 1),  # a dated one beats an undated one
        ((T1, None), 0),
        ((T1, T1), 1),  # equal: the later entry, as a later approval replaces an earlier one
        ((None, None), 1),
        ((datetime(2013, 10, 4, 20, 0, 30, tzinfo=timezone(timedelta(hours=9))), T2), 1),  # 11:00:30Z < T2
    ],
)
def test_duplicate_variant_keeps_the_newest(dates: tuple[datetime | None, datetime | None], kept: int) -> None:
    entries = [TMEntry("Putin spoke.", "zh-TW", f"普丁發言{i}。", date) for i, date in enumerate(dates)]
    (entry,) = import_tmx(export_tmx(entries))
    assert entry.target == f"普丁發言{kept}。"


def test_notes_that_differ_go_on_each_tuv() -> None:
    entries = [
        TMEntry("Kerry arrived.", "zh-Hans", "克里抵达。", T1, "job a"),
        TMEntry("Kerry arrived.", "zh-TW", "凱瑞抵達。", T2, "job b"),
        TMEntry("Kerry arrived.", "zh-HK", "克里抵達。", T2, ""),
    ]
    data = export_tmx(entries)
    tu = safexml.parse(data).find("body/tu")
    assert tu is not None
    assert tu.find("note") is None
    assert [tuv.findtext("note") for tuv in tu.findall("tuv")] == [None, "job a", "job b", None]
    assert import_tmx(data) == entries


def test_export_times_are_utc_and_naive_counts_as_utc() -> None:
    tokyo = datetime(2013, 10, 3, 18, 15, tzinfo=timezone(timedelta(hours=9)))
    naive = datetime(2013, 10, 3, 9, 15)
    for moment in (tokyo, naive):
        data = export_tmx([TMEntry("Abe spoke.", "zh-Hans", "安倍发言。", moment)])
        assert b'creationdate="20131003T091500Z"' in data
        assert import_tmx(data)[0].created_at == T1


def test_export_drops_characters_xml_cannot_carry() -> None:
    data = export_tmx([TMEntry("Abe\x0bspoke.\x00", "zh-Hans", "安倍\x1f发言。")])
    assert import_tmx(data) == [TMEntry("Abespoke.", "zh-Hans", "安倍发言。")]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (TMEntry("Abe spoke.", "zh-CN", "安倍发言。"), "unknown variant 'zh-CN'"),
        (TMEntry("Abe spoke.", "zh-Hans", "  "), "entry 1 ('Abe spoke.'): empty zh-Hans target"),
        (TMEntry(" ", "zh-Hans", "安倍发言。"), "entry 1: empty source"),
    ],
)
def test_export_refuses_entries_it_cannot_write(entry: TMEntry, message: str) -> None:
    with pytest.raises(TMXError, match=message.replace("(", r"\(").replace(")", r"\)")):
        export_tmx([entry])


CAT_TOOL_TMX = _tmx(
    """
    <tu tuid="1001" creationdate="20131003T091500Z" creationid="EDITOR">
      <prop type="x-Context">article-17</prop>
      <note>Checked by the Beijing desk</note>
      <tuv xml:lang="EN-US">
        <seg>The <bpt i="1" type="bold">&lt;b&gt;</bpt>Security Consultative Committee<ept i="1">&lt;/b&gt;</ept>
  met in <hi type="italic">Tokyo</hi>.<ph x="2">&lt;img src="x.png" alt="<sub>a map</sub>"/&gt;</ph></seg>
      </tuv>
      <tuv xml:lang="de-DE"><seg>Der Sicherheitsausschuss tagte in Tokio.</seg></tuv>
      <tuv xml:lang="ZH-CN" creationdate="20131004T180030Z"><seg>
        <bpt i="1">&lt;b&gt;</bpt>美日安全保障磋商委员会<ept i="1">&lt;/b&gt;</ept>在<hi>东京</hi>举行会议。
      </seg></tuv>
      <tuv xml:lang="zh-tw"><note>TW desk</note><seg>
        美日安全保障磋商委員會在東京舉行會議。<it pos="begin">&lt;i&gt;</it></seg></tuv>
      <tuv xml:lang="zh-SG"><seg>second zh-Hans: skipped</seg></tuv>
    </tu>
    <tu tuid="1002">
      <tuv xml:lang="en-US"><seg>Only German here.</seg></tuv>
      <tuv xml:lang="de-DE"><seg>Nur Deutsch.</seg></tuv>
    </tu>
    <tu tuid="1003">
      <tuv xml:lang="zh-CN"><seg>没有英文。</seg></tuv>
      <tuv xml:lang="zh-TW"><seg>沒有英文。</seg></tuv>
    </tu>
    <tu tuid="1004">
      <tuv xml:lang="en-GB"><seg>Empty target.</seg></tuv>
      <tuv xml:lang="zh-CN"><seg>  </seg></tuv>
    </tu>
    <tu tuid="1005">
      <tuv xml:lang="en"><seg>Xi met Obama at Sunnylands.</seg></tuv>
      <tuv xml:lang="zh-MO"><seg>習近平在安納伯格莊園會見奧巴馬。</seg></tuv>
    </tu>
    """
)


def test_import_cat_tool_file() -> None:
    source = "The Security Consultative Committee\n  met in Tokyo."
    assert import_tmx(CAT_TOOL_TMX) == [
        TMEntry(
            source,
            "zh-Hans",
            "美日安全保障磋商委员会在东京举行会议。",
            datetime(2013, 10, 4, 18, 0, 30, tzinfo=UTC),  # the tuv's own date beats the tu's
            "Checked by the Beijing desk",
        ),
        TMEntry(source, "zh-TW", "美日安全保障磋商委員會在東京舉行會議。", T1, "TW desk"),
        TMEntry("Xi met Obama at Sunnylands.", "zh-HK", "習近平在安納伯格莊園會見奧巴馬。"),
    ]


def test_import_legacy_lang_attribute() -> None:
    data = _tmx(
        '<tu><tuv lang="EN"><seg>Pentagon officials said.</seg></tuv>'
        '<tuv lang="ZH-CN"><seg>五角大楼官员说。</seg></tuv>'
        '<tuv lang="ZH-HK"><seg>五角大樓官員說。</seg></tuv></tu>',
        srclang="EN",
        version="1.1",
    )
    assert import_tmx(data) == [
        TMEntry("Pentagon officials said.", "zh-Hans", "五角大楼官员说。"),
        TMEntry("Pentagon officials said.", "zh-HK", "五角大樓官員說。"),
    ]


def test_import_accepts_srclang_all() -> None:
    data = _tmx(
        '<tu><tuv xml:lang="en"><seg>Hi.</seg></tuv><tuv xml:lang="zh"><seg>你好。</seg></tuv></tu>', srclang="*all*"
    )
    assert import_tmx(data) == [TMEntry("Hi.", "zh-Hans", "你好。")]


def test_import_empty_body() -> None:
    assert import_tmx(_tmx("")) == []


@pytest.mark.parametrize(
    ("tag", "variant"),
    [
        ("zh-Hans", "zh-Hans"),
        ("zh-CN", "zh-Hans"),
        ("zh_cn", "zh-Hans"),
        ("zh-SG", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("ZH", "zh-Hans"),
        ("zh-Hans-CN", "zh-Hans"),
        ("zh-Hant", "zh-Hant"),
        ("zh-hant", "zh-Hant"),
        ("zh-TW", "zh-TW"),
        ("zh-Hant-TW", "zh-TW"),
        ("zh-HK", "zh-HK"),
        ("zh-hk", "zh-HK"),
        ("zh-MO", "zh-HK"),
        ("ja", None),
        ("de-DE", None),
        ("en", None),
        ("", None),
    ],
)
def test_variant_for_tag(tag: str, variant: str | None) -> None:
    assert variant_for_tag(tag) == variant


def _error(data: bytes) -> str:
    with pytest.raises(TMXError) as info:
        import_tmx(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'<?xml version="1.0"?><xliff version="2.0"><file/></xliff>', "root element is <xliff>, not <tmx>"),
        (b'<tmx version="1.4"><body/></tmx>', "<header> is missing"),
        (b'<tmx version="1.4"><header srclang="en"/></tmx>', "<body> is missing"),
        (_tmx("", srclang="de-DE"), "must be English (en, en-US…); it is 'de-DE'"),
        (_tmx("", srclang="zh-CN"), "it is 'zh-CN'"),
        (b'<tmx version="1.4"><header/><body/></tmx>', "it is missing"),
        (b'<tmx version="1.4"><header srclang="en"><body></tmx>', "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"\xff\xfe\x00garbage", "not well-formed XML"),
        # What the memory could not store (NUL: PostgreSQL; a lone surrogate: UTF-8) is not XML either:
        # the parser refuses it as a reference and as bytes, so no entry can hold it.
        (_tmx('<tu><tuv xml:lang="en"><seg>a&#0;</seg></tuv><tuv xml:lang="zh"><seg>b</seg></tuv></tu>'), "value 0"),
        (_tmx('<tu><tuv xml:lang="en"><seg>a</seg></tuv><tuv xml:lang="zh"><seg>&#xD800;</seg></tuv></tu>'), "55296"),
        (_tmx('<tu><tuv xml:lang="en"><seg>a\x00</seg></tuv></tu>'), "not well-formed XML"),
        (
            _tmx("<tu><tuv xml:lang='en'><seg>a</seg></tuv></tu>").replace(b"<seg>a", b"<seg>\xed\xa0\x80"),
            "well-formed",
        ),
        (
            _tmx('<tu tuid="a7" creationdate="2013-10-03"><tuv xml:lang="en"><seg>x</seg></tuv></tu>'),
            "tu 1 (tuid 'a7'): creationdate must look like 20130926T143000Z, not '2013-10-03'",
        ),
        (
            _tmx(
                '<tu><tuv xml:lang="en"><seg>x</seg></tuv>'
                '<tuv xml:lang="zh-TW" creationdate="20131399T000000Z"><seg>y</seg></tuv></tu>'
            ),
            "tu 1, zh-TW: creationdate '20131399T000000Z' is not a real date",
        ),
    ],
)
def test_import_refuses(data: bytes, expected: str) -> None:
    message = _error(data)
    assert expected in message
    assert isinstance(TMXError(message), ValueError)


def test_import_refuses_xxe_without_reading_the_file() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<tmx version="1.4"><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>&xxe;</seg></tuv>'
        b'<tuv xml:lang="zh-CN"><seg>&xxe;</seg></tuv></tu></body></tmx>'
    )
    message = _error(data)
    assert "DTD or entities" in message
    passwd = Path("/etc/passwd")
    lines = passwd.read_text().splitlines() if passwd.exists() else []
    for line in [*lines, "root:x:0:0"]:
        if line.strip():
            assert line not in message


def test_import_refuses_billion_laughs_fast() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    data = (
        '<?xml version="1.0"?>\n<!DOCTYPE tmx [' + "".join(entities) + "]>\n"
        '<tmx version="1.4"><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>&lol9;</seg></tuv>'
        '<tuv xml:lang="zh-CN"><seg>x</seg></tuv></tu></body></tmx>'
    ).encode()
    started = time.perf_counter()
    assert "DTD or entities" in _error(data)
    assert time.perf_counter() - started < 1.0


def test_import_refuses_utf16_doctype() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE tmx SYSTEM "http://example.invalid/tmx.dtd"><tmx/>'
    assert "DTD or entities" in _error(data.encode("utf-16"))


def test_export_is_well_formed_for_lxml_too() -> None:
    data = export_tmx([TMEntry("\"Quotes\" & 'apostrophes' ]]> <", "zh-Hans", "“引号”与]]>")])
    root = etree.fromstring(data)
    assert root.findtext("body/tu/tuv/seg") == "\"Quotes\" & 'apostrophes' ]]> <"
    assert import_tmx(data)[0].target == "“引号”与]]>"
