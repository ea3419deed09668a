"""Thread approvals: "Approve for this thread" and the calls it let run without a card.

The approval row gains what its card needs to offer the button (whether, and for how long),
and, on the row of a call a thread approval let through, which one did. All three are
nullable, so no table is rebuilt on SQLite: older rows never offered the button.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("allow_for_thread", sa.Boolean(), nullable=True))
    op.add_column(
        "approvals", sa.Column("thread_approval_ttl_seconds", sa.Integer(), nullable=True)
    )
    op.add_column("approvals", sa.Column("thread_approval_id", sa.String(40), nullable=True))
    op.create_table(
        "thread_approvals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("approval_id", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=False),
        sa.Column("tool_name", sa.String(200), nullable=False),
        sa.Column("rule_index", sa.Integer(), nullable=True),
        sa.Column("approved_by", sa.String(32), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("requesters", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(32), nullable=True),
    )
    op.create_index(
        "ix_thread_approvals_thread_tool",
        "thread_approvals",
        ["team_id", "channel_id", "thread_ts", "tool_name"],
    )
    op.create_index("ix_thread_approvals_expires", "thread_approvals", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_thread_approvals_expires", table_name="thread_approvals")
    op.drop_index("ix_thread_approvals_thread_tool", table_name="thread_approvals")
    op.drop_table("thread_approvals")
    op.drop_column("approvals", "thread_approval_id")
    op.drop_column("approvals", "thread_approval_ttl_seconds")
    op.drop_column("approvals", "allow_for_thread")
