"""A new message as the SDK takes it, with what the thread said around it in front.

The items (bot.slack.thread_reader) are Responses input items; the SDK stores all of a run's
input in the thread's history, so what a run read of the thread is remembered with the
message, and a later run never needs to read it again.
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from agents.items import TResponseInputItem


def run_input(
    text: str, context_items: Sequence[Mapping[str, Any]]
) -> "str | list[TResponseInputItem]":
    if not context_items:
        return text
    items = [dict(item) for item in context_items]
    items.append({"role": "user", "content": text})
    return cast("list[TResponseInputItem]", items)
