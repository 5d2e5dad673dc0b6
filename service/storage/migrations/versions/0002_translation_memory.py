"""translation memory

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:42:33.674201
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tm_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=10), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_length", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("segment_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("variant", "source_key", name="uq_tm_variant_source"),
    )
    with op.batch_alter_table("tm_entries", schema=None) as batch_op:
        batch_op.create_index("ix_tm_variant_length", ["variant", "source_length"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tm_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_tm_variant_length")

    op.drop_table("tm_entries")
