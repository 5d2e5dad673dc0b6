from __future__ import annotations

import re
from pathlib import Path

import pytest

from glossary.csvio import GlossaryFormatError, parse_csv, to_csv
from glossary.matching import find_terms
from glossary.terms import Glossary, Term, UnknownVariantError, stack
from models.engine import Engine
from service.config import Settings
from service.glossaries import DatabaseGlossaries, GlossaryStore, UnknownGlossaryError
from service.storage.db import Database
from service.storage.tables import StoredGlossary
from tests.conftest import serve, shared_file


def _sample_rows() -> list[tuple[list[str], list[str], str, str]]:
    """The term table in shared/samples/README.md: (English forms, zh-Hans, zh-TW, zh-HK)."""
    rows = []
    for line in shared_file("samples", "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.search(r"[\u4e00-\u9fff]", cells[1]):
            continue
        forms = [re.sub(r"\s*\(.*\)$", "", f).strip() for f in cells[0].split(";")]
        targets = [t.strip() for t in cells[1].split(";")]
        rows.append((forms, targets, cells[2], cells[3]))
    return rows


def test_shipped_news_glossary_has_every_sample_term(store: GlossaryStore) -> None:
    news = store.get("news")
    rows = _sample_rows()
    assert len(rows) >= 20
    for forms, targets, tw, _hk in rows:
        for i, form in enumerate(forms):
            found = find_terms(form, news)
            assert [h.text for h in found] == [form], f"{form!r} is not matched as a whole term"
            term = found[0].term
            want = targets[i] if len(targets) == len(forms) else targets[0]
            assert term.targets["zh-Hans"] == want, form
            if tw:
                tw_forms = [t.strip() for t in tw.split(";")]
                # One regional form for several English forms: each target must carry it (普丁 in 弗拉基米爾·普丁).
                want_tw = tw_forms[i] if len(tw_forms) == len(forms) else tw_forms[-1]
                assert want_tw in (term.own_target("zh-TW") or ""), form


def test_csv_round_trip(store: GlossaryStore) -> None:
    news = store.get("news")
    again = parse_csv(to_csv(news), "news")
    assert [(t.id, t.forms, dict(t.targets), t.case_sensitive, t.note) for t in again.terms] == [
        (t.id, t.forms, dict(t.targets), t.case_sensitive, t.note) for t in news.terms
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,english,zh-Hans\nx,Abe,安倍\n", "columns must be among"),
        ("id,en,zh-Hans\nx,Abe,\n", "row 2: term 'x' has no zh-Hans target"),
        ("id,en,zh-Hans\nx,Abe,安倍\nx,Obama,奥巴马\n", "row 3: duplicate id 'x'"),
        ("id,en,zh-Hans\nbad id,Abe,安倍\n", "bad id"),
        ("id,en,zh-Hans,case\nx,Abe,安倍,maybe\n", "glossary 'g' row 2: case must be sensitive"),
        # An unknown dnt value was read as "no": a term meant to stay English got translated.
        ("id,en,zh-Hans,dnt\nx,NATO,北约,keep\n", "glossary 'g' row 2: dnt must be yes, no or empty, not 'keep'"),
        # Rows with more fields than the header has columns: DictReader kept the rest aside, lost.
        ("id,en,zh-Hans,note\nx,Abe,安倍,former PM, of Japan\n", "row 2: the row has 5 fields but the header only 4"),
        ("id,en,zh-Hans\n,Abe,安倍,extra\n", "row 2: the row has 4 fields"),
        ("id,en,zh-Hans\nx,Abe,安倍\n\ny,Obama,奥巴马,,,z\n", "row 4: the row has 6 fields"),  # blank rows count
        # A column named twice: only the last one's values were kept.
        ("id,en,zh-Hans,note,zh-Hans\nx,Abe,安倍,,晋三\n", "column 'zh-Hans' appears more than once"),
        ("id,en,en\nx,Abe,Shinzo\n", "columns 2 (B) and 3 (C)"),
        # A quote left open: the rest of the file, or the rows up to a stray quote, became one field.
        ('id,en,zh-Hans\nx,"Abe,安倍\ny,Obama,奥巴马\n', "row 2 (from line 2): a quoted field is still open"),
        ('id,en,zh-Hans,note\nx,Abe,安倍,"PM\ny,Obama,奥巴马,"US"\n', "row 2 (from line 2): a quoted field has more"),
        ('id,en,zh-Hans,note\nx,Abe,安倍,"PM\ny,Obama,奥巴马,44"\nz,Kerry,克里,\n', "row 2: the note runs on"),
        ('id,en,zh-Hans,note\nx,"Abe\ny",安倍,\n', "row 2: the en field holds a line break"),
        ('id,en,zh-Hans\nx,Abe,安倍\ny,Obama,"奥巴马\n', "row 3 (from line 3)"),
        # csv's field limit (128 KiB) was an uncaught csv.Error.
        ("id,en,zh-Hans,note\nx,Abe,安倍," + "n" * 200_000 + "\n", "row 2 (from line 2): a field is longer than"),
        # UTF-16 read as UTF-8 (ASCII only, so it decodes): NUL between the letters.
        ("id,en,zh-Hans\nx,Abe,Abe\n".encode("utf-16-le").decode("utf-8"), "line 1: the file holds NUL"),
    ],
)
def test_csv_errors_name_the_row(text: str, message: str) -> None:
    with pytest.raises(GlossaryFormatError, match=re.escape(message)) as raised:
        parse_csv(text, "g")
    assert "row 2: row 2" not in str(raised.value)


