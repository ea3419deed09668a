"""The start-up self-check of the fast request transform: realistic create bodies, compared.

`needs_transform` reads openai's types; this reads what openai's transform actually does with
data shaped like the Agents SDK's, so a change in the transform's own rules (a new kind of
value it rewrites, say) keeps the fast path out instead of changing what the bot sends. Only
the sync transform is compared: the async wrapper runs the same walk, and `install()` runs
before any event loop does.
"""

import copy
from collections.abc import Callable, Iterable
from typing import Any

from openai import omit
from openai.types.shared import Reasoning

MaybeTransform = Callable[[object, object], Any]


def _lookup_order_tool() -> dict[str, object]:
    return {
        "type": "function",
        "name": "lookup_order",
        "description": "Find an order by id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
            "additionalProperties": False,
        },
        "strict": True,
    }


def sample_responses_body(*, stream: bool) -> dict[str, object]:
    """A Responses create body as the Agents SDK sends one a few turns into a thread."""
    return {
        "model": "gpt-self-check",
        "instructions": "You help in a Slack thread.",
        "input": [
            {"role": "user", "content": "Refund order 42, please."},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "It arrived broken."}],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Look the order up first."}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "lookup_order",
                "arguments": '{"order_id": "42"}',
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "delivered"},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "It was delivered.", "annotations": []}
                ],
            },
            {"role": "user", "content": "Yes, refund it."},
        ],
        "tools": [_lookup_order_tool()],
        "tool_choice": "auto",
        "parallel_tool_calls": omit,
        "reasoning": Reasoning(effort="low", summary="auto"),
        "include": ["reasoning.encrypted_content"],
        "metadata": {"thread": "C1/1.0"},
        "temperature": omit,
        "store": False,
        "stream": True if stream else omit,
    }


def sample_chat_body(*, stream: bool) -> dict[str, object]:
    """The same exchange as a Chat Completions create body."""
    tool = _lookup_order_tool()
    return {
        "model": "gpt-self-check",
        "messages": [
            {"role": "system", "content": "You help in a Slack thread."},
            {"role": "user", "content": [{"type": "text", "text": "Refund order 42, please."}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "42"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "delivered"},
            {"role": "assistant", "content": "It was delivered."},
            {"role": "user", "content": "Yes, refund it."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool["description"],
                    "parameters": tool["parameters"],
                    "strict": True,
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": omit,
        "temperature": 0.2,
        "stream": True if stream else omit,
        "stream_options": {"include_usage": True} if stream else omit,
    }


def same_output(
    replacement: MaybeTransform, original: MaybeTransform, body: object, body_type: object
) -> bool:
    """Whether both transforms turn the body into the same request data."""
    return bool(replacement(copy.deepcopy(body), body_type) == original(body, body_type))


def sample_body(type_name: str) -> dict[str, object]:
    """A realistic create body for one of the four create-body types, by its name."""
    stream = type_name.endswith("Streaming") and not type_name.endswith("NonStreaming")
    if type_name.startswith("ResponseCreateParams"):
        return sample_responses_body(stream=stream)
    return sample_chat_body(stream=stream)


def first_difference(
    replacement: MaybeTransform,
    original: MaybeTransform,
    body_types: Iterable[tuple[tuple[str, str], object]],
) -> str | None:
    """The first create-body type, as `module.Name`, whose sample the two transforms turn into
    different request data; None when they agree on all of them."""
    for (module, name), body_type in body_types:
        if not same_output(replacement, original, sample_body(name), body_type):
            return f"{module}.{name}"
    return None
