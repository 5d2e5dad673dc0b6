"""An HTML page's structured data (`<script type="application/ld+json">`, schema.org): which of its
strings are translated (an article's headline, alternative headline and description), and writing
their translations and the variant's language back into the script, everything else as written.
The HTML page's handling (see service.formats.html) makes them meta blocks and calls on this."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from bs4 import BeautifulSoup, Tag

from service.formats.common import _ENGLISH, _OPAQUE_TAGS, _inside

# object, and its texts that search engines show; and a string in the script as written.
_LD_ARTICLE = re.compile(r"(?:Article|BlogPosting|WebPage)$")
_LD_TEXTS = frozenset(("headline", "alternativeHeadline", "description"))
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class _JsonObject(list[tuple[str, object]]):
    """A JSON object as its members, in order (a list, not a dict: keys may repeat)."""


def _ld_scripts(soup: BeautifulSoup) -> list[Tag]:
    return [
        script
        for script in soup.find_all("script")
        if str(script.get("type", "")).strip().lower() == "application/ld+json" and not _inside(script, _OPAQUE_TAGS)
    ]


def _ld_strings(script: Tag) -> list[tuple[str, bool, str]]:
    """Each string value of a structured data script, in order: the property it is the value of,
    whether it is an article's, and the value; none where the script is not valid JSON, or nests
    deeper than Python's JSON parser reads (some hundreds of levels, RecursionError)."""
    try:
        data = json.loads(script.string or "", object_pairs_hook=_JsonObject)
    except (ValueError, RecursionError):
        return []
    found: list[tuple[str, bool, str]] = []
    # Depth first, in the order of the source, without recursion: (a member's name) or (a value, the
    # property it is the value of, whether it is an article's); the next one to see last.
    todo: list[tuple[str] | tuple[object, str, bool]] = [(data, "", False)]
    while todo:
        entry = todo.pop()
        if len(entry) == 1:
            found.append(("", False, entry[0]))  # a member's name, also a string in the source
            continue
        value, key, article = entry
        if isinstance(value, _JsonObject):
            types = [t for k, v in value if k == "@type" for t in (v if isinstance(v, list) else [v])]
            article = any(_LD_ARTICLE.search(str(t)) for t in types)
            for member, item in reversed(value):
                todo += [(item, member, article), (member,)]
        elif isinstance(value, list):
            todo += [(item, key, article) for item in reversed(value)]
        elif isinstance(value, str):
            found.append((key, article, value))
    return found


def _ld_texts(soup: BeautifulSoup) -> list[tuple[Tag, int, str]]:
    """The page's structured data texts that are translated (an article's headline, alternative
    headline and description), in document order: the script, the number of the string in it (see
    `_ld_strings`), the text."""
    return [
        (script, n, " ".join(value.split()))
        for script in _ld_scripts(soup)
        for n, (key, article, value) in enumerate(_ld_strings(script))
        if article and key in _LD_TEXTS and value.strip()
    ]


def _rewrite_ld(script: Tag, values: Mapping[int, str], lang: str | None) -> None:
    """Put `values` (number of a string in the script → new value) in the script, and `lang` in
    every `inLanguage` that said English; everything else stays as written."""
    raw = script.string or ""
    if lang:
        strings = enumerate(_ld_strings(script))
        english = [n for n, (key, _, value) in strings if key == "inLanguage" and _ENGLISH.match(value)]
        values = {**dict.fromkeys(english, lang), **values}
    if not values:
        return
    spans = [m.span() for m in _JSON_STRING.finditer(raw)]
    out: list[str] = []
    at = 0
    for n in sorted(n for n in values if n < len(spans)):
        start, end = spans[n]
        # "<" escaped: a script's text must not hold "</script>" or "<!--".
        out += [raw[at:start], json.dumps(values[n], ensure_ascii=False).replace("<", "\\u003c")]
        at = end
    script.string = "".join([*out, raw[at:]])
