"""The fast request transform must send what openai's own transform sends, only sooner.

Each body is built by a factory because generators are spent by the first transform.
"""

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Annotated, Any, Required, TypedDict, cast

import openai._utils
import pytest
from agents import function_tool
from agents.models.chatcmpl_converter import Converter
from agents.testing import assistant_message
from agents.testing import function_call as function_call_item
from openai import NOT_GIVEN, AsyncStream, omit
from openai._utils import PropertyInfo
from openai._utils._json import openapi_dumps
from openai.resources.chat.completions import completions as chat_module
from openai.resources.responses import responses as responses_module
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage, completion_create_params
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.responses import (
    ResponseInputText,
    ResponseReasoningItem,
    response_create_params,
)
from openai.types.responses.response_reasoning_item import Summary
from openai.types.shared import Reasoning
from typing_extensions import TypeAliasType

from bot.agent.openai_request_transform import (
    AsyncFastMaybeTransform,
    FastMaybeTransform,
    install,
    needs_transform,
    plain_transform,
)
from tests.fakes.model_server import FakeModelServer

Body = dict[str, Any]

RESPONSES_BODY_TYPES = (
    response_create_params.ResponseCreateParamsNonStreaming,
    response_create_params.ResponseCreateParamsStreaming,
)
CHAT_BODY_TYPES = (
    completion_create_params.CompletionCreateParamsNonStreaming,
    completion_create_params.CompletionCreateParamsStreaming,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        yield fake


def wrapper_in(module: ModuleType, name: str) -> Any:
    """What the module's `create` calls: its global, which openai does not export."""
    return vars(module)[name]


@function_tool
def lookup_order(order_id: str, include_items: bool, tags: list[str]) -> str:
    """Find an order by id."""
    return order_id


def _history_item(index: int) -> list[Any]:
    """One exchange in the many shapes a thread's history takes."""
    call_id = f"call_{index}"
    return [
        {"role": "user", "content": f"question {index}"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": f"look at this {index}"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,iVBORw0K",
                    "detail": "auto",
                },
                ResponseInputText(type="input_text", text="a model part"),
            ],
        },
        {"role": "system", "content": [{"type": "input_text", "text": "be brief"}]},
        {
            "type": "reasoning",
            "id": f"rs_{index}",
            "summary": [{"type": "summary_text", "text": "thinking"}],
            "encrypted_content": None,
        },
        ResponseReasoningItem(
            id=f"rs_model_{index}",
            type="reasoning",
            summary=[Summary(type="summary_text", text="modelled thinking")],
        ),
        {
            "type": "function_call",
            "id": f"fc_{index}",
            "call_id": call_id,
            "name": "lookup_order",
            "arguments": json.dumps({"order_id": str(index), "include_items": True, "tags": []}),
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": call_id, "output": '{"status": "shipped"}'},
        function_call_item("lookup_order", {"order_id": "x"}, call_id=f"call_sdk_{index}"),
        {
            "type": "message",
            "id": f"msg_{index}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": f"answer {index}", "annotations": []}],
        },
        assistant_message(f"modelled answer {index}", item_id=f"msg_model_{index}"),
        {"role": "assistant", "content": "a plain assistant turn"},
    ]


def responses_input(items: int) -> list[Any]:
    history = [item for index in range(items) for item in _history_item(index)]
    return history[:items]


def responses_tools() -> list[Any]:
    return [
        {
            "type": "function",
            "name": lookup_order.name,
            "description": lookup_order.description,
            "parameters": lookup_order.params_json_schema,
            "strict": True,
        },
        {
            "type": "function",
            "name": "no_arguments",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
            "strict": True,
        },
    ]


def responses_body(*, stream: bool) -> Body:
    tools = responses_tools()
    return {
        "model": "gpt-test",
        "stream": True if stream else omit,
        "input": responses_input(120),
        "instructions": "You help in a Slack thread.",
        "include": ["reasoning.encrypted_content"],
        "tools": (tool for tool in tools) if stream else tuple(tools),
        "tool_choice": {"type": "function", "name": "lookup_order"} if stream else "auto",
        "parallel_tool_calls": None,
        "metadata": {"thread": "C1/1.0", "team": "T0"},
        "reasoning": Reasoning(effort="low", summary="auto"),
        "text": {
            "format": {
                "type": "json_schema",
                "name": "final_output",
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
            "verbosity": "low",
        },
        "temperature": omit,
        "top_p": NOT_GIVEN,
        "previous_response_id": omit,
        "store": False,
        "truncation": "auto",
        "user": omit,
    }


def chat_body(*, stream: bool) -> Body:
    messages = Converter.items_to_messages(json.loads(openapi_dumps(responses_input(60))))
    tool = Converter.tool_to_openai(lookup_order)
    return {
        "model": "gpt-test",
        "stream": True if stream else omit,
        "messages": [
            {"role": "system", "content": "You help in a Slack thread."},
            *messages,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": (
                    {
                        "id": "call_direct",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": "{}"},
                    },
                ),
            },
            {
                "role": "tool",
                "tool_call_id": "call_direct",
                "content": [{"type": "text", "text": "ok"}],
            },
            ChatCompletionMessage(
                role="assistant",
                content=None,
                tool_calls=[
                    ChatCompletionMessageFunctionToolCall(
                        id="call_model",
                        type="function",
                        function=Function(name="lookup_order", arguments='{"order_id": "1"}'),
                    )
                ],
            ),
            {"role": "tool", "tool_call_id": "call_model", "content": "shipped"},
        ],
        "tools": (t for t in [tool]) if stream else [tool],
        "tool_choice": "auto",
        "stream_options": {"include_usage": True} if stream else omit,
        "parallel_tool_calls": omit,
        "temperature": 0.2,
        "metadata": {"thread": "C1/1.0"},
        "user": omit,
    }


