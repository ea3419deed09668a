"""A local HTTP server speaking enough of the OpenAI Responses and Chat Completions APIs.

``agents.testing.ScriptedModel`` replaces the model object; this fake replaces the network
instead, so the real ``openai`` client and the SDK's model classes (request building, SSE
parsing, retries, tool-call round trips) run exactly as in production. Replies are scripted
per request, and every request body is kept for assertions.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

if TYPE_CHECKING:
    from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel
    from openai import AsyncOpenAI

DEFAULT_TEXT = "ok"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(frozen=True)
class Reply:
    """One model turn: optional text, then the function calls, in that output order."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after_ms: int | None


@dataclass
class Timing:
    """When one accepted request arrived and when each streamed text delta left the server.

    Times are ``time.monotonic()``, comparable with the caller's own readings.
    """

    received_at: float
    deltas: list[tuple[float, str]] = field(default_factory=list)
    finished_at: float | None = None

    @property
    def first_token_at(self) -> float | None:
        return self.deltas[0][0] if self.deltas else None


@dataclass(frozen=True)
class _Event:
    """One SSE event; ``text`` is the answer text it carries, ``content`` whether it carries
    generated output (text or tool-call arguments), which is what the delays pace."""

    data: str
    text: str | None = None
    content: bool = False


Responder = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def text_reply(text: str) -> Reply:
    return Reply(text=text)


