"""Reminders and escalation: when each step of a waiting call is due, when it was taken, and
whom an escalation adds as approvers, fixed when the call paused.

Every column is nullable: calls stored before reminders existed have none due. Adding
nullable columns needs no table rebuild on SQLite.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("remind_at", "reminded_at", "escalate_at", "escalated_at"):
        op.add_column("approvals", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("approvals", sa.Column("escalate_to", sa.JSON(), nullable=True))
    op.create_index("ix_approvals_status_remind", "approvals", ["status", "remind_at"])
    op.create_index("ix_approvals_status_escalate", "approvals", ["status", "escalate_at"])


def downgrade() -> None:
    op.drop_index("ix_approvals_status_escalate", table_name="approvals")
    op.drop_index("ix_approvals_status_remind", table_name="approvals")
    op.drop_column("approvals", "escalate_to")
    for name in ("escalated_at", "escalate_at", "reminded_at", "remind_at"):
        op.drop_column("approvals", name)
