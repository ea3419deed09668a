"""Slack's agent surface over signed HTTP: opening the Messages tab or an assistant thread sets
the admin's suggested prompts and starts nothing; what the person writes there is a DM like any
other, so it runs and its approval card lands in that thread."""

from collections import Counter
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import func, select

from bot.config import AgentConfig, Config, SuggestedPrompt
from storage.models import Job, Run
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import ASKER, approval_config, approval_ids, approval_messages
from tests.running_app import RunningBot, running_bot

DM = "D0AGENT"
THREAD_TS = "1726133698.626339"
PROMPTS = [
    SuggestedPrompt(title="Summarize", message="Summarize this thread for me"),
    SuggestedPrompt(title="Find a customer", message="Look up customer c42"),
]


def prompts_config(**agent: object) -> Config:
    return Config(
        agent=AgentConfig(suggested_prompts=PROMPTS, suggested_prompts_title="Try one", **agent)
    )


def thread_started(
    bot: RunningBot, *, channel: str = DM, thread_ts: str = THREAD_TS
) -> dict[str, Any]:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": ASKER,
            "context": {"channel_id": "C0CHAN", "team_id": bot.requests.team_id},
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
    }


def home_opened(tab: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": ASKER, "channel": DM, "tab": tab}


async def started_anything(bot: RunningBot) -> int:
    async with bot.app.db.read() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job)) or 0
        runs = await session.scalar(select(func.count()).select_from(Run)) or 0
    return jobs + runs


EXPECTED = [{"title": p.title, "message": p.message} for p in PROMPTS]


async def test_an_assistant_thread_gets_the_suggested_prompts_and_starts_no_run(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=prompts_config(), model=ScriptedModel([])
    ) as bot:
        status, _ = await bot.send(bot.requests.event(thread_started(bot)))
        await bot.settle()

        assert status == 200
        [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
        assert call.args == {
            "channel_id": DM,
            "thread_ts": THREAD_TS,
            "prompts": EXPECTED,
            "title": "Try one",
        }
        assert await started_anything(bot) == 0
        assert not slack.calls_to("chat.postMessage")


async def test_opening_the_messages_tab_sets_the_prompts_without_a_thread(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=prompts_config(), model=ScriptedModel([])
    ) as bot:
        home, messages = home_opened("home"), home_opened("messages")
        statuses = [(await bot.send(bot.requests.event(e)))[0] for e in (home, messages)]
        await bot.settle()

        assert statuses == [200, 200]
        [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
        # The agent view has no thread yet, and Slack drops a call that names one there.
        assert call.args == {"channel_id": DM, "prompts": EXPECTED, "title": "Try one"}
        assert await started_anything(bot) == 0


async def test_without_prompts_configured_nothing_is_set_and_the_events_are_still_acked(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        changed = thread_started(bot) | {"type": "assistant_thread_context_changed"}
        events = [thread_started(bot), home_opened("messages"), changed]
        statuses = [(await bot.send(bot.requests.event(e)))[0] for e in events]
        await bot.settle()

        assert statuses == [200, 200, 200]
        assert not slack.calls_to("assistant.threads.setSuggestedPrompts")
        assert await started_anything(bot) == 0


async def test_a_thread_event_of_the_wrong_shape_is_a_400(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=prompts_config(), model=ScriptedModel([])
    ) as bot:
        no_ts = thread_started(bot)
        del no_ts["assistant_thread"]["thread_ts"]
        no_thread = thread_started(bot) | {"assistant_thread": ["D0AGENT"]}
        changed_no_ts = no_ts | {"type": "assistant_thread_context_changed"}
        bad_channel = home_opened("messages") | {"channel": "D0 <x>"}
        events = (no_ts, no_thread, changed_no_ts, bad_channel)

        statuses = [(await bot.send(bot.requests.event(e)))[0] for e in events]
        await bot.settle()

        assert statuses == [400, 400, 400, 400]
        assert not slack.calls_to("assistant.threads.setSuggestedPrompts")


async def test_a_dm_in_an_assistant_thread_runs_and_its_approval_card_lands_there(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config()
    config = config.model_copy(update={"agent": prompts_config().agent})
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Deleted.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await bot.send(bot.requests.event(thread_started(bot)))
        await bot.settle()
        assert await started_anything(bot) == 0

        status, _ = await bot.send(
            bot.requests.dm(text="delete customer c42", user=ASKER, channel=DM, thread_ts=THREAD_TS)
        )
        await bot.settle()

        assert status == 200
        [card] = approval_messages(slack)
        assert card.args["channel"] == DM
        assert card.args["thread_ts"] == THREAD_TS
        assert approval_ids(card)
        assert not executions
