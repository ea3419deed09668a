"""OpenTelemetry traces to the operator's own collector, and nothing anywhere without one.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the app gets a tracer provider of its own with an OTLP
(HTTP/protobuf) exporter; otherwise a no-op tracer, and no exporter is ever created. The
provider is the app's, not OpenTelemetry's global one, so bots sharing a process (tests,
benchmarks) keep their spans apart. Every span carries the ids of `bot.log_context`, never
content: a span names tools and ids, not what anyone wrote.
"""

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from bot import log_context

SERVICE_NAME = "threadgate"


class Tracing:
    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        provider: TracerProvider | None = None,
        content: bool = False,
    ) -> None:
        self.tracer: Tracer = tracer or trace.NoOpTracer()
        self.provider = provider
        self.content = content

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    @classmethod
    def exporting(cls, endpoint: str | None, *, content: bool = False) -> "Tracing":
        """An OTLP exporter to `endpoint` (the collector's base URL), or no tracing at all."""
        if not endpoint:
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint.rstrip("/") + "/v1/traces"
        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)), content)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, content: bool = False) -> "Tracing":
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        provider.add_span_processor(processor)
        return cls(provider.get_tracer("threadgate"), provider=provider, content=content)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: str | int | None) -> Iterator[Span]:
        """A span carrying the current log ids, current while the block runs; an exception
        that leaves the block marks it failed (by its type only: its text may quote content)."""
        if not self.enabled:
            yield trace.INVALID_SPAN
            return
        token = active.set(self)
        try:
            with self.tracer.start_as_current_span(
                name,
                attributes=span_attributes(log_context.current(), attributes),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield span
                except BaseException as exc:
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
        finally:
            active.reset(token)

    def start(self, name: str, **attributes: str | int | None) -> Span:
        """A span under the current one that the caller ends (`end_span`); not made current,
        for work that yields to others (a stream) and has no spans beneath it."""
        if not self.enabled:
            return trace.INVALID_SPAN
        return self.tracer.start_span(
            name, attributes=span_attributes(log_context.current(), attributes)
        )

    def finished_span(
        self, name: str, *, started: datetime, **attributes: str | int | None
    ) -> None:
        """A span of something that happened across processes (an approval's wait), ending
        now, under the current span."""
        if not self.enabled:
            return
        span = self.tracer.start_span(
            name,
            start_time=int(_aware(started).timestamp() * 1e9),
            attributes=span_attributes(log_context.current(), attributes),
        )
        span.end()

    @staticmethod
    def end_span(span: Span, error: BaseException | None = None) -> None:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def span_attributes(
    ids: Mapping[str, str], extra: Mapping[str, str | int | None]
) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {f"threadgate.{k}": v for k, v in ids.items()}
    attributes.update({f"threadgate.{k}": v for k, v in extra.items() if v is not None})
    return attributes


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# The tracing of the app whose run is on this task: the Agents SDK's trace processors are
# global, so its spans find their app (and their parent) through here.
active: ContextVar["Tracing | None"] = ContextVar("threadgate_tracing", default=None)
