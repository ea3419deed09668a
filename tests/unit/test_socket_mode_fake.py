"""The fake's Socket Mode, proven with slack_sdk's Web API client and a plain WebSocket."""

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder

REQUESTS = SlackRequestBuilder("unused-over-the-socket")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


async def open_url(slack: FakeSlackAPI) -> str:
    client = AsyncWebClient(base_url=slack.base_url)
    response = await client.apps_connections_open(app_token=slack.app_token)
    return str(response["url"])


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive_json(timeout=10)
    assert isinstance(message, dict)
    return message


async def test_only_the_app_level_token_opens_a_connection(slack: FakeSlackAPI) -> None:
    refusals = {}
    for token in (None, slack.bot_token, "xapp-1-A0APP-1-other"):
        client = AsyncWebClient(token=token, base_url=slack.base_url)
        with pytest.raises(SlackApiError) as refused:
            await client.api_call("apps.connections.open")
        refusals[token] = refused.value.response["error"]
    assert refusals == {
        None: "not_authed",
        slack.bot_token: "not_allowed_token_type",
        "xapp-1-A0APP-1-other": "invalid_auth",
    }
    url = await open_url(slack)
    assert url.startswith(f"ws://127.0.0.1:{slack.port}/link/?ticket=")
    app_client = AsyncWebClient(token=slack.app_token, base_url=slack.base_url)
    with pytest.raises(SlackApiError) as bot_method:
        await app_client.chat_postMessage(channel="C1", text="hi")
    assert bot_method.value.response["error"] == "not_allowed_token_type"


async def test_a_url_admits_one_connection_which_is_greeted_with_hello(slack: FakeSlackAPI) -> None:
    url = await open_url(slack)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        hello = await receive(ws)
        assert hello == {
            "type": "hello",
            "num_connections": 1,
            "debug_info": hello["debug_info"],
            "connection_info": {"app_id": slack.app_id},
        }
        assert {"host", "build_number", "approximate_connection_time"} <= hello["debug_info"].keys()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url)


async def test_envelopes_carry_the_payloads_slack_would_post_and_acks_are_recorded(
    slack: FakeSlackAPI,
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(await open_url(slack)) as ws:
        await receive(ws)
        mention = REQUESTS.mention(text="hi", ts="1.5")
        event_id = await slack.socket.deliver(mention)
        event = await receive(ws)
        assert event == {
            "envelope_id": event_id,
            "payload": json.loads(mention.body),
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        await slack.socket.deliver(REQUESTS.slash_command(command="/threadgate", text="x"))
        command = await receive(ws)
        assert command["type"] == "slash_commands"
        assert command["accepts_response_payload"] is True
        assert command["payload"]["command"] == "/threadgate"
        assert command["payload"]["text"] == "x"
        await slack.socket.deliver(
            REQUESTS.view_submission(callback_id="v", private_metadata="", values={})
        )
        view = await receive(ws)
        assert (view["type"], view["payload"]["type"]) == ("interactive", "view_submission")
        assert view["accepts_response_payload"] is True
        await ws.send_json({"envelope_id": command["envelope_id"], "payload": {"text": "private"}})
        ack = await slack.socket.wait_ack(command["envelope_id"])
        assert (ack.payload, ack.connection) == ({"text": "private"}, 1)


async def test_an_unacked_event_comes_again_on_the_next_connection_an_interaction_does_not(
    slack: FakeSlackAPI,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(await open_url(slack)) as first:
            await receive(first)
            event_id = await slack.socket.deliver(REQUESTS.mention(text="hi"))
            click = REQUESTS.block_actions(action_id="a", value="v", message_ts="1.5")
            click_id = await slack.socket.deliver(click)
            assert [(await receive(first))["envelope_id"] for _ in range(2)] == [event_id, click_id]
            await slack.socket.disconnect("refresh_requested")
            disconnect = await receive(first)
            assert (disconnect["type"], disconnect["reason"]) == ("disconnect", "refresh_requested")
            held = await slack.socket.deliver(REQUESTS.mention(text="while away"))
        async with http.ws_connect(await open_url(slack)) as second:
            assert (await receive(second))["type"] == "hello"
            again, waiting = await receive(second), await receive(second)
            assert (again["envelope_id"], again["retry_attempt"]) == (event_id, 1)
            assert again["retry_reason"] == "timeout"
            assert (waiting["envelope_id"], waiting["retry_attempt"]) == (held, 0)
            for envelope_id in (event_id, held):
                await second.send_json({"envelope_id": envelope_id})
            await slack.socket.wait_ack(held)
        async with http.ws_connect(await open_url(slack)) as third:
            assert (await receive(third))["type"] == "hello"
            # The fake reads only once it has sent what was due: an ack it got means it did.
            await third.send_json({"envelope_id": "sync"})
            await slack.socket.wait_ack("sync")
        assert [m["type"] for n, m in slack.socket.sent if n == 3] == ["hello"]
        assert len(slack.socket.deliveries(click_id)) == 1
        assert len(slack.socket.deliveries(event_id)) == 2
