"""A run's history session: read once, written with the run's outcome, sealed at rest.

Driven through the SDK's Runner like any other session, on both databases, with rows in the
SDK's own table layout so that history written by the SDK's SQLAlchemySession still reads.
"""

import json
from typing import Any, cast

import pytest
from agents import Agent, RunConfig, Runner
from agents.extensions.memory import SQLAlchemySession
from agents.items import TResponseInputItem
from agents.memory import Session, SessionSettings
from agents.testing import ScriptedModel, assistant_message
from sqlalchemy import text

from bot.agent.run_history import RunHistory
from storage import history
from storage.crypto import Cipher, DecryptionError
from storage.database import Database
from storage.history import ENVELOPE_KEY

THREAD = "T1:C1:100.000"
OLD_KEY = Cipher.generate_key()
NEW_KEY = Cipher.generate_key()
NO_TRACING = RunConfig(tracing_disabled=True)


def _cipher(setting: str) -> Cipher:
    cipher = Cipher.from_setting(setting)
    assert cipher is not None
    return cipher


def _history(
    db: Database,
    cipher: Cipher | None,
    *,
    limit: int | None = None,
    stored: list[str] | None = None,
) -> RunHistory:
    settings = SessionSettings(limit=limit) if limit is not None else None
    return RunHistory(
        db, THREAD, cipher=cipher, settings=settings, stored=stored, stored_limit=limit
    )


def _message(role: str, content: str) -> TResponseInputItem:
    return cast(TResponseInputItem, {"role": role, "content": content})


async def _stored_rows(db: Database) -> list[str]:
    async with db.read() as session:
        result = await session.execute(text("SELECT message_data FROM agent_messages ORDER BY id"))
        return [row[0] for row in result]


async def _store(db: Database, run: RunHistory) -> None:
    """What the transaction that settles a run does with its new items."""
    async with db.write() as session:
        await history.append(session, thread_key=THREAD, items=run.new_rows())


async def _add_and_store(db: Database, cipher: Cipher | None, *items: TResponseInputItem) -> None:
    run = _history(db, cipher)
    await run.add_items(list(items))
    await _store(db, run)


async def test_two_runs_through_the_runner_keep_history_and_store_no_plaintext(
    db: Database,
) -> None:
    cipher = _cipher(OLD_KEY)
    model = ScriptedModel(
        [
            [assistant_message("The blue plan costs 40 dollars.")],
            [assistant_message("You asked about the blue plan.")],
        ]
    )
    agent = Agent[Any](name="threadgate", instructions="Help.", model=model)

    first_run = _history(db, cipher)
    first = await Runner.run(
        agent, "How much is the blue plan?", session=first_run, run_config=NO_TRACING
    )
    assert await _stored_rows(db) == []  # nothing is written until the run is settled
    await _store(db, first_run)
    second_run = _history(db, cipher)
    second = await Runner.run(
        agent, "What did I ask before?", session=second_run, run_config=NO_TRACING
    )
    await _store(db, second_run)

    assert first.final_output == "The blue plan costs 40 dollars."
    assert second.final_output == "You asked about the blue plan."
    second_input = json.dumps(model.calls[1].input)
    assert "How much is the blue plan?" in second_input
    assert "The blue plan costs 40 dollars." in second_input
    assert "What did I ask before?" in second_input

    rows = await _stored_rows(db)
    assert len(rows) == 4
    for row in rows:
        assert set(json.loads(row)) == {ENVELOPE_KEY, "payload"}
        for plaintext in ("blue plan", "40 dollars", "What did I ask", '"role"', '"content"'):
            assert plaintext not in row
    assert [item.get("role") for item in await _history(db, cipher).get_items()] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


async def test_a_run_that_is_never_settled_leaves_no_history(db: Database) -> None:
    model = ScriptedModel([[assistant_message("lost with the process")]])
    agent = Agent[Any](name="threadgate", model=model)

    await Runner.run(agent, "hello", session=_history(db, None), run_config=NO_TRACING)

    assert await _stored_rows(db) == []


async def test_history_sealed_with_the_old_key_reads_after_rotation(db: Database) -> None:
    await _add_and_store(db, _cipher(OLD_KEY), _message("user", "before rotation"))
    await _add_and_store(db, _cipher(f"{NEW_KEY},{OLD_KEY}"), _message("user", "after rotation"))

    rotated = _history(db, _cipher(f"{NEW_KEY},{OLD_KEY}"))
    assert [item.get("content") for item in await rotated.get_items()] == [
        "before rotation",
        "after rotation",
    ]
    # Only the new key is needed for what was written after the rotation.
    with pytest.raises(DecryptionError):
        await _history(db, _cipher(NEW_KEY)).get_items()
    assert await _history(db, _cipher(NEW_KEY)).get_items(1) == [_message("user", "after rotation")]


async def test_an_unreadable_item_stops_the_run_instead_of_being_skipped(db: Database) -> None:
    await _add_and_store(db, _cipher(OLD_KEY), _message("user", "secret history"))
    model = ScriptedModel([[assistant_message("should not be reached")]])
    agent = Agent[Any](name="threadgate", model=model)

    with pytest.raises(DecryptionError, match="wrong or rotated-out key"):
        await _history(db, _cipher(NEW_KEY)).get_items()
    with pytest.raises(DecryptionError):
        await Runner.run(
            agent, "hello", session=_history(db, _cipher(NEW_KEY)), run_config=NO_TRACING
        )

    assert model.calls == ()
    assert await _history(db, _cipher(OLD_KEY)).get_items() == [_message("user", "secret history")]


