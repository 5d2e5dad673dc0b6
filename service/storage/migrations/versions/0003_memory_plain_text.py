"""translation memory: plain text from HTML articles

Before this revision, approving a segment of an HTML article stored its target as the article
held it, HTML-escaped ("&amp;"), while the memory holds plain text and escapes a hit for the
article it goes into. This revision unescapes those entries (the ones whose job's article is
HTML); segments with inline tags were never stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:10:00.000000
"""

from __future__ import annotations

import html
import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TAG = re.compile(r"<[^>]*>")


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT t.id, t.target FROM tm_entries t JOIN jobs j ON j.id = t.job_id "
            "JOIN articles a ON a.id = j.article_id WHERE a.format = 'html'"
        )
    ).all()
    changed = [
        {"id": row_id, "target": plain}
        for row_id, target in rows
        if (plain := html.unescape(_TAG.sub("", target))) != target
    ]
    if changed:
        conn.execute(sa.text("UPDATE tm_entries SET target = :target WHERE id = :id"), changed)


def downgrade() -> None:
    pass  # the escaped form cannot be told apart from text that holds “&amp;” itself; entries stay plain
