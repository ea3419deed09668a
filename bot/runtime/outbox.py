"""Delivering what the bot owes a thread: each stored message reaches Slack once.

The change that owes a message stores it (storage.outbox) in its own transaction; this module
sends it afterwards. A post carries its outbox id in the message's metadata, and a delivery
that may have been tried before (the claim of a process that died, a dropped connection)
first looks for that id among the thread's messages, so a retry finds the earlier post
instead of posting twice. What Slack refuses for good is logged and given up; what fails for
now is tried again by the sweep, later and later.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.authorization import is_user_group
from bot.runtime.background import Spawn, spawn_task
from bot.runtime.thread_locks import ThreadLocks
from bot.slack import blocks, cards, markdown, mirror_blocks, reminders
from bot.slack.permalinks import Permalinks
from bot.slack.workspace_scope import speaking_for
from bot.slack.workspaces import NotInstalled
from storage import outbox
from storage.approvals import get_approval
from storage.card_views import CardView, card_view
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import ApprovalStatus, OutboxKind
from storage.outbox import Claimant, Delivery, Owed
from storage.runs import requesters_of

log = logging.getLogger(__name__)

EVENT_TYPE = "threadgate_outbox"
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_metadata_format",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "restricted_action",
        "thread_not_found",
    }
)
QUICK_RETRIES = (0.2, 0.5, 1.0)
# Seconds before each new look at a card version held back behind another process's earlier
# one; after the last, the sweep sends it once its claim runs out.
HELD_BACK_PAUSES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SEARCH_PAGES = 20


def post(text: str, body: list[blocks.Block]) -> Owed:
    return Owed(OutboxKind.POST, {"text": text, "blocks": body})


def note(text: str) -> Owed:
    return post(*blocks.plain(text))


def failure(what: str, ref: str) -> Owed:
    """`what` may quote an error, which may quote a tool or a model: it is escaped."""
    return note(
        f":warning: {blocks.escape(what, 1000)} Reference: `{ref}`. "
        "You can keep writing in this thread."
    )


def answer(text: str, *, feedback: Sequence[blocks.Block] = ()) -> list[Owed]:
    """The model's Markdown, made safe (it can neither ping nor hide a link) and split into
    as many messages as it takes; `feedback` goes under the last one."""
    messages = markdown.answer_messages(text)
    owed = [post(fallback, body) for fallback, body in messages[:-1]]
    fallback, body = messages[-1]
    return [*owed, post(fallback, [*body, *feedback])]


def replace(ts: str, text: str, body: list[blocks.Block]) -> Owed:
    return Owed(OutboxKind.UPDATE, {"ts": ts, "text": text, "blocks": body})


class Claiming(Protocol):
    """What a change returns when it claimed, in its own transaction, what it owes a thread."""

    @property
    def claimed(self) -> list[Delivery] | None: ...


ClaimingT = TypeVar("ClaimingT", bound=Claiming)


class Transient(Exception):
    """Slack may or may not have taken it: try again, looking for it first."""


class Outbox:
    def __init__(
        self,
        db: Database,
        client: AsyncWebClient,
        *,
        owner: str,
        claim: timedelta,
        permalinks: Permalinks | None = None,
        spawn: Spawn = spawn_task,
    ) -> None:
        self.db = db
        self._spawn = spawn
        self._held_back: set[str] = set()  # threads with a follow-up on its way
        self.permalinks = permalinks or Permalinks(client)
        # No automatic retries here but for rate limits: a post retried blindly after a
        # dropped connection could post twice. Our own retries look first.
        self.client = client
        self.claimant = Claimant(owner, claim)
        # One delivery at a time per thread in this process: its claims are all ours.
        self._locks = ThreadLocks()

    async def deliver(self, thread_key: str) -> None:
        """Send what this process may send in the thread now; never raises."""
        async with self._locks.hold(thread_key):
            await self._deliver_held(thread_key)

    async def after(
        self, thread_key: str, change: Callable[[Claimant], Awaitable[ClaimingT | None]]
    ) -> ClaimingT | None:
        """Commit `change`, which stores what it owes the thread and claims it in the same
        transaction, then deliver what it claimed; returns what the change returned. This
        process's other deliveries of the thread wait from before the claim to the end, so
        none of them can take the same rows."""
        async with self._locks.hold(thread_key):
            stored = await change(self.claimant)
            if stored is not None and stored.claimed is not None:
                await self._deliver_held(thread_key, stored.claimed)
            return stored

    async def _deliver_held(self, thread_key: str, claimed: list[Delivery] | None = None) -> bool:
        """Under the thread's lock: send `claimed`, or what a claim finds now; never raises.
        True when a card's version was held back behind somebody else's earlier one: a
        follow-up then looks again soon."""
        try:
            with speaking_for(ThreadRef.from_key(thread_key).team_id):
                held_back = await self._deliver(thread_key, claimed)
        except Exception:
            log.exception("delivery to thread %s stopped; the sweep goes on", thread_key)
            return False
        if held_back:
            self._follow_up(thread_key)
        return held_back

    def _follow_up(self, thread_key: str) -> None:
        """Look again soon, and again, for what was held back: the other process's version
        is usually sent within a Slack round trip. One follow-up per thread at a time."""
        if thread_key in self._held_back:
            return
        task = self._spawn(self._until_sent(thread_key), name=f"held back {thread_key}")
        if task is not None:
            self._held_back.add(thread_key)
            task.add_done_callback(lambda _: self._held_back.discard(thread_key))

    async def _until_sent(self, thread_key: str) -> None:
        for pause in HELD_BACK_PAUSES:
            await asyncio.sleep(pause)
            async with self._locks.hold(thread_key):
                if not await self._deliver_held(thread_key):
                    return

    async def sweep(self) -> int:
        threads = await outbox.threads_with_due_messages(self.db)
        for thread_key in threads:
            await self.deliver(thread_key)
        await outbox.purge_delivered(self.db)
        return len(threads)

    async def _deliver(self, thread_key: str, claimed: list[Delivery] | None = None) -> bool:
        taken = (
            claimed
            if claimed is not None
            else await outbox.claim(self.db, thread_key=thread_key, by=self.claimant)
        )
        held_back = isinstance(taken, outbox.Claimed) and taken.held_back
        queue = list(taken)
        posts_stopped = False
        done: set[int] = set()
        while queue:
            delivery = queue.pop(0)
            if delivery.id in done:
                continue
            done.add(delivery.id)
            if delivery.is_post and posts_stopped:
                await outbox.release(self.db, ids=[delivery.id])
                continue
            try:
                ts = await self._send(delivery)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "unknown_error")
                await self._failed(delivery, error, permanent=error in PERMANENT_ERRORS)
                posts_stopped = posts_stopped or delivery.is_post
                continue
            except Transient as exc:
                await self._failed(delivery, str(exc), permanent=False)
                posts_stopped = posts_stopped or delivery.is_post
                continue
            except NotInstalled:
                # Uninstalled: nothing can speak there any more, now or later.
                await self._failed(delivery, "not_installed", permanent=True)
                continue
            queue[:0] = await outbox.delivered(
                self.db, delivery=delivery, by=self.claimant, message_ts=ts
            )
        return held_back

    async def _failed(self, delivery: Delivery, error: str, *, permanent: bool) -> None:
        if await outbox.failed(self.db, delivery=delivery, error=error, permanent=permanent):
            log.warning(
                "gave up a message owed to thread %s after %d attempt(s): %s",
                delivery.thread_key,
                delivery.attempts,
                error,
            )
        else:
            log.info("message owed to thread %s not delivered yet: %s", delivery.thread_key, error)

    async def _send(self, delivery: Delivery) -> str | None:
        thread = ThreadRef.from_key(delivery.thread_key)
        if delivery.kind == OutboxKind.MIRROR:
            return await self._send_mirror(delivery, thread)
        if delivery.kind == OutboxKind.REMINDER:
            return await self._remind(thread, delivery)
        text, body = await self._render(delivery)
        if not delivery.is_post:
            ts = delivery.card_ts or str((delivery.payload or {}).get("ts") or "")
            await self._call(
                lambda: self.client.chat_update(
                    channel=thread.channel_id, ts=ts, text=text, blocks=body
                )
            )
            return ts
        return await self._post(delivery, thread.channel_id, thread.thread_ts, text, body)

    async def _send_mirror(self, delivery: Delivery, thread: ThreadRef) -> str | None:
        """The card's copy in the approvals channel: a message of its own there (not in a
        thread), with a link to the thread it was asked in."""
        view = await self._card_view(delivery)
        if view is None or not view.approval.mirror_channel_id:
            return None  # retention removed it: nothing left to show
        channel = view.approval.mirror_channel_id
        text, body = cards.card(view.approval, view.approved_by, view.thread_approval)
        link = await self.permalinks.of(thread.channel_id, thread.thread_ts)
        body = mirror_blocks.mirrored(body, thread.channel_id, link)
        if delivery.card_ts is not None:
            ts = delivery.card_ts
            await self._call(
                lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
            )
            return ts
        return await self._post(delivery, channel, None, text, body)

    async def _post(
        self,
        delivery: Delivery,
        channel: str,
        thread_ts: str | None,
        text: str,
        body: list[blocks.Block],
        *,
        findable: bool = True,
    ) -> str | None:
        """Post in `channel` (in the thread `thread_ts`, if any). A retry looks for an earlier
        post first; a direct message (`channel` a user id: Slack posts it in the app's DM with
        them) is not `findable` without reading the person's DMs, so one whose first try may
        have reached Slack can arrive twice."""
        maybe_sent = delivery.attempts > 1
        for pause in (*QUICK_RETRIES, None):
            if maybe_sent and findable:
                found = await self._find_post(channel, thread_ts, delivery)
                if found is not None:
                    return found
            try:
                response = await self._call(
                    lambda: self.client.chat_postMessage(
                        channel=channel,
                        thread_ts=thread_ts,
                        text=text,
                        blocks=body,
                        metadata={
                            "event_type": EVENT_TYPE,
                            "event_payload": {"outbox_id": delivery.id},
                        },
                    )
                )
            except Transient:
                if pause is None:
                    raise
                maybe_sent = True
                await asyncio.sleep(pause)
                continue
            ts = response.get("ts")
            return str(ts) if ts else None
        raise AssertionError("unreachable")

    async def _remind(self, thread: ThreadRef, delivery: Delivery) -> str | None:
        """A reminder or an escalation, with the card's permalink as Slack gives it now; moot
        once the call was decided."""
        payload = delivery.payload or {}
        to = str(payload.get("to") or "")
        approval = await get_approval(self.db, delivery.approval_id or "")
        if approval is None or approval.status != ApprovalStatus.PENDING or not to:
            return None
        in_thread = is_user_group(to)
        text, body = reminders.reminder(
            step=str(payload.get("step") or "remind"),
            to=to,
            in_thread=in_thread,
            tool_name=approval.tool_name,
            requesters=requesters_of(approval),
            channel_id=approval.channel_id,
            permalink=await self._permalink(approval.channel_id, approval.message_ts),
        )
        if in_thread:
            return await self._post(delivery, thread.channel_id, thread.thread_ts, text, body)
        return await self._post(delivery, to, None, text, body, findable=False)

    async def _call(self, call: Any) -> Any:
        try:
            return await call()
        except SlackApiError as exc:
            status = exc.response.status_code
            if status >= 500:
                raise Transient(f"http_{status}") from None
            raise
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Transient(type(exc).__name__) from None

    async def _permalink(self, channel_id: str, message_ts: str | None) -> str | None:
        """The card's link, or None when Slack has none for it (the reminder names the
        channel instead); a transient failure tries the whole reminder again later."""
        if not message_ts:
            return None
        try:
            response = await self._call(
                lambda: self.client.chat_getPermalink(channel=channel_id, message_ts=message_ts)
            )
        except SlackApiError as exc:
            log.info("no permalink for a reminder: %s", exc.response.get("error"))
            return None
        link = response.get("permalink")
        return str(link) if link else None

    async def _find_post(
        self, channel: str, thread_ts: str | None, delivery: Delivery
    ) -> str | None:
        """The ts of an earlier post of this row, if one of our tries reached Slack: among the
        thread's replies, or the channel's messages for a post outside a thread (a mirror)."""
        oldest = delivery.created_at - timedelta(minutes=2)
        cursor: str | None = None
        for _ in range(SEARCH_PAGES):
            read = (
                partial(self.client.conversations_replies, ts=thread_ts)
                if thread_ts is not None
                else self.client.conversations_history
            )
            response = await self._call(
                partial(
                    read,
                    channel=channel,
                    oldest=f"{oldest.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == EVENT_TYPE and (
                    payload.get("outbox_id") == delivery.id
                ):
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def _card_view(self, delivery: Delivery) -> CardView | None:
        """What a card or mirror shows: as the change that claimed it left it, or read now."""
        return delivery.view or await card_view(self.db, delivery.approval_id or "")

    async def _render(self, delivery: Delivery) -> tuple[str, list[blocks.Block]]:
        payload = delivery.payload or {}
        if delivery.kind == OutboxKind.CARD:
            view = await self._card_view(delivery)
            if view is None:
                return blocks.plain("This approval request is no longer stored.")
            return cards.card(view.approval, view.approved_by, view.thread_approval)
        if delivery.kind == OutboxKind.INTERRUPTED:
            doing = (
                "while resuming after an approval"
                if payload.get("resuming")
                else ("while answering")
            )
            return blocks.interrupted_note(
                run_id=str(payload.get("run_id", "")),
                what=f"{payload.get('cause', 'I was stopped')} {doing}, so this run did not finish.",  # noqa: E501
                in_flight=[
                    blocks.InFlightCall(tool_name=str(c[0]), arguments=str(c[1]))
                    for c in payload.get("in_flight") or []
                ],
                ref=str(payload.get("ref", "")),
                can_retry=True,
            )
        return str(payload.get("text", "")), list(payload.get("blocks") or [])
