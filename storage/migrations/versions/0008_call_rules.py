"""Record with each approval the rule that decided it: its number and its label.

Both are nullable: approvals stored before rules existed, and those a tool's table decided,
have no rule number; older rows have no label. Adding nullable columns needs no table rebuild
on SQLite.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("rule_index", sa.Integer(), nullable=True))
    op.add_column("approvals", sa.Column("rule_label", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("approvals", "rule_label")
    op.drop_column("approvals", "rule_index")