BODIES: list[tuple[str, Callable[[], Body], object]] = [
    ("responses", lambda: responses_body(stream=False), RESPONSES_BODY_TYPES[0]),
    ("responses-stream", lambda: responses_body(stream=True), RESPONSES_BODY_TYPES[1]),
    ("chat", lambda: chat_body(stream=False), CHAT_BODY_TYPES[0]),
    ("chat-stream", lambda: chat_body(stream=True), CHAT_BODY_TYPES[1]),
]


@pytest.mark.parametrize(
    ("build", "body_type"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES]
)
async def test_the_fast_path_gives_what_openai_gives(
    build: Callable[[], Body], body_type: object
) -> None:
    expected = await openai._utils.async_maybe_transform(build(), body_type)
    fast_async = AsyncFastMaybeTransform(openai._utils.async_maybe_transform, [body_type])
    fast_sync = FastMaybeTransform(openai._utils.maybe_transform, [body_type])

    assert fast_async.fast_types == (body_type,)
    assert await fast_async(build(), body_type) == expected
    assert fast_sync(build(), body_type) == expected
    assert openai._utils.maybe_transform(build(), body_type) == expected


def test_the_bodies_exercise_every_rule_of_the_transform() -> None:
    expected = openai._utils.maybe_transform(responses_body(stream=True), RESPONSES_BODY_TYPES[1])

    assert isinstance(expected, dict)
    assert {"temperature", "top_p", "previous_response_id", "user"}.isdisjoint(expected)
    assert expected["reasoning"] == {"effort": "low", "summary": "auto"}
    assert isinstance(expected["tools"], list)
    assert len(expected["tools"]) == 2
    kinds = {item.get("type", "easy") for item in expected["input"]}
    assert {"easy", "message", "reasoning", "function_call", "function_call_output"} <= kinds
    assert expected["input"][1]["content"][2] == {"type": "input_text", "text": "a model part"}


def test_the_wire_is_the_same_where_openai_leaves_a_tuple_alone() -> None:
    """A tuple where the type says `List` or `object` stays a tuple in openai; JSON can't tell."""
    body: Body = {
        "model": "gpt-test",
        "input": tuple(responses_input(11)),
        "include": ("reasoning.encrypted_content",),
        "tools": [{"type": "function", "name": "f", "parameters": {"enum": ("a", "b")}}],
    }
    body_type = RESPONSES_BODY_TYPES[0]
    original = openai._utils.maybe_transform(body, body_type)

    assert openapi_dumps(plain_transform(body)) == openapi_dumps(original)


async def test_none_passes_through_both_wrappers() -> None:
    body_type = RESPONSES_BODY_TYPES[0]
    fast_async = AsyncFastMaybeTransform(openai._utils.async_maybe_transform, [body_type])
    fast_sync = FastMaybeTransform(openai._utils.maybe_transform, [body_type])

    assert await fast_async(None, body_type) is None
    assert fast_sync(None, body_type) is None


def test_the_create_body_types_carry_no_property_info() -> None:
    for body_type in (*RESPONSES_BODY_TYPES, *CHAT_BODY_TYPES):
        assert needs_transform(body_type) is False


# -- types that need openai's transform ---------------------------------------------------------


class Card(TypedDict, total=False):
    card_id: Required[Annotated[str, PropertyInfo(alias="cardID")]]


class Wallet(TypedDict, total=False):
    owner: str
    cards: list[Card]


class Folder(TypedDict, total=False):
    name: str
    children: list["Folder"]


class CardFolder(TypedDict, total=False):
    children: list["CardFolder"]
    card: Card


