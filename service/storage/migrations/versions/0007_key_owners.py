"""API keys: an owner that outlives the key, and an expiry (key rotation)

A job's owner was "key:<id>" of the key that submitted it, so a CMS that rotated its key (a new
one) became a new owner: its corrections started new revision chains, its retries were not
recognised. Each key now names its owner; every existing key owns what it submitted
("key:<id>", as its jobs already say), and a key made by rotation takes its predecessor's. The
rotated key may work on until `expires_at` while the CMS deploys the new one.

A name belonged to one key; it now belongs to one owner: the rotated key and its successor share
it. The unique constraint on the name becomes a unique index over keys without an expiry (a
rotated key has one). Downgrading fails while two keys share a name (rotated keys); revoke and
rename first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# 0001 left the name's unique constraint unnamed. PostgreSQL calls it api_keys_name_key; SQLite
# reports no name, and batch mode (which rebuilds the table there) names it by this convention.
_NAMES = {"uq": "%(table_name)s_%(column_0_name)s_key"}
_LIVE = sa.text("expires_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    keys = sa.table("api_keys", sa.column("id", sa.Integer()), sa.column("owner", sa.String()))
    op.execute(keys.update().values(owner=sa.literal("key:") + sa.cast(keys.c.id, sa.String(20))))
    with op.batch_alter_table("api_keys", naming_convention=_NAMES) as batch:
        batch.alter_column("owner", existing_type=sa.String(length=50), nullable=False)
        batch.drop_constraint("api_keys_name_key", type_="unique")
        batch.create_index("uq_api_keys_name", ["name"], unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", naming_convention=_NAMES) as batch:
        batch.drop_index("uq_api_keys_name")
        batch.create_unique_constraint("api_keys_name_key", ["name"])
        batch.drop_column("expires_at")
        batch.drop_column("owner")
