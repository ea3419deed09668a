"""How many rows each table holds, for tests that prove something leaves nothing behind."""

from sqlalchemy import inspect, text

from storage.database import Database


async def row_counts(db: Database) -> dict[str, int]:
    """Rows in every table of the schema, whatever tables later migrations add."""
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        return {
            name: (await conn.scalar(text(f'SELECT count(*) FROM "{name}"'))) or 0
            for name in names
            if name != "alembic_version"
        }
