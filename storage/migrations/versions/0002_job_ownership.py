"""Record which process runs a job and when an approved call started; recovery indexes.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_jobs_status_finished", ["status", "finished_at"])
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_status_updated", ["status", "updated_at"])
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_approvals_status_decided", ["status", "decided_at"])


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_index("ix_approvals_status_decided")
        batch.drop_column("executed_at")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_status_updated")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_finished")
        batch.drop_column("started_at")
        batch.drop_column("owner")
