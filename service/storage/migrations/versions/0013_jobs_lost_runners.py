"""jobs.lost_runners: a runner that died no longer uses up one of a job's attempts

A job failed after DUIYI_JOB_MAX_ATTEMPTS attempts that ended in an error or a dead runner, so
three crashes of a service (out of memory, a restart, one article crashing it) failed every job
it had in hand, innocent or not. Runners lost with a job are now counted apart, in a row while none
saves a chunk, against their own, higher limit (DUIYI_JOB_MAX_LOST_RUNNERS). Existing jobs start
at 0: their attempts so far stay as they were counted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite too (a column with a default needs no copy of the table).
    op.add_column("jobs", sa.Column("lost_runners", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch:
        batch.drop_column("lost_runners")
