"""A failed statement's error text leaves its parameters out: they are conversation content.

The text of a SQLAlchemy error ends up in logged tracebacks, so it must not carry a message the
statement was storing, on the normal engine or on PostgreSQL's urgent one.
"""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage.database import Database

PHRASE = "heliotrope-walrus-5521"


@pytest.mark.parametrize("urgent", [False, True], ids=["normal", "urgent"])
async def test_a_failed_write_does_not_show_its_parameters(db: Database, urgent: bool) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with db.write(urgent=urgent) as session:
            await session.execute(
                text("INSERT INTO no_such_table (body) VALUES (:body)"), {"body": PHRASE}
            )

    shown = str(caught.value)
    assert "no_such_table" in shown
    assert "parameters hidden" in shown
    assert PHRASE not in shown
