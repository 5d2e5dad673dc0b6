"""rate limits shared by every process on PostgreSQL

Each API key's rate limit was kept in each process's memory, so N API replicas allowed N times the
limit and a client was answered differently by each. On PostgreSQL each key now has a row here:
its theoretical arrival time (GCRA, seconds since the epoch on the database's clock), updated in
one statement per request. SQLite keeps the limit in the process (one machine, usually one process).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
