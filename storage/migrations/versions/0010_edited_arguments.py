"""Edit, then approve: whether a call's card offers "Edit…", and the arguments an approver
put in its place.

Both columns are nullable: rows written before edits existed offer no edit and were never
edited. `edited_arguments` is sealed like `arguments` (storage.sealed_columns). Adding
nullable columns needs no table rebuild on SQLite.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("allow_edit", sa.Boolean(), nullable=True))
    op.add_column("approvals", sa.Column("edited_arguments", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("approvals", "edited_arguments")
    op.drop_column("approvals", "allow_edit")
