"""Placeholders: terms and inline markup through the model and back, per variant."""

from __future__ import annotations

import itertools

from glossary.terms import Glossary, Term
from models.engine import Engine
from service.api.app import build_pipeline
from service.config import Settings
from service.documents import Article, Inline, SourceFormat
from service.pipeline import render_context
from service.protect import PLACEHOLDER, build_fragment, render, tidy
from service.qa import QASettings
from service.retarget import realign
from service.variants import tidy_hans, variant_rules

RULES = variant_rules()


def test_terms_are_masked_and_restored_in_each_variants_form(news: Glossary) -> None:
    frag = build_fragment("Kerry met Putin’s envoy.", (), news)
    assert frag.masked == "QZX1 met QZX2’s envoy."
    mt = {frag.fid: tidy_hans("QZX1 会见了 QZX2 的特使.")}
    hans = render(frag, mt, render_context(RULES["zh-Hans"], SourceFormat.TEXT, markup=True))
    tw = render(frag, mt, render_context(RULES["zh-TW"], SourceFormat.TEXT, markup=True))
    hk = render(frag, mt, render_context(RULES["zh-HK"], SourceFormat.TEXT, markup=True))
    assert hans.text == "克里会见了普京的特使。"
    assert tw.text == "凱瑞會見了普丁的特使。"
    assert hk.text == "克里會見了普京的特使。"
    assert not tw.missing
    assert [(h.term.id, tw.text[s:e]) for h, s, e in tw.placed] == [("kerry", "凱瑞"), ("putin", "普丁")]


def test_a_lost_placeholder_is_reported_not_guessed(news: Glossary) -> None:
    frag = build_fragment("Abe Shinzo spoke.", (), news)
    out = render(frag, {frag.fid: "他发言了。"}, render_context(RULES["zh-Hans"], SourceFormat.TEXT, markup=True))
    assert out.text == "他发言了。"
    assert [h.term.id for h in out.missing] == ["abe-shinzo"]


def test_garbled_invented_and_repeated_placeholders(news: Glossary) -> None:
    frag = build_fragment("Abe met Obama.", (), news)
    mt = {frag.fid: "qzx 1 会见了 QZX2 和 QZX2 以及 QZX9。"}
    out = render(frag, mt, render_context(RULES["zh-Hans"], SourceFormat.TEXT, markup=True))
    assert out.text == "安倍会见了奥巴马和以及。"
    assert not out.missing


def test_markup_surrounds_the_corresponding_text_in_every_variant(news: Glossary) -> None:
    text = "Read the statement on Futenma today."
    start = text.index("statement")
    link = Inline(start, len("Read the statement on Futenma"), '<a href="/s?a=1&amp;b=2">', "</a>")
    keys = itertools.count(1)
    frag = build_fragment(text, (link,), news, keys)
    child = frag.slots[0].child
    assert child is not None
    assert frag.masked == f"Read the {PLACEHOLDER.format(frag.slots[0].key)} today."
    mt = {frag.fid: f"今天阅读 {PLACEHOLDER.format(frag.slots[0].key)} 。", child.fid: "关于QZX2的报告"}
    link_open = '<a href="/s?a=1&amp;b=2">'
    for variant, expected in (
        ("zh-Hans", f"今天阅读{link_open}关于普天间的报告</a>。"),
        ("zh-TW", f"今天閱讀{link_open}關於普天間的報告</a>。"),
        ("zh-HK", f"今天閲讀{link_open}關於普天間的報告</a>。"),  # HK standard 閲
    ):
        out = render(frag, mt, render_context(RULES[variant], SourceFormat.HTML, markup=True))
        assert out.text == expected
        plain = render(frag, mt, render_context(RULES[variant], SourceFormat.HTML, markup=False))
        assert plain.text == expected.replace(link_open, "").replace("</a>", "")


def test_lost_markup_is_appended_not_dropped(news: Glossary) -> None:
    frag = build_fragment("A big day.", (Inline(2, 5, "**", "**"),), news)
    child = frag.slots[0].child
    assert child is not None
    out = render(
        frag,
        {frag.fid: "一天。", child.fid: "重要"},
        render_context(RULES["zh-Hans"], SourceFormat.MARKDOWN, markup=True),
    )
    assert out.text == "一天。**重要**"
    assert [s.text for s in out.moved] == ["big"]


def test_lost_markup_from_the_start_goes_back_to_the_start(news: Glossary) -> None:
    """A leading break the model drops is put back where it stood, unreported; an image the source
    had inside bold text at its edge stays outside it, in the order the source had them."""
    br, bold, img = Inline(0, 0, "<br/>", "", verbatim=True), Inline(0, 3, "<b>", "</b>"), Inline(3, 3, "<img/>", "")
    frag = build_fragment("Abe spoke.", (br, bold, img), news)
    child = next(s.child for s in frag.slots if s.child is not None)
    out = render(
        frag,
        {frag.fid: "说话了。", child.fid: child.masked},
        render_context(RULES["zh-Hans"], SourceFormat.HTML, markup=True),
    )
    assert out.text == "<br/><b>安倍</b>说话了。<img/>"
    assert [s.text for s in out.moved] == ["Abe", ""]


