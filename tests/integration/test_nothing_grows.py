"""With the default config nothing grows without bound, through the running app."""

from datetime import timedelta

from agents.testing import ScriptedModel, assistant_message
from sqlalchemy import func, select, update
from sqlmodel import col

from storage.models import Job, Run, SlackEvent, utcnow
from storage.retention import EVENT_IDS_KEPT
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import CHANNEL, texts
from tests.row_counts import row_counts
from tests.running_app import running_bot


async def test_messages_the_bot_ignores_leave_no_row_in_any_table(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        in_other_thread = bot.requests.channel_message(
            text="lunch?", channel=CHANNEL, ts="1700000100.2", thread_ts="1700000100.1"
        )
        top_level = bot.requests.channel_message(text="hi all", channel=CHANNEL)
        for request in (in_other_thread, top_level, in_other_thread):
            assert (await bot.send(request))[0] == 200
        await bot.settle()

        counts = await row_counts(bot.app.db)
        assert set(counts.values()) == {0}, counts
        assert slack.calls_to("chat.postMessage") == []


async def test_the_sweep_drops_old_event_ids_even_when_retention_is_unset(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("old answer")], [assistant_message("new answer")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        assert bot.app.sweeper.retention is not None
        assert bot.app.sweeper.retention.retain_days is None
        await bot.send(bot.requests.mention(text="old question", channel=CHANNEL, ts="1.5"))
        await bot.settle()
        async with bot.app.db.write() as session:
            await session.execute(
                update(SlackEvent).values(
                    received_at=utcnow() - EVENT_IDS_KEPT - timedelta(hours=1)
                )
            )
        await bot.send(bot.requests.mention(text="new question", channel=CHANNEL, ts="2.5"))
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["old answer", "new answer"]

        bot.app.sweeper._next_purge = 0.0
        await bot.app.sweeper.sweep()

        async with bot.app.db.read() as session:
            assert await session.scalar(select(func.count()).select_from(SlackEvent)) == 1
            # Everything else is kept: retain_days is unset.
            assert await session.scalar(select(func.count()).select_from(Run)) == 2
            assert await session.scalar(select(func.count(col(Job.id)))) == 2
