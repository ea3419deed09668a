"""The test kit is trusted only as far as the real clients accept it: prove each fake with them."""

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from agents import Agent, Model, Runner, function_tool, set_tracing_disabled
from openai import APIStatusError
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.fakes.slack_requests import SignedRequest, SlackRequestBuilder, post

SECRET = "unit-test-signing-secret"


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    set_tracing_disabled(True)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        yield fake


class NoJitter(Jitter):
    """Keeps retry tests fast: the fake needs no spreading of retries."""

    def recalculate(self, duration: float) -> float:
        return duration


def web_client(slack: FakeSlackAPI, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, **kwargs)


# -- FakeSlackAPI ----------------------------------------------------------------------------


async def test_slack_sdk_posts_and_the_call_is_recorded_with_python_blocks(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T0TEAM")

    first = await client.chat_postMessage(channel="C1", text="hi", blocks=blocks, thread_ts="1.0")
    second = await client.chat_postMessage(channel="C1", text="again")

    assert first["channel"] == "C1"
    assert first["message"]["thread_ts"] == "1.0"
    assert first["message"]["blocks"] == blocks
    assert float(first["ts"]) < float(second["ts"])
    [call, _] = slack.calls_to("chat.postMessage")
    assert call == RecordedCall(
        "chat.postMessage",
        {"channel": "C1", "text": "hi", "blocks": blocks, "thread_ts": "1.0"},
        slack.bot_token,
        "/api/chat.postMessage",
    )
    assert slack.messages_in_thread("C1", "1.0") == [call]


async def test_a_recorded_call_carries_when_it_reached_the_fake(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    before = time.monotonic()
    await client.chat_postMessage(channel="C1", text="first")
    await client.chat_postMessage(channel="C1", text="second")
    after = time.monotonic()

    first, second = slack.calls_to("chat.postMessage")
    assert before <= first.at <= second.at <= after


async def test_form_bodies_and_get_queries_are_decoded(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    blocks = [{"type": "divider"}]
    await client.api_call(
        "chat.postMessage", data={"channel": "C1", "text": "x", "blocks": json.dumps(blocks)}
    )
    slack.usergroups["S1"] = ["U1", "U2"]
    slack.users["U1"] = {"name": "ada", "is_bot": False}

    members = await client.usergroups_users_list(usergroup="S1")
    user = await client.users_info(user="U1")

    assert slack.calls_to("chat.postMessage")[0].args["blocks"] == blocks
    assert members["users"] == ["U1", "U2"]
    assert user["user"]["name"] == "ada"
    with pytest.raises(SlackApiError) as missing_group:
        await client.usergroups_users_list(usergroup="SNOPE")
    assert missing_group.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as missing_user:
        await client.users_info(user="UNOPE")
    assert missing_user.value.response["error"] == "user_not_found"


async def test_permalinks_and_direct_messages_answer_like_slack(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    reply = await client.chat_postMessage(channel="C1", text="card", thread_ts="5.0")
    dm = await client.chat_postMessage(channel="U0ADA", text="psst")
    link = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])

    assert dm["channel"].startswith("D")
    assert [m["text"] for m in slack.dms["U0ADA"]] == ["psst"]
    assert link["permalink"].endswith(f"p{reply['ts'].replace('.', '')}?thread_ts=5.0&cid=C1")
    for channel, ts, error in [
        ("C1", "1.000001", "message_not_found"),
        ("C0NOPE", reply["ts"], "channel_not_found"),
        ("", reply["ts"], "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await client.chat_getPermalink(channel=channel, message_ts=ts)
        assert refused.value.response["error"] == error
    with pytest.raises(SlackApiError) as to_group:
        await client.chat_postMessage(channel="S0GROUP", text="hi")
    assert to_group.value.response["error"] == "channel_not_found"


async def test_the_other_methods_answer_like_slack(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    posted = await client.chat_postMessage(channel="C1", text="in thread", thread_ts="5.0")
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="new", blocks=[])
    ephemeral = await client.chat_postEphemeral(channel="C1", user="U1", text="psst")
    deleted = await client.chat_delete(channel="C1", ts=posted["ts"])
    opened = await client.views_open(trigger_id="t1", view={"type": "modal", "callback_id": "cb"})
    view_id = opened["view"]["id"]
    changed = await client.views_update(view_id=view_id, view={"type": "modal", "title": "x"})
    replies = await client.conversations_replies(channel="C1", ts="5.0")

    assert (updated["ts"], updated["text"]) == (posted["ts"], "new")
    assert ephemeral["message_ts"]
    assert deleted["ts"] == posted["ts"]
    assert opened["view"]["callback_id"] == "cb"
    assert changed["view"]["id"] == view_id
    assert [m["text"] for m in replies["messages"]] == ["in thread"]
    with pytest.raises(SlackApiError) as unknown:
        await client.api_call("nothing.here")
    assert unknown.value.response["error"] == "unknown_method"


async def test_wrong_or_missing_tokens_are_refused(slack: FakeSlackAPI) -> None:
    for token in ("xoxb-wrong", None):
        client = AsyncWebClient(token=token, base_url=slack.base_url)
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="C1", text="hi")
        assert refused.value.response["error"] == "invalid_auth"
    assert [c.token for c in slack.calls] == ["xoxb-wrong", None]


async def test_messages_slack_would_refuse_are_refused(slack: FakeSlackAPI) -> None:
    client = web_client(slack)
    too_many = [{"type": "divider"}] * 51
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    big_value = [
        {"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v" * 2001}]}
    ]
    for blocks in (too_many, too_long, big_value):
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="C1", text="x", blocks=blocks)
        assert refused.value.response["error"] == "invalid_blocks"


