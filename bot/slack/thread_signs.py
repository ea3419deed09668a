"""A thread's sign of life while the agent works: Slack's assistant status, else a reaction.

The status (`assistant.threads.setStatus`) names what is happening and Slack clears it when
the bot replies. Status changes nobody waits for go out one after another per thread (a late
one must not undo a later one, nor the clear), and an answer posted whole needs no clearing
of its own when none is still on its way.

Where Slack refuses a status (a channel that is not an assistant thread, a missing scope, a
workspace without the feature), an :eyes: reaction on the person's message says the same and
is removed when the run is answered. Signs are a courtesy: a failure here never
touches the run, and nothing the model wrote goes into them.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.background import Spawn, spawn_task
from storage.ids import ThreadRef

log = logging.getLogger(__name__)

REACTION = "eyes"
STATUS_LIMIT = 50
LOADING_LIMIT = 10
THINKING = "is thinking…"
THINKING_MESSAGES = ("Reading the thread…", "Thinking…", "Putting an answer together…")
REMEMBERED_CHANNELS = 2000


def running(tool_name: str) -> str:
    return _fit(f"is running {tool_name}…")


def waiting(approvers: Sequence[str]) -> str:
    names = ", ".join(approvers[:3]) + (" and others" if len(approvers) > 3 else "")
    return _fit(f"is waiting for approval by {names}" if names else "is waiting for approval")


def _fit(status: str) -> str:
    return status if len(status) <= STATUS_LIMIT else status[: STATUS_LIMIT - 1] + "…"


class ThreadSigns:
    def __init__(self, client: AsyncWebClient, *, spawn: Spawn = spawn_task) -> None:
        self.client = client
        self._spawn = spawn
        # Channels where Slack refused a status: the reaction stands in for it there.
        self._no_status: OrderedDict[str, None] = OrderedDict()
        self._names: dict[str, str] = {}
        self._last: dict[str, asyncio.Task[None]] = {}  # each thread's newest status change

    def signal(
        self,
        thread: ThreadRef,
        status: str,
        *,
        message_ts: str | None = None,
        loading: Sequence[str] = (),
    ) -> None:
        """A status change the caller does not wait for: it waits for the thread's one before,
        so they reach Slack in order."""
        previous = self._last.get(thread.key)
        task = self._spawn(
            self._show_after(previous, thread, status, message_ts, loading),
            name=f"status {thread.key}",
        )
        if task is None:
            return
        self._last[thread.key] = task
        task.add_done_callback(partial(self._forget, thread.key))

    def pending(self, thread: ThreadRef) -> bool:
        """Is a status change of this thread still on its way to Slack?"""
        return thread.key in self._last

    async def settled(self, thread: ThreadRef) -> None:
        """Every status change signalled so far has had Slack's answer."""
        last = self._last.get(thread.key)
        if last is not None:
            await asyncio.wait([last])

    def _forget(self, key: str, done: "asyncio.Task[None]") -> None:
        if self._last.get(key) is done:
            del self._last[key]

    async def _show_after(
        self,
        previous: "asyncio.Task[None] | None",
        thread: ThreadRef,
        status: str,
        message_ts: str | None,
        loading: Sequence[str],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            await self.show(thread, status, message_ts=message_ts, loading=loading)
        except Exception:
            log.exception("status of thread %s not shown", thread.key)

    async def show(
        self,
        thread: ThreadRef,
        status: str,
        *,
        message_ts: str | None,
        loading: Sequence[str] = (),
    ) -> None:
        if thread.channel_id not in self._no_status:
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=thread.channel_id,
                    thread_ts=thread.thread_ts,
                    status=status,
                    loading_messages=list(loading[:LOADING_LIMIT]) or None,
                )
                return
            except SlackApiError as exc:
                log.info(
                    "no status in channel %s (%s): a reaction stands in",
                    thread.channel_id,
                    exc.response.get("error"),
                )
                self._remember(thread.channel_id)
            except (SlackClientError, OSError, TimeoutError) as exc:
                log.info("status not set in thread %s: %s", thread.key, type(exc).__name__)
                return
        if message_ts:
            await self._react("reactions_add", thread, message_ts)

    async def clear(self, thread: ThreadRef, *, message_ts: str | None) -> None:
        if thread.channel_id in self._no_status:
            if message_ts:
                await self._react("reactions_remove", thread, message_ts)
            return
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=thread.channel_id, thread_ts=thread.thread_ts, status=""
            )
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            log.debug("status not cleared in thread %s: %s", thread.key, type(exc).__name__)

    async def unreact(self, thread: ThreadRef, *, message_ts: str | None) -> None:
        """The reaction comes off when the thread has its reply (a card counts), the status
        stays: it says what the thread waits for."""
        if thread.channel_id in self._no_status and message_ts:
            await self._react("reactions_remove", thread, message_ts)

    async def _react(self, method: str, thread: ThreadRef, message_ts: str) -> None:
        try:
            await getattr(self.client, method)(
                channel=thread.channel_id, timestamp=message_ts, name=REACTION
            )
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            # already_reacted / no_reaction mean the sign is already as wanted.
            log.debug("%s in thread %s: %s", method, thread.key, type(exc).__name__)

    async def names(self, slack_ids: Sequence[str]) -> list[str]:
        """How people read the approvers in a status, which renders no mentions."""
        names: list[str] = []
        for slack_id in dict.fromkeys(slack_ids):
            name = await self._name(slack_id)
            if name not in names:
                names.append(name)
        return names

    async def _name(self, slack_id: str) -> str:
        if slack_id in self._names:
            return self._names[slack_id]
        if not slack_id.startswith(("U", "W")):
            return "an approver group"
        try:
            response = await self.client.users_info(user=slack_id)
        except SlackApiError as exc:
            if exc.response.get("error") != "user_not_found":
                return "an approver"
            response = exc.response  # no such person: that answer stands, so it is kept too
        except (SlackClientError, OSError, TimeoutError):
            return "an approver"
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        found = profile.get("display_name") or profile.get("real_name") or user.get("name")
        name = f"@{found}" if found else "an approver"
        if len(self._names) > REMEMBERED_CHANNELS:
            self._names.clear()
        self._names[slack_id] = name
        return name

    def _remember(self, channel_id: str) -> None:
        self._no_status[channel_id] = None
        self._no_status.move_to_end(channel_id)
        while len(self._no_status) > REMEMBERED_CHANNELS:
            self._no_status.popitem(last=False)
