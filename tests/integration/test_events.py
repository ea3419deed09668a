"""Mentions, DMs and thread replies over signed HTTP, answered through the fake Web API."""

import asyncio
import json
from typing import Any

from agents.testing import ScriptedModel, assistant_message

from bot.config import Config
from tests.fakes.model_server import FakeModelServer, Reply, text_reply
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import ASKER, CHANNEL, texts
from tests.running_app import running_bot


def responses_config() -> Config:
    return Config()


async def test_a_mention_is_answered_in_its_thread(database_url: str, slack: FakeSlackAPI) -> None:
    model = ScriptedModel([[assistant_message("Hello there!")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        status, _ = await bot.send(
            bot.requests.mention(text="hi", user=ASKER, channel=CHANNEL, ts="1700000000.000001")
        )
        assert status == 200
        await bot.settle()
        [answer] = slack.calls_to("chat.postMessage")
        assert answer.args["channel"] == CHANNEL
        assert answer.args["thread_ts"] == "1700000000.000001"
        assert answer.args["text"] == "Hello there!"
        first = model.first_call
        assert first is not None
        assert "hi" in json.dumps(first.input)
        assert "<@UBOT>" not in json.dumps(first.input)


async def test_a_mention_inside_a_thread_answers_in_that_thread(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("In the thread.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(
            bot.requests.mention(
                text="hi", channel=CHANNEL, ts="1700000000.000009", thread_ts="1700000000.000001"
            )
        )
        await bot.settle()
        [answer] = slack.calls_to("chat.postMessage")
        assert answer.args["thread_ts"] == "1700000000.000001"


async def test_a_direct_message_is_answered(database_url: str, slack: FakeSlackAPI) -> None:
    model = ScriptedModel([[assistant_message("Hi in DM")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.dm(text="hello", user=ASKER, channel="D0DM", ts="1700000000.5"))
        await bot.settle()
        [answer] = slack.calls_to("chat.postMessage")
        assert answer.args["channel"] == "D0DM"
        assert answer.args["thread_ts"] == "1700000000.5"


async def test_replies_in_a_thread_the_bot_answers_need_no_mention_but_others_are_ignored(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("first")], [assistant_message("second")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="start", channel=CHANNEL, ts="1700000000.1"))
        await bot.settle()
        await bot.send(
            bot.requests.channel_message(
                text="follow up", channel=CHANNEL, ts="1700000000.2", thread_ts="1700000000.1"
            )
        )
        await bot.send(
            bot.requests.channel_message(
                text="someone else's thread",
                channel=CHANNEL,
                ts="1700000000.4",
                thread_ts="1700000000.3",
            )
        )
        await bot.send(
            bot.requests.channel_message(text="chatter", channel=CHANNEL, ts="1700000000.5")
        )
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["first", "second"]
        model.assert_complete()


async def test_a_mention_delivered_as_two_events_is_answered_once(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("once")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        ts = "1700000000.7"
        await asyncio.gather(
            bot.send(bot.requests.mention(text="<@UBOT> hi", channel=CHANNEL, ts=ts)),
            bot.send(bot.requests.channel_message(text="<@UBOT> hi", channel=CHANNEL, ts=ts)),
        )
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["once"]


async def test_slack_retries_never_start_a_second_run(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("only one")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": ASKER,
            "text": "<@UBOT> hi",
            "ts": "1700000000.8",
            "channel": CHANNEL,
        }
        first = bot.requests.event(event, event_id="Ev0RETRY")
        retry = bot.requests.event(event, event_id="Ev0RETRY", retry_num=1)
        assert (await bot.send(first))[0] == 200
        assert (await bot.send(retry))[0] == 200
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["only one"]


async def test_a_retry_reaching_a_restarted_process_is_ignored(
    database_url: str, slack: FakeSlackAPI
) -> None:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": ASKER,
        "text": "<@UBOT> hi",
        "ts": "1700000000.9",
        "channel": CHANNEL,
    }
    async with running_bot(
        database_url=database_url, slack=slack, model=ScriptedModel([[assistant_message("a")]])
    ) as bot:
        await bot.send(bot.requests.event(event, event_id="Ev0AGAIN"))
        await bot.settle()
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        assert (await bot.send(bot.requests.event(event, event_id="Ev0AGAIN", retry_num=2)))[
            0
        ] == 200
        await bot.settle()
    assert texts(slack.calls_to("chat.postMessage")) == ["a"]


async def test_the_bot_ignores_itself_other_bots_edits_deletions_and_joins(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("start")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="start", channel=CHANNEL, ts="1700000001.1"))
        await bot.settle()
        thread = "1700000001.1"
        for request in (
            bot.requests.bot_message(text="beep", channel=CHANNEL, thread_ts=thread),
            bot.requests.channel_message(
                text="me", user="UBOT", channel=CHANNEL, thread_ts=thread, ts="1700000001.3"
            ),
            bot.requests.message_changed(channel=CHANNEL, thread_ts=thread),
            bot.requests.message_deleted(channel=CHANNEL, thread_ts=thread),
            bot.requests.channel_join(channel=CHANNEL),
        ):
            status, _ = await bot.send(request)
            assert status == 200
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["start"]


async def test_each_thread_remembers_its_own_history_and_no_other(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [assistant_message("Noted: your name is Ada.")],
            [assistant_message("You are Ada.")],
            [assistant_message("I don't know.")],
        ]
    )
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="my name is Ada", ts="1700000002.1"))
        await bot.settle()
        await bot.send(
            bot.requests.mention(text="who am I?", ts="1700000002.2", thread_ts="1700000002.1")
        )
        await bot.settle()
        await bot.send(bot.requests.mention(text="who am I?", ts="1700000002.3"))
        await bot.settle()
        calls = model.calls
        assert "my name is Ada" in json.dumps(calls[1].input)
        assert "Noted: your name is Ada." in json.dumps(calls[1].input)
        assert "Ada" not in json.dumps(calls[2].input)


async def test_messages_in_a_busy_thread_wait_their_turn_in_order(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with FakeModelServer() as server:
        release = asyncio.Event()
        active = 0
        most_active = 0

        async def slow_echo(request: dict[str, Any]) -> Reply:
            nonlocal active, most_active
            active += 1
            most_active = max(most_active, active)
            await release.wait()
            active -= 1
            text = json.dumps(request.get("input"))
            last = "first" if "third" not in text and "second" not in text else "later"
            return text_reply(f"answer to {last}")

        server.respond_with(slow_echo)
        config = Config()
        async with running_bot(
            database_url=database_url,
            slack=slack,
            config=config,
            settings=None,
            model=server.responses_model(),
        ) as bot:
            thread = "1700000003.1"
            await bot.send(bot.requests.mention(text="first", ts=thread))
            await server.wait_for_requests(1)
            await bot.send(bot.requests.mention(text="second", ts="1700000003.2", thread_ts=thread))
            await bot.send(bot.requests.mention(text="third", ts="1700000003.3", thread_ts=thread))
            release.set()
            await bot.settle()
        assert most_active == 1
        inputs = [json.dumps(r.get("input")) for r in server.requests]
        assert [("first" in i, "second" in i, "third" in i) for i in inputs] == [
            (True, False, False),
            (True, True, False),
            (True, True, True),
        ]
        assert len(slack.calls_to("chat.postMessage")) == 3


async def test_a_model_failure_gets_a_plain_reply_with_a_reference_and_the_thread_goes_on(
    database_url: str, slack: FakeSlackAPI, caplog: Any
) -> None:
    model = ScriptedModel([RuntimeError("upstream exploded"), [assistant_message("Back again.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="hi", ts="1700000004.1"))
        await bot.settle()
        [failure] = texts(slack.calls_to("chat.postMessage"))
        assert "upstream exploded" not in failure
        ref = failure.split("`")[1]
        assert ref in caplog.text
        await bot.send(
            bot.requests.mention(text="again", ts="1700000004.2", thread_ts="1700000004.1")
        )
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage"))[-1] == "Back again."


async def test_rate_limits_server_errors_and_dropped_connections_are_retried(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("survived")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        slack.fail("chat.postMessage", status=429, times=1, retry_after=0)
        slack.fail("chat.postMessage", status=500, times=1)
        slack.drop("chat.postMessage", times=1)
        await bot.send(bot.requests.mention(text="hi", ts="1700000005.1"))
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["survived"]
        assert len(slack.faults) == 3
