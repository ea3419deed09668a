"""Quorum approvals and the decision log: how many distinct approvers a call needs, and one
row per vote or decision.

Existing approvals needed one approver, so the column's server default gives them 1 without
rebuilding the table on SQLite (a rebuild would drop `approvals`, which the log references).
One approval per person and call is a partial unique index, which both databases support.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_VOTE = sa.text("kind = 'approve'")


def upgrade() -> None:
    op.add_column(
        "approvals",
        sa.Column("approvals_needed", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("approval_id", sa.String(40), sa.ForeignKey("approvals.id"), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_approval_decisions_approval", "approval_decisions", ["approval_id", "id"])
    op.create_index(
        "uq_approval_decisions_vote",
        "approval_decisions",
        ["approval_id", "user_id"],
        unique=True,
        sqlite_where=_ONE_VOTE,
        postgresql_where=_ONE_VOTE,
    )


def downgrade() -> None:
    op.drop_index("uq_approval_decisions_vote", table_name="approval_decisions")
    op.drop_index("ix_approval_decisions_approval", table_name="approval_decisions")
    op.drop_table("approval_decisions")
    op.drop_column("approvals", "approvals_needed")