def test_csv_that_loses_nothing_is_accepted() -> None:
    """Spreadsheet habits that lose nothing: empty trailing fields, short rows, blank rows, a quoted
    note over several lines with commas and quotes in it, a BOM."""
    text = (
        "\ufeffid,en,zh-Hans,note,case\n"
        "x,Abe,安倍,,\n"
        "y,Obama,奥巴马,,,,\n"
        "\n"
        'z,Kerry,克里,"Former secretary of state.\nSays ""hello"", often, in notes",insensitive\n'
        "w,Putin,普京\n"
    )
    glossary = parse_csv(text, "g")
    assert [(t.id, t.note, t.case_sensitive) for t in glossary.terms] == [
        ("x", "", None),
        ("y", "", None),
        ("z", 'Former secretary of state.\nSays "hello", often, in notes', False),
        ("w", "", None),
    ]


def test_regional_targets_fall_back_through_zh_hant() -> None:
    term = Term("x", ("X",), {"zh-Hans": "甲", "zh-Hant": "乙", "zh-TW": "丙"})
    assert term.own_target("zh-TW") == "丙"
    assert term.own_target("zh-HK") == "乙"
    assert term.own_target("zh-Hans") == "甲"
    with pytest.raises(UnknownVariantError, match="valid: zh-Hans, zh-Hant, zh-TW, zh-HK"):
        term.own_target("zh-SG")


def test_later_glossary_overrides_earlier() -> None:
    news = Glossary("news", (Term("putin", ("Putin", "Vladimir Putin"), {"zh-Hans": "普京", "zh-TW": "普丁"}),))
    outlet = Glossary("outlet-tw", (Term("putin-tw", ("Putin",), {"zh-Hans": "普京", "zh-TW": "蒲亭"}),))
    merged = stack([news, outlet])
    hit = find_terms("Putin spoke", merged)[0]
    assert hit.term.own_target("zh-TW") == "蒲亭"
    # The earlier term keeps the forms the later one did not claim.
    assert find_terms("Vladimir Putin spoke", merged)[0].term.id == "putin"


def test_store_refuses_unknown_names(store: GlossaryStore) -> None:
    with pytest.raises(UnknownGlossaryError) as info:
        store.stacked(["news", "nope"])
    assert info.value.valid == ["news"]
    assert "nope" in str(info.value)


def test_white_space_around_forms_and_targets_is_not_part_of_the_term() -> None:
    """A term from the API or TBX reads as CSV reads it: a padded target put stray spaces in the
    translation, a blank one put nothing where the name was (unflagged) and made the exported CSV
    one that import refuses."""
    term = Term("abe", ("  Abe\u00a0 Shinzo ", " "), {"zh-Hans": " 安倍晋三 ", "zh-TW": "  "})
    assert term.forms == ("Abe Shinzo",)
    assert dict(term.targets) == {"zh-Hans": "安倍晋三"}
    assert term.own_target("zh-TW") is None  # converted from zh-Hans, not blank
    glossary = Glossary("g", (term,))
    again = parse_csv(to_csv(glossary), "g")
    assert [(t.forms, dict(t.targets)) for t in again.terms] == [(term.forms, dict(term.targets))]
    with pytest.raises(ValueError, match="no zh-Hans target"):
        Term("abe", ("Abe",), {"zh-Hans": "  "})


