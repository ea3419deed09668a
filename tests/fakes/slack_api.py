"""A local HTTP server standing in for the Slack Web API.

The bot talks to it through the real slack_sdk client (``AsyncWebClient(base_url=...)``), so
tests exercise the same serialisation, auth header and retry handlers as production. Every call
is recorded with its decoded arguments, and faults (HTTP errors, rate limits, dropped
connections) can be injected per method. Waiting is driven by a condition the server notifies
on each record: tests never poll.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

# Fields Slack accepts as JSON text inside a form body; decoded so tests inspect Python objects.
JSON_FIELDS = frozenset(
    {"blocks", "attachments", "view", "metadata", "unfurls", "user_auth_blocks", "options"}
)

# Limits from DESIGN.md section 4; the fake refuses what Slack would refuse.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_ID_LENGTH = 255
MAX_BUTTON_VALUE = 2000
MAX_MARKDOWN_TEXT = 12_000


@dataclass(frozen=True)
class RecordedCall:
    method: str
    args: dict[str, Any]
    token: str | None
    path: str = ""


@dataclass(frozen=True)
class RecordedFault:
    """A call answered by an injected fault; ``status`` is None when the connection was dropped."""

    call: RecordedCall
    status: int | None

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


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


class FakeSlackAPI:
    team_id = "T0TEAM"
    team_name = "Threadgate Test"
    team_domain = "threadgate-test"
    bot_user_id = "UBOT"
    bot_user_name = "threadgate"
    bot_id = "BBOT"
    app_id = "A0APP"
    bot_token = "xoxb-test-token"

    def __init__(self) -> None:
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.posted: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.calls: list[RecordedCall] = []
        self.faults: list[RecordedFault] = []
        self._pending: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._ts_counter = 0
        self._view_counter = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._handlers: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.replies": self._conversations_replies,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
        }
        self._init_thread_content()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/api/{method}", self._handle_api)
        app.router.add_route("GET", "/api/{method}", self._handle_api)
        app.router.add_post("/response_url/{name:.*}", self._handle_response_url)
        app.router.add_get("/files-pri/{file:[^/]+}/download/{name}", self._handle_download)
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

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    def messages_in_thread(self, channel: str, thread_ts: str) -> list[RecordedCall]:
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and str(c.args.get("thread_ts")) == thread_ts
        ]

    def reset(self) -> None:
        """Also forgets faults not yet triggered, so a test phase starts from a clean slate."""
        self.calls.clear()
        self.faults.clear()
        self._pending.clear()

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

    def drop(self, method: str, times: int = 1) -> None:
        self._pending[method].extend(_Fault(None) for _ in range(times))

    def hang(self, method: str, *, accept: bool, times: int = 1) -> None:
        """The next calls never get an answer; with `accept` they take effect first."""
        self._pending[method].extend(_Fault(None, hang=True, accept=accept) for _ in range(times))

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
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
        if token != self.bot_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = self._handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

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
        return web.json_response({"ok": True})

    def _next_fault(self, method: str) -> _Fault | None:
        pending = self._pending.get(method)
        return pending.popleft() if pending else None

    async def _answer_fault(
        self, request: web.Request, call: RecordedCall, fault: _Fault
    ) -> web.StreamResponse:
        async with self._changed:
            self.faults.append(RecordedFault(call, fault.status))
            self._changed.notify_all()
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
        ts = self._next_ts()
        message = self._message(args, ts)
        self.posted[str(args["channel"])].append(message)
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

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

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.usergroups.get(str(args.get("usergroup")))
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


def _short(args: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(args, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