def tool_calls_reply(*calls: tuple[str, dict[str, Any]]) -> Reply:
    """Mints unique call ids, as the real API does, so parallel calls never collide."""
    return Reply(tool_calls=tuple(ToolCall(name, args, _new_id("call_")) for name, args in calls))


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        # timings[i] belongs to requests[i]; clear both with `clear_records`.
        self.timings: list[Timing] = []
        self.failed_requests: list[dict[str, Any]] = []
        # Generation pace, so tests and benchmarks see text arrive over time: seconds before
        # the first delta of output, and between later ones. A plain (non-streamed) answer
        # waits the whole generation time before it is sent.
        self.first_token_delay: float = 0.0
        self.token_delay: float = 0.0
        # Characters per streamed delta. Unset, deltas are words once a delay is set, and
        # otherwise two halves (enough to show clients concatenate).
        self.token_size: int | None = None
        self._queue: deque[Reply] = deque()
        self._failures: deque[_Failure] = deque()
        self._responder: Responder | None = None
        self._changed = asyncio.Condition()
        self._clients: list[AsyncOpenAI] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/responses", self._handle_responses)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Closes the clients handed out first, so no connection outlives the server."""
        for client in self._clients:
            await client.close()
        self._clients.clear()
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
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeModelServer is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    # -- clients ---------------------------------------------------------------------------

    def client(self, *, max_retries: int = 2) -> AsyncOpenAI:
        """A client the server closes on stop; tests need not track it."""
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.base_url, api_key="test", max_retries=max_retries)
        self._clients.append(client)
        return client

    def responses_model(
        self, model: str = "gpt-test", *, max_retries: int = 2
    ) -> OpenAIResponsesModel:
        from agents import OpenAIResponsesModel

        return OpenAIResponsesModel(model=model, openai_client=self.client(max_retries=max_retries))

    def chat_completions_model(
        self, model: str = "gpt-test", *, max_retries: int = 2
    ) -> OpenAIChatCompletionsModel:
        from agents import OpenAIChatCompletionsModel

        return OpenAIChatCompletionsModel(
            model=model, openai_client=self.client(max_retries=max_retries)
        )

    # -- scripting -------------------------------------------------------------------------

    text = staticmethod(text_reply)
    tool_calls = staticmethod(tool_calls_reply)

    def reply(self, reply: Reply) -> None:
        self._queue.append(reply)

    def reply_text(self, text: str) -> None:
        self._queue.append(text_reply(text))

    def reply_tool_calls(self, *calls: tuple[str, dict[str, Any]]) -> None:
        self._queue.append(tool_calls_reply(*calls))

    def respond_with(self, responder: Responder | None) -> None:
        """Consulted once the queue is empty; None goes back to the default answer."""
        self._responder = responder

    def fail(self, status: int = 500, times: int = 1, *, retry_after_ms: int | None = None) -> None:
        """The next ``times`` requests fail, ahead of any queued reply.

        ``retry_after_ms`` sets the header the openai client honours, to make its retries fast.
        """
        self._failures.extend(_Failure(status, retry_after_ms) for _ in range(times))

    def clear_records(self) -> None:
        """Forgets the requests seen and their timings together, keeping them paired.

        Scripted replies, failures and pacing stay.
        """
        self.requests.clear()
        self.timings.clear()
        self.failed_requests.clear()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 30.0,  # noqa: ASYNC109 - a default deadline keeps every test call short
    ) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.requests) >= count)
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout}s for {count} model request(s), got {len(self.requests)}"
            ) from None
        return list(self.requests)

    # -- HTTP ------------------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> tuple[dict[str, Any], Timing] | web.Response:
        """Returns the body to answer, or the error response that answers it already."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "body must be a JSON object")
        if self._failures:
            failure = self._failures.popleft()
            async with self._changed:
                self.failed_requests.append(body)
                self._changed.notify_all()
            headers = {}
            if failure.retry_after_ms is not None:
                headers["retry-after-ms"] = str(failure.retry_after_ms)
            kind = "rate_limit_exceeded" if failure.status == 429 else "server_error"
            return _error(failure.status, kind, "injected failure", headers)
        timing = Timing(received_at=time.monotonic())
        async with self._changed:
            self.requests.append(body)
            self.timings.append(timing)
            self._changed.notify_all()
        return body, timing

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self._responder is not None:
            reply = self._responder(body)
            if inspect.isawaitable(reply):
                return await reply
            return reply
        return text_reply(DEFAULT_TEXT)

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        received = await self._receive(request)
        if isinstance(received, web.Response):
            return received
        body, timing = received
        reply = await self._next_reply(body)
        response = _response_json(body, reply)
        events = [_response_event(e) for e in _response_events(response, self._split)]
        if not body.get("stream"):
            await self._generate(events)
            timing.finished_at = time.monotonic()
            return web.json_response(response)
        return await self._stream(request, events, timing)

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        received = await self._receive(request)
        if isinstance(received, web.Response):
            return received
        body, timing = received
        reply = await self._next_reply(body)
        events = [_chat_event(c) for c in _chat_chunks(body, reply, self._split)]
        if not body.get("stream"):
            await self._generate(events)
            timing.finished_at = time.monotonic()
            return web.json_response(_chat_completion(body, reply))
        return await self._stream(request, [*events, _Event("data: [DONE]")], timing)

    # -- pacing ----------------------------------------------------------------------------

    def _split(self, text: str) -> list[str]:
        if self.token_size is not None:
            size = max(1, self.token_size)
            return [text[i : i + size] for i in range(0, len(text), size)] or [""]
        if self.first_token_delay > 0 or self.token_delay > 0:
            # Each word with the space before it, as model tokens come (" world").
            return re.findall(r"\s*\S+|\s+$", text) or [""]
        return _halves(text)

    def _delay_before(self, index: int) -> float:
        return self.first_token_delay if index == 0 else self.token_delay

    async def _generate(self, events: list[_Event]) -> None:
        """Spends the time streaming would have, for an answer sent whole."""
        total = sum(self._delay_before(i) for i in range(sum(e.content for e in events)))
        if total > 0:
            await asyncio.sleep(total)

    async def _stream(
        self, request: web.Request, events: list[_Event], timing: Timing
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        produced = 0
        for event in events:
            if event.content:
                delay = self._delay_before(produced)
                produced += 1
                if delay > 0:
                    await asyncio.sleep(delay)
            await response.write(event.data.encode() + b"\n\n")
            if event.text is not None:
                timing.deltas.append((time.monotonic(), event.text))
        await response.write_eof()
        timing.finished_at = time.monotonic()
        return response


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    error = {"message": message, "type": kind, "param": None, "code": kind}
    return web.json_response({"error": error}, status=status, headers=headers)


def _response_event(event: dict[str, Any]) -> _Event:
    data = f"event: {event['type']}\ndata: {json.dumps(event)}"
    if event["type"] == "response.output_text.delta":
        return _Event(data, text=event["delta"], content=True)
    return _Event(data, content=event["type"] == "response.function_call_arguments.delta")


def _chat_event(chunk: dict[str, Any]) -> _Event:
    data = f"data: {json.dumps(chunk)}"
    for choice in chunk["choices"]:
        delta = choice["delta"]
        if delta.get("content"):
            return _Event(data, text=delta["content"], content=True)
        for call in delta.get("tool_calls") or []:
            if "id" not in call and call["function"].get("arguments"):
                return _Event(data, content=True)
    return _Event(data)


def _tokens(value: Any) -> int:
    """A stable stand-in for a tokenizer: usage only has to be plausible and deterministic."""
    return len(json.dumps(value, default=str)) // 4 + 1


def _halves(text: str) -> list[str]:
    """Two deltas, so clients are seen to concatenate rather than take the last chunk."""
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part] or [""]


# -- Responses API ---------------------------------------------------------------------------


def _response_json(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        output.append(
            {
                "type": "message",
                "id": _new_id("msg_"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for call in reply.tool_calls:
        output.append(
            {
                "type": "function_call",
                "id": _new_id("fc_"),
                "call_id": call.call_id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
                "status": "completed",
            }
        )
    input_tokens = _tokens(request.get("input"))
    output_tokens = _tokens(output)
    tool_choice = request.get("tool_choice")
    instructions = request.get("instructions")
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": None,
        "model": str(request.get("model", "gpt-test")),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": tool_choice if tool_choice in ("none", "auto", "required") else "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
        "metadata": {},
    }


def _response_events(
    response: dict[str, Any], split: Callable[[str], list[str]] = _halves
) -> list[dict[str, Any]]:
    """The event sequence the real API streams for the same finished response."""
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty_part = {"type": "output_text", "text": "", "annotations": []}
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            emit("response.content_part.added", **where, part=empty_part)
            for delta in split(text):
                emit("response.output_text.delta", **where, delta=delta, logprobs=[])
            emit("response.output_text.done", **where, text=text, logprobs=[])
            emit("response.content_part.done", **where, part=item["content"][0])
        else:
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            where = {"item_id": item["id"], "output_index": index}
            for delta in split(item["arguments"]):
                emit("response.function_call_arguments.delta", **where, delta=delta)
            emit(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


# -- Chat Completions ------------------------------------------------------------------------


def _chat_completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "gpt-test")),
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _chat_usage(request, message),
    }


def _chat_usage(request: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt, completion = _tokens(request.get("messages")), _tokens(message)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_chunks(
    request: dict[str, Any], reply: Reply, split: Callable[[str], list[str]] = _halves
) -> list[dict[str, Any]]:
    completion = _chat_completion(request, reply)
    options = request.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks: list[dict[str, Any]] = []

    def emit(delta: dict[str, Any], finish_reason: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        chunks.append(_chunk(completion, [choice], with_usage))

    emit({"role": "assistant", "content": ""})
    if reply.text:
        for delta in split(reply.text):
            emit({"content": delta})
    for index, call in enumerate(completion["choices"][0]["message"].get("tool_calls", [])):
        function = call["function"]
        emit(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        for delta in split(function["arguments"]):
            emit({"tool_calls": [{"index": index, "function": {"arguments": delta}}]})
    emit({}, completion["choices"][0]["finish_reason"])
    if with_usage:
        chunks.append({**_chunk(completion, [], True), "usage": completion["usage"]})
    return chunks


def _chunk(
    completion: dict[str, Any], choices: list[dict[str, Any]], with_usage: bool
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": None,
        "choices": choices,
    }
    if with_usage:
        chunk["usage"] = None
    return chunk
