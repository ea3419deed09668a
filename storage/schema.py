"""Applies Alembic migrations on the bot's own engine, at start-up or from `python -m bot migrate`.

Alembic runs on a connection we hand it, so there is no alembic.ini and no second engine. On
PostgreSQL an advisory lock makes processes that start together migrate one after another.

Alembic is imported only when there is something to migrate: a process that starts on an
up-to-date database (the usual case) keeps about 8 MB less for its whole life.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest migration's revision; tests/db/test_migrations.py holds it to Alembic's head.
HEAD_REVISION = "0016"
_MIGRATION_LOCK_ID = 0x7468_7267  # "thrg"


def alembic_config(connection: Connection | None = None) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def current_revision(db: Database) -> str | None:
    """Read from Alembic's version table directly, without importing Alembic."""

    def read(sync: Connection) -> str | None:
        if not inspect(sync).has_table("alembic_version"):
            return None
        return sync.execute(text("SELECT version_num FROM alembic_version")).scalar()

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def is_up_to_date(db: Database) -> bool:
    return await current_revision(db) == HEAD_REVISION


async def upgrade_if_behind(db: Database) -> None:
    if not await is_up_to_date(db):
        await upgrade(db)