async def test_history_written_by_the_sdk_session_reads_and_continues(db: Database) -> None:
    sdk = SQLAlchemySession(THREAD, engine=db.engine)
    await sdk.add_items([_message("user", "written in the clear by the SDK")])

    await _add_and_store(db, _cipher(OLD_KEY), _message("assistant", "written sealed"))

    assert await _history(db, _cipher(OLD_KEY)).get_items() == [
        _message("user", "written in the clear by the SDK"),
        _message("assistant", "written sealed"),
    ]
    rows = await _stored_rows(db)
    assert "written in the clear" in rows[0]
    assert "written sealed" not in rows[1]
    # And the other way round: the SDK's own session reads what we wrote without a key.
    await _add_and_store(db, None, _message("user", "plain again"))
    assert (await sdk.get_items(1)) == [_message("user", "plain again")]


async def test_the_limit_counts_stored_and_new_items_together(db: Database) -> None:
    await _add_and_store(db, None, *[_message("user", f"stored {i}") for i in range(5)])
    stored = await history.read_newest(db, thread_key=THREAD, limit=2)
    run = _history(db, None, limit=2, stored=stored)

    assert [item.get("content") for item in await run.get_items()] == ["stored 3", "stored 4"]
    await run.add_items([_message("assistant", "new 0")])
    assert [item.get("content") for item in await run.get_items()] == ["stored 4", "new 0"]
    # Beyond what the run's first transaction read, the session reads the database.
    assert len(await run.get_items(4)) == 4
    assert len(await run.get_items(100)) == 6

    run.session_settings = SessionSettings(limit=1)
    assert await run.get_items() == [_message("assistant", "new 0")]
    run.session_settings = None
    assert len(await run.get_items()) == 6


async def test_a_preloaded_window_is_not_read_again(db: Database) -> None:
    run = _history(db, None, limit=10, stored=[json.dumps(_message("user", "preloaded"))])
    await _add_and_store(db, None, _message("user", "written since"))

    # Fewer rows than the limit were there: the window is the whole history.
    assert await run.get_items() == [_message("user", "preloaded")]


async def test_pop_takes_new_items_first_then_stored_ones(db: Database) -> None:
    await _add_and_store(db, _cipher(OLD_KEY), _message("user", "one"))
    run = _history(db, _cipher(OLD_KEY))
    await run.add_items([_message("assistant", "two")])

    assert await run.pop_item() == _message("assistant", "two")
    assert run.new_rows() == []
    assert await run.pop_item() == _message("user", "one")
    assert await _stored_rows(db) == []
    assert await run.pop_item() is None


async def test_a_pop_under_a_wrong_key_deletes_nothing(db: Database) -> None:
    await _add_and_store(db, _cipher(OLD_KEY), _message("user", "keep me"))

    with pytest.raises(DecryptionError):
        await _history(db, _cipher(NEW_KEY)).pop_item()

    assert len(await _stored_rows(db)) == 1


async def test_clear_removes_stored_and_new_items(db: Database) -> None:
    await _add_and_store(db, None, _message("user", "one"))
    run = _history(db, None)
    await run.add_items([_message("user", "two")])

    assert run.session_id == THREAD
    await run.clear_session()

    assert await run.get_items() == []
    assert run.new_rows() == []
    assert await _stored_rows(db) == []


async def test_with_encryption_off_items_stay_plain_and_sealed_ones_are_refused(
    db: Database,
) -> None:
    await _add_and_store(db, None, _message("user", "plain"))
    assert "plain" in (await _stored_rows(db))[0]
    assert await _history(db, None).get_items() == [_message("user", "plain")]

    await _add_and_store(db, _cipher(OLD_KEY), _message("user", "sealed"))

    with pytest.raises(DecryptionError, match="not set"):
        await _history(db, None).get_items()


async def test_a_malformed_envelope_is_refused_and_a_corrupt_row_skipped(db: Database) -> None:
    async with db.write() as session:
        await history.append(
            session,
            thread_key=THREAD,
            items=["{not json", json.dumps(_message("user", "fine"))],
        )
    assert await _history(db, None).get_items() == [_message("user", "fine")]

    async with db.write() as session:
        await history.append(
            session, thread_key=THREAD, items=[json.dumps({ENVELOPE_KEY: 2, "payload": "x"})]
        )
    with pytest.raises(DecryptionError, match="unknown envelope"):
        await _history(db, _cipher(OLD_KEY)).get_items()


async def test_appends_touch_the_session_row_once(db: Database) -> None:
    await _add_and_store(db, None, _message("user", "one"))
    await _add_and_store(db, None, _message("user", "two"), _message("user", "three"))

    async with db.read() as session:
        sessions = await session.scalar(text("SELECT count(*) FROM agent_sessions"))
    assert sessions == 1
    assert len(await _stored_rows(db)) == 3


async def test_it_satisfies_the_sdk_session_protocol(db: Database) -> None:
    assert isinstance(_history(db, _cipher(OLD_KEY)), Session)


async def test_the_newest_items_come_off_an_index_without_a_sort(db: Database) -> None:
    """A run reads its window in index order, however long the thread and however many of
    its items share one timestamp (one transaction writes them all)."""
    async with db.write() as session:
        await history.append(session, thread_key=THREAD, items=["{}"] * 500)
        await session.execute(text("ANALYZE"))
    newest = (
        "SELECT message_data FROM agent_messages WHERE session_id = :sid "
        "ORDER BY created_at DESC, id DESC LIMIT 100"
    )
    explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    async with db.read() as session:
        plan = " ".join(
            str(row[-1]) for row in await session.execute(text(explain + newest), {"sid": THREAD})
        )
    assert "ix_agent_messages_session_time_id" in plan
    assert "TEMP B-TREE" not in plan
    assert "Sort" not in plan
