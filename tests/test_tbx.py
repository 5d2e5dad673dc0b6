"""TBX export and import: the shipped glossary round trip, TBX v2 (martif) files from CAT tools,
id derivation, and the errors a terminologist should see."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from glossary.csvio import parse_csv, to_csv
from glossary.terms import Glossary, Term
from service.interchange import safexml
from service.interchange.tbx import TBX_NS, TBXError, export_tbx, import_tbx, slug

REPO = Path(__file__).resolve().parent.parent
NS = {"t": TBX_NS}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _news() -> Glossary:
    return parse_csv((REPO / "glossary" / "data" / "news.csv").read_text(encoding="utf-8"), "news")


def test_news_glossary_round_trips() -> None:
    news = _news()
    assert len(news.terms) == 27
    back = import_tbx(export_tbx(news), "news")
    assert back.name == "news"
    assert len(back.terms) == 27
    for original, read in zip(news.terms, back.terms, strict=True):
        assert read == original
    # And the CSV written from it is the same file a terminologist would get from the original.
    assert to_csv(back) == to_csv(news)


def test_export_structure() -> None:
    data = export_tbx(_news())
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = safexml.parse(data)
    assert root.tag == f"{{{TBX_NS}}}tbx"
    assert root.get("type") == "TBX-Basic" and root.get("style") == "dca" and root.get(XML_LANG) == "en"
    assert root.findtext("t:tbxHeader/t:fileDesc/t:sourceDesc/t:p", namespaces=NS) == "duiyi glossary news"
    entries = root.findall("t:text/t:body/t:conceptEntry", NS)
    assert [e.get("id") for e in entries] == [t.id for t in _news().terms]

    by_id = {e.get("id"): e for e in entries}
    putin = by_id["vladimir-putin"]
    assert [s.get(XML_LANG) for s in putin.findall("t:langSec", NS)] == ["en", "zh-Hans", "zh-TW", "zh-HK"]
    assert putin.findtext("t:descrip[@type='definition']", namespaces=NS, default="").startswith("Taiwan outlets")

    scc = by_id["scc"]
    english = scc.find("t:langSec", NS)
    assert english is not None and english.get(XML_LANG) == "en"
    assert [s.findtext("t:term", namespaces=NS) for s in english.findall("t:termSec", NS)] == [
        "SCC",
        "Security Consultative Committee",
        "U.S.-Japan Security Consultative Committee",
    ]
    statuses = [s.findtext("t:termNote[@type='administrativeStatus']", namespaces=NS) for s in english]
    assert statuses == ["preferredTerm-admn-sts", "admittedTerm-admn-sts", "admittedTerm-admn-sts"]
    assert [n.text for n in scc.findall("t:note", NS)] == ["duiyi:case=sensitive"]
    assert by_id["abenomics"].find("t:note", NS) is None
    assert by_id["abenomics"].find("t:descrip", NS) is None  # no empty definition


def test_flags_variants_and_escaping_round_trip() -> None:
    terms = (
        Term("cnn", ("CNN",), {}, case_sensitive=True, do_not_translate=True, note="Keep the <b>brand</b> & logo"),
        Term("nikkei", ("Nikkei", "nikkei index"), {"zh-Hans": "日经指数"}, case_sensitive=False),
        Term("lai", ("Lai Ching-te", "William Lai"), {"zh-Hans": "赖清德", "zh-Hant": "賴清德", "zh-TW": "賴清德"}),
        Term("nyt", ("The New York Times",), {"zh-Hans": "纽约时报"}, do_not_translate=True),
        Term("x_1", ("R&D",), {"zh-Hans": "研发 <研究与开发>", "zh-HK": "研發"}, case_sensitive=None),
    )
    data = export_tbx(Glossary("outlet-tw", terms, "Taiwan desk"))
    assert b"Keep the &lt;b&gt;brand&lt;/b&gt; &amp; logo" in data
    back = import_tbx(data, "outlet-tw")
    assert back.terms == terms


def test_export_refuses_ids_the_csv_could_not_hold() -> None:
    with pytest.raises(TBXError, match="term id 'a b'"):
        export_tbx(Glossary("bad", (Term("a b", ("A B",), {"zh-Hans": "甲乙"}),)))


def _martif(entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<martif type="TBX-Basic" xml:lang="en-US">'
        "<martifHeader><fileDesc><sourceDesc><p>Exported from a CAT tool</p></sourceDesc></fileDesc>"
        "</martifHeader>"
        f"<text><body>{entries}</body></text></martif>"
    ).encode()


MARTIF = _martif(
    """
    <termEntry id="c17">
      <descrip type="subjectField">politics</descrip>
      <langSet xml:lang="en-US">
        <tig><term>Kuril Islands</term></tig>
        <tig><term>Kurile Islands</term>
          <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></tig>
      </langSet>
      <langSet xml:lang="de"><tig><term>Kurilen</term></tig></langSet>
      <langSet xml:lang="ZH-CN">
        <tig><term>南千岛群岛</term><termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote></tig>
        <tig><term>千岛群岛</term></tig>
      </langSet>
      <langSet xml:lang="zh-TW"><ntig><termGrp><term>千島群島</term></termGrp></ntig></langSet>
    </termEntry>
    <termEntry id="c18">
      <langSet xml:lang="en">
        <descripGrp><descrip type="definition">US Secretary of State in 2013</descrip></descripGrp>
        <ntig><termGrp><term>John Kerry</term>
          <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></termGrp></ntig>
      </langSet>
      <langSet xml:lang="zh-SG"><tig><term>约翰·克里</term></tig></langSet>
      <langSet xml:lang="zh-Hant"><tig><term>約翰·克里</term></tig></langSet>
      <langSet xml:lang="zh-MO"><tig><term>約翰·克里</term></tig></langSet>
      <langSet xml:lang="zh-tw"><tig><term>約翰·凱瑞</term></tig></langSet>
    </termEntry>
    <termEntry id="c19">
      <note>Wire-service name, keep as is</note>
      <note>duiyi:dnt</note>
      <langSet xml:lang="EN-gb"><tig><term>Reuters</term></tig></langSet>
    </termEntry>
    """
)


def test_martif_import() -> None:
    glossary = import_tbx(MARTIF, "vendor")
    assert glossary.name == "vendor"
    assert glossary.terms == (
        # The preferred English term goes first; the deprecated Chinese term is never the target.
        Term("c17", ("Kurile Islands", "Kuril Islands"), {"zh-Hans": "千岛群岛", "zh-TW": "千島群島"}),
        Term(
            "c18",
            ("John Kerry",),
            {"zh-Hans": "约翰·克里", "zh-Hant": "約翰·克里", "zh-TW": "約翰·凱瑞", "zh-HK": "約翰·克里"},
            note="US Secretary of State in 2013",
        ),
        Term("c19", ("Reuters",), {}, do_not_translate=True, note="Wire-service name, keep as is"),
    )


def test_tbx_v3_from_another_tool() -> None:
    # DCT style: data categories as namespaced elements; no duiyi notes.
    data = f"""<?xml version="1.0" encoding="UTF-8"?>
