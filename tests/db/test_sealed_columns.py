"""The sealed columns on both databases: the start-up check opens each, reencrypt reseals each."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import SQLModel, col

from storage import history, outbox
from storage.crypto import Cipher, DecryptionError
from storage.database import Database
from storage.ids import new_approval_id, new_run_id
from storage.models import (
    Approval,
    ApprovalDecision,
    DecisionKind,
    Job,
    JobKind,
    OutboxKind,
    OutboxMessage,
    Run,
    SealedText,
    SlackInstallation,
    Thread,
    utcnow,
)
from storage.outbox import Claimant, Owed
from storage.sealed_columns import (
    SEALED_COLUMNS,
    ResealCounts,
    SealedColumn,
    check_stored_data_opens,
    read_batch,
    reencrypt,
    reseal_batch,
)

OLD = Cipher.generate_key()
NEW = Cipher.generate_key()
WRONG = Cipher.generate_key()
BY_NAME = {sealed.name: sealed for sealed in SEALED_COLUMNS}


def _cipher(setting: str) -> Cipher:
    cipher = Cipher.from_setting(setting)
    assert cipher is not None
    return cipher


@asynccontextmanager
async def keyed(db: Database, setting: str) -> AsyncIterator[Database]:
    """The same database opened with other keys, as a process with another setting would."""
    other = Database(db.url, cipher=_cipher(setting))
    try:
        yield other
    finally:
        await other.dispose()


def _item(text: str) -> str:
    return json.dumps({"role": "user", "content": text})


async def write_one_of_each(db: Database, tag: str) -> None:
    """A thread with a run, an approval, a job and two history items, sealed as `db` seals."""
    thread_key = f"T1:C1:{tag}"
    run_id = new_run_id()
    approval_id = new_approval_id()
    async with db.write() as session:
        session.add(Thread(key=thread_key, team_id="T1", channel_id="C1", thread_ts=tag))
        await session.flush()
        session.add(Run(id=run_id, thread_key=thread_key, requested_by="U1", state=f"state {tag}"))
        session.add(
            Job(
                thread_key=thread_key,
                kind=JobKind.MESSAGE,
                dedupe_key=f"msg:{tag}",
                text=f"text {tag}",
            )
        )
        await session.flush()
        session.add(
            Approval(
                id=approval_id,
                run_id=run_id,
                generation=1,
                team_id="T1",
                channel_id="C1",
                thread_ts=tag,
                call_id="call_1",
                tool_name="delete_customer",
                arguments=f"arguments {tag}",
                requested_by="U1",
                reason=f"reason {tag}",
                outcome=f"outcome {tag}",
                edited_arguments=f"edited {tag}",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        await session.flush()
        session.add(
            ApprovalDecision(
                approval_id=approval_id,
                run_id=run_id,
                team_id="T1",
                user_id="U9",
                kind=DecisionKind.REJECT,
                reason=f"decision reason {tag}",
            )
        )
        await history.append(
            session,
            thread_key=thread_key,
            items=[history.seal_item(db.cipher, _item(f"{tag} {i}")) for i in (1, 2)],
        )
        await outbox.add(
            session,
            thread_key=thread_key,
            owed=[Owed(OutboxKind.POST, {"text": f"answer {tag}"})],
            by=Claimant("test"),
        )
        session.add(
            SlackInstallation(
                key=f"T:T{tag}",
                team_id=f"T{tag}",
                user_id="U1",
                bot_token=f"xoxb-{tag}",
                bot_refresh_token=f"xoxe-1-{tag}",
                user_token=f"xoxp-{tag}",
                user_refresh_token=f"xoxe-1-user-{tag}",
            )
        )


async def stored_values(db: Database, sealed: SealedColumn) -> list[str]:
    return [value.stored for value in await read_batch(db, sealed, after=None, limit=1000)]


async def opened_values(db: Database) -> dict[str, set[str]]:
    """Every sealed value as the bot reads it, through SealedText and the history envelope."""
    async with db.read() as session:
        runs = set(await session.scalars(select(col(Run.state))))
        jobs = set(await session.scalars(select(col(Job.text))))
        approvals = (await session.scalars(select(Approval))).all()
        owed = set(await session.scalars(select(col(OutboxMessage.payload))))
        reasons = set(await session.scalars(select(col(ApprovalDecision.reason))))
        installed = (await session.scalars(select(SlackInstallation))).all()
        rows = await session.scalars(select(history.agent_messages.c.message_data))
        items = {history.open_item(db.cipher, row)["content"] for row in rows}
    return {
        "runs.state": {s for s in runs if s is not None},
        "approvals.arguments": {a.arguments for a in approvals},
        "approvals.reason": {a.reason for a in approvals if a.reason is not None},
        "approvals.outcome": {a.outcome for a in approvals if a.outcome is not None},
        "approvals.edited_arguments": {
            a.edited_arguments for a in approvals if a.edited_arguments is not None
        },
        "approval_decisions.reason": {r for r in reasons if r is not None},
        "jobs.text": {t for t in jobs if t is not None},
        "outbox.payload": {p for p in owed if p is not None},
        "agent_messages.message_data": items,
        **{
            f"slack_installations.{name}": {
                getattr(row, name) for row in installed if getattr(row, name) is not None
            }
            for name in ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
        },
    }


def _is_current(cipher: Cipher, sealed: SealedColumn, stored: str) -> bool:
    """Sealed with the first key of `cipher` (a history row: its payload)."""
    if sealed.name == "agent_messages.message_data":
        stored = json.loads(stored)["payload"]
    return cipher.is_current(stored)


def test_the_list_holds_every_sealed_text_column_of_the_models_and_the_history() -> None:
    in_models = {
        f"{table.name}.{column.name}"
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, SealedText)
    }

    assert set(BY_NAME) == in_models | {"agent_messages.message_data"}


async def test_start_up_opens_every_sealed_column_with_the_right_key(db: Database) -> None:
    async with keyed(db, OLD) as old:
        await write_one_of_each(old, "1.0")
        await check_stored_data_opens(old)
    async with keyed(db, NEW) as new:
        with pytest.raises(DecryptionError):
            await check_stored_data_opens(new)


@pytest.mark.parametrize("name", sorted(BY_NAME))
async def test_a_value_the_keys_cannot_open_stops_start_up(db: Database, name: str) -> None:
    sealed = BY_NAME[name]
    async with keyed(db, OLD) as old:
        await write_one_of_each(old, "1.0")
        await write_one_of_each(old, "2.0")
        wrong = _cipher(WRONG)
        unreadable = (
            history.seal_item(wrong, _item("lost"))
            if sealed.name == "agent_messages.message_data"
            else wrong.encrypt("lost")
        )
        async with old.write() as session:
            await session.execute(update(sealed.table).values({sealed.column: unreadable}))

        with pytest.raises(DecryptionError):
            await check_stored_data_opens(old)


async def test_reencrypt_reseals_every_column_so_the_old_key_can_go(db: Database) -> None:
    await write_one_of_each(db, "1.0")  # before encryption was switched on
    async with keyed(db, OLD) as old:
        await write_one_of_each(old, "2.0")
    async with keyed(db, f"{NEW},{OLD}") as rotated:
        await write_one_of_each(rotated, "3.0")  # already on the new key
        before = await opened_values(rotated)

        done = {name: counts async for name, counts in reencrypt(rotated, batch_size=2)}

        assert list(done) == [sealed.name for sealed in SEALED_COLUMNS]
        for name, counts in done.items():
            rows = 6 if name == "agent_messages.message_data" else 3
            assert counts == ResealCounts(resealed=rows * 2 // 3, current=rows // 3), name
        again = {name: counts async for name, counts in reencrypt(rotated, batch_size=2)}
        assert {counts.resealed for counts in again.values()} == {0}

    async with keyed(db, NEW) as new:
        await check_stored_data_opens(new)
        assert await opened_values(new) == before
        new_key = _cipher(NEW)
        for sealed in SEALED_COLUMNS:
            for stored in await stored_values(new, sealed):
                assert _is_current(new_key, sealed, stored), (sealed.name, stored)


async def test_a_value_the_bot_rewrites_meanwhile_is_never_overwritten(db: Database) -> None:
    async with keyed(db, OLD) as old:
        await write_one_of_each(old, "1.0")
    async with keyed(db, f"{NEW},{OLD}") as rotated:
        runs = BY_NAME["runs.state"]
        batch = await read_batch(rotated, runs, after=None)
        # The bot, still on the old key alone, pauses the run again before the batch is written.
        async with keyed(db, OLD) as bot, bot.write() as session:
            await session.execute(update(Run).values(state="written by the bot"))

        counts = await reseal_batch(rotated, runs, batch)

        assert counts == ResealCounts(skipped=1)
        assert "run it again" in str(counts)
        async with rotated.read() as session:
            assert await session.scalar(select(col(Run.state))) == "written by the bot"
        [after_the_bot] = await stored_values(rotated, runs)
        assert not _cipher(NEW).is_current(after_the_bot)
        # Run again, it picks the value up.
        assert await reseal_batch(
            rotated, runs, await read_batch(rotated, runs, after=None)
        ) == ResealCounts(resealed=1)


async def test_a_row_the_bot_holds_locked_is_skipped_not_waited_for(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time: the batch waits for the bot's lock")
    async with keyed(db, OLD) as old:
        await write_one_of_each(old, "1.0")
        await write_one_of_each(old, "2.0")
    async with keyed(db, f"{NEW},{OLD}") as rotated:
        jobs = BY_NAME["jobs.text"]
        batch = await read_batch(rotated, jobs, after=None)
        async with rotated.write() as bot:
            await bot.execute(
                select(col(Job.id)).where(col(Job.id) == batch[0].key).with_for_update()
            )

            # A hang guard only: waiting on the lock would never end.
            counts = await asyncio.wait_for(reseal_batch(rotated, jobs, batch), timeout=60)

        assert counts == ResealCounts(resealed=1, skipped=1)


async def test_a_value_no_key_opens_stops_reencrypt_and_names_where_it_is(db: Database) -> None:
    async with keyed(db, WRONG) as lost:
        await write_one_of_each(lost, "1.0")
    async with keyed(db, f"{NEW},{OLD}") as rotated:
        with pytest.raises(DecryptionError, match=r"^runs\.state of id 'run_[0-9a-f]+': stored"):
            async for _ in reencrypt(rotated):
                pass
