"""segment edits: a note saying why a change was made for the translator

A translator's edit of one sentence is also applied to its repetitions (the same source sentence
elsewhere in the article) that no person has edited or approved (service.jobs.review). Such a change
is recorded in the repeated segment's history as that translator's, with a note naming the segment
it was propagated from, so that the history says why the segment changed; and a repetition whose
every change is a propagation still counts as untouched by a person, so a later correction reaches
it too. Rows written before have no note (null): each was a person's own change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segment_edits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segment_edits", schema=None) as batch_op:
        batch_op.drop_column("note")