<tbx xmlns="{TBX_NS}" xmlns:basic="http://www.tbxinfo.net/ns/basic" type="TBX-Basic" style="dct" xml:lang="en">
  <tbxHeader><fileDesc><sourceDesc><p>other</p></sourceDesc></fileDesc></tbxHeader>
  <text><body>
    <conceptEntry id="c-1">
      <basic:definition>Japanese prime minister</basic:definition>
      <langSec xml:lang="en"><termSec><term>Shinzo Abe</term></termSec>
        <termSec><term>Abe Shinzo</term><basic:administrativeStatus>preferredTerm-admn-sts</basic:administrativeStatus>
        </termSec></langSec>
      <langSec xml:lang="zh-Hans"><termSec><term>安倍晋三</term></termSec></langSec>
    </conceptEntry>
  </body></text>
</tbx>""".encode()
    assert import_tbx(data, "v3").terms == (
        Term("c-1", ("Abe Shinzo", "Shinzo Abe"), {"zh-Hans": "安倍晋三"}, note="Japanese prime minister"),
    )


def _entry(english: str, *, id_: str | None = None) -> str:
    attr = f' id="{id_}"' if id_ is not None else ""
    return (
        f'<termEntry{attr}><langSet xml:lang="en"><tig><term>{english}</term></tig></langSet>'
        '<langSet xml:lang="zh"><tig><term>某</term></tig></langSet></termEntry>'
    )


@pytest.mark.parametrize(
    ("entries", "ids"),
    [
        ([_entry("Abe Shinzo")], ["abe-shinzo"]),
        (
            [_entry("Abe Shinzo"), _entry("abe shinzo"), _entry("ABE  SHINZO!")],
            ["abe-shinzo", "abe-shinzo-2", "abe-shinzo-3"],
        ),
        # An id the file states is never taken by a derived one, even when it comes later.
        (
            [_entry("Abe Shinzo"), _entry("Abe Shinzo"), _entry("Abe", id_="abe-shinzo-2")],
            ["abe-shinzo", "abe-shinzo-3", "abe-shinzo-2"],
        ),
        ([_entry("U.S.-Japan Security Consultative Committee")], ["u-s-japan-security-consultative-committee"]),
        ([_entry("2+2")], ["2-2"]),
        ([_entry("Café Society")], ["cafe-society"]),
        ([_entry("§")], ["term"]),
        ([_entry("Abe", id_="eid:VocCod.211")], ["eid-voccod-211"]),  # unusable ids are slugged
        ([_entry("Abe", id_="中文")], ["abe"]),  # nothing left of it: from the English term
        ([_entry("Abe", id_="")], ["abe"]),
        ([_entry("Abe", id_="Abe_1")], ["Abe_1"]),  # a valid id is kept as it is
    ],
)
def test_id_derivation(entries: list[str], ids: list[str]) -> None:
    glossary = import_tbx(_martif("".join(entries)), "derived")
    assert [t.id for t in glossary.terms] == ids


def test_slug_length_is_bounded() -> None:
    assert len(slug("word " * 40)) <= 60
    assert not slug("word " * 40).endswith("-")


def _error(data: bytes) -> str:
    with pytest.raises(TBXError) as info:
        import_tbx(data, "vendor")
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            _martif(
                '<termEntry id="putin"><langSet xml:lang="en"><tig><term>Putin</term></tig></langSet>'
                '<langSet xml:lang="zh-TW"><tig><term>普丁</term></tig></langSet></termEntry>'
            ),
            "glossary 'vendor' entry 1 (id 'putin'): no zh-Hans target",
        ),
        (
            _martif(
                _entry("Abe") + '<termEntry><langSet xml:lang="en"><tig><term>Putin</term></tig></langSet>'
                '<langSet xml:lang="zh-CN"><tig><term>普京</term>'
                '<termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote></tig></langSet>'
                "</termEntry>"
            ),
            "entry 2 ('Putin'): no zh-Hans target",
        ),
        (
            _martif('<termEntry id="x"><langSet xml:lang="zh-CN"><tig><term>普京</term></tig></langSet></termEntry>'),
            "entry 1 (id 'x'): no English term",
        ),
        (
            _martif(_entry("Abe", id_="abe") + _entry("Putin", id_="putin") + _entry("Mr. Abe", id_="abe")),
            "entry 3: duplicate id 'abe' (also entry 1)",
        ),
        (
            _martif(
                '<termEntry id="a"><note>duiyi:case=maybe</note>'
                '<langSet xml:lang="en"><tig><term>A</term></tig></langSet></termEntry>'
            ),
            "entry 1 (id 'a'): 'duiyi:case=maybe' must be duiyi:case=sensitive or insensitive",
        ),
        (
            _martif(
                '<termEntry id="a"><note>duiyi:frozen</note>'
                '<langSet xml:lang="en"><tig><term>A</term></tig></langSet></termEntry>'
            ),
            "unknown duiyi note 'duiyi:frozen'",
        ),
        # A form holding the CSV's separator would come back as two from the glossary's CSV export.
        (_martif(_entry("AT&amp;T; Inc.", id_="att")), "entry 1 (id 'att'): the form 'AT&T; Inc.' holds ';'"),
        (b'<tmx version="1.4"><header/><body/></tmx>', "root element is <tmx>, not <tbx>"),
        (b'<tbx xmlns="urn:example:other"><text><body/></text></tbx>', "root element is <{urn:example:other}tbx>"),
        (b'<martif type="TBX"><martifHeader/></martif>', "<text><body> is missing under <martif>"),
        (f'<tbx xmlns="{TBX_NS}"><text/></tbx>'.encode(), "<text><body> is missing under <tbx>"),
        (b"<martif><text><body></text></martif>", "not well-formed XML"),
        # NUL and lone surrogates, which a stored glossary could not hold, are not XML: refused unread.
        (_martif(_entry("Abe&#0;")), "value 0"),
        (_martif(_entry("Abe&#xDC00;")), "56320"),
    ],
)
def test_import_refuses(data: bytes, expected: str) -> None:
    assert expected in _error(data)


def test_import_refuses_xxe_without_reading_the_file() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE martif [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + _martif(_entry("&xxe;")).split(b"\n", 1)[1]
    )
    message = _error(data)
    assert "DTD or entities" in message
    passwd = Path("/etc/passwd")
    for line in [*(passwd.read_text().splitlines() if passwd.exists() else []), "root:x:0:0"]:
        if line.strip():
            assert line not in message


def test_import_refuses_billion_laughs_fast() -> None:
    entities = ['<!ENTITY a0 "lol">'] + [f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)]
    data = ('<?xml version="1.0"?><!DOCTYPE martif [' + "".join(entities) + "]>").encode() + _martif(
        _entry("&a9;")
    ).split(b"\n", 1)[1]
    started = time.perf_counter()
    assert "DTD or entities" in _error(data)
    assert time.perf_counter() - started < 1.0


def test_empty_body_is_an_empty_glossary() -> None:
    assert import_tbx(_martif(""), "empty").terms == ()