def test_glossary_terms_edited_through_the_api_export_and_import_unchanged(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> None:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, runners=0)
    with serve(settings, engines["marian"]) as live:
        c = live.client
        csv_type = {"Content-Type": "text/csv"}
        assert c.put(
            "/v1/glossaries/desk", content="id,en,zh-Hans\nnhk,NHK,日本广播协会\n".encode(), headers=csv_type
        ).is_success
        blank = c.put("/v1/glossaries/desk/terms/abe", json={"forms": ["Abe"], "targets": {"zh-Hans": " "}})
        assert blank.status_code == 422, blank.text
        # A form holding ';' would come back from the CSV export as two forms.
        two = c.put("/v1/glossaries/desk/terms/att", json={"forms": ["AT&T; Inc."], "targets": {"zh-Hans": "美电"}})
        assert two.status_code == 422 and "';'" in two.json()["error"]["message"], two.text
        padded = {"forms": [" Kerry "], "targets": {"zh-Hans": "克里 ", "zh-TW": " 凱瑞", "zh-HK": " "}}
        assert c.put("/v1/glossaries/desk/terms/kerry", json=padded).status_code == 201
        terms = c.get("/v1/glossaries/desk").json()["terms"]
        assert terms[-1]["forms"] == ["Kerry"]
        assert terms[-1]["targets"] == {"zh-Hans": "克里", "zh-TW": "凱瑞"}
        exported = c.get("/v1/glossaries/desk/export", params={"format": "csv"})
        assert c.put("/v1/glossaries/desk-copy", content=exported.content, headers=csv_type).status_code == 201
        assert c.get("/v1/glossaries/desk-copy").json()["terms"] == terms
        out = c.post("/v1/translate", json={"text": "Kerry spoke.", "targets": ["zh-TW"], "glossaries": ["desk"]})
        (segment,) = out.json()["blocks"][0]["segments"]
        # The tiny test model may lose the placeholder; either way the form is the trimmed one.
        missing = [f["reason"] for f in segment["flags"] if f["code"] == "term_missing"]
        assert segment["targets"]["zh-TW"].startswith("凱瑞") or missing == [
            "glossary term “Kerry” (kerry) should read “凱瑞” but the model lost its place"
        ]


def test_a_replaced_term_keeps_its_place(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    glossaries = DatabaseGlossaries(db)
    glossaries.seed(GlossaryStore.load())
    before = [t.id for t in glossaries.get("news").terms]
    putin = Term("putin", ("Putin",), {"zh-Hans": "普京", "zh-TW": "蒲亭"})
    assert glossaries.put_term("news", putin, by="t") is False
    after = glossaries.get("news")
    assert [t.id for t in after.terms] == before
    assert next(t for t in after.terms if t.id == "putin").own_target("zh-TW") == "蒲亭"
    assert glossaries.put_term("news", Term("nhk", ("NHK",), {"zh-Hans": "日本广播协会"}), by="t") is True
    assert [t.id for t in glossaries.get("news").terms] == [*before, "nhk"]
    db.close()


def test_a_stored_term_refused_since_is_left_out_with_a_warning(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Older versions stored a blank zh-Hans from PUT …/terms; Term refuses it now. The glossary must
    # still load (every article using it failed), naming the term left out, and replacing the term
    # through the API repairs it.
    db = Database(database_url)
    db.migrate()
    glossaries = DatabaseGlossaries(db)
    glossaries.seed(GlossaryStore.load())
    with db.session() as session:
        row = session.get(StoredGlossary, "news")
        assert row is not None
        blank = {"id": "nhk", "forms": ["NHK"], "targets": {"zh-Hans": "  "}, "case_sensitive": None}
        row.terms = [*row.terms, blank]
        row.revision += 1
    with caplog.at_level("WARNING"):
        news = glossaries.get("news")
    assert "putin" in {t.id for t in news.terms} and "nhk" not in {t.id for t in news.terms}
    assert any("'nhk'" in r.getMessage() and "zh-Hans" in r.getMessage() for r in caplog.records)
    glossaries.put_term("news", Term("nhk", ("NHK",), {"zh-Hans": "日本广播协会"}), by="t")
    assert next(t for t in glossaries.get("news").terms if t.id == "nhk").targets["zh-Hans"] == "日本广播协会"
    db.close()
