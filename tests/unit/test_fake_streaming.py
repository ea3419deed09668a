"""The streaming, status and reaction parts of the Slack fake, proven with slack_sdk.

A fake that takes what Slack refuses would let a streaming bug through, so each refusal Slack
makes is tried here as well as each success.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import MAX_MARKDOWN_TEXT, FakeSlackAPI

THREAD = "1700000000.000100"
USER = "U0ASKER"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


def web_client(slack: FakeSlackAPI, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, **kwargs)


async def refused(call: Any) -> dict[str, Any]:
    """Awaits a client call Slack should refuse, and returns Slack's answer."""
    with pytest.raises(SlackApiError) as error:
        await call
    assert error.value.response.status_code == 200
    data: dict[str, Any] = dict(error.value.response.data)
    return data


async def start(client: AsyncWebClient, channel: str = "C1", **kwargs: Any) -> str:
    response = await client.chat_startStream(
        channel=channel,
        thread_ts=THREAD,
        recipient_user_id=USER,
        recipient_team_id=FakeSlackAPI.team_id,
        **kwargs,
    )
    return str(response["ts"])


# -- chat.*Stream ----------------------------------------------------------------------------


async def test_slack_sdks_chat_stream_helper_streams_into_a_channel_thread(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    streamer = await client.chat_stream(
        channel="C1",
        thread_ts=THREAD,
        recipient_user_id=USER,
        recipient_team_id=slack.team_id,
        buffer_size=5,
    )
    await streamer.append(markdown_text="Hello ")
    await streamer.append(markdown_text="**world**")
    footer = [{"type": "context", "elements": [{"type": "mrkdwn", "text": "by threadgate"}]}]
    metadata = {"event_type": "threadgate_answer", "event_payload": {"run": "r1"}}
    stopped = await streamer.stop(blocks=footer, metadata=metadata)

    assert [c.method for c in slack.calls] == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    [stream] = slack.streams
    assert (stream.ts, stream.channel, stream.thread_ts) == (streamer.ts, "C1", THREAD)
    assert (stream.recipient_user_id, stream.recipient_team_id) == (USER, slack.team_id)
    assert stream.text == "Hello **world**"
    assert stream.stopped
    assert not stream.sealed
    assert (stream.blocks, stream.metadata) == (footer, metadata)
    assert stopped["message"]["text"] == "Hello **world**"
    assert slack.stream_text("C1", THREAD) == "Hello **world**"
    replies = await client.conversations_replies(channel="C1", ts=THREAD, include_all_metadata=True)
    [message] = replies["messages"]
    assert (message["ts"], message["text"], message["thread_ts"]) == (
        stream.ts,
        stream.text,
        THREAD,
    )
    assert message["metadata"] == metadata


async def test_text_streamed_so_far_is_what_conversations_replies_shows(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    ts = await start(client, markdown_text="Thinking")
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text=" aloud")

    replies = await client.conversations_replies(channel="C1", ts=THREAD)

    assert [m["text"] for m in replies["messages"]] == ["Thinking aloud"]
    assert slack.streams[0].streaming


async def test_starting_a_stream_is_refused_as_slack_refuses_it(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    recipients: dict[str, Any] = {"recipient_user_id": USER, "recipient_team_id": slack.team_id}

    no_channel = await refused(client.api_call("chat.startStream", json={"thread_ts": THREAD}))
    no_thread = await refused(client.api_call("chat.startStream", json={"channel": "C1"}))
    no_user = await refused(
        client.chat_startStream(channel="C1", thread_ts=THREAD, recipient_team_id="T1")
    )
    no_team = await refused(
        client.chat_startStream(channel="G1", thread_ts=THREAD, recipient_user_id=USER)
    )
    bad_mode = await refused(
        client.chat_startStream(
            channel="C1", thread_ts=THREAD, task_display_mode="carousel", **recipients
        )
    )
    in_a_dm = await client.chat_startStream(channel="D1", thread_ts=THREAD)

    assert no_channel["error"] == "channel_not_found"
    assert no_thread["error"] == "invalid_arguments"
    assert no_user["error"] == "missing_recipient_user_id"
    assert no_team["error"] == "missing_recipient_team_id"
    assert bad_mode["error"] == "invalid_arguments"
    assert in_a_dm["ok"]
    assert [s.channel for s in slack.streams] == ["D1"]


async def test_markdown_text_and_chunks_in_one_call_are_refused(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    both: dict[str, Any] = {"markdown_text": "a", "chunks": [MarkdownTextChunk(text="b")]}
    at_start = await refused(
        client.chat_startStream(
            channel="D1",
            thread_ts=THREAD,
            markdown_text="a",
            chunks=[MarkdownTextChunk(text="b")],
        )
    )
    ts = await start(client)

    appended = await refused(client.chat_appendStream(channel="C1", ts=ts, **both))
    at_stop = await refused(client.chat_stopStream(channel="C1", ts=ts, **both))

    for answer in (at_start, appended, at_stop):
        assert answer["error"] == "invalid_arguments"
        assert "markdown_text and chunks" in answer["response_metadata"]["messages"][0]
    assert slack.streams[0].text == ""
    assert slack.streams[0].streaming


async def test_an_append_needs_something_to_append(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    ts = await start(client)

    empty = await refused(client.api_call("chat.appendStream", json={"channel": "C1", "ts": ts}))

    assert empty["error"] == "invalid_arguments"


async def test_text_longer_than_slacks_limit_is_refused_in_either_form(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    ts = await start(client)
    limit = "x" * MAX_MARKDOWN_TEXT

    as_text = await refused(
        client.chat_appendStream(channel="C1", ts=ts, markdown_text=limit + "y")
    )
    as_chunk = await refused(
        client.chat_appendStream(
            channel="C1",
            ts=ts,
            chunks=[MarkdownTextChunk(text="ok"), {"type": "markdown_text", "text": limit + "y"}],
        )
    )
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text=limit)
    await client.chat_appendStream(channel="C1", ts=ts, chunks=[MarkdownTextChunk(text=limit)])

    assert as_text["error"] == as_chunk["error"] == "msg_too_long"
    assert slack.streams[0].text == limit * 2  # the refused call added nothing, not even "ok"


async def test_chunks_keep_task_states_and_the_plan_in_order(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    ts = await start(
        client,
        task_display_mode="plan",
        chunks=[
            PlanUpdateChunk(title="Looking it up"),
            TaskUpdateChunk(id="search", title="Search the wiki", status="in_progress"),
        ],
    )
    await client.chat_appendStream(
        channel="C1",
        ts=ts,
        chunks=[
            TaskUpdateChunk(id="ask", title="Ask for approval", status="pending"),
            TaskUpdateChunk(
                id="search", title="Search the wiki", status="complete", output="3 hits"
            ),
            MarkdownTextChunk(text="Found it."),
        ],
    )
    await client.chat_stopStream(
        channel="C1",
        ts=ts,
        chunks=[
            TaskUpdateChunk(id="ask", title="Ask for approval", status="error", details="denied")
        ],
    )

    [stream] = slack.streams
    assert list(stream.tasks.items()) == [("search", "complete"), ("ask", "error")]
    assert stream.plan_title == "Looking it up"
    assert stream.text == "Found it."
    assert [c["type"] for c in stream.chunks] == [
        "plan_update",
        "task_update",
        "task_update",
        "task_update",
        "markdown_text",
        "task_update",
    ]
    assert stream.chunks[3]["output"] == "3 hits"


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        ([{"type": "reasoning", "text": "hmm"}], "invalid_chunks"),
        ([{"type": "task_update", "id": "t", "title": "T", "status": "done"}], "invalid_chunks"),
        ([{"type": "task_update", "id": "t", "status": "complete"}], "invalid_chunks"),
        ([{"type": "plan_update"}], "invalid_chunks"),
        ([{"type": "markdown_text"}], "invalid_chunks"),
        (["just text"], "invalid_chunks"),
        ({}, "invalid_chunks"),
        ([{"type": "blocks", "blocks": [{"type": "divider"}] * 51}], "invalid_blocks"),
    ],
    ids=[
        "unknown-type",
        "unknown-status",
        "task-without-title",
        "plan-without-title",
        "markdown-without-text",
        "not-an-object",
        "not-a-list",
        "too-many-blocks",
    ],
)
async def test_chunks_slack_would_not_take_are_refused(
    slack: FakeSlackAPI, chunks: Any, error: str
) -> None:
    client = web_client(slack)
    ts = await start(client)

    answer = await refused(
        client.api_call("chat.appendStream", json={"channel": "C1", "ts": ts, "chunks": chunks})
    )

    assert answer["error"] == error
    assert slack.streams[0].chunks == []


async def test_unknown_stopped_and_sealed_streams_are_refused(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    unknown = await refused(
        client.chat_appendStream(channel="C1", ts="1.000001", markdown_text="x")
    )
    stop_unknown = await refused(client.chat_stopStream(channel="C1", ts="1.000001"))
    ts = await start(client)
    elsewhere = await refused(client.chat_appendStream(channel="C2", ts=ts, markdown_text="x"))
    await client.chat_stopStream(channel="C1", ts=ts, markdown_text="done")
    after_stop = await refused(client.chat_appendStream(channel="C1", ts=ts, markdown_text="x"))
    stop_twice = await refused(client.chat_stopStream(channel="C1", ts=ts))

    aging = await start(client)
    [_, stream] = slack.streams
    stream.started_at -= slack.stream_seal_after - 1  # one second before Slack seals it
    await client.chat_appendStream(channel="C1", ts=aging, markdown_text="still")
    stream.started_at -= 2
    assert stream.sealed
    too_old = await refused(client.chat_appendStream(channel="C1", ts=aging, markdown_text="x"))
    stop_too_old = await refused(client.chat_stopStream(channel="C1", ts=aging))

    assert unknown["error"] == stop_unknown["error"] == elsewhere["error"] == "message_not_found"
    for answer in (after_stop, stop_twice, too_old, stop_too_old):
        assert answer["error"] == "message_not_in_streaming_state"
    assert slack.streams[0].text == "done"
    assert (stream.text, stream.stopped, stream.streaming) == ("still", False, False)


async def test_the_seal_time_is_configurable_and_counts_from_the_start(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    slack.stream_seal_after = 0.3
    ts = await start(client)
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="quick")
    await asyncio.sleep(0.35)

    late = await refused(client.chat_stopStream(channel="C1", ts=ts))

    assert late["error"] == "message_not_in_streaming_state"
    assert slack.streams[0].sealed


async def test_stopping_checks_blocks_metadata_and_session_status(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    ts = await start(client)

    blocks = await refused(
        client.chat_stopStream(channel="C1", ts=ts, blocks=[{"type": "divider"}] * 51)
    )
    metadata = await refused(
        client.chat_stopStream(channel="C1", ts=ts, metadata={"event_type": "x"})
    )
    session = await refused(client.chat_stopStream(channel="C1", ts=ts, session_status="asleep"))
    await client.chat_stopStream(channel="C1", ts=ts, session_status="closed")

    assert blocks["error"] == "invalid_blocks"
    assert metadata["error"] == "invalid_metadata_format"
    assert session["error"] == "invalid_arguments"
    assert slack.streams[0].stopped


async def test_stream_text_names_the_newest_stream_and_explains_when_there_is_none(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    first = await start(client, markdown_text="first answer")
    await client.chat_stopStream(channel="C1", ts=first)
    await start(client, markdown_text="second answer")

    assert slack.stream_text("C1", THREAD) == "second answer"
    assert [s.text for s in slack.streams_in_thread("C1", THREAD)] == [
        "first answer",
        "second answer",
    ]
    with pytest.raises(AssertionError, match=r"no stream in C1 thread 9\.9"):
        slack.stream_text("C1", "9.9")


# -- refusals and rate limits ----------------------------------------------------------------


async def test_a_refused_method_answers_like_slack_and_is_recorded_as_a_fault(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    slack.refuse("chat.startStream", "unknown_method")
    slack.refuse("assistant.threads.setStatus", "not_allowed", times=1)

    for _ in range(2):
        answer = await refused(client.chat_startStream(channel="D1", thread_ts=THREAD))
        assert answer == {"ok": False, "error": "unknown_method"}
    status = await refused(
        client.assistant_threads_setStatus(channel_id="C1", thread_ts=THREAD, status="thinking")
    )
    await client.assistant_threads_setStatus(channel_id="C1", thread_ts=THREAD, status="thinking")

    assert status["error"] == "not_allowed"
    assert [(f.method, f.status, f.error) for f in slack.faults] == [
        ("chat.startStream", 200, "unknown_method"),
        ("chat.startStream", 200, "unknown_method"),
        ("assistant.threads.setStatus", 200, "not_allowed"),
    ]
    assert [c.method for c in slack.calls] == ["assistant.threads.setStatus"]
    assert not slack.streams
    assert slack.statuses("C1", THREAD) == ["thinking"]


async def test_queued_faults_play_before_a_standing_refusal_and_reset_lifts_it(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack, retry_handlers=[])
    slack.refuse("reactions.add", "not_in_channel")
    slack.fail("reactions.add", status=503)

    with pytest.raises(SlackApiError) as unavailable:
        await client.reactions_add(channel="C1", timestamp=THREAD, name="eyes")
    not_in_channel = await refused(
        client.reactions_add(channel="C1", timestamp=THREAD, name="eyes")
    )
    slack.reset()
    await client.reactions_add(channel="C1", timestamp=THREAD, name="eyes")

    assert unavailable.value.response.status_code == 503
    assert not_in_channel["error"] == "not_in_channel"
    assert slack.reactions("C1", THREAD) == {"eyes"}


async def test_a_rate_limit_answers_429_with_retry_after_once_calls_come_too_fast(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack, retry_handlers=[])
    ts = await start(client)
    for _ in range(20):  # off by default
        await client.chat_appendStream(channel="C1", ts=ts, markdown_text=".")
    slack.rate_limit("chat.appendStream", per_second=2)

    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="a")
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="b")
    await asyncio.sleep(0.6)
    with pytest.raises(SlackApiError) as limited:
        await client.chat_appendStream(channel="C1", ts=ts, markdown_text="c")
    with pytest.raises(SlackApiError):
        await client.chat_appendStream(channel="C1", ts=ts, markdown_text="c")
    await client.chat_stopStream(channel="C1", ts=ts)  # other methods are not limited
    # a and b leave the window; the refused calls, younger, would fill it if they counted.
    await asyncio.sleep(0.5)
    ts2 = await start(client)
    await client.chat_appendStream(channel="C1", ts=ts2, markdown_text="d")

    response = limited.value.response
    assert (response.status_code, response["error"]) == (429, "ratelimited")
    assert response.headers["Retry-After"] == "1"
    assert [(f.method, f.status) for f in slack.faults] == [("chat.appendStream", 429)] * 2
    assert slack.streams[0].text == "." * 20 + "ab"
    assert slack.streams[1].text == "d"


async def test_a_slow_rate_limit_spans_a_longer_window_and_can_be_lifted(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack, retry_handlers=[])
    slack.rate_limit("reactions.add", per_second=0.25)

    await client.reactions_add(channel="C1", timestamp="1.0", name="a")
    with pytest.raises(SlackApiError) as limited:
        await client.reactions_add(channel="C1", timestamp="1.0", name="b")
    slack.rate_limit("reactions.add", None)
    await client.reactions_add(channel="C1", timestamp="1.0", name="b")

    assert int(limited.value.response.headers["Retry-After"]) in (3, 4)
    assert slack.reactions("C1", "1.0") == {"a", "b"}


# -- assistant.threads.setStatus and reactions -----------------------------------------------


async def test_statuses_are_kept_per_thread_in_order_with_the_latest_loading_messages(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    loading = ["Reading the thread…", "Asking the model…"]
    await client.assistant_threads_setStatus(
        channel_id="C1", thread_ts=THREAD, status="is thinking…", loading_messages=loading
    )
    await client.assistant_threads_setStatus(channel_id="C1", thread_ts="2.0", status="other")
    await client.assistant_threads_setStatus(
        channel_id="C1", thread_ts=THREAD, status="is searching…"
    )
    assert slack.loading_messages("C1", THREAD) is None
    await client.assistant_threads_setStatus(
        channel_id="C1", thread_ts=THREAD, status="", loading_messages=loading
    )

    assert slack.statuses("C1", THREAD) == ["is thinking…", "is searching…", ""]
    assert slack.statuses("C1", "2.0") == ["other"]
    assert slack.statuses("C9", THREAD) == []
    assert slack.loading_messages("C1", THREAD) == loading


async def test_the_apps_reply_in_a_thread_clears_its_status_as_slack_does(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    for thread in (THREAD, "2.0", "3.0"):
        await client.assistant_threads_setStatus(
            channel_id="C1", thread_ts=thread, status="is thinking…"
        )
    await client.chat_postMessage(channel="C1", text="elsewhere")  # not a reply
    await client.chat_postMessage(channel="C1", thread_ts="2.0", text="an answer")
    await client.chat_startStream(
        channel="C1", thread_ts="3.0", recipient_user_id=USER, recipient_team_id=slack.team_id
    )

    assert slack.status_shown("C1", THREAD) == "is thinking…"
    assert slack.status_shown("C1", "2.0") == ""
    assert slack.status_shown("C1", "3.0") == ""
    assert slack.statuses("C1", "2.0") == ["is thinking…"]  # the calls made, as before


async def test_status_calls_slack_would_refuse_are_refused(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    eleven = [f"step {i}" for i in range(11)]

    no_channel = await refused(
        client.api_call("assistant.threads.setStatus", json={"thread_ts": THREAD, "status": "x"})
    )
    no_thread = await refused(
        client.api_call("assistant.threads.setStatus", json={"channel_id": "C1", "status": "x"})
    )
    no_status = await refused(
        client.api_call(
            "assistant.threads.setStatus", json={"channel_id": "C1", "thread_ts": THREAD}
        )
    )
    too_many = await refused(
        client.assistant_threads_setStatus(
            channel_id="C1", thread_ts=THREAD, status="x", loading_messages=eleven
        )
    )
    await client.assistant_threads_setStatus(
        channel_id="C1", thread_ts=THREAD, status="x", loading_messages=eleven[:10]
    )

    assert no_channel["error"] == "channel_not_found"
    assert no_thread["error"] == "invalid_thread_ts"
    assert no_status["error"] == "invalid_arguments"
    assert too_many["error"] == "invalid_arguments"
    assert slack.statuses("C1", THREAD) == ["x"]


async def test_reactions_are_added_and_removed_once_each(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    await client.reactions_add(channel="C1", timestamp=THREAD, name="eyes")
    await client.reactions_add(channel="C1", timestamp=THREAD, name="hourglass")
    again = await refused(client.reactions_add(channel="C1", timestamp=THREAD, name="eyes"))
    await client.reactions_remove(channel="C1", timestamp=THREAD, name="hourglass")
    gone = await refused(client.reactions_remove(channel="C1", timestamp=THREAD, name="hourglass"))
    no_ts = await refused(client.api_call("reactions.add", json={"channel": "C1", "name": "x"}))
    no_name = await refused(
        client.api_call("reactions.add", json={"channel": "C1", "timestamp": THREAD})
    )

    assert again["error"] == "already_reacted"
    assert gone["error"] == "no_reaction"
    assert no_ts["error"] == "no_item_specified"
    assert no_name["error"] == "invalid_name"
    assert slack.reactions("C1", THREAD) == {"eyes"}
    assert slack.reactions("C2", THREAD) == set()
