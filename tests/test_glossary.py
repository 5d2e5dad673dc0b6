from __future__ import annotations

import re

import pytest

from glossary.csvio import GlossaryFormatError, parse_csv, to_csv
from glossary.matching import find_terms
from glossary.terms import Glossary, Term, UnknownVariantError, stack
from service.glossaries import GlossaryStore, UnknownGlossaryError
from tests.conftest import shared_file


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
        ("id,en,zh-Hans,case\nx,Abe,安倍,maybe\n", "case must be"),
    ],
)
def test_csv_errors_name_the_row(text: str, message: str) -> None:
    with pytest.raises(GlossaryFormatError, match=re.escape(message)):
        parse_csv(text, "g")


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