def test_markup_inside_a_word_is_restored(news: Glossary) -> None:
    # Markup inside a word puts its placeholder against a letter ("AbeQZX1"); a model that copies
    # the English keeps it there, and it must still be found, not left in the text.
    for text, inline, mt, expected in (
        ("Abe1 said.", Inline(3, 4, "<sup>", "</sup>"), "AbeQZX1 说。", "Abe<sup>1</sup>说。"),
        ("It was unbelievable.", Inline(9, 19, "<i>", "</i>"), "It was unQZX1.", "It was un<i>难以置信</i>."),
    ):
        frag = build_fragment(text, (inline,), news)
        child = frag.slots[0].child
        assert child is not None
        out = render(
            frag,
            {frag.fid: mt, child.fid: "难以置信" if child.source == "believable" else child.source},
            render_context(RULES["zh-Hans"], SourceFormat.HTML, markup=True),
        )
        assert out.text == expected
        assert not out.moved


def test_spaces_around_latin_markup_stay_when_the_model_echoes_english(news: Glossary) -> None:
    """Where the model leaves English as it was, the space beside markup whose text is Latin stays;
    beside Chinese it goes, as Chinese is written."""
    sup = Inline(3, 4, "<sup>", "</sup>")
    frag = build_fragment("Abe1 said.", (sup,), news)
    child = frag.slots[0].child
    assert child is not None
    ctx = render_context(RULES["zh-Hans"], SourceFormat.HTML, markup=True)
    assert render(frag, {frag.fid: "AbeQZX1 said.", child.fid: "1"}, ctx).text == "Abe<sup>1</sup> said."
    assert render(frag, {frag.fid: "AbeQZX1 说。", child.fid: "一"}, ctx).text == "Abe<sup>一</sup>说。"
    em = Inline(10, 14, "<em>", "</em>")
    frag = build_fragment("Meet with them now.", (em,), news)
    child = frag.slots[0].child
    assert child is not None
    mt = {frag.fid: "Meet with QZX1 now.", child.fid: "them"}
    assert render(frag, mt, ctx).text == "Meet with <em>them</em> now."


def test_model_text_is_escaped_for_html_but_markup_is_not(news: Glossary) -> None:
    frag = build_fragment("x <script> y", (), news)
    out = render(
        frag, {frag.fid: "<script>alert(1)</script>"}, render_context(RULES["zh-Hans"], SourceFormat.HTML, markup=True)
    )
    assert out.text == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_verbatim_code_is_kept(news: Glossary) -> None:
    frag = build_fragment("Run pip install now.", (Inline(4, 15, "`", "`", verbatim=True),), news)
    assert not frag.slots[0].child
    out = render(
        frag, {frag.fid: "现在运行 QZX1。"}, render_context(RULES["zh-Hans"], SourceFormat.MARKDOWN, markup=True)
    )
    assert out.text == "现在运行 `pip install`。"


def test_model_text_is_escaped_for_markdown_but_code_and_markup_are_not(news: Glossary) -> None:
    """Characters the model writes are text in a Markdown article: `*` around a word is not emphasis,
    a leading `#` no heading; the source's code span and emphasis stay as written."""
    text = "Run a*b now with force."
    code, strong = Inline(4, 7, "`", "`", verbatim=True), Inline(17, 22, "**", "**")
    frag = build_fragment(text, (code, strong), news)
    child = next(s.child for s in frag.slots if s.child is not None)
    mt = {frag.fid: "#MeToo用QZX2*强行*运行QZX1 [1]", child.fid: "力_量"}
    out = render(frag, mt, render_context(RULES["zh-Hans"], SourceFormat.MARKDOWN, markup=True))
    assert out.text == "\\#MeToo用**力\\_量**\\*强行\\*运行`a*b` \\[1\\]"
    html_out = render(frag, mt, render_context(RULES["zh-Hans"], SourceFormat.HTML, markup=True))
    assert "`a*b`" in html_out.text and "#MeToo" in html_out.text  # only Markdown escapes these
    plain = render(frag, mt, render_context(RULES["zh-Hans"], SourceFormat.MARKDOWN, markup=False))
    assert plain.text == "#MeToo用力_量*强行*运行a*b [1]"


def test_fragments_of_placeholders_only_skip_the_model(news: Glossary) -> None:
    assert not build_fragment("Futenma", (), news).needs_model
    assert not build_fragment("“2+2”", (), news).needs_model
    assert build_fragment("Futenma base", (), news).needs_model


