"""Enterprise Grid: the org a thread's workspace belongs to, and so its approvals'.

`threads.enterprise_id` is taken from the event that started the thread; a workspace of an org
served by an org-wide install is found through it when work resumes in another process.
`approvals.enterprise_id` is the thread's, for the audit log. Both NULL outside an org and for
rows written before. Nullable columns need no table rebuild on SQLite.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("enterprise_id", sa.String(32), nullable=True))
    op.add_column("approvals", sa.Column("enterprise_id", sa.String(32), nullable=True))
    op.create_index("ix_threads_team", "threads", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_threads_team", table_name="threads")
    op.drop_column("approvals", "enterprise_id")
    op.drop_column("threads", "enterprise_id")
