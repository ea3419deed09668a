"""What a person sees while the agent works: a status at once, the answer streamed as it is
written, each tool call as a task, and every character once, whatever Slack refuses."""

from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.config import AgentConfig
from bot.slack.blocks import REJECT_ACTION
from bot.slack.live_answer import PACE
from tests.fakes.model_server import FakeModelServer, Reply, ToolCall
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import ASKER, CHANNEL, approval_config, approval_ids
from tests.integration.test_approvals import THREAD_TS, ask, click, reject_with
from tests.running_app import bot_settings, running_bot

REFUND = {"order_id": "o1", "amount": 5}


def _config(**agent: Any) -> Any:
    config = approval_config(tools={"lookup_order": {"require": "never"}})
    return config.model_copy(update={"agent": AgentConfig(**agent)})


def _thread_text(slack: FakeSlackAPI) -> str:
    """Everything the thread shows from the bot but its cards, in order: streamed messages and
    posted ones."""
    parts = []
    for message in slack.posted[CHANNEL]:
        if message.get("thread_ts") != THREAD_TS or _is_card(message):
            continue
        stream = next((s for s in slack.streams if s.ts == message["ts"]), None)
        if stream is not None:
            parts.append(stream.text)
        else:
            blocks = message.get("blocks") or []
            parts.append("".join(b.get("text", "") for b in blocks if b["type"] == "markdown"))
    return "".join(parts)


def _is_card(message: dict[str, Any]) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


async def test_the_answer_streams_into_the_thread_after_a_status(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("The **order** shipped.")]])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot, "where is my order?")
    [stream] = slack.streams
    assert stream.text == "The **order** shipped."
    assert stream.stopped
    assert (stream.recipient_user_id, stream.recipient_team_id) == (ASKER, slack.team_id)
    statuses = slack.statuses(CHANNEL, THREAD_TS)
    assert statuses[0] == "is thinking…"
    assert statuses[-1] == ""
    first = slack.calls_to("assistant.threads.setStatus")[0]
    assert first.args["loading_messages"]
    assert not [c for c in slack.calls_to("chat.postMessage") if not approval_ids(c)]