def test_typography_treats_placeholders_as_chinese() -> None:
    assert tidy("QZX1 会见了 QZX2 .") == "QZX1会见了QZX2。"
    assert tidy('他说 "QZX3" , 然后离开 .') == "他说“QZX3”，然后离开。"
    assert tidy("QZX1's role") == "QZX1's role"
    # The abbreviation after its name, and figures beside a term.
    assert tidy("QZX1 (SCC) 在东京开会.") == "QZX1（SCC）在东京开会。"
    assert tidy("QZX1 在 2013 年 访问 了 QZX2 .") == "QZX1在2013年访问了QZX2。"
    assert tidy('这是 "QZX4" 会议...') == "这是“QZX4”会议……"


def test_typography_keeps_a_placeholder_apart_from_a_figure(news: Glossary) -> None:
    """QZX1 2013 must not become QZX12013, placeholder 12013: the term would be lost."""
    tidied = tidy("QZX1 2013年访问了东京。")
    assert tidied == "QZX1 2013年访问了东京。"
    frag = build_fragment("Abe visited Tokyo in 2013.", (), news)
    assert frag.masked == "QZX1 visited Tokyo in 2013."
    out = render(frag, {frag.fid: tidied}, render_context(RULES["zh-Hans"], SourceFormat.TEXT, markup=False))
    assert out.text == "安倍2013年访问了东京。" and not out.missing


def test_a_term_crossing_markup_gives_way_to_a_shorter_one(news: Glossary) -> None:
    """“Vladimir Putin” spans the end of <b>…</b> and cannot be one placeholder; “Putin” can."""
    text = "Met Vladimir Putin."
    frag = build_fragment(text, (Inline(4, 12, "<b>", "</b>"),), news)
    (term,) = [s for s in frag.slots if s.hit is not None]
    assert term.hit is not None and term.hit.term.id == "putin" and term.text == "Putin"
    assert frag.masked == f"Met QZX1 QZX{term.key}."  # the markup, then the term


# A name a newsroom keeps in English, wrapped over a line end as hard-wrapped wire copy has it.
NYT = Glossary("dnt", (Term("nyt", ("New York Times",), {"zh-Hans": "New York Times"}, do_not_translate=True),))
WRAPPED = "A report in The New\nYork Times said the plan was on hold."


def test_a_term_wrapped_over_a_line_end_is_read_on_one_line() -> None:
    """The term's source text is the term as read, and a term kept in English goes into the
    translation on one line: the line end would break the Chinese sentence in two."""
    frag = build_fragment(WRAPPED, (), NYT)
    (slot,) = [s for s in frag.slots if s.hit is not None]
    assert slot.hit is not None and slot.hit.text == "New York Times"
    assert (slot.text, WRAPPED[slot.start : slot.end]) == ("New\nYork Times", "New\nYork Times")  # where it stands
    out = render(
        frag,
        {frag.fid: tidy("据QZX1报道，该计划已搁置。")},
        render_context(RULES["zh-Hans"], SourceFormat.TEXT, markup=True),
    )
    assert out.text == "据New York Times报道，该计划已搁置。" and not out.missing


def test_a_wrapped_term_in_the_response_and_in_review(engines: dict[str, Engine]) -> None:
    """What the response lists for the term (its source text, the form each variant must have) and
    what a flag says about it hold no line end, and a translator who types the name on one line has
    it: the review's check finds it (service.retarget)."""
    pipeline = build_pipeline(Settings(device="cpu"), engines["marian"])
    body = (  # wrapped at 69 columns, as wire copy is
        "TOKYO, Nov 7 (Reuters) - Japan's government said on Thursday it would\n"
        "raise the sales tax to 10 percent next year, a move that analysts\n"
        "said could slow the recovery, the paper said. A report in The New\n"
        "York Times said the plan was on hold, and officials declined to\n"
        "comment on it.\n"
    )
    doc = pipeline.translate(Article(body), targets=("zh-Hans", "zh-TW"), glossary=NYT)
    seg = next(s for s in doc.segments if s.terms)
    (term,) = seg.terms
    assert term.source_text == "New York Times"
    assert term.expected == {"zh-Hans": "New York Times", "zh-TW": "New York Times"}
    assert seg.source[term.source_start : term.source_end] == "New\nYork Times"
    assert not any("\n" in f.reason for f in seg.flags)
    assert not any("New\nYork" in text for text in seg.targets.values())
    rules = [RULES["zh-Hans"], RULES["zh-TW"]]
    edited = realign(seg, {"zh-Hans": "据New York Times报道，该计划已搁置。"}, set(), rules, QASettings())
    assert not [f for f in edited.flags if f.code in ("term_missing", "untranslated")], edited.flags
    assert edited.terms[0].targets["zh-TW"] is not None
