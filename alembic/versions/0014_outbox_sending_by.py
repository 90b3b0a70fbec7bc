"""outbox.sending_by: which process claimed a reply for sending

Revision ID: 0014
Revises: 0013

A row left in SENDING by a crash is settled when the service restarts: the claim names the process
(`host:pid:token`, intake.lease.process_holder), so a process that is gone from this host, or this
very process when it is not sending the row right now, proves the send was cut off. Rows claimed
before this revision have no claimant and are settled by the real-clock age of `sending_at`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("sending_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("sending_by")
