"""segment comments: translators' queries on a segment, answered and resolved in the workspace

A translator asks the desk or the reporter about an ambiguous source sentence ("is 'the base'
Futenma or Henoko here?"), an editor answers in the same thread, and the query is resolved (or
reopened). An article with open queries is approved only with an override reason, as one with
segments needing review. The rows go with their job (ON DELETE CASCADE; withdrawal deletes them
explicitly too). No foreign key to `segments`: its rows are rewritten when a translation resumes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("segment_id", sa.String(length=40), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("segment_comments", schema=None) as batch_op:
        batch_op.create_index("ix_segment_comments_job", ["job_id", "segment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("segment_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_comments_job")
    op.drop_table("segment_comments")
