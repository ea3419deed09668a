"""Encryption at rest and retention, through the running app on both databases."""

from collections import Counter
from datetime import timedelta

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text, update

from bot.config import StorageConfig
from bot.slack.blocks import APPROVE_ACTION
from storage.crypto import DecryptionError
from storage.models import Job, Run, SlackEvent, utcnow
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.running_app import RunningBot, bot_settings, running_bot

SECRET_WORDS = "the launch code is swordfish"


def model_for(customer: str, answer: str) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": customer}, call_id="call_1")],
            [assistant_message(answer)],
        ]
    )


async def dump(bot: RunningBot) -> str:
    """Everything a database dump would show of the tables that hold conversation content."""
    rows: list[str] = []
    async with bot.app.db.engine.connect() as conn:
        for query in (
            "SELECT state FROM runs",
            "SELECT arguments, reason, outcome FROM approvals",
            "SELECT text FROM jobs",
            "SELECT message_data FROM agent_messages",
        ):
            rows.extend(str(row) for row in (await conn.execute(text(query))).all())
    return "\n".join(rows)


async def test_with_a_key_a_dump_shows_no_conversation_content_and_everything_works(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    key = Fernet.generate_key().decode()
    settings = bot_settings(database_url, slack, encryption_key=SecretStr(key))
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=model_for("swordfish-customer", "Deleted the swordfish customer."),
        settings=settings,
    ) as bot:
        await bot.send(bot.requests.mention(text=SECRET_WORDS, user=ASKER, ts="40.1"))
        await bot.settle()
        paused = await dump(bot)
        assert "swordfish" not in paused
        assert "tgenc:v1:" in paused
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await bot.send(
            bot.requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="40.2",
            )
        )
        await bot.settle()
        assert executions == Counter({"delete_customer:swordfish-customer": 1})
        assert texts(slack.calls_to("chat.postMessage"))[-1] == "Deleted the swordfish customer."
        assert "swordfish" not in await dump(bot)


async def test_rotation_reads_old_data_and_a_wrong_key_stops_start_up(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    old, new, wrong = (Fernet.generate_key().decode() for _ in range(3))
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=model_for("c1", "unused"),
        settings=bot_settings(database_url, slack, encryption_key=SecretStr(old)),
    ) as bot:
        await bot.send(bot.requests.mention(text="delete c1", user=ASKER, ts="41.1"))
        await bot.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])

    with pytest.raises(DecryptionError) as refused:
        async with running_bot(
            database_url=database_url,
            slack=slack,
            config=approval_config(),
            settings=bot_settings(database_url, slack, encryption_key=SecretStr(wrong)),
        ):
            pass
    assert wrong not in str(refused.value)
    assert "THREADGATE_ENCRYPTION_KEY" in str(refused.value)

    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=ScriptedModel([[assistant_message("Rotated and done.")]]),
        settings=bot_settings(database_url, slack, encryption_key=SecretStr(f"{new},{old}")),
    ) as bot:
        await bot.send(
            bot.requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="41.2",
            )
        )
        await bot.settle()
        assert executions == Counter({"delete_customer:c1": 1})
        assert texts(slack.calls_to("chat.postMessage"))[-1] == "Rotated and done."


async def test_the_sweep_purges_what_retention_allows(
    database_url: str, slack: FakeSlackAPI
) -> None:
    config = approval_config()
    config = config.model_copy(update={"storage": StorageConfig(retain_days=7)})
    model = ScriptedModel([[assistant_message("old answer")], [assistant_message("new answer")]])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await bot.send(bot.requests.mention(text="old question", ts="42.1"))
        await bot.settle()
        long_ago = utcnow() - timedelta(days=30)
        async with bot.app.db.write() as session:
            await session.execute(update(Run).values(updated_at=long_ago))
            await session.execute(update(Job).values(finished_at=long_ago))
            await session.execute(update(SlackEvent).values(received_at=long_ago))
        await bot.send(bot.requests.mention(text="new question", ts="42.5"))
        await bot.settle()
        bot.app.sweeper._next_purge = 0.0
        await bot.app.sweeper.sweep()
        async with bot.app.db.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM runs")) == 1
            assert await conn.scalar(text("SELECT count(*) FROM jobs")) == 1
            assert await conn.scalar(text("SELECT count(*) FROM slack_events")) == 1
            # The conversation history stays: purge_history is off.
            assert await conn.scalar(text("SELECT count(*) FROM agent_messages")) == 4