async def test_markdown_blocks_are_refused_past_12000_characters_in_all(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    fits = [{"type": "markdown", "text": "x" * 6000}] * 2
    too_much = [*fits, {"type": "markdown", "text": "x"}]

    await client.chat_postMessage(channel="C1", text="x", blocks=fits)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C1", text="x", blocks=too_much)

    assert refused.value.response["error"] == "invalid_blocks"


async def test_a_429_then_success_is_retried_by_the_rate_limit_handler(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    slack.fail("chat.postMessage", status=429, retry_after=0)

    response = await client.chat_postMessage(channel="C1", text="eventually")

    assert response["ok"]
    assert [f.status for f in slack.faults] == [429]
    assert [c.args["text"] for c in slack.calls] == ["eventually"]


async def test_mixed_faults_play_in_order_and_are_counted_apart(slack: FakeSlackAPI) -> None:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.001, jitter=NoJitter())
    client = web_client(
        slack,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=3, interval_calculator=backoff),
            AsyncConnectionErrorRetryHandler(max_retry_count=3, interval_calculator=backoff),
        ],
    )
    slack.fail("chat.postMessage", status=500)
    slack.drop("chat.postMessage")

    await client.chat_postMessage(channel="C1", text="survived")

    assert [(f.method, f.status) for f in slack.faults] == [
        ("chat.postMessage", 500),
        ("chat.postMessage", None),
    ]
    assert len(slack.calls) == 1


async def test_without_retry_handlers_faults_reach_the_caller(slack: FakeSlackAPI) -> None:
    client = web_client(slack, retry_handlers=[])
    slack.fail("chat.postMessage", status=503)
    slack.drop("auth.test")

    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.auth_test()

    assert failed.value.response.status_code == 503
    assert not slack.calls