def test_an_alias_anywhere_in_the_tree_is_found_and_cycles_end() -> None:
    assert needs_transform(Card) is True
    assert needs_transform(Wallet) is True
    assert needs_transform(CardFolder) is True
    assert needs_transform(Folder) is False
    assert needs_transform(Annotated[str, PropertyInfo(format="iso8601")]) is True
    card_alias = TypeAliasType("card_alias", Card)
    assert needs_transform(card_alias) is True


async def test_a_type_with_an_alias_goes_to_openai_and_the_alias_is_applied() -> None:
    wrapper = AsyncFastMaybeTransform(openai._utils.async_maybe_transform, [Wallet, Folder])
    wallet = {"owner": "ana", "cards": [{"card_id": "c1"}]}

    assert wrapper.fast_types == (Folder,)
    assert await wrapper(wallet, Wallet) == {"owner": "ana", "cards": [{"cardID": "c1"}]}


async def test_the_installed_wrapper_sends_other_types_to_openai() -> None:
    assert install() is True

    transformed = await wrapper_in(responses_module, "async_maybe_transform")(
        {"card_id": "c1"}, Card
    )
    synced = wrapper_in(responses_module, "maybe_transform")({"card_id": "c2"}, Card)

    assert (transformed, synced) == ({"cardID": "c1"}, {"cardID": "c2"})


# -- install -------------------------------------------------------------------------------------


def test_install_is_idempotent_and_wraps_the_module_globals() -> None:
    assert install() is True
    assert install() is True

    for module in (responses_module, chat_module):
        sync_wrapper = wrapper_in(module, "maybe_transform")
        async_wrapper = wrapper_in(module, "async_maybe_transform")
        assert isinstance(sync_wrapper, FastMaybeTransform)
        assert isinstance(async_wrapper, AsyncFastMaybeTransform)
        assert sync_wrapper.original is openai._utils.maybe_transform
        assert async_wrapper.original is openai._utils.async_maybe_transform
    assert set(wrapper_in(responses_module, "async_maybe_transform").fast_types) == {
        *RESPONSES_BODY_TYPES,
        *CHAT_BODY_TYPES,
    }


def test_install_changes_nothing_when_openai_moved(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for module in (responses_module, chat_module):
        monkeypatch.setattr(module, "maybe_transform", openai._utils.maybe_transform)
        monkeypatch.setattr(module, "async_maybe_transform", openai._utils.async_maybe_transform)
    monkeypatch.delattr(chat_module, "async_maybe_transform")

    with caplog.at_level(logging.DEBUG, logger="bot.agent.openai_request_transform"):
        assert install() is False

    assert wrapper_in(responses_module, "async_maybe_transform") is (
        openai._utils.async_maybe_transform
    )
    assert wrapper_in(responses_module, "maybe_transform") is openai._utils.maybe_transform
    assert "async_maybe_transform" in caplog.text


# -- end to end ----------------------------------------------------------------------------------


def _json(value: object) -> Any:
    return json.loads(openapi_dumps(value))


def fifty_item_body() -> Body:
    body = responses_body(stream=False)
    body["input"] = responses_input(50)
    return body


async def test_responses_create_sends_the_same_body(server: FakeModelServer) -> None:
    assert install() is True
    expected = _json(
        await openai._utils.async_maybe_transform(fifty_item_body(), RESPONSES_BODY_TYPES[0])
    )
    server.reply_text("done")

    response = await server.client().responses.create(**fifty_item_body())

    assert response.output_text == "done"
    (sent,) = server.requests
    assert sent == expected
    assert len(sent["input"]) == 50
    assert sent["input"][1]["content"][2] == {"type": "input_text", "text": "a model part"}
    assert {"temperature", "top_p", "previous_response_id", "user", "stream"}.isdisjoint(sent)


async def test_chat_completions_stream_sends_the_same_body(server: FakeModelServer) -> None:
    assert install() is True
    expected = _json(
        await openai._utils.async_maybe_transform(chat_body(stream=True), CHAT_BODY_TYPES[1])
    )
    server.reply_text("streamed")

    stream = cast(
        AsyncStream[ChatCompletionChunk],
        await server.client().chat.completions.create(**chat_body(stream=True)),
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert text == "streamed"
    (sent,) = server.requests
    assert sent == expected
    assert sent["stream"] is True
    assert {"parallel_tool_calls", "user"}.isdisjoint(sent)


def _iterate_in_order() -> Iterator[int]:
    yield from (1, 2)


def test_other_iterables_become_lists_and_scalars_stay() -> None:
    data = {"a": _iterate_in_order(), "b": {3}, "c": ("x",), "e": 1.5, "f": None, "g": True}

    assert plain_transform(data) == {
        "a": [1, 2],
        "b": [3],
        "c": ["x"],
        "e": 1.5,
        "f": None,
        "g": True,
    }
