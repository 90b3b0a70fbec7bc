"""trust: which forms came from a verified address, and the form a review item decides

Revision ID: 0015
Revises: 0014

`submission.verified` is False for a form whose From address was not verified for its sender
(roster address, roster domain with DMARC pass, or confirmed by the coordinator) when it came;
rows from before keep True (they were judged under the old rule). `review_item.submission_id`
names the form that `intake review confirm` / `reject` decides. Submission status gains the value
`pending` (a string column, no constraint to change).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("review_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submission_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_review_item_submission_id_submission"),
            "submission",
            ["submission_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("review_item", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_review_item_submission_id_submission"), type_="foreignkey"
        )
        batch_op.drop_column("submission_id")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("verified")
