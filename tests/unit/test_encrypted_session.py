"""Thread history sealed at rest, read through the SDK's Runner like any other session."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from agents import Agent, RunConfig, Runner
from agents.extensions.memory import SQLAlchemySession
from agents.items import TResponseInputItem
from agents.memory import Session, SessionSettings
from agents.testing import ScriptedModel, assistant_message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.encrypted_session import ENVELOPE_KEY, SealedSession
from storage.crypto import Cipher, DecryptionError

THREAD = "T1:C1:100.000"
OLD_KEY = Cipher.generate_key()
NEW_KEY = Cipher.generate_key()
NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    yield engine
    await engine.dispose()


def _cipher(setting: str) -> Cipher:
    cipher = Cipher.from_setting(setting)
    assert cipher is not None
    return cipher


def _sealed(
    engine: AsyncEngine, cipher: Cipher | None, *, limit: int | None = None
) -> SealedSession:
    settings = SessionSettings(limit=limit) if limit is not None else None
    underlying = SQLAlchemySession(
        THREAD, engine=engine, create_tables=True, session_settings=settings
    )
    return SealedSession(underlying, cipher)


def _message(role: str, content: str) -> TResponseInputItem:
    return cast(TResponseInputItem, {"role": role, "content": content})


async def _stored_rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT message_data FROM agent_messages ORDER BY id"))
        return [row[0] for row in result]


async def test_two_turns_through_the_runner_keep_history_and_store_no_plaintext(
    engine: AsyncEngine,
) -> None:
    session: Session = _sealed(engine, _cipher(OLD_KEY))
    model = ScriptedModel(
        [
            [assistant_message("The blue plan costs 40 dollars.")],
            [assistant_message("You asked about the blue plan.")],
        ]
    )
    agent = Agent[Any](name="threadgate", instructions="Help.", model=model)

    first = await Runner.run(
        agent, "How much is the blue plan?", session=session, run_config=NO_TRACING
    )
    second = await Runner.run(
        agent, "What did I ask before?", session=session, run_config=NO_TRACING
    )

    assert first.final_output == "The blue plan costs 40 dollars."
    assert second.final_output == "You asked about the blue plan."
    assert len(model.calls) == 2
    second_input = json.dumps(model.calls[1].input)
    assert "How much is the blue plan?" in second_input
    assert "The blue plan costs 40 dollars." in second_input
    assert "What did I ask before?" in second_input

    rows = await _stored_rows(engine)
    assert len(rows) == 4
    for row in rows:
        assert set(json.loads(row)) == {ENVELOPE_KEY, "payload"}
        for plaintext in ("blue plan", "40 dollars", "What did I ask", '"role"', '"content"'):
            assert plaintext not in row
    assert [item.get("role") for item in await session.get_items()] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


async def test_history_sealed_with_the_old_key_reads_after_rotation(engine: AsyncEngine) -> None:
    await _sealed(engine, _cipher(OLD_KEY)).add_items([_message("user", "before rotation")])
    rotated = _sealed(engine, _cipher(f"{NEW_KEY},{OLD_KEY}"))

    await rotated.add_items([_message("user", "after rotation")])

    assert [item.get("content") for item in await rotated.get_items()] == [
        "before rotation",
        "after rotation",
    ]
    # Only the new key is needed for what was written after the rotation.
    with pytest.raises(DecryptionError):
        await _sealed(engine, _cipher(NEW_KEY)).get_items()
    assert await _sealed(engine, _cipher(NEW_KEY)).get_items(1) == [
        _message("user", "after rotation")
    ]


async def test_an_unreadable_item_stops_the_run_instead_of_being_skipped(
    engine: AsyncEngine,
) -> None:
    await _sealed(engine, _cipher(OLD_KEY)).add_items([_message("user", "secret history")])
    model = ScriptedModel([[assistant_message("should not be reached")]])
    agent = Agent[Any](name="threadgate", model=model)
    wrong = _sealed(engine, _cipher(NEW_KEY))

    with pytest.raises(DecryptionError, match="wrong or rotated-out key"):
        await wrong.get_items()
    with pytest.raises(DecryptionError):
        await Runner.run(agent, "hello", session=wrong, run_config=NO_TRACING)

    assert model.calls == ()
    # Nothing was lost: the right key still reads the history.
    assert await _sealed(engine, _cipher(OLD_KEY)).get_items() == [
        _message("user", "secret history")
    ]


async def test_history_written_before_encryption_was_on_still_reads(engine: AsyncEngine) -> None:
    plain = SQLAlchemySession(THREAD, engine=engine, create_tables=True)
    await plain.add_items([_message("user", "written in the clear")])
    sealed = _sealed(engine, _cipher(OLD_KEY))

    await sealed.add_items([_message("assistant", "written sealed")])

    assert await sealed.get_items() == [
        _message("user", "written in the clear"),
        _message("assistant", "written sealed"),
    ]
    rows = await _stored_rows(engine)
    assert "written in the clear" in rows[0]
    assert "written sealed" not in rows[1]


async def test_the_history_limit_of_the_underlying_session_applies(engine: AsyncEngine) -> None:
    sealed = _sealed(engine, _cipher(OLD_KEY), limit=2)
    await sealed.add_items([_message("user", f"message {i}") for i in range(5)])

    assert sealed.session_settings == SessionSettings(limit=2)
    assert [item.get("content") for item in await sealed.get_items()] == [
        "message 3",
        "message 4",
    ]
    assert len(await sealed.get_items(4)) == 4

    sealed.session_settings = SessionSettings(limit=1)
    assert sealed.underlying.session_settings == SessionSettings(limit=1)
    assert await sealed.get_items() == [_message("user", "message 4")]


async def test_pop_returns_the_newest_item_decrypted(engine: AsyncEngine) -> None:
    sealed = _sealed(engine, _cipher(OLD_KEY))
    await sealed.add_items([_message("user", "one"), _message("assistant", "two")])

    assert await sealed.pop_item() == _message("assistant", "two")
    assert await sealed.get_items() == [_message("user", "one")]
    assert await sealed.pop_item() == _message("user", "one")
    assert await sealed.pop_item() is None


async def test_a_pop_under_a_wrong_key_deletes_nothing(engine: AsyncEngine) -> None:
    await _sealed(engine, _cipher(OLD_KEY)).add_items([_message("user", "keep me")])

    with pytest.raises(DecryptionError):
        await _sealed(engine, _cipher(NEW_KEY)).pop_item()

    assert len(await _stored_rows(engine)) == 1


async def test_clear_and_session_id_go_to_the_underlying_session(engine: AsyncEngine) -> None:
    sealed = _sealed(engine, _cipher(OLD_KEY))
    await sealed.add_items([_message("user", "one")])

    assert sealed.session_id == THREAD
    await sealed.clear_session()

    assert await sealed.get_items() == []
    assert await _stored_rows(engine) == []


async def test_with_encryption_off_items_stay_plain_and_sealed_ones_are_refused(
    engine: AsyncEngine,
) -> None:
    off = _sealed(engine, None)
    await off.add_items([_message("user", "plain")])
    assert "plain" in (await _stored_rows(engine))[0]
    assert await off.get_items() == [_message("user", "plain")]

    await _sealed(engine, _cipher(OLD_KEY)).add_items([_message("user", "sealed")])

    with pytest.raises(DecryptionError, match="not set"):
        await off.get_items()


async def test_a_malformed_envelope_is_refused(engine: AsyncEngine) -> None:
    plain = SQLAlchemySession(THREAD, engine=engine, create_tables=True)
    await plain.add_items([cast(TResponseInputItem, {ENVELOPE_KEY: 2, "payload": "x"})])

    with pytest.raises(DecryptionError, match="unknown envelope"):
        await _sealed(engine, _cipher(OLD_KEY)).get_items()


async def test_it_satisfies_the_sdk_session_protocol(engine: AsyncEngine) -> None:
    assert isinstance(_sealed(engine, _cipher(OLD_KEY)), Session)
