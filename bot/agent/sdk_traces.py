"""The Agents SDK's spans (agent, turn, model response, function, guardrail, handoff) as
OpenTelemetry spans of the app that runs them, and never the SDK's own export to OpenAI.

The SDK's trace processors are global to the process; each SDK span finds its app's tracing
through `bot.tracing.active`, set around the run, and its parent through the SDK span it
belongs to (or, for the first, the run's own span). Only names, models, token counts and
errors by type are copied; inputs and outputs only with `THREADGATE_TRACE_CONTENT=true`.
"""

import json
import threading
from typing import Any

from agents import set_trace_processors, set_tracing_disabled
from agents.tracing import Span as SdkSpan
from agents.tracing import Trace, TracingProcessor
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from bot import log_context, tracing

# SDK span fields that hold what people or tools wrote: copied only when content is allowed.
CONTENT_FIELDS = frozenset({"input", "output", "data", "text"})


class OpenTelemetryBridge(TracingProcessor):
    def __init__(self) -> None:
        self._spans: dict[str, tuple[Span, tracing.Tracing]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: SdkSpan[Any]) -> None:
        app = tracing.active.get()
        if app is None or not app.enabled:
            return
        with self._lock:
            parent = self._spans.get(span.parent_id or "")
        context = trace.set_span_in_context(parent[0]) if parent else None
        ids = log_context.current()
        otel = app.tracer.start_span(
            f"agents.{span.span_data.type}",
            context=context,
            attributes=tracing.span_attributes(ids, {}),
        )
        with self._lock:
            self._spans[span.span_id] = (otel, app)

    def on_span_end(self, span: SdkSpan[Any]) -> None:
        with self._lock:
            found = self._spans.pop(span.span_id, None)
        if found is None:
            return
        otel, app = found
        for key, value in span.span_data.export().items():
            if key == "type" or value is None or (key in CONTENT_FIELDS and not app.content):
                continue
            otel.set_attribute(f"agents.{key}", _attribute(value))
        if span.error is not None:
            message = span.error.get("message", "")[:200] if app.content else None
            otel.set_status(Status(StatusCode.ERROR, message))
        otel.end()

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


_BRIDGE = OpenTelemetryBridge()


def route_sdk_traces(enabled: bool) -> None:
    """The SDK's tracing: off unless this app exports traces, and then only to our bridge (the
    SDK's default processor, which would send runs to OpenAI, is replaced, never added)."""
    set_trace_processors([_BRIDGE])
    set_tracing_disabled(not enabled)


def _attribute(value: object) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str)[:4000]
