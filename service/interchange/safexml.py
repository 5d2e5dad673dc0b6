"""Parsing XML that came from outside: no DTDs, no entities, no network, bounded size.

A file with a DOCTYPE is refused outright rather than parsed carefully: XLIFF, TMX and TBX need
none, and refusing is the only way to be sure that neither external entities (XXE: reading the
server's files or URLs) nor nested internal ones (billion laughs) are ever expanded.
"""

from __future__ import annotations

import re

from lxml import etree

MAX_BYTES = 50_000_000
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXML(ValueError):
    """XML refused before parsing: a DTD or entity declaration, or too large."""


class MalformedXML(ValueError):
    """Not well-formed XML; the message says where."""


def parse(data: bytes, *, what: str = "file") -> etree._Element:
    """The root element of `data`, parsed with entity resolution and network access off."""
    if len(data) > MAX_BYTES:
        raise UnsafeXML(f"the {what} has {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    # Also catches a DOCTYPE in UTF-16: look at the text with the NULs of ASCII characters removed.
    if _DOCTYPE.search(data) or _DOCTYPE.search(data.replace(b"\x00", b"")):
        raise UnsafeXML(f"the {what} declares a DTD or entities (<!DOCTYPE/<!ENTITY), which are not accepted")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedXML(f"the {what} is not well-formed XML: {exc}") from None
    if root is None:
        raise MalformedXML(f"the {what} is empty")
    return root
