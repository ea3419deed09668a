"""Index a thread's history in the exact order a run reads its newest items.

The SDK's index covers (session_id, created_at). Items written in one transaction share
created_at, so `ORDER BY created_at DESC, id DESC LIMIT n` read every tied row and sorted
them: a thread whose history arrived in one batch cost a scan of all of it. With id in the
index the newest n rows come straight off it.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_agent_messages_session_time_id", "agent_messages", ["session_id", "created_at", "id"]
    )
    op.drop_index("idx_agent_messages_session_time", table_name="agent_messages")


def downgrade() -> None:
    op.create_index(
        "idx_agent_messages_session_time", "agent_messages", ["session_id", "created_at"]
    )
    op.drop_index("ix_agent_messages_session_time_id", table_name="agent_messages")
