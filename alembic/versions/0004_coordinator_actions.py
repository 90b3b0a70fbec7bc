"""coordinator actions: forms received by another channel, messages assigned by hand

Revision ID: 0004
Revises: 0001

- `submission.message_id` becomes nullable and `submission.channel` says how a form came
  (`email`, or `paper`/`hand`/... when the coordinator recorded it by hand);
- `message.assigned_sender_id` keeps the coordinator's answer to "who sent this?" so that every
  later replay of the message reaches the same sender.

SQLite rebuilds both tables in batch mode (alembic/env.py turns its foreign keys off for that).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.alter_column("message_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("channel", sa.String(length=20), server_default="email", nullable=False)
        )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_sender_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_message_assigned_sender_id_sender"),
            "sender",
            ["assigned_sender_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_message_assigned_sender_id_sender"), type_="foreignkey"
        )
        batch_op.drop_column("assigned_sender_id")
    # Forms recorded by hand have no message and cannot exist in the older schema (the audit
    # trail keeps the record of them).
    op.execute(
        "UPDATE outbox SET submission_id = NULL WHERE submission_id IN "
        "(SELECT id FROM submission WHERE message_id IS NULL)"
    )
    op.execute(
        "DELETE FROM problem WHERE submission_id IN "
        "(SELECT id FROM submission WHERE message_id IS NULL)"
    )
    op.execute("DELETE FROM submission WHERE message_id IS NULL")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("channel")
        batch_op.alter_column("message_id", existing_type=sa.Integer(), nullable=False)
