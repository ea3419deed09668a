"""The approvals channel and the App Home inbox.

`approvals.mirror_channel_id` is the channel a call's card is also posted in (`[approvals]
mirror_to` when it paused), `mirror_ts` that copy's message once posted; both NULL for rows
written before the mirror existed, or without one. `home_views` remembers who has opened the
App Home and when it was last published, so a decision refreshes only the Home views that are
there to refresh. Nullable columns need no table rebuild on SQLite.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("mirror_channel_id", sa.String(32), nullable=True))
    op.add_column("approvals", sa.Column("mirror_ts", sa.String(32), nullable=True))
    op.create_table(
        "home_views",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_approvals_team_status", "approvals", ["team_id", "status"])
    # A person's recent decisions, for their Home.
    op.create_index(
        "ix_approval_decisions_user", "approval_decisions", ["team_id", "user_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_approval_decisions_user", table_name="approval_decisions")
    op.drop_index("ix_approvals_team_status", table_name="approvals")
    op.drop_table("home_views")
    op.drop_column("approvals", "mirror_ts")
    op.drop_column("approvals", "mirror_channel_id")
