"""translation memory: ids never reused (SQLite)

Each process reads only the memory entries added since its last lookup, those with a higher id
than it has seen (service.memory). Entries could only be replaced in place until now; withdrawing
an article with its memory deletes them. SQLite gives a new row the highest id plus one, so after
the newest entries were deleted the next ones would take their ids again, and a process that had
read the deleted ones would never read the new ones. AUTOINCREMENT makes SQLite never reuse an id
(the table is rebuilt, its rows kept). PostgreSQL's sequences never reuse one: nothing changes there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("tm_entries", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("tm_entries", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