async def test_wait_for_returns_when_the_call_lands_and_explains_a_timeout(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    waiter = asyncio.create_task(
        slack.wait_for("chat.postMessage", count=2, where=lambda c: c.args["channel"] == "C2")
    )
    await client.chat_postMessage(channel="C1", text="elsewhere")
    await client.chat_postMessage(channel="C2", text="one")
    await client.chat_postMessage(channel="C2", text="two")

    assert [c.args["text"] for c in await waiter] == ["one", "two"]
    with pytest.raises(AssertionError, match="elsewhere"):
        await slack.wait_for("chat.update", timeout=0.05)
    slack.reset()
    assert not slack.calls
    assert not slack.faults


async def test_response_urls_are_recorded(slack: FakeSlackAPI) -> None:
    webhook = AsyncWebhookClient(slack.response_url("click-1"))

    answer = await webhook.send(text="only you", response_type="ephemeral")

    assert answer.status_code == 200
    [call] = await slack.wait_for("response_url")
    assert call.args == {"text": "only you", "response_type": "ephemeral"}
    assert call.path == "/response_url/click-1"


async def test_a_response_url_refuses_an_answer_with_nothing_to_show(slack: FakeSlackAPI) -> None:
    answer = await AsyncWebhookClient(slack.response_url("empty")).send_dict({"text": ""})

    assert answer.status_code == 400
    assert json.loads(answer.body)["error"] == "no_text"


async def test_permalinks_name_the_thread_of_a_reply_and_need_a_known_message(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    root = await client.chat_postMessage(channel="C1", text="root")
    reply = await client.chat_postMessage(channel="C1", text="reply", thread_ts=root["ts"])
    base = f"https://{slack.team_domain}.slack.com/archives/C1/p"

    linked = await client.chat_getPermalink(channel="C1", message_ts=root["ts"])
    assert linked["permalink"] == base + root["ts"].replace(".", "")
    linked = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert linked["permalink"] == (
        f"{base}{reply['ts'].replace('.', '')}?thread_ts={root['ts']}&cid=C1"
    )
    for args, error in [
        ({"channel": "C2", "message_ts": root["ts"]}, "channel_not_found"),
        ({"channel": "C1", "message_ts": "1.000001"}, "message_not_found"),
        ({"channel": "C1"}, "message_not_found"),
        ({"message_ts": root["ts"]}, "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await client.api_call("chat.getPermalink", params=args)
        assert refused.value.response["error"] == error


async def test_seeded_messages_are_replies_in_ts_order_with_the_bots_own_and_paged(
    slack: FakeSlackAPI,
) -> None:
    client = web_client(slack)
    slack.seed_thread("C1", "5.000001", [{"user": "U1", "text": "root", "ts": "5.000001"}])
    posted = await client.chat_postMessage(channel="C1", text="bot", thread_ts="5.000001")
    later = f"{float(posted['ts']) + 1:.6f}"
    slack.seed_thread("C1", "5.000001", [{"user": "U2", "text": "later", "ts": later}])
    slack.seed_thread("C2", "5.000001", [{"user": "U3", "text": "elsewhere", "ts": "6.000001"}])

    first = await client.conversations_replies(channel="C1", ts="5.000001", limit=2)
    rest = await client.conversations_replies(
        channel="C1", ts="5.000001", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    upto = await client.conversations_replies(
        channel="C1", ts="5.000001", latest=posted["ts"], inclusive=True
    )
    before = await client.conversations_replies(channel="C1", ts="5.000001", latest=posted["ts"])

    assert [m["text"] for m in first["messages"]] == ["root", "bot"]
    assert first["has_more"]
    assert [m["text"] for m in rest["messages"]] == ["later"]
    assert not rest["has_more"]
    assert first["messages"][0]["user"] == "U1"
    assert [m["text"] for m in upto["messages"]] == ["root", "bot"]
    assert [m["text"] for m in before["messages"]] == ["root"]


async def test_files_are_described_by_files_info_and_downloaded_only_with_the_bot_token(
    slack: FakeSlackAPI,
) -> None:
    file = slack.add_file("notes.txt", "text/plain", b"hello")
    info = await web_client(slack).files_info(file=file["id"])
    url = info["file"]["url_private_download"]

    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": f"Bearer {slack.bot_token}"}) as ok:
            assert (ok.status, await ok.read()) == (200, b"hello")
        async with http.get(url, allow_redirects=False) as anonymous:
            assert anonymous.status == 302
        async with http.get(url, headers={"Authorization": "Bearer xoxb-wrong"}) as wrong:
            assert wrong.status == 403

    assert info["file"]["size"] == 5
    assert url.startswith(slack.url + "/files-pri/")
    assert [c.token for c in slack.downloads()] == [slack.bot_token, None, "xoxb-wrong"]
    with pytest.raises(SlackApiError) as missing:
        await web_client(slack).files_info(file="F0NOPE")
    assert missing.value.response["error"] == "file_not_found"


# -- SlackRequestBuilder ---------------------------------------------------------------------


def all_kinds(builder: SlackRequestBuilder) -> list[SignedRequest]:
    return [
        builder.event({"type": "app_mention", "text": "<@UBOT> x", "user": "U1", "channel": "C1"}),
        builder.mention(text="hi"),
        builder.channel_message(text="hi", thread_ts="1.0"),
        builder.dm(text="hi"),
        builder.bot_message(text="beep"),
        builder.message_changed(thread_ts="1.0"),
        builder.message_deleted(thread_ts="1.0"),
        builder.channel_join(),
        builder.block_actions(action_id="a", value="v", message_ts="1.0", thread_ts="1.0"),
        builder.view_submission(user="U1", callback_id="cb", private_metadata="m", values={}),
        builder.view_closed(user="U1", callback_id="cb", private_metadata="m"),
        builder.slash_command(command="/x", text="help", user="U1", channel="C1"),
        builder.raw(b"{not json", "application/json"),
    ]


async def test_every_built_request_passes_slacks_own_signature_check() -> None:
    verifier = SignatureVerifier(SECRET)
    for request in all_kinds(SlackRequestBuilder(SECRET)):
        assert verifier.is_valid_request(request.body, request.headers)
    stale = SlackRequestBuilder(SECRET).mention(text="hi", timestamp=int(time.time()) - 600)
    forged = SlackRequestBuilder("another secret").mention(text="hi")
    assert not verifier.is_valid_request(stale.body, stale.headers)
    assert not verifier.is_valid_request(forged.body, forged.headers)


async def test_events_carry_the_envelope_ids_and_retry_headers() -> None:
    builder = SlackRequestBuilder(SECRET)
    event = builder.mention_event(text="hello")
    first = builder.event(event)
    retry = builder.event(event, event_id="Ev0SAME", retry_num=2)
    as_message = builder.event(builder.message_event(text=event["text"], ts=event["ts"]))
    dm = json.loads(builder.dm(text="psst").body)["event"]

    envelope = json.loads(first.body)
    assert envelope["type"] == "event_callback"
    assert envelope["event"]["text"] == "<@UBOT> hello"
    assert envelope["authorizations"][0]["user_id"] == "UBOT"
    assert envelope["event_id"].startswith("Ev")
    assert json.loads(as_message.body)["event_id"] != envelope["event_id"]
    assert json.loads(as_message.body)["event"]["ts"] == event["ts"]
    assert json.loads(retry.body)["event_id"] == "Ev0SAME"
    assert retry.headers["X-Slack-Retry-Num"] == "2"
    assert retry.headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert "X-Slack-Retry-Num" not in first.headers
    assert (dm["channel_type"], dm["channel"]) == ("im", "D0DM")
    stamps = [builder.mention_event(text="t")["ts"] for _ in range(3)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 3


async def test_block_actions_is_a_form_with_a_json_payload() -> None:
    request = SlackRequestBuilder(SECRET).block_actions(
        user="U9", action_id="approve", value="ap_1", message_ts="2.0", thread_ts="1.0"
    )

    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    [raw] = parse_qs(request.body.decode())["payload"]
    payload = json.loads(raw)
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U9"
    assert payload["container"]["thread_ts"] == "1.0"
    assert payload["actions"][0]["value"] == "ap_1"


async def test_bolt_accepts_and_routes_every_kind_of_built_request(slack: FakeSlackAPI) -> None:
    """Bolt, not our reading of the docs, is the judge of whether the shapes are right."""
    app = AsyncApp(client=web_client(slack), signing_secret=SECRET, process_before_response=True)
    seen: list[str] = []

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text="pong", thread_ts=event["ts"])

    @app.action("approve")
    async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        seen.append(f"click:{body['actions'][0]['value']}")

    @app.view("reason")
    async def on_submit(ack: AsyncAck, view: dict[str, Any]) -> None:
        await ack()
        seen.append(f"view:{view['private_metadata']}")

    @app.view_closed("reason")
    async def on_close(ack: AsyncAck) -> None:
        await ack()
        seen.append("closed")

    @app.command("/threadgate")
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(text=f"help for {command['user_id']}")

    builder = SlackRequestBuilder(SECRET)

    async def dispatch(request: SignedRequest) -> tuple[int, str]:
        response = await app.async_dispatch(
            AsyncBoltRequest(body=request.body.decode(), headers=dict(request.headers))
        )
        return response.status, response.body

    mention = builder.mention(text="ping", ts="1700000000.000001")
    assert (await dispatch(mention))[0] == 200
    click = builder.block_actions(action_id="approve", value="ap", message_ts="1")
    assert (await dispatch(click))[0] == 200
    submission = builder.view_submission(
        user="U1", callback_id="reason", private_metadata="ap", values={}
    )
    assert (await dispatch(submission))[0] == 200
    closed = builder.view_closed(user="U1", callback_id="reason", private_metadata="ap")
    assert (await dispatch(closed))[0] == 200
    command = builder.slash_command(command="/threadgate", text="", user="U1", channel="C1")
    assert await dispatch(command) == (200, "help for U1")
    forged = SlackRequestBuilder("wrong").mention(text="ping")
    assert (await dispatch(forged))[0] == 401

    [answer] = slack.calls_to("chat.postMessage")
    assert answer.args["thread_ts"] == "1700000000.000001"
    assert seen == ["click:ap", "view:ap", "closed"]


async def test_post_sends_the_signed_bytes(slack: FakeSlackAPI) -> None:
    request = SlackRequestBuilder(SECRET).raw(b'{"text": "hi"}', "application/json")
    async with aiohttp.ClientSession() as session:
        status, text = await post(session, slack.response_url("raw"), request)
    assert (status, json.loads(text)) == (200, {"ok": True})
    assert slack.calls_to("response_url")[0].args == {"text": "hi"}


# -- FakeModelServer -------------------------------------------------------------------------


async def raw_post(server: FakeModelServer, path: str, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base_url + path, json=body) as response,
    ):
        assert response.status == 200
        return await response.text()


def sse_data(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


async def test_responses_json_and_events_validate_against_the_openai_types(
    server: FakeModelServer,
) -> None:
    server.reply(Reply(text="hello", tool_calls=server.tool_calls(("f", {"x": 1})).tool_calls))
    server.reply_tool_calls(("f", {"x": 2}), ("g", {}))
    body = {"model": "gpt-test", "input": "hi"}

    plain = Response.model_validate_json(await raw_post(server, "/responses", body))
    streamed = await raw_post(server, "/responses", {**body, "stream": True})

    assert plain.output_text == "hello"
    assert [item.type for item in plain.output] == ["message", "function_call"]
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    events = [adapter.validate_json(data) for data in sse_data(streamed)]
    assert events[-1].type == "response.completed"
    final = events[-1].response
    assert [getattr(item, "name", None) for item in final.output] == ["f", "g"]
    assert len({getattr(item, "call_id", None) for item in final.output}) == 2
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_chat_completions_json_and_chunks_validate_against_the_openai_types(
    server: FakeModelServer,
) -> None:
    server.reply_text("hello")
    server.reply_tool_calls(("f", {"x": 1}))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}

    plain = ChatCompletion.model_validate_json(await raw_post(server, "/chat/completions", body))
    streamed = await raw_post(
        server,
        "/chat/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
    )

    assert plain.choices[0].message.content == "hello"
    data = sse_data(streamed)
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    assert chunks[-1].usage is not None
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or []
        if call.function is not None
    )
    assert json.loads(arguments) == {"x": 1}


@function_tool
def add(a: int, b: int) -> str:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return str(a + b)


async def run_agent(model: Model, text: str, *, streamed: bool) -> str:
    agent = Agent(name="calc", instructions="Use the tool.", tools=[add], model=model)
    if not streamed:
        return str((await Runner.run(agent, text)).final_output)
    result = Runner.run_streamed(agent, text)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


def tool_outputs(request: dict[str, Any]) -> dict[str, str]:
    """Tool results sent back to the model, by call id, in either API's shape."""
    if "input" in request:
        return {
            item["call_id"]: item["output"]
            for item in request["input"]
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        }
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_the_agents_sdk_runs_text_and_tool_round_trips(
    server: FakeModelServer, api: str, streamed: bool
) -> None:
    def model() -> Model:
        return server.responses_model() if api == "responses" else server.chat_completions_model()

    assert await run_agent(model(), "hi", streamed=streamed) == "ok"

    call = server.tool_calls(("add", {"a": 2, "b": 3}))
    server.reply(call)
    server.reply_text("It is 5.")
    assert await run_agent(model(), "2+3?", streamed=streamed) == "It is 5."

    assert tool_outputs(server.requests[-1]) == {call.tool_calls[0].call_id: "5"}
    assert [bool(r.get("stream")) for r in server.requests] == [streamed] * 3
    assert server.queued == 0


async def test_responders_failures_and_waiting(server: FakeModelServer) -> None:
    release = asyncio.Event()

    async def slow(request: dict[str, Any]) -> Reply:
        await release.wait()
        return server.text(f"echo {request['input']}")

    server.respond_with(slow)
    client = server.client(max_retries=1)
    pending = asyncio.create_task(client.responses.create(model="gpt-test", input="a"))
    [request] = await server.wait_for_requests(1)
    assert request["input"] == "a"
    release.set()
    assert (await pending).output_text == "echo a"

    server.respond_with(lambda request: server.text("sync"))
    server.fail(500, retry_after_ms=1)
    assert (await client.responses.create(model="gpt-test", input="b")).output_text == "sync"
    assert len(server.failed_requests) == 1

    server.respond_with(None)
    server.fail(429, times=2, retry_after_ms=1)
    with pytest.raises(APIStatusError) as failed:
        await client.responses.create(model="gpt-test", input="c")
    assert failed.value.status_code == 429
    assert (await client.responses.create(model="gpt-test", input="d")).output_text == "ok"
    with pytest.raises(AssertionError, match="model request"):
        await server.wait_for_requests(10, timeout=0.05)


async def test_paced_responses_stream_word_by_word_over_time(server: FakeModelServer) -> None:
    server.first_token_delay = 0.2
    server.token_delay = 0.05
    server.reply_text("one two three four")
    client = server.client()

    sent_at = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            arrivals.append((time.monotonic(), event.delta))

    assert [delta for _, delta in arrivals] == ["one", " two", " three", " four"]
    assert arrivals[0][0] - sent_at >= 0.2
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    assert all(gap >= 0.04 for gap in gaps), gaps
    [timing] = server.timings
    assert [text for _, text in timing.deltas] == ["one", " two", " three", " four"]
    assert timing.first_token_at is not None
    assert timing.first_token_at - timing.received_at >= 0.2
    assert timing.finished_at is not None


async def test_paced_chat_completions_stream_and_plain_answers_wait(
    server: FakeModelServer,
) -> None:
    server.first_token_delay = 0.1
    server.token_delay = 0.05
    server.reply_text("alpha beta gamma")
    server.reply_text("alpha beta gamma")
    client = server.client()

    stream = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    deltas = [
        c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content
    ]
    sent_at = time.monotonic()
    plain = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )

    assert deltas == ["alpha", " beta", " gamma"]
    assert time.monotonic() - sent_at >= 0.1 + 2 * 0.05
    assert plain.choices[0].message.content == "alpha beta gamma"
    assert [text for _, text in server.timings[0].deltas] == deltas
    assert server.timings[1].deltas == []


async def test_token_size_splits_without_delay_and_tool_arguments_still_join(
    server: FakeModelServer,
) -> None:
    server.token_size = 3
    server.reply_text("abcdefgh")
    server.reply_tool_calls(("lookup", {"query": "long enough to split"}))
    client = server.client()

    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
    calls = await client.responses.create(model="gpt-test", input="hi", stream=True)
    pieces = [e.delta async for e in calls if e.type == "response.function_call_arguments.delta"]

    assert deltas == ["abc", "def", "gh"]
    assert len(pieces) > 2
    assert "".join(pieces) == '{"query": "long enough to split"}'
    assert len(server.timings) == len(server.requests) == 2
    server.clear_records()
    assert (server.timings, server.requests) == ([], [])
