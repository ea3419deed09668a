"""Alembic environment: always runs on a connection handed over by storage.schema."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)

SDK_TABLES = frozenset({"agent_sessions", "agent_messages"})


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # The SDK owns its conversation tables: autogenerate must never propose dropping them.
    return not (type_ == "table" and name in SDK_TABLES)


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("run migrations with `python -m bot migrate`, not the alembic command")
run_migrations(_connection)
