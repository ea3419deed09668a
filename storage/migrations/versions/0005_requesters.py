"""Record every requester of a run and of each approval, not only the person who started it.

A run's requesters are everyone whose words reached it; none of them may approve its calls
when self-approval is off. Existing rows get the one requester they knew: `requested_by`.

The column is added with a server default so SQLite can add it without rebuilding the table
(a rebuild would drop `runs`, which `approvals` references).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("runs", "approvals")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in _TABLES:
        op.add_column(
            name,
            sa.Column("requesters", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        )
        table = sa.table(name, sa.column("requested_by", sa.String), sa.column("requesters"))
        one_element = (
            sa.func.json_build_array(table.c.requested_by)
            if postgres
            else sa.func.json_array(table.c.requested_by)
        )
        op.execute(table.update().values(requesters=one_element))


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_column(table, "requesters")
