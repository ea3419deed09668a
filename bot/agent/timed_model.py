"""The agent's model, each call timed (`threadgate_model_call_seconds`) and traced as one span.

A wrapper rather than the SDK's own model spans: those come only from OpenAI's model classes
and only with SDK tracing on, while the metric must hold for any model, tracing or not.
"""

import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse
from agents.items import TResponseStreamEvent
from agents.retry import ModelRetryAdvice, ModelRetryAdviceRequest

from bot.metrics import Metrics
from bot.tracing import Tracing

SPAN = "threadgate.model_call"


class TimedModel(Model):
    def __init__(self, model: Model, *, metrics: Metrics, tracing: Tracing) -> None:
        self.model = model
        self.metrics = metrics
        self.tracing = tracing

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        started, span, error = time.perf_counter(), self.tracing.start(SPAN), None
        try:
            return await self.model.get_response(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._observe(started, error)
            self.tracing.end_span(span, error)

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        started, span, error = time.perf_counter(), self.tracing.start(SPAN), None
        try:
            async for event in self.model.stream_response(*args, **kwargs):
                yield event
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._observe(started, error)
            self.tracing.end_span(span, error)

    def _observe(self, started: float, error: BaseException | None) -> None:
        outcome = "ok" if error is None else "error"
        self.metrics.model_call_seconds.labels(outcome=outcome).observe(
            time.perf_counter() - started
        )

    def get_retry_advice(self, request: ModelRetryAdviceRequest) -> ModelRetryAdvice | None:
        return self.model.get_retry_advice(request)

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.model._cleanup_on_run_end(owner)

    async def close(self) -> None:
        await self.model.close()
