"""webhook deliveries that outlive their article

Withdrawing an article deletes its job and its webhook deliveries; the CMS that sent it (which may
not be the one who withdrew it: an admin's legal takedown, `duiyi articles purge`) is now told by
an `article.withdrawn` webhook. That delivery has no job to point at, so `job_id` may be null, and
it names the API key whose secret signs it (until now found through the job). Rows from before keep
a null `api_key_id` and are signed with their job's key, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with _attempts_kept(), op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("job_id", existing_type=sa.String(length=36), nullable=True)
        batch.add_column(sa.Column("api_key_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_webhook_deliveries_api_key_id", "api_keys", ["api_key_id"], ["id"])


def downgrade() -> None:
    # The withdrawal webhooks cannot be kept: they have no job.
    op.execute(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE job_id IS NULL)"
    )
    op.execute("DELETE FROM webhook_deliveries WHERE job_id IS NULL")
    with _attempts_kept(), op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("fk_webhook_deliveries_api_key_id", type_="foreignkey")
        batch.drop_column("api_key_id")
        batch.alter_column("job_id", existing_type=sa.String(length=36), nullable=False)


@contextmanager
def _attempts_kept() -> Iterator[None]:
    """Batch mode rebuilds the table on SQLite, which cannot alter a column or add a foreign key in
    place (on PostgreSQL these are plain ALTER TABLE statements). Dropping the old table, with
    foreign keys on (they are, on every connection, and cannot be turned off inside the migration's
    transaction), deletes its rows first and so every attempt by ON DELETE CASCADE: the attempts
    are copied aside and put back."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMPORARY TABLE attempts_0009 AS SELECT * FROM webhook_attempts")
    yield
    op.execute("INSERT INTO webhook_attempts SELECT * FROM attempts_0009")
    op.execute("DROP TABLE attempts_0009")
