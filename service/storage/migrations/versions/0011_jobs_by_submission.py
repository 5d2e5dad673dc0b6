"""jobs by submission time: the review app lists articles newest submitted first

The list used to follow `updated_at`, which every saved chunk and edit changes, so articles moved
while translators read it. It now sorts by `created_at`; without a status filter only an index of
that column alone lets PostgreSQL and SQLite read the newest 500 instead of sorting every job.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 19:50:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_created", "jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created", table_name="jobs")
