"""Plain text: paragraphs separated by blank lines in, and the translation written back with the
source's own white space between them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from service.documents import Block, BlockKind
from service.formats.common import _FIELDS

_PARAGRAPH_BREAK = re.compile(r"\r?\n[ \t]*\r?\n\s*")


def _text_blocks(text: str, first: int) -> tuple[list[Block], str]:
    """Paragraphs separated by blank lines. Each block's text is stripped; the white space around it
    is kept as the next block's separator (or the tail), so the input is exactly reproducible."""
    blocks: list[Block] = []
    pos = 0
    sep = ""
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[pos:end]
        body = chunk.strip()
        if body:
            lead = len(chunk) - len(chunk.lstrip())
            sep += chunk[:lead]
            blocks.append(Block(f"b{first + len(blocks)}", BlockKind.PARAGRAPH, body, sep_before=sep))
            sep = chunk[lead + len(body) :]
        else:
            sep += chunk
        if match:
            sep += match.group(0)
            pos = match.end()
    return blocks, sep


def _render_text(blocks: tuple[Block, ...], inner: Mapping[str, str], tail: str) -> str:
    """The plain text variant (see `service.formats.render`)."""
    # The article's fields (title, dek, byline, date) are paragraphs of their own before the body,
    # whose own separators reproduce it exactly.
    return (
        "".join(
            ("\n\n" if i and blocks[i - 1].kind in _FIELDS else "") + b.sep_before + inner[b.id]
            for i, b in enumerate(blocks)
        )
        + tail
    )
