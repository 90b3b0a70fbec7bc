"""problem.table_no: where a problem sits in a Word copy of the form (table, then row)

Revision ID: 0012
Revises: 0003

A form pasted into Word has no cell addresses; its problems are located as "ตารางที่ 3
แถวที่ 2": `table_no` is the table of the document, `row` the row within it. NULL for
spreadsheets, which keep their sheet and cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("problem", schema=None) as batch_op:
        batch_op.add_column(sa.Column("table_no", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("problem", schema=None) as batch_op:
        batch_op.drop_column("table_no")
