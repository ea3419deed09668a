"""The database or a lease goes away mid-work: nothing is lost, nothing runs twice.

PostgreSQL outages are real ones: the test database stops taking connections and its
sessions are ended, as when the server restarts or a network path drops.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from sqlalchemy import select, update
from sqlmodel import col

from bot.slack.blocks import APPROVE_ACTION
from bot.slack.listeners.after_ack import NOT_RECORDED
from bot.slack.listeners.feedback import FEEDBACK_NOT_RECORDED
from storage.models import Job, JobStatus, Run, RunStatus, Thread, utcnow
from tests.conftest import PG_ADMIN_DSN
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
    blocked_until,
    texts,
)
from tests.integration.test_feedback import answered, feedback_click, model, value_of
from tests.running_app import RunningBot, bot_settings, running_bot

LEASE_SECONDS = 1


@asynccontextmanager
async def outage(database_url: str) -> AsyncIterator[None]:
    """The database refuses new connections and drops the open ones, until the block ends."""
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def drop_connections(database_url: str) -> None:
    """Ends every open session of the test database; new ones are still welcome."""
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()


def short_lease(database_url: str, slack: FakeSlackAPI) -> Any:
    return bot_settings(database_url, slack, lease_seconds=LEASE_SECONDS)


async def outlive_the_lease() -> None:
    """Let several leases' worth of time pass: a lease nobody renewed would have lapsed."""
    await asyncio.sleep(LEASE_SECONDS * 3)


async def job_status(bot: RunningBot) -> JobStatus:
    async with bot.app.db.read() as session:
        [status] = (await session.scalars(select(col(Job.status)))).all()
        return status


async def test_a_run_longer_than_its_lease_is_not_taken_over(
    database_url: str, slack: FakeSlackAPI
) -> None:
    release, started = asyncio.Event(), asyncio.Event()
    model = ScriptedModel([blocked_until(release, "worth the wait", started)])
    settings = short_lease(database_url, slack)
    async with running_bot(
        database_url=database_url, slack=slack, model=model, settings=settings
    ) as bot:
        await bot.send(bot.requests.mention(text="slow one", channel=CHANNEL, ts="8.1"))
        await started.wait()
        await outlive_the_lease()
        assert await bot.app.interruptions.recover() == 0
        release.set()
        await bot.settle()
        assert texts(slack.messages_in_thread(CHANNEL, "8.1")) == ["worth the wait"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_lease_renewal_that_fails_is_retried(
    database_url: str, slack: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    release, started = asyncio.Event(), asyncio.Event()
    model = ScriptedModel([blocked_until(release, "still mine", started)])
    settings = short_lease(database_url, slack)
    async with running_bot(
        database_url=database_url, slack=slack, model=model, settings=settings
    ) as bot:
        await bot.send(bot.requests.mention(text="slow one", channel=CHANNEL, ts="8.2"))
        await started.wait()
        with caplog.at_level(logging.WARNING, logger="bot.runtime.thread_queue"):
            await drop_connections(database_url)
            await outlive_the_lease()
        assert any("trying again" in r.getMessage() for r in caplog.records)
        assert await bot.app.interruptions.recover() == 0
        release.set()
        await bot.settle()
        assert texts(slack.messages_in_thread(CHANNEL, "8.2")) == ["still mine"]
        assert await job_status(bot) == JobStatus.DONE


async def test_a_lost_lease_stops_the_job_and_leaves_it_to_the_new_holder(
    database_url: str, slack: FakeSlackAPI
) -> None:
    started, cancelled, never = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def respond(_call: ModelCall) -> Any:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return [assistant_message("too late")]

    model = ScriptedModel([ModelStep.respond(respond)])
    settings = short_lease(database_url, slack)
    async with running_bot(
        database_url=database_url, slack=slack, model=model, settings=settings
    ) as bot:
        await bot.send(bot.requests.mention(text="slow one", channel=CHANNEL, ts="8.3"))
        await started.wait()
        # Another process took the thread over, as after a pause long enough to lose it.
        async with bot.app.db.write() as session:
            await session.execute(
                update(Thread).values(
                    lease_owner="other:1", lease_expires_at=utcnow().replace(year=2100)
                )
            )
        await asyncio.wait_for(cancelled.wait(), timeout=30)
        await bot.settle()
        assert await job_status(bot) == JobStatus.RUNNING  # the new holder's to report
        async with bot.app.db.read() as session:
            [run] = (await session.scalars(select(Run))).all()
        assert run.status == RunStatus.RUNNING
        assert not slack.messages_in_thread(CHANNEL, "8.3")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_healthz_is_503_while_the_database_is_unreachable(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        async with bot.http.get(bot.url + "/healthz") as response:
            assert response.status == 200
        async with outage(database_url), bot.http.get(bot.url + "/healthz") as response:
            assert response.status == 503
            assert (await response.json())["database"] is False
        async with bot.http.get(bot.url + "/healthz") as response:
            assert response.status == 200


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_message_while_the_database_is_down_is_retried_by_slack_and_answered_once(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("answered after the outage")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        mention = bot.requests.mention(text="are you there?", channel=CHANNEL, ts="8.4")
        async with outage(database_url):
            status, _ = await bot.send(mention)
            assert status == 503  # not a 2xx: Slack delivers the event again
        status, _ = await bot.send(mention)  # Slack's retry
        assert status == 200
        await bot.settle()
        assert texts(slack.messages_in_thread(CHANNEL, "8.4")) == ["answered after the outage"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_click_while_the_database_is_down_is_told_privately_and_decides_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Any
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c5"}, call_id="call_1")],
            [assistant_message("deleted after all")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await bot.send(bot.requests.mention(text="delete c5", channel=CHANNEL, ts="8.5"))
        await bot.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])
        click = bot.requests.block_actions(
            user=APPROVER,
            action_id=APPROVE_ACTION,
            value=approval_id,
            channel=CHANNEL,
            message_ts="8.6",
            thread_ts="8.5",
        )
        async with outage(database_url):
            status, _ = await bot.send(click)
            assert status == 200
            [note] = await slack.wait_for("chat.postEphemeral")
            await bot.settle()
        assert note.args["text"] == NOT_RECORDED
        assert note.args["user"] == APPROVER
        assert not executions
        status, _ = await bot.send(click)  # the person clicks again
        await bot.settle()
        assert executions == {"delete_customer:c5": 1}
        assert texts(slack.messages_in_thread(CHANNEL, "8.5"))[-1] == "deleted after all"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_feedback_while_the_database_is_down_is_told_so_privately(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=model()) as bot:
        run_id = await answered(bot)
        request = feedback_click(bot.requests, value=value_of(run_id, "positive"))
        async with outage(database_url):
            status, _ = await bot.send(request)
            assert status == 200
            [note] = await slack.wait_for("chat.postEphemeral")
            await bot.settle()
    assert note.args["text"] == FEEDBACK_NOT_RECORDED
