"""Signed requests shaped the way Slack sends them to ``POST /slack/events``.

Tests drive the bot over real HTTP, so the bodies, content types and signatures must be what
Slack would send: a bot that passes these tests then also accepts real traffic, and refuses
what Slack would never sign.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]


class _TsClock:
    """Message timestamps near the real clock, strictly increasing across every builder.

    Shared so two builders in one test never mint the same ts, and time-based so ids never
    repeat across processes that share one database.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last = max(time.time_ns() // 1000, self._last + 1)
        seconds, micros = divmod(self._last, 1_000_000)
        return f"{seconds}.{micros:06d}"


_CLOCK = _TsClock()


def _unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12].upper()


class SlackRequestBuilder:
    verification_token = "legacy-verification-token"
    team_domain = "threadgate-test"

    def __init__(
        self,
        signing_secret: str,
        *,
        team_id: str = "T0TEAM",
        api_app_id: str = "A0APP",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        enterprise_id: str | None = None,
        enterprise_install: bool = False,
    ) -> None:
        self.signing_secret = signing_secret
        self.team_id = team_id
        # An Enterprise Grid workspace, and whether the app is installed org-wide there.
        self.enterprise_id = enterprise_id
        self.enterprise_install = enterprise_install
        self.api_app_id = api_app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id

    # -- signing ---------------------------------------------------------------------------

    def sign(
        self, body: bytes, *, timestamp: int | None = None, content_type: str = JSON
    ) -> dict[str, str]:
        """HMACs the raw bytes, so bodies that are not UTF-8 can still be signed correctly."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}",
        }

    def raw(self, body: bytes, content_type: str, *, timestamp: int | None = None) -> SignedRequest:
        return SignedRequest(body, self.sign(body, timestamp=timestamp, content_type=content_type))

    def _json(self, payload: dict[str, Any], timestamp: int | None) -> SignedRequest:
        return self.raw(json.dumps(payload).encode(), JSON, timestamp=timestamp)

    def _form(self, fields: dict[str, str], timestamp: int | None) -> SignedRequest:
        return self.raw(urlencode(fields).encode(), FORM, timestamp=timestamp)

    def _payload(self, payload: dict[str, Any], timestamp: int | None) -> SignedRequest:
        return self._form({"payload": json.dumps(payload)}, timestamp)

    # -- Events API ------------------------------------------------------------------------

    def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | None = None,
    ) -> SignedRequest:
        now = int(time.time())
        envelope = {
            "token": self.verification_token,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": {"event_ts": event.get("ts", _CLOCK.next()), **event},
            "type": "event_callback",
            "event_id": event_id or _unique("Ev"),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": self.enterprise_id,
                    "team_id": None if self.enterprise_install else self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": self.enterprise_install,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": _unique("4-"),
        }
        request = self._json(envelope, timestamp)
        if retry_num is not None:
            request.headers["X-Slack-Retry-Num"] = str(retry_num)
            request.headers["X-Slack-Retry-Reason"] = retry_reason
        return request

    def message_event(
        self,
        *,
        text: str,
        user: str = "U0ALICE",
        channel: str = "C0CHAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        channel_type: str = "channel",
        event_type: str = "message",
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The raw event, so one message can be sent as both app_mention and message.

        With `files` it is a message a person attached files to: both events list them, and
        the `message` one has the subtype `file_share`."""
        event: dict[str, Any] = {
            "type": event_type,
            "user": user,
            "text": text,
            "ts": ts or _CLOCK.next(),
            "channel": channel,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
        }
        if event_type == "message":
            event["channel_type"] = channel_type
        if files is not None:
            event["files"] = files
            event["upload"] = False
            if event_type == "message":
                event["subtype"] = "file_share"
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    def mention_event(
        self,
        *,
        text: str,
        user: str = "U0ALICE",
        channel: str = "C0CHAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}"
        return self.message_event(
            text=text,
            user=user,
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            event_type="app_mention",
            files=files,
        )

    def mention(
        self,
        *,
        text: str,
        user: str = "U0ALICE",
        channel: str = "C0CHAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> SignedRequest:
        event = self.mention_event(
            text=text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, files=files
        )
        return self.event(event, event_id=event_id, timestamp=timestamp)

    def channel_message(
        self,
        *,
        text: str,
        user: str = "U0ALICE",
        channel: str = "C0CHAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        event = self.message_event(
            text=text, user=user, channel=channel, ts=ts, thread_ts=thread_ts
        )
        return self.event(event, event_id=event_id, timestamp=timestamp)

    def dm(
        self,
        *,
        text: str,
        user: str = "U0ALICE",
        channel: str = "D0DM",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> SignedRequest:
        event = self.message_event(
            text=text,
            user=user,
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            channel_type="im",
            files=files,
        )
        return self.event(event, event_id=event_id, timestamp=timestamp)

    def bot_message(
        self,
        *,
        text: str,
        channel: str = "C0CHAN",
        bot_id: str = "B0OTHER",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> SignedRequest:
        """Another app's post; pass ``bot_id=builder.bot_id`` for the bot's own echo."""
        event: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": bot_id,
            "username": "some-bot",
            "text": text,
            "ts": ts or _CLOCK.next(),
            "channel": channel,
            "channel_type": "channel",
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return self.event(event, event_id=event_id)

    def message_changed(
        self,
        *,
        channel: str = "C0CHAN",
        user: str = "U0ALICE",
        text: str = "edited text",
        previous_text: str = "original text",
        message_ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> SignedRequest:
        original_ts = message_ts or _CLOCK.next()
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": original_ts,
            "edited": {"user": user, "ts": _CLOCK.next()},
        }
        previous: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": previous_text,
            "ts": original_ts,
        }
        if thread_ts is not None:
            message["thread_ts"] = previous["thread_ts"] = thread_ts
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "channel_type": "channel",
            "ts": _CLOCK.next(),
            "message": message,
            "previous_message": previous,
        }
        return self.event(event, event_id=event_id)

    def message_deleted(
        self,
        *,
        channel: str = "C0CHAN",
        user: str = "U0ALICE",
        message_ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> SignedRequest:
        deleted_ts = message_ts or _CLOCK.next()
        previous: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": "deleted text",
            "ts": deleted_ts,
        }
        if thread_ts is not None:
            previous["thread_ts"] = thread_ts
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "channel_type": "channel",
            "ts": _CLOCK.next(),
            "deleted_ts": deleted_ts,
            "previous_message": previous,
        }
        return self.event(event, event_id=event_id)

    def channel_join(
        self,
        *,
        channel: str = "C0CHAN",
        user: str = "U0NEWBIE",
        event_id: str | None = None,
    ) -> SignedRequest:
        event = {
            "type": "message",
            "subtype": "channel_join",
            "user": user,
            "text": f"<@{user}> has joined the channel",
            "ts": _CLOCK.next(),
            "channel": channel,
            "channel_type": "channel",
        }
        return self.event(event, event_id=event_id)

    # -- interactivity ---------------------------------------------------------------------

    def _user(self, user: str, team_id: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team_id}

    def _team(self, team_id: str) -> dict[str, Any]:
        team: dict[str, Any] = {"id": team_id, "domain": self.team_domain}
        if self.enterprise_id:
            team["enterprise_id"] = self.enterprise_id
        return team

    def _enterprise(self) -> dict[str, Any] | None:
        if not self.enterprise_id:
            return None
        return {"id": self.enterprise_id, "name": self.enterprise_id}

    def _response_url(self, team_id: str) -> str:
        return f"https://hooks.slack.com/actions/{team_id}/{uuid.uuid4().int % 10**12}/x"

    def block_actions(
        self,
        *,
        user: str = "U0ALICE",
        action_id: str,
        value: str,
        channel: str = "C0CHAN",
        message_ts: str,
        thread_ts: str | None = None,
        team_id: str | None = None,
        block_id: str = "b",
        trigger_id: str | None = None,
        response_url: str | None = None,
        message_text: str = "",
        message_blocks: list[dict[str, Any]] | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A button click on a message the bot posted.

        ``response_url`` defaults to a hooks.slack.com address, which the test network guard
        refuses: pass ``FakeSlackAPI.response_url(...)`` when the bot is expected to use it.
        """
        team = team_id or self.team_id
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.api_app_id,
            "team": team,
            "ts": message_ts,
            "text": message_text,
            "blocks": message_blocks or [],
        }
        if thread_ts is not None:
            container["thread_ts"] = thread_ts
            message["thread_ts"] = thread_ts
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user, team),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": trigger_id or _trigger_id(),
            "team": self._team(team),
            "enterprise": self._enterprise(),
            "is_enterprise_install": self.enterprise_install,
            "channel": {"id": channel, "name": _channel_name(channel)},
            "message": message,
            "state": {"values": {}},
            "response_url": response_url or self._response_url(team),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "action_ts": _CLOCK.next(),
                }
            ],
        }
        return self._payload(payload, timestamp)

    def app_home_opened(
        self, *, user: str, tab: str = "home", channel: str = "D0HOME", event_id: str | None = None
    ) -> SignedRequest:
        """Somebody opened the app's Home (or Messages) tab, as Slack sends it."""
        event = {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab}
        return self.event(event, event_id=event_id)

    def home_action(
        self,
        *,
        user: str,
        action_id: str,
        value: str,
        view_id: str = "V0HOME",
        team_id: str | None = None,
        trigger_id: str | None = None,
    ) -> SignedRequest:
        """A button click in the app's Home tab: no channel and no message, only the view."""
        team = team_id or self.team_id
        view: dict[str, Any] = {
            "id": view_id,
            "team_id": team,
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "title": {"type": "plain_text", "text": "View Title", "emoji": True},
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.api_app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user, team),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": trigger_id or _trigger_id(),
            "team": self._team(team),
            "enterprise": self._enterprise(),
            "is_enterprise_install": self.enterprise_install,
            "view": view,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b",
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "action_ts": _CLOCK.next(),
                }
            ],
        }
        return self._payload(payload, None)

    def _view(
        self,
        *,
        callback_id: str,
        private_metadata: str,
        values: dict[str, Any],
        team_id: str,
        view_id: str | None,
    ) -> dict[str, Any]:
        view_id = view_id or _unique("V")
        return {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": values},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "title": {"type": "plain_text", "text": "threadgate", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": True,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.api_app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def view_submission(
        self,
        *,
        user: str = "U0ALICE",
        callback_id: str,
        private_metadata: str,
        values: dict[str, Any],
        team_id: str | None = None,
        view_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """``values`` is ``{block_id: {action_id: {"type": ..., "value": ...}}}`` as in Slack."""
        team = team_id or self.team_id
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": self._team(team),
            "user": self._user(user, team),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": _trigger_id(),
            "view": self._view(
                callback_id=callback_id,
                private_metadata=private_metadata,
                values=values,
                team_id=team,
                view_id=view_id,
            ),
            "response_urls": [],
            "is_enterprise_install": self.enterprise_install,
            "enterprise": self._enterprise(),
        }
        return self._payload(payload, timestamp)

    def view_closed(
        self,
        *,
        user: str = "U0ALICE",
        callback_id: str,
        private_metadata: str,
        values: dict[str, Any] | None = None,
        team_id: str | None = None,
        view_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        team = team_id or self.team_id
        payload: dict[str, Any] = {
            "type": "view_closed",
            "team": self._team(team),
            "user": self._user(user, team),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "view": self._view(
                callback_id=callback_id,
                private_metadata=private_metadata,
                values=values or {},
                team_id=team,
                view_id=view_id,
            ),
            "is_cleared": False,
            "is_enterprise_install": self.enterprise_install,
            "enterprise": self._enterprise(),
        }
        return self._payload(payload, timestamp)

    def slash_command(
        self,
        *,
        command: str,
        text: str = "",
        user: str = "U0ALICE",
        channel: str = "C0CHAN",
        team_id: str | None = None,
        response_url: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        team = team_id or self.team_id
        fields = {
            "token": self.verification_token,
            "team_id": team,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": _channel_name(channel),
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or f"https://hooks.slack.com/commands/{team}/1/x",
            "trigger_id": _trigger_id(),
        }
        return self._form(fields, timestamp)


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def _channel_name(channel: str) -> str:
    return "directmessage" if channel.startswith("D") else channel.lower()


async def post(session: aiohttp.ClientSession, url: str, req: SignedRequest) -> tuple[int, str]:
    async with session.post(url, data=req.body, headers=req.headers) as response:
        return response.status, await response.text()
