"""A local HTTP server standing in for the Slack Web API.

The bot talks to it through the real slack_sdk client (``AsyncWebClient(base_url=...)``), so
tests exercise the same serialisation, auth header and retry handlers as production. Every call
is recorded with its decoded arguments, and faults (HTTP errors, rate limits, dropped
connections) can be injected per method. Waiting is driven by a condition the server notifies
on each record: tests never poll.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakes.slack_workspaces import FakeOAuth, TokenOwner
from tests.fakes.socket_mode import FakeSocketMode

# Fields Slack accepts as JSON text inside a form body; decoded so tests inspect Python objects.
JSON_FIELDS = frozenset(
    {"blocks", "attachments", "view", "metadata", "unfurls", "user_auth_blocks", "options"}
)

# Limits from DESIGN.md section 4; the fake refuses what Slack would refuse.
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # a modal or Home view holds up to 100 blocks, a message 50
MAX_SECTION_TEXT = 3000
MAX_ID_LENGTH = 255
MAX_BUTTON_VALUE = 2000
MAX_MARKDOWN_TEXT = 12_000

# Streaming and status limits, from Slack's method reference (chat.*Stream,
# assistant.threads.setStatus). Slack documents no length limit for a status.
MAX_MARKDOWN_TEXT = 12_000
MAX_LOADING_MESSAGES = 10
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
TASK_DISPLAY_MODES = frozenset({"timeline", "plan"})
SESSION_STATUSES = frozenset({"active", "processing", "suspended", "closed"})


@dataclass(frozen=True)
class RecordedCall:
    method: str
    args: dict[str, Any]
    token: str | None
    path: str = ""
    # time.monotonic() once the fake had read the call: when it reached "Slack", for timings
    # that must not include how late a waiter woke up to look.
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class RecordedFault:
    """A call answered by an injected fault; ``status`` is None when the connection was dropped.

    A refusal (`FakeSlackAPI.refuse`) has status 200 and its Slack ``error``; a rate limit, 429.
    """

    call: RecordedCall
    status: int | None
    error: str | None = None

    @property
    def method(self) -> str:
        return self.call.method


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: drop the connection
    retry_after: int | None = None
    # Never answer (the caller waits until it gives up or dies); with `accept`, the call
    # takes effect first, as when Slack did the work and the answer was lost.
    hang: bool = False
    accept: bool = False
    error: str | None = None  # a refusal: HTTP 200 {"ok": false, "error": error}


@dataclass
class StreamRecord:
    """One streamed message as Slack holds it, for tests to read.

    ``message`` is the very dict listed in `FakeSlackAPI.posted`, kept up to date, so
    conversations.replies shows the text streamed so far, as Slack's clients do.
    """

    ts: str
    channel: str
    thread_ts: str
    recipient_user_id: str | None
    recipient_team_id: str | None
    started_at: float  # time.monotonic() at chat.startStream
    message: dict[str, Any] = field(repr=False)
    _seal_after: Callable[[], float] = field(repr=False, compare=False)
    text: str = ""  # every markdown_text so far, concatenated
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> latest status
    plan_title: str | None = None
    # Every chunk applied, in order; a plain markdown_text argument counts as a chunk.
    chunks: list[dict[str, Any]] = field(default_factory=list, repr=False)
    stopped: bool = False
    blocks: list[Any] | None = None  # from chat.stopStream
    metadata: dict[str, Any] | None = None  # from chat.stopStream

    @property
    def sealed(self) -> bool:
        """Slack closed it for age before the bot stopped it: later calls are refused."""
        return not self.stopped and time.monotonic() - self.started_at >= self._seal_after()

    @property
    def streaming(self) -> bool:
        return not self.stopped and not self.sealed


_Handler = Callable[[dict[str, Any]], dict[str, Any]]

# Who the token of the call being answered speaks for (handlers are called synchronously).
_caller: contextvars.ContextVar[TokenOwner | None] = contextvars.ContextVar("caller", default=None)


class FakeSlackAPI:
    team_id = "T0TEAM"
    team_name = "Threadgate Test"
    team_domain = "threadgate-test"
    bot_user_id = "UBOT"
    bot_user_name = "threadgate"
    bot_id = "BBOT"
    app_id = "A0APP"
    bot_token = "xoxb-test-token"
    # The app-level token (connections:write) that opens Socket Mode connections.
    app_token = "xapp-1-A0APP-1-test-token"
    # Slack ends a stream nobody stopped; appends and stops after that are refused.
    stream_seal_after: float = 300.0

    def __init__(self) -> None:
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        # Each person's Home view, as last published; its id stays with the person.
        self.home_views: dict[str, dict[str, Any]] = {}
        self.posted: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        # Direct messages the bot sent, by the user id it posted to.
        self.dms: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.calls: list[RecordedCall] = []
        self.faults: list[RecordedFault] = []
        self._pending: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._slow: defaultdict[str, deque[float]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._ts_counter = 0
        self._view_counter = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        # Many workspaces: OAuth installs and per-workspace tokens (tests/fakes/slack_workspaces).
        self.oauth = FakeOAuth()
        self.default_owner = TokenOwner(
            self.team_id, None, self.bot_user_id, self.bot_id, self.team_name, default=True
        )
        self._handlers: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.history": self._conversations_history,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.replies": self._conversations_replies,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
        }
        self._init_thread_content()
        self._init_streaming_kit()
        self.socket = FakeSocketMode(self)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/api/{method}", self._handle_api)
        app.router.add_route("GET", "/api/{method}", self._handle_api)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_post("/response_url/{name:.*}", self._handle_response_url)
        app.router.add_get("/files-pri/{file:[^/]+}/download/{name}", self._handle_download)
        app.router.add_get("/link/", self.socket.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlackAPI is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Keeps the trailing slash: slack_sdk joins method names onto it verbatim."""
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response_url/{name}"

    # -- inspection ------------------------------------------------------------------------

    @property
    def changed(self) -> asyncio.Condition:
        """Notified on every recorded call, fault and Socket Mode message."""
        return self._changed

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    def messages_in_thread(self, channel: str, thread_ts: str) -> list[RecordedCall]:
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and str(c.args.get("thread_ts")) == thread_ts
        ]

    def reset(self) -> None:
        """Also forgets faults not yet triggered, so a test phase starts from a clean slate.

        Standing refusals and rate limits go too; streams, statuses and reactions stay, as
        `posted` does, since they are the workspace's state rather than injected faults.
        """
        self.calls.clear()
        self.faults.clear()
        self._pending.clear()
        self._slow.clear()
        self._refusals.clear()
        self._rate_limits.clear()
        self._accepted_at.clear()

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        where: Callable[[RecordedCall], bool] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - a default deadline keeps every test call short
    ) -> list[RecordedCall]:
        def matching() -> list[RecordedCall]:
            return [c for c in self.calls_to(method) if where is None or where(c)]

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout}s for {count} matching {method} call(s), "
                f"got {len(matching())}; calls seen:\n{self.summary()}"
            ) from None
        return matching()

    async def wait_for_faults(
        self,
        count: int,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - same reason as wait_for
    ) -> list[RecordedFault]:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.faults) >= count)
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout}s for {count} fault(s), got {len(self.faults)}"
            ) from None
        return list(self.faults)

    def summary(self) -> str:
        lines = [f"  {c.method} {_short(c.args)}" for c in self.calls]
        lines += [f"  (fault {f.status}) {f.method} {_short(f.call.args)}" for f in self.faults]
        return "\n".join(lines) or "  (none)"

    # -- fault injection -------------------------------------------------------------------

    def fail(
        self, method: str, *, status: int = 500, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Queues behind earlier faults for the same method, so mixed sequences play in order."""
        self._pending[method].extend(_Fault(status, retry_after) for _ in range(times))

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """The next calls reach Slack only after `seconds`, as over a slow network: what a
        caller sent later can arrive first."""
        self._slow[method].extend(seconds for _ in range(times))

    def drop(self, method: str, times: int = 1) -> None:
        self._pending[method].extend(_Fault(None) for _ in range(times))

    def hang(self, method: str, *, accept: bool, times: int = 1) -> None:
        """The next calls never get an answer; with `accept` they take effect first."""
        self._pending[method].extend(_Fault(None, hang=True, accept=accept) for _ in range(times))

    def refuse(self, method: str, error: str, *, times: int | None = None) -> None:
        """Answers as Slack does when it will not do the work: HTTP 200 {"ok": false, "error"}.

        For workspaces without a feature ("unknown_method", "not_allowed", "not_in_channel",
        "missing_scope", ...). With `times`, queues like `fail`; with None the method is
        refused for good (until `reset`), once any queued faults have played.
        """
        if times is None:
            self._refusals[method] = error
        else:
            self._pending[method].extend(_Fault(200, error=error) for _ in range(times))

    def rate_limit(
        self, method: str, per_second: float | None, *, retry_after: int | None = None
    ) -> None:
        """Answers 429 with Retry-After once calls to `method` come faster than `per_second`.

        Calls are counted over a sliding window of one second (longer below one call a second,
        so 0.5 allows one call in two seconds); refused calls do not count. Retry-After is
        Slack's whole seconds until a slot frees, unless `retry_after` fixes it (0 keeps retry
        tests fast). None lifts the limit.
        """
        if per_second is None:
            self._rate_limits.pop(method, None)
            return
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self._rate_limits[method] = (per_second, retry_after)
        self._accepted_at.pop(method, None)

    # -- streaming, status and reactions ---------------------------------------------------

    def _init_streaming_kit(self) -> None:
        """State for the methods below, and for refusals and rate limits, set up in one place
        so the core of the fake reads as it did before streaming."""
        self._streams: dict[tuple[str, str], StreamRecord] = {}
        self._statuses: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        # What each thread shows now: the latest status, until the app replies there.
        self._shown: dict[tuple[str, str], str] = {}
        self._loading_messages: dict[tuple[str, str], list[str] | None] = {}
        self._reactions: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._refusals: dict[str, str] = {}
        self._rate_limits: dict[str, tuple[float, int | None]] = {}
        self._accepted_at: defaultdict[str, deque[float]] = defaultdict(deque)
        self._handlers.update(
            {
                "chat.startStream": self._chat_start_stream,
                "chat.appendStream": self._chat_append_stream,
                "chat.stopStream": self._chat_stop_stream,
                "assistant.threads.setStatus": self._assistant_threads_set_status,
                "reactions.add": self._reactions_add,
                "reactions.remove": self._reactions_remove,
            }
        )

    @property
    def streams(self) -> list[StreamRecord]:
        """Every stream started, oldest first, whatever its state."""
        return list(self._streams.values())

    def streams_in_thread(self, channel: str, thread_ts: str) -> list[StreamRecord]:
        return [
            s for s in self._streams.values() if (s.channel, s.thread_ts) == (channel, thread_ts)
        ]

    def stream_text(self, channel: str, thread_ts: str) -> str:
        """The text of the newest stream in the thread: what its reader sees last."""
        streams = self.streams_in_thread(channel, thread_ts)
        if not streams:
            raise AssertionError(
                f"no stream in {channel} thread {thread_ts}; calls seen:\n{self.summary()}"
            )
        return streams[-1].text

    def statuses(self, channel: str, thread_ts: str) -> list[str]:
        """Every status set in the thread, in order; "" is a clear."""
        return list(self._statuses.get((channel, thread_ts), []))

    def status_shown(self, channel: str, thread_ts: str) -> str:
        """The status the thread shows now: as Slack, the app's reply in the thread clears it."""
        return self._shown.get((channel, thread_ts), "")

    def _replied(self, channel: str, thread_ts: object) -> None:
        if thread_ts:
            self._shown.pop((channel, str(thread_ts)), None)

    def loading_messages(self, channel: str, thread_ts: str) -> list[str] | None:
        """The loading_messages of the thread's latest status call (None: it sent none)."""
        return self._loading_messages.get((channel, thread_ts))

    def reactions(self, channel: str, ts: str) -> set[str]:
        return set(self._reactions.get((channel, ts), set()))

    def _chat_start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = args.get("channel"), args.get("thread_ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        # Slack also streams top-level messages in channels; threadgate always answers in a
        # thread, so the fake holds it to that.
        if not thread_ts:
            return _invalid_arguments("thread_ts is required")
        if not str(channel).startswith("D"):
            # Outside a DM Slack must know whose screen the stream is for.
            if not args.get("recipient_user_id"):
                return {"ok": False, "error": "missing_recipient_user_id"}
            if not args.get("recipient_team_id"):
                return {"ok": False, "error": "missing_recipient_team_id"}
        mode = args.get("task_display_mode")
        if mode is not None and mode not in TASK_DISPLAY_MODES:
            return _invalid_arguments(
                f"task_display_mode must be one of {sorted(TASK_DISPLAY_MODES)}"
            )
        chunks, refusal = _stream_chunks(args, required=False)
        if refusal is not None:
            return refusal
        ts = self._next_ts()
        message = self._message({"text": "", "thread_ts": thread_ts}, ts)
        self.posted[str(channel)].append(message)
        self._replied(str(channel), thread_ts)
        stream = StreamRecord(
            ts=ts,
            channel=str(channel),
            thread_ts=str(thread_ts),
            recipient_user_id=_optional_str(args.get("recipient_user_id")),
            recipient_team_id=_optional_str(args.get("recipient_team_id")),
            started_at=time.monotonic(),
            message=message,
            _seal_after=lambda: self.stream_seal_after,
        )
        self._streams[(stream.channel, ts)] = stream
        _apply_chunks(stream, chunks)
        return {"ok": True, "channel": stream.channel, "ts": ts}

    def _streaming(self, args: dict[str, Any]) -> StreamRecord | dict[str, Any]:
        """The stream an append or stop names, or Slack's refusal."""
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        stream = self._streams.get((str(args["channel"]), str(args.get("ts"))))
        if stream is None:
            return {"ok": False, "error": "message_not_found"}
        if not stream.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        return stream

    def _chat_append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        chunks, refusal = _stream_chunks(args, required=True)
        if refusal is not None:
            return refusal
        stream = self._streaming(args)
        if isinstance(stream, dict):
            return stream
        _apply_chunks(stream, chunks)
        return {"ok": True, "channel": stream.channel, "ts": stream.ts}

    def _chat_stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        chunks, refusal = _stream_chunks(args, required=False)
        if refusal is not None:
            return refusal
        blocks, metadata = args.get("blocks"), args.get("metadata")
        problems = _block_problems(blocks)
        if problems:
            return _invalid_blocks(problems)
        if metadata is not None and not _valid_metadata(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        session_status = args.get("session_status")
        if session_status is not None and session_status not in SESSION_STATUSES:
            return _invalid_arguments(f"session_status must be one of {sorted(SESSION_STATUSES)}")
        stream = self._streaming(args)
        if isinstance(stream, dict):
            return stream
        _apply_chunks(stream, chunks)
        stream.stopped = True
        stream.blocks, stream.metadata = blocks, metadata
        for key, value in (("blocks", blocks), ("metadata", metadata)):
            if value is not None:
                stream.message[key] = value
        return {"ok": True, "channel": stream.channel, "ts": stream.ts, "message": stream.message}

    def _assistant_threads_set_status(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts, status = (
            args.get("channel_id"),
            args.get("thread_ts"),
            args.get("status"),
        )
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not thread_ts:
            return {"ok": False, "error": "invalid_thread_ts"}
        if not isinstance(status, str):
            return _invalid_arguments("status is required; an empty status clears it")
        loading, bad_json = _json_arg(args.get("loading_messages"))
        if bad_json or (
            loading is not None
            and not (
                isinstance(loading, list)
                and all(isinstance(m, str) for m in loading)
                and len(loading) <= MAX_LOADING_MESSAGES
            )
        ):
            return _invalid_arguments(
                f"loading_messages must be a list of at most {MAX_LOADING_MESSAGES} strings"
            )
        key = (str(channel), str(thread_ts))
        self._statuses[key].append(status)
        self._shown[key] = status
        self._loading_messages[key] = loading
        return {"ok": True}

    def _reaction(self, args: dict[str, Any]) -> tuple[tuple[str, str], str] | dict[str, Any]:
        """The (channel, ts) and name a reaction call names, or Slack's refusal.

        Any ts is taken: the fake does not know the users' messages the bot reacts to.
        """
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("timestamp"):
            return {"ok": False, "error": "no_item_specified"}
        if not args.get("name"):
            return {"ok": False, "error": "invalid_name"}
        return (str(args["channel"]), str(args["timestamp"])), str(args["name"])

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        target = self._reaction(args)
        if isinstance(target, dict):
            return target
        key, name = target
        if name in self._reactions[key]:
            return {"ok": False, "error": "already_reacted"}
        self._reactions[key].add(name)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        target = self._reaction(args)
        if isinstance(target, dict):
            return target
        key, name = target
        if name not in self._reactions.get(key, set()):
            return {"ok": False, "error": "no_reaction"}
        self._reactions[key].discard(name)
        return {"ok": True}

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if self._slow[method]:
            await asyncio.sleep(self._slow[method].popleft())
        args, token, error = await _read_args(request)
        call = RecordedCall(method, args, token, request.path)
        fault = self._next_fault(method)
        if fault is not None and fault.hang:
            if fault.accept and error is None and token == self.bot_token:
                handler = self._handlers.get(method)
                if handler is not None:
                    handler(args)
                await self._record(call)
            async with self._changed:
                self.faults.append(RecordedFault(call, None))
                self._changed.notify_all()
            await self._stopping.wait()  # nobody hears back; the server is stopping
            return web.Response(status=503)
        if fault is not None:
            return await self._answer_fault(request, call, fault)
        await self._record(call)
        if error is not None:
            return web.json_response({"ok": False, "error": error})
        if method in APP_TOKEN_METHODS:
            return web.json_response(self._with_app_token(method, token, args))
        if method == "oauth.v2.access":  # the app's credentials, not a token
            if args.get("grant_type") == "refresh_token":
                await self.oauth.refresh_gate.wait()
            return web.json_response(self.oauth.access(args, request.headers.get("Authorization")))
        if token is not None and token.startswith("xapp-"):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        owner = self.default_owner if token == self.bot_token else self.oauth.owner(token)
        if isinstance(owner, str):
            return web.json_response({"ok": False, "error": owner})
        channel = args.get("channel")
        if isinstance(channel, str) and channel and not self.oauth.reaches(owner, channel):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        handler = self._handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        _caller.set(owner)
        return web.json_response(handler(args))

    def _with_app_token(
        self, method: str, token: str | None, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Methods only an app-level token may call refuse the bot token as Slack does."""
        if token is None:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        return APP_TOKEN_METHODS[method](self, args)

    async def _handle_authorize(self, request: web.Request) -> web.StreamResponse:
        """Slack's "Allow" page, clicked at once: back to the app's redirect URL with a code
        (or with error=access_denied when `oauth.deny_installs`)."""
        status, where = self.oauth.authorize_redirect(dict(request.query))
        if status == 302:
            raise web.HTTPFound(where)
        return web.Response(status=status, text=where)

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        args: dict[str, Any] = body if isinstance(body, dict) else {}
        call = RecordedCall("response_url", args, None, request.path)
        fault = self._next_fault("response_url")
        if fault is not None:
            return await self._answer_fault(request, call, fault)
        await self._record(call)
        if body is None:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not args.get("text") and not args.get("blocks"):
            return web.json_response({"ok": False, "error": "no_text"}, status=400)
        return web.json_response({"ok": True})

    def _next_fault(self, method: str) -> _Fault | None:
        pending = self._pending.get(method)
        if pending:
            return pending.popleft()
        if method in self._refusals:
            return _Fault(200, error=self._refusals[method])
        return self._over_rate_limit(method)

    def _over_rate_limit(self, method: str) -> _Fault | None:
        if method not in self._rate_limits:
            return None
        per_second, fixed_retry_after = self._rate_limits[method]
        window = max(1.0, 1.0 / per_second)
        allowed = max(1, math.floor(per_second * window))
        now = time.monotonic()
        accepted = self._accepted_at[method]
        while accepted and now - accepted[0] >= window:
            accepted.popleft()
        if len(accepted) < allowed:
            accepted.append(now)
            return None
        retry_after = fixed_retry_after
        if retry_after is None:
            retry_after = max(1, math.ceil(accepted[0] + window - now))
        return _Fault(429, retry_after)

    async def _answer_fault(
        self, request: web.Request, call: RecordedCall, fault: _Fault
    ) -> web.StreamResponse:
        async with self._changed:
            self.faults.append(RecordedFault(call, fault.status, fault.error))
            self._changed.notify_all()
        if fault.error is not None:
            return web.json_response({"ok": False, "error": fault.error})
        if fault.status is None:
            # Closing the transport before answering makes the client see a disconnect, and
            # aiohttp then discards the response quietly instead of logging a handler error.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        error = "ratelimited" if fault.status == 429 else "fatal_error"
        return web.json_response(
            {"ok": False, "error": error}, status=fault.status, headers=headers
        )

    async def _record(self, call: RecordedCall) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    # -- methods ---------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Wall-clock time, as Slack's are, and unique: `oldest` filters work on them."""
        self._ts_counter = max(self._ts_counter + 1, int(time.time() * 1_000_000))
        seconds, micros = divmod(self._ts_counter, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        owner = _caller.get()
        if owner is not None and not owner.default:
            return {
                "ok": True,
                "url": f"https://{(owner.team_id or owner.enterprise_id or '').lower()}.slack.com/",
                "team": owner.team_name,
                "user": self.bot_user_name,
                "team_id": owner.team_id or owner.enterprise_id,
                "user_id": owner.bot_user_id,
                "bot_id": owner.bot_id,
                "enterprise_id": owner.enterprise_id,
                "is_enterprise_install": owner.team_id is None,
            }
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_user_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _message(self, args: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": args.get("text", ""),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(key) is not None:
                message[key] = args[key]
        return message

    def _check_message(self, args: dict[str, Any]) -> dict[str, Any] | None:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            return {"ok": False, "error": "no_text"}
        metadata = args.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            return {"ok": False, "error": "invalid_metadata_format"}
        problems = _block_problems(args.get("blocks"))
        if problems:
            return {
                "ok": False,
                "error": "invalid_blocks",
                "errors": problems,
                "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
            }
        return None

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        refusal = self._check_message(args)
        if refusal is not None:
            return refusal
        channel = str(args["channel"])
        if channel.startswith("S"):  # a user group is no conversation
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        message = self._message(args, ts)
        if channel[0] in "UW":
            # As Slack: a user id posts in the app's direct messages with that person.
            channel = self.dm_channel(channel)
            self.dms[str(args["channel"])].append(message)
        self.posted[channel].append(message)
        self._replied(channel, args.get("thread_ts"))
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def dm_channel(self, user_id: str) -> str:
        return f"D{user_id[1:]}"

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        """As Slack: both arguments, a channel it knows, a message there; a reply's link
        carries its thread."""
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        messages = [*self.posted.get(channel, []), *self.seeded.get(channel, [])]
        if not channel or not messages:
            return {"ok": False, "error": "channel_not_found"}
        message = next((m for m in messages if m["ts"] == ts), None)
        # A thread the bot has replied in has a root message, whoever wrote it.
        is_root = any(m.get("thread_ts") == ts for m in messages)
        if message is None and not is_root:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts") if message is not None else None
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        refusal = self._check_message(args)
        if refusal is not None:
            return refusal
        ts = str(args["ts"])
        return {
            "ok": True,
            "channel": args["channel"],
            "ts": ts,
            "text": args.get("text", ""),
            "message": self._message(args, ts),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        refusal = self._check_message(args)
        if refusal is not None:
            return refusal
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": args["channel"], "ts": str(args["ts"])}

    def _store_view(self, view: dict[str, Any], view_id: str) -> dict[str, Any]:
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "state": {"values": {}},
            "hash": f"{view_id}.hash",
            "root_view_id": view_id,
            "previous_view_id": None,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            **view,
        }
        stored["id"] = view_id
        self.views[view_id] = stored
        return stored

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = args.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        self._view_counter += 1
        return {"ok": True, "view": self._store_view(view, f"V0VIEW{self._view_counter:04d}")}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id")
        if view_id is None and args.get("external_id"):
            view_id = next(
                (v["id"] for v in self.views.values() if v["external_id"] == args["external_id"]),
                None,
            )
        if view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": self._store_view(view, str(view_id))}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """As Slack: a user and a view of type "home" of at most 100 valid blocks."""
        user_id = args.get("user_id")
        if not user_id:
            return _invalid_arguments("missing required field: user_id")
        view = args.get("view")
        if isinstance(view, str):
            view, ok = _json_arg(view)
            if not ok:
                return _invalid_arguments("view is not valid JSON")
        if not isinstance(view, dict) or view.get("type") != "home":
            return _invalid_arguments("view.type must be home")
        view_blocks = view.get("blocks")
        if not isinstance(view_blocks, list):
            return _invalid_arguments("missing required field: blocks")
        if len(view_blocks) > MAX_VIEW_BLOCKS:
            return _invalid_arguments(
                f"no more than {MAX_VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]"
            )
        problems = [p for p in _block_problems(view_blocks) if "blocks, at most" not in p]
        if problems:
            return _invalid_blocks(problems)
        known = self.home_views.get(str(user_id))
        if known is None:
            self._view_counter += 1
            view_id = f"V0HOME{self._view_counter:04d}"
        else:
            view_id = known["id"]
        stored = self._store_view(view, view_id)
        self.home_views[str(user_id)] = stored
        return {"ok": True, "view": stored}

    def home_of(self, user_id: str) -> dict[str, Any] | None:
        return self.home_views.get(user_id)

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages the bot posted, newest first as Slack gives them,
        from `oldest` on; metadata only with `include_all_metadata`."""
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = min(int(args.get("limit") or 100), 1000)
        start = int(args.get("cursor") or 0)
        messages = [
            m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
            for m in reversed(self.posted.get(str(args["channel"]), []))
            if "thread_ts" not in m and float(m["ts"]) >= oldest
        ]
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        groups = self.usergroups
        owner = _caller.get()
        if owner is not None and not owner.default:
            # A workspace's token sees that workspace's groups only (an org's, none here).
            workspace = self.oauth.workspaces.get(owner.team_id or "")
            groups = workspace.usergroups if workspace is not None else {}
        members = groups.get(str(args.get("usergroup")))
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(members)}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user"))
        profile = self.users.get(user_id)
        if profile is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user_id, "team_id": self.team_id, **profile}}

    def _set_suggested_prompts(self, args: dict[str, Any]) -> dict[str, Any]:
        """As Slack: a channel, 1 to 4 prompts each with a title and a message; a title for the
        list is optional. Tests read what was set from the recorded calls."""
        if not args.get("channel_id"):
            return {"ok": False, "error": "channel_not_found"}
        prompts = args.get("prompts")
        if isinstance(prompts, str):
            try:
                prompts = json.loads(prompts)
            except json.JSONDecodeError:
                prompts = None
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}
        for prompt in prompts:
            if not (
                isinstance(prompt, dict)
                and all(isinstance(prompt.get(k), str) and prompt[k] for k in ("title", "message"))
            ):
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(args.get("title", ""), str):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answers with what the bot posted in the thread and what a test seeded there.

        As Slack does: messages oldest first, from `oldest` on, `limit` a page (at most 1000)
        with a cursor for the next; metadata only with `include_all_metadata`.
        """
        thread_ts = str(args.get("ts"))
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = min(int(args.get("limit") or 1000), 1000)
        start = int(args.get("cursor") or 0)
        messages = [
            m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
            for m in self._replies_source(args)
            if thread_ts in (m["ts"], m.get("thread_ts")) and float(m["ts"]) >= oldest
        ]
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    # -- people's messages and files in threads ----------------------------------------------

    def _init_thread_content(self) -> None:
        self._handlers["files.info"] = self._files_info
        self.seeded: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.files: dict[str, dict[str, Any]] = {}
        self.file_contents: dict[str, bytes] = {}
        self._file_counter = 0

    def seed_thread(self, channel: str, thread_ts: str, messages: list[dict[str, Any]]) -> None:
        """Messages people wrote in a thread (`user`, `text`, `ts`, optional `files`), which
        conversations.replies then returns among the bot's own posts, in ts order."""
        for message in messages:
            self.seeded[channel].append(
                {"type": "message", "team": self.team_id, "thread_ts": thread_ts, **message}
            )

    def add_file(
        self,
        name: str,
        mimetype: str,
        content: bytes,
        *,
        url: str | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """A file as files.info describes it, downloadable from this server with the bot
        token; `url` puts its download address elsewhere. With `size`, files.info states that
        size, and the download is sent in chunks without a length: nothing tells the truth."""
        self._file_counter += 1
        file_id = f"F{self._file_counter:08d}"
        download = url or f"{self.url}/files-pri/{self.team_id}-{file_id}/download/{name}"
        file = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "size": len(content) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "user": "U0ALICE",
            "url_private": download.replace("/download/", "/"),
            "url_private_download": download,
        }
        self.files[file_id] = file
        self.file_contents[file_id] = content
        return file

    def downloads(self) -> list[RecordedCall]:
        return self.calls_to("files.download")

    def _replies_source(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The channel's messages in ts order, up to `latest` (itself only with `inclusive`)."""
        channel = str(args.get("channel"))
        messages = sorted(
            [*self.posted.get(channel, []), *self.seeded.get(channel, [])],
            key=lambda m: float(m["ts"]),
        )
        if args.get("latest"):
            latest = float(args["latest"])
            inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
            messages = [
                m
                for m in messages
                if float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest)
            ]
        return messages

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        file = self.files.get(str(args.get("file")))
        if file is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": file, "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        """As files.slack.com does: the bot token in the Authorization header, or a redirect
        to the sign-in page (no token) or a 403 (a wrong one)."""
        file_id = request.match_info["file"].rsplit("-", 1)[-1]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        call = RecordedCall("files.download", {"file": file_id}, token, request.path)
        fault = self._next_fault("files.download")
        if fault is not None and fault.hang:
            async with self._changed:
                self.faults.append(RecordedFault(call, None))
                self._changed.notify_all()
            await self._stopping.wait()
            return web.Response(status=503)
        if fault is not None:
            return await self._answer_fault(request, call, fault)
        await self._record(call)
        if token is None:
            raise web.HTTPFound(f"https://{self.team_domain}.slack.com/?redir={request.path}")
        if token != self.bot_token:
            return web.Response(status=403, text="Forbidden")
        content = self.file_contents.get(file_id)
        if content is None:
            return web.Response(status=404, text="Not Found")
        file = self.files[file_id]
        content_type = str(file["mimetype"]).split(";")[0]
        if file["size"] == len(content):
            return web.Response(body=content, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for start in range(0, len(content), 1024):
                await response.write(content[start : start + 1024])
        except ConnectionError:
            return response  # the client stopped reading, as it may
        await response.write_eof()
        return response


# Called with the app-level token, never the bot's.
APP_TOKEN_METHODS: dict[str, Callable[[FakeSlackAPI, dict[str, Any]], dict[str, Any]]] = {
    "apps.connections.open": lambda slack, args: slack.socket.connections_open(args),
}


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None, str | None]:
    """Merges query, form and JSON arguments the way Slack does; returns (args, token, error)."""
    args: dict[str, Any] = dict(request.query)
    error: str | None = None
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if isinstance(body, dict):
                args.update(body)
            else:
                error = "invalid_json"
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str | bytes | bytearray):
                    args[key] = value
                else:
                    args[key] = value.file.read()
    for key in JSON_FIELDS & args.keys():
        if isinstance(args[key], str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                error = error or f"invalid_{key}"
    token: str | None = None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth.removeprefix("Bearer ").strip()
    if "token" in args:
        token = token or str(args["token"])
        del args["token"]
    return args, token, error


def _block_problems(blocks: Any) -> list[str]:
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks, at most {MAX_BLOCKS} allowed")
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            problems.append(f"block {index} has no type")
            continue
        if len(str(block.get("block_id", ""))) > MAX_ID_LENGTH:
            problems.append(f"block {index}: block_id longer than {MAX_ID_LENGTH}")
        text = block.get("text")
        too_long = isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_SECTION_TEXT
        if block["type"] == "section" and too_long:
            problems.append(f"block {index}: section text longer than {MAX_SECTION_TEXT}")
        for field_ in block.get("fields") or []:
            if isinstance(field_, dict) and len(str(field_.get("text", ""))) > 2000:
                problems.append(f"block {index}: a field is longer than 2000")
        if block["type"] == "context_actions":
            problems.extend(_context_actions_problems(index, block))
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if not isinstance(element, dict):
                continue
            if len(str(element.get("action_id", ""))) > MAX_ID_LENGTH:
                problems.append(f"block {index}: action_id longer than {MAX_ID_LENGTH}")
            long_value = len(str(element.get("value", ""))) > MAX_BUTTON_VALUE
            if element.get("type") == "button" and long_value:
                problems.append(f"block {index}: button value longer than {MAX_BUTTON_VALUE}")
    markdown = sum(
        len(str(b.get("text", "")))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "markdown"
    )
    if markdown > MAX_MARKDOWN_TEXT:
        problems.append(f"markdown blocks hold {markdown} characters, at most {MAX_MARKDOWN_TEXT}")
    return problems


def _context_actions_problems(index: int, block: dict[str, Any]) -> list[str]:
    """Slack's context actions block: 1 to 5 feedback or icon buttons; each feedback button
    has plain text of at most 75 characters and a value of at most 2,000."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
        return [f"block {index}: context_actions needs 1 to 5 elements"]
    problems: list[str] = []
    for element in elements:
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in ("feedback_buttons", "icon_button"):
            problems.append(f"block {index}: {kind!r} cannot go in context_actions")
            continue
        for side in ("positive_button", "negative_button") if kind == "feedback_buttons" else ():
            button = element.get(side)
            text = button.get("text") if isinstance(button, dict) else None
            value = button.get("value") if isinstance(button, dict) else None
            if not (
                isinstance(text, dict)
                and text.get("type") == "plain_text"
                and 0 < len(str(text.get("text", ""))) <= 75
            ):
                problems.append(f"block {index}: {side} needs plain_text of 1 to 75 characters")
            if not isinstance(value, str) or not 0 < len(value) <= MAX_BUTTON_VALUE:
                problems.append(f"block {index}: {side} needs a value of 1 to {MAX_BUTTON_VALUE}")
    return problems


def _invalid_arguments(message: str) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [f"[ERROR] {message}"]},
    }


def _invalid_blocks(problems: list[str]) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": problems,
        "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
    }


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_arg(value: Any) -> tuple[Any, bool]:
    """Decodes an array sent as JSON text in a form body; returns (value, was it bad JSON)."""
    if not isinstance(value, str):
        return value, False
    try:
        return json.loads(value), False
    except json.JSONDecodeError:
        return None, True


def _stream_chunks(
    args: dict[str, Any], *, required: bool
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The chunks a chat.*Stream call adds, a markdown_text argument as one; or the refusal.

    Validates everything before anything is applied, as Slack refuses a call whole.
    """
    text, raw = args.get("markdown_text"), args.get("chunks")
    if text is not None and raw is not None:
        return [], _invalid_arguments("markdown_text and chunks cannot both be sent")
    if text is not None:
        if not isinstance(text, str):
            return [], _invalid_arguments("markdown_text must be a string")
        if len(text) > MAX_MARKDOWN_TEXT:
            return [], {"ok": False, "error": "msg_too_long"}
        return [{"type": "markdown_text", "text": text}], None
    if raw is None:
        if required:
            return [], _invalid_arguments("markdown_text or chunks is required")
        return [], None
    chunks, bad_json = _json_arg(raw)
    if bad_json or not isinstance(chunks, list):
        return [], _invalid_chunks("chunks must be an array of objects")
    for index, chunk in enumerate(chunks):
        refusal = _chunk_refusal(index, chunk)
        if refusal is not None:
            return [], refusal
    return chunks, None


def _invalid_chunks(message: str) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_chunks",
        "response_metadata": {"messages": [f"[ERROR] {message}"]},
    }


def _chunk_refusal(index: int, chunk: Any) -> dict[str, Any] | None:
    if not isinstance(chunk, dict):
        return _invalid_chunks(f"chunk {index} is not an object")
    kind = chunk.get("type")
    if kind == "markdown_text":
        if not isinstance(chunk.get("text"), str):
            return _invalid_chunks(f"chunk {index}: markdown_text needs text")
        return (
            {"ok": False, "error": "msg_too_long"}
            if len(chunk["text"]) > MAX_MARKDOWN_TEXT
            else None
        )
    if kind == "task_update":
        if not all(isinstance(chunk.get(k), str) and chunk[k] for k in ("id", "title")):
            return _invalid_chunks(f"chunk {index}: task_update needs id and title")
        if chunk.get("status") not in TASK_STATUSES:
            return _invalid_chunks(
                f"chunk {index}: task_update status must be one of {sorted(TASK_STATUSES)}"
            )
        if any(not isinstance(chunk.get(k, ""), str) for k in ("details", "output")):
            return _invalid_chunks(f"chunk {index}: task_update details and output are strings")
        return None
    if kind == "plan_update":
        if isinstance(chunk.get("title"), str):
            return None
        return _invalid_chunks(f"chunk {index}: plan_update needs title")
    if kind == "blocks":
        # Slack's reference lists blocks chunks too, and slack_sdk has BlocksChunk.
        if not isinstance(chunk.get("blocks"), list):
            return _invalid_chunks(f"chunk {index}: a blocks chunk needs blocks")
        problems = _block_problems(chunk["blocks"])
        return _invalid_blocks(problems) if problems else None
    return _invalid_chunks(f"chunk {index}: unknown type {kind!r}")


def _apply_chunks(stream: StreamRecord, chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        stream.chunks.append(chunk)
        if chunk["type"] == "markdown_text":
            stream.text += chunk["text"]
        elif chunk["type"] == "task_update":
            stream.tasks[chunk["id"]] = chunk["status"]
        elif chunk["type"] == "plan_update":
            stream.plan_title = chunk["title"]
    stream.message["text"] = stream.text


def _short(args: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(args, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
