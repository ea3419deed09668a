"""Whether a message job's Slack event carried files.

A run that a thread's first message starts reads the thread from Slack only to find that
message's own files; `jobs.has_files` false lets it skip the read. NULL for rows written
before, and for messages whose event was not seen (the console): those read as always. A
nullable column needs no table rebuild on SQLite.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("has_files", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "has_files")
