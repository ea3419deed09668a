"""A run as people watch it: its text streamed into the thread, its tool calls as a timeline.

What the bot owes a thread is delivered by the outbox, durably; this is the live view on top.
The text goes out with slack_sdk's `chat_stream` (chat.startStream / appendStream /
stopStream), paced so that a burst of tokens becomes one call per `pace` seconds. Whatever the
live view could not show for sure comes back from `finish`, `pause` or `abort` as `leftover`,
and the worker owes it through the outbox, so every character reaches the thread once:

- a stream Slack sealed (`message_not_in_streaming_state`) goes on in a new message;
- a workspace or channel without streaming gets one posted message updated as text arrives,
  and when that is refused too, nothing live: the leftover is the whole answer, posted plain;
- a long answer goes on in a further message before a message grows past Slack's limits.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks, markdown
from bot.slack.blocks import Block
from storage.ids import ThreadRef

log = logging.getLogger(__name__)

PACE = 0.75
MESSAGE_LIMIT = 10_000
SEALED = frozenset({"message_not_in_streaming_state", "message_not_found", "cant_update_message"})
NO_STREAMING = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "method_deprecated",
        "missing_scope",
        "not_allowed_token_type",
        "feature_not_enabled",
        "channel_type_not_supported",
        "invalid_arguments",
        "missing_recipient_user_id",
        "missing_recipient_team_id",
    }
)
MAX_FAILURES = 3
TITLE_LIMIT = 120


class Mode(Enum):
    STREAM = "stream"
    UPDATE = "update"
    OFF = "off"


@dataclass(frozen=True)
class Leftover:
    """What the live view could not show: owed through the outbox. `text` is Markdown as the
    model wrote it; `feedback` tells whether the feedback buttons still need a message."""

    text: str
    feedback: bool
    shown_any: bool


class LiveSurfaces:
    """Which threads stream: a workspace or channel that refused once is not asked again."""

    def __init__(self, *, stream: bool = True, by_team: Mapping[str, bool] | None = None) -> None:
        self._default = Mode.STREAM if stream else Mode.OFF
        # A workspace's own `[agent] stream`, over the top level's.
        self._teams = {
            team: Mode.STREAM if on else Mode.OFF for team, on in (by_team or {}).items()
        }
        self._modes: dict[str, Mode] = {}

    def mode(self, thread: ThreadRef) -> Mode:
        return self._modes.get(thread.channel_id, self._teams.get(thread.team_id, self._default))

    def downgrade(self, thread: ThreadRef, mode: Mode) -> None:
        if len(self._modes) > 5000:
            self._modes.clear()
        self._modes[thread.channel_id] = mode


class LiveAnswer:
    def __init__(
        self,
        client: AsyncWebClient,
        thread: ThreadRef,
        *,
        recipient_user_id: str | None,
        surfaces: LiveSurfaces,
        on_tool: Callable[[str], None] | None = None,
        pace: float = PACE,
    ) -> None:
        self.client = client
        self.thread = thread
        self.recipient_user_id = recipient_user_id
        self.surfaces = surfaces
        self.on_tool = on_tool
        self.pace = pace
        self._mode = surfaces.mode(thread)
        self._raw = ""
        self._sanitizer = markdown.MarkdownSanitizer()
        self._out = ""  # safe Markdown produced so far
        self._shown = 0  # how much of `_out` Slack has taken
        self._checkpoints: list[tuple[int, int]] = [(0, 0)]  # (len of _out, len of _raw)
        self._tasks: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}
        self._dirty: list[str] = []
        self._stream: AsyncChatStream | None = None
        self._message_ts: str | None = None
        self._message_start = 0  # where in `_out` the current message begins
        self._failures = 0
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    @property
    def live(self) -> bool:
        """Whether the thread is shown the text as it comes (else only the whole answer)."""
        return self._mode is not Mode.OFF

    # -- RunObserver -----------------------------------------------------------------------

    def text(self, delta: str) -> None:
        if not delta:
            return
        self._raw += delta
        self._out += self._sanitizer.feed(delta)
        self._checkpoint()
        self._poke()

    def tool_started(self, call_id: str, tool_name: str) -> None:
        self._names[call_id] = tool_name
        self._task(call_id, f"Running {tool_name}", "in_progress")
        if self.on_tool is not None:
            self.on_tool(tool_name)

    def tool_finished(self, call_id: str, tool_name: str) -> None:
        # An output names its call only; the call's name came with it, or from `expect`.
        tool_name = tool_name or self._names.get(call_id, "a tool")
        rejected = self._tasks.get(call_id, {}).get("status") == "error"
        if not rejected:
            self._task(call_id, f"Ran {tool_name}", "complete")

    def expect(self, call_id: str, tool_name: str) -> None:
        """A call decided before this run segment began, whose output it will report."""
        self._names[call_id] = tool_name

    # -- what the worker says --------------------------------------------------------------

    def rejected(self, call_id: str, tool_name: str) -> None:
        """A call a person rejected: its output is the rejection, not a result."""
        self._names[call_id] = tool_name
        self._task(call_id, f"{tool_name}: rejected", "error")

    def failed(self, call_id: str, tool_name: str) -> None:
        self._task(call_id, f"{tool_name}: failed", "error")

    async def pause(self, calls: Sequence[tuple[str, str]]) -> Leftover:
        """Before the cards are posted: the calls wait, and the stream is stopped."""
        for call_id, tool_name in calls:
            self._task(call_id, f"{tool_name}: waiting for approval", "pending")
        return await self._close(feedback=())

    async def finish(self, final_text: str | None, feedback: Sequence[Block]) -> Leftover:
        if not self._raw and final_text:
            self.text(final_text)  # a model that did not stream its text
        return await self._close(feedback=feedback)

    async def abort(self) -> Leftover:
        return await self._close(feedback=())

    # -- sending ---------------------------------------------------------------------------

    def _task(self, call_id: str, title: str, status: str) -> None:
        if not call_id:
            return
        self._tasks[call_id] = {
            "type": "task_update",
            "id": call_id[:64],
            "title": title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…",
            "status": status,
        }
        if call_id not in self._dirty:
            self._dirty.append(call_id)
        self._poke()

    def _checkpoint(self) -> None:
        self._checkpoints.append((len(self._out), len(self._raw) - self._sanitizer.held))

    def _poke(self) -> None:
        self._wake.set()
        if self._pump is None and self._mode is not Mode.OFF and not self._closing.is_set():
            self._pump = asyncio.create_task(self._pumping())

    async def _pumping(self) -> None:
        """Sends what is pending at once, then at most once per `pace`. Never cancelled in
        the middle of a call: a call cut short may or may not have reached Slack."""
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._closing.is_set():
                return
            started = time.monotonic()
            await self._send()
            with contextlib.suppress(TimeoutError):
                rest = self.pace - (time.monotonic() - started)
                await asyncio.wait_for(self._closing.wait(), timeout=max(rest, 0.0))

    async def _close(self, *, feedback: Sequence[Block]) -> Leftover:
        self._closing.set()
        self._wake.set()
        if self._pump is not None:
            await self._pump
            self._pump = None
        self._out += self._sanitizer.flush()
        self._checkpoint()
        attached = await self._send(final=True, feedback=feedback)
        return Leftover(
            text=self._leftover(),
            feedback=bool(feedback) and not attached,
            shown_any=self._shown > 0,
        )

    def _leftover(self) -> str:
        """The raw text after the last point Slack took: a checkpoint at or before `_shown`."""
        raw_end = 0
        for out_len, raw_len in self._checkpoints:
            if out_len <= self._shown:
                raw_end = max(raw_end, raw_len)
        return self._raw[raw_end:] if self._shown < len(self._out) else ""

    async def _send(self, *, final: bool = False, feedback: Sequence[Block] = ()) -> bool:
        """Show what is pending; on `final`, end the message. True when `feedback` was shown."""
        async with self._sending:
            while self._mode is not Mode.OFF:
                try:
                    if self._mode is Mode.STREAM:
                        return await self._stream_step(final=final, feedback=feedback)
                    return await self._update_step(final=final, feedback=feedback)
                except SlackApiError as exc:
                    error = str(exc.response.get("error") or "")
                    if not self._after_refusal(error):
                        return False
                except (SlackClientError, OSError, TimeoutError) as exc:
                    self._failures += 1
                    log.info("live view of thread %s: %s", self.thread.key, type(exc).__name__)
                    if self._failures >= MAX_FAILURES:
                        self._mode = Mode.OFF
                    return False
                except Exception:
                    # The live view must never fail the run: what it could not show is owed.
                    log.exception("live view of thread %s stopped", self.thread.key)
                    self._mode = Mode.OFF
                    return False
            return False

    def _after_refusal(self, error: str) -> bool:
        """Decides what to do when Slack refused a call; True to try again now."""
        if error in SEALED:
            # The message can take no more: the rest goes on in a new one.
            self._stream, self._message_ts = None, None
            self._message_start = self._shown
            self._failures += 1
            return self._failures < MAX_FAILURES * 2
        log.info("live view of thread %s refused: %s", self.thread.key, error)
        if self._mode is Mode.STREAM and error in NO_STREAMING and self._stream is None:
            self._mode = Mode.UPDATE
        else:
            self._mode = Mode.OFF
        self.surfaces.downgrade(self.thread, self._mode)
        self._stream, self._message_ts = None, None
        self._message_start = self._shown
        return self._mode is not Mode.OFF

    def _next_piece(self) -> tuple[str, bool]:
        """The pending text that fits the current message, and whether the message is full."""
        room = MESSAGE_LIMIT - (self._shown - self._message_start)
        pending = self._out[self._shown :]
        if len(pending) <= room:
            return pending, False
        cut = _cut_point(pending, room)
        return pending[:cut], True

    async def _stream_step(self, *, final: bool, feedback: Sequence[Block]) -> bool:
        while True:
            piece, full = self._next_piece()
            chunks = [self._tasks[c] for c in self._dirty]
            if self._stream is None:
                if not piece and not chunks and not (final and feedback):
                    return False
                self._stream = await self.client.chat_stream(
                    channel=self.thread.channel_id,
                    thread_ts=self.thread.thread_ts,
                    recipient_user_id=self.recipient_user_id,
                    recipient_team_id=self.thread.team_id,
                    buffer_size=1,
                )
            fence = _open_fence(self._out[self._message_start : self._shown + len(piece)])
            text = piece + (_fence_end(fence, piece) if full and fence else "")
            if full or final:
                await self._stream.stop(
                    markdown_text=text or None,
                    chunks=chunks or None,
                    blocks=list(feedback) if final and not full and feedback else None,
                )
            elif text or chunks:
                await self._stream.append(markdown_text=text, chunks=chunks or None)
            self._shown_up_to(len(piece))
            self._dirty.clear()
            if full:
                self._stream = None
                self._message_start = self._shown
                if fence:
                    self._reopen(fence)
                continue
            return final and bool(feedback)

    async def _update_step(self, *, final: bool, feedback: Sequence[Block]) -> bool:
        while True:
            piece, full = self._next_piece()
            if not piece and self._message_ts is None:
                return False
            body = self._out[self._message_start : self._shown + len(piece)]
            body_blocks: list[Block] = [{"type": "markdown", "text": body or " "}]
            if final and not full:
                body_blocks.extend(feedback)
            fallback = blocks.truncate(markdown.to_mrkdwn(body), blocks.FALLBACK_TEXT_LIMIT)
            if self._message_ts is None:
                response = await self.client.chat_postMessage(
                    channel=self.thread.channel_id,
                    thread_ts=self.thread.thread_ts,
                    text=fallback,
                    blocks=body_blocks,
                )
                self._message_ts = str(response.get("ts") or "")
            elif piece or (final and feedback):
                await self.client.chat_update(
                    channel=self.thread.channel_id,
                    ts=self._message_ts,
                    text=fallback,
                    blocks=body_blocks,
                )
            self._shown_up_to(len(piece))
            if full:
                self._message_ts = None
                self._message_start = self._shown
                continue
            return final and bool(feedback)

    def _shown_up_to(self, taken: int) -> None:
        self._shown += taken
        self._failures = 0

    def _reopen(self, fence: str) -> None:
        """A code block cut between two messages opens again at the start of the next."""
        opener = fence + "\n"
        self._out = self._out[: self._shown] + opener + self._out[self._shown :]
        self._checkpoints = [
            (out_len + len(opener), raw_len) if out_len > self._shown else (out_len, raw_len)
            for out_len, raw_len in self._checkpoints
        ]


def _fence_end(fence: str, before: str) -> str:
    marks = fence.lstrip()
    run = len(marks) - len(marks.lstrip(marks[:1]))
    return ("" if before.endswith("\n") else "\n") + marks[:run]


def _cut_point(text: str, room: int) -> int:
    """Where to end a message that cannot take all of `text`: after a paragraph, else a line,
    else a space, in the last quarter of the room; exactly at the room when none is there."""
    floor = room * 3 // 4
    for mark in ("\n\n", "\n", " "):
        at = text.rfind(mark, floor, room)
        if at != -1:
            return at + len(mark)
    return room


def _open_fence(text: str) -> str | None:
    """The opening line of a code block `text` leaves open, if it does."""
    fence: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith(("```", "~~~")):
                fence = stripped
        elif stripped.startswith(fence[:3]) and stripped.strip(fence[0]) == "":
            fence = None
    return fence