async def test_tool_calls_appear_as_tasks_and_a_pause_stops_the_stream_before_the_card(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [
                assistant_message("Let me look."),
                function_call("lookup_order", {"order_id": "o1"}, call_id="look_1"),
            ],
            [function_call("refund", {"order_id": "o1", "amount": 5}, call_id="refund_1")],
            [assistant_message("Refunded.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot, "refund o1")
        first = slack.streams[0]
        assert first.stopped
        assert first.tasks == {"look_1": "complete", "refund_1": "pending"}
        methods = [c.method for c in slack.calls]
        card_at = next(
            i
            for i, c in enumerate(slack.calls)
            if c.method == "chat.postMessage" and approval_ids(c)
        )
        assert methods.index("chat.stopStream") < card_at
        statuses = slack.statuses(CHANNEL, THREAD_TS)
        assert "is running lookup_order…" in statuses
        assert statuses[-1].startswith("is waiting for approval by")
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]
        await click(bot, approval_ids(card)[0])
    second = slack.streams[-1]
    assert second is not first
    assert second.stopped
    assert second.tasks.get("refund_1") == "complete"
    [done] = [c for c in second.chunks if c.get("id") == "refund_1"]
    assert done["title"] == "Ran refund"
    assert _thread_text(slack) == "Let me look.Refunded."


async def test_a_rejected_call_shows_as_an_error_task(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [function_call("refund", {"order_id": "o1", "amount": 5}, call_id="refund_1")],
            [assistant_message("Not refunded.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot, "refund o1")
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]

        await click(bot, approval_ids(card)[0], action=REJECT_ACTION)

        await reject_with(bot, approval_ids(card)[0], "no")
    assert slack.streams[-1].tasks.get("refund_1") == "error"


async def test_a_sealed_stream_goes_on_in_a_new_message_losing_nothing(
    database_url: str, slack: FakeSlackAPI
) -> None:
    words = [f"word{i} " for i in range(60)]
    slack.stream_seal_after = 0.05

    async with FakeModelServer() as server:
        server.token_delay = 0.01
        server.reply_text("".join(words))

        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(
            database_url=database_url,
            slack=slack,
            settings=settings,
            config=_config(),
            live=True,
        ) as bot:
            await ask(bot, "talk")
    assert len(slack.streams) >= 2
    assert _thread_text(slack) == "".join(words)


async def test_without_streaming_one_message_is_updated_as_text_arrives(
    database_url: str, slack: FakeSlackAPI
) -> None:
    slack.refuse("chat.startStream", "unknown_method")
    model = ScriptedModel([[assistant_message("All **good**.")]])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot)
    [post] = [c for c in slack.calls_to("chat.postMessage") if not approval_ids(c)]
    assert post.args["blocks"][0] == {"type": "markdown", "text": "All **good**."}
    assert _thread_text(slack) == "All **good**."


async def test_where_updates_are_refused_too_the_rest_is_posted_plain(
    database_url: str, slack: FakeSlackAPI
) -> None:
    slack.refuse("chat.startStream", "not_allowed")
    slack.refuse("chat.update", "not_allowed")
    model = ScriptedModel(
        [
            [
                assistant_message("First."),
                function_call("lookup_order", {"order_id": "o1"}, call_id="look_1"),
            ],
            [assistant_message(" Second.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot)
    assert _thread_text(slack) == "First. Second."


async def test_where_status_is_refused_an_eyes_reaction_stands_in_until_the_answer(
    database_url: str, slack: FakeSlackAPI
) -> None:
    slack.refuse("assistant.threads.setStatus", "not_allowed")
    model = ScriptedModel([[assistant_message("Done.")]])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot)
    added = slack.calls_to("reactions.add")
    assert [(c.args["name"], c.args["timestamp"]) for c in added] == [("eyes", THREAD_TS)]
    assert [c.args["name"] for c in slack.calls_to("reactions.remove")] == ["eyes"]
    assert slack.reactions(CHANNEL, THREAD_TS) == set()


async def test_model_text_in_a_stream_cannot_ping_or_phish(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("<!channel> see <https://evil|Log in>")]])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot)
    text = slack.streams[0].text
    assert "<!channel>" not in text
    assert "<https://evil" not in text


async def test_a_burst_of_tokens_is_not_a_burst_of_calls(
    database_url: str, slack: FakeSlackAPI
) -> None:

    text = "".join(f"t{i} " for i in range(500))
    async with FakeModelServer() as server:
        server.token_delay = 0.004  # 500 tokens over two seconds or more
        server.reply_text(text)
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(
            database_url=database_url, slack=slack, settings=settings, config=_config(), live=True
        ) as bot:
            await ask(bot)
    calls = len(slack.calls_to("chat.appendStream")) + len(slack.calls_to("chat.startStream"))
    deltas = server.timings[0].deltas
    generating = deltas[-1][0] - deltas[0][0]
    assert calls <= generating / PACE + 3  # one call per pace, not one per token
    assert len(deltas) >= 500
    assert _thread_text(slack) == text
    assert not slack.faults


async def test_an_answer_across_a_pause_a_restart_and_a_seal_arrives_complete_and_once(
    database_url: str, slack: FakeSlackAPI
) -> None:
    before = "Checking the order first. "
    after = "".join(f"part{i} " for i in range(40))
    async with FakeModelServer() as server:
        server.token_delay = 0.01
        server.reply(Reply(text=before, tool_calls=(ToolCall("refund", REFUND, "call_r1"),)))
        server.reply_text(after)
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(
            database_url=database_url,
            slack=slack,
            settings=settings,
            config=_config(),
            live=True,
        ) as bot:
            await ask(bot, "refund o1")
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]
        slack.stream_seal_after = 0.1
        async with running_bot(
            database_url=database_url,
            slack=slack,
            settings=settings,
            config=_config(),
            live=True,
        ) as restarted:
            await click(restarted, approval_ids(card)[0])
    assert len(slack.streams) >= 3  # one before the card, two or more after it
    assert _thread_text(slack) == before + after
    answers = [m for m in slack.posted[CHANNEL] if not _is_card(m)]
    assert len({m["ts"] for m in answers}) == len(answers)


async def test_a_30000_character_answer_streams_whole_across_messages_code_blocks_reopened(
    database_url: str, slack: FakeSlackAPI
) -> None:
    prose = "".join(f"Paragraph {i} says something useful.\n\n" for i in range(300))
    code = "```python\n" + "".join(f"print({i})\n" for i in range(1500)) + "```\n"
    text = prose + code + prose
    assert len(text) > 30_000
    model = ScriptedModel([[assistant_message(text)]])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config(), live=True
    ) as bot:
        await ask(bot)
    streams = slack.streams
    assert len(streams) >= 3
    for stream in streams:
        assert len(stream.text) <= 12_000
        assert stream.stopped
        assert stream.text.count("```") % 2 == 0  # every message closes what it opens
    joined = "".join(s.text for s in streams)
    assert "``````python\n" in joined
    assert joined.replace("``````python\n", "") == text
