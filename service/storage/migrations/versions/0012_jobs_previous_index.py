"""an index on jobs.previous_job_id: a revision's successors are looked up by it

Every article's JSON lists the revisions that follow it (`newer_ids`), and withdrawing a job
unlinks them; without an index each lookup read the whole jobs table (PostgreSQL does not index a
foreign key by itself), once per article of a listed page.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 20:55:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_previous", "jobs", ["previous_job_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_previous", table_name="jobs")
