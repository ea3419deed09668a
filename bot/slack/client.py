"""The Slack Web API client, with slack_sdk's retry handlers sized for mixed faults.

The handlers of one request share one attempt counter, so each gets the same generous limit:
a 429 followed by a 500 followed by a dropped connection is still retried.

slack_sdk asks every retry handler about every attempt's response, so the first handler of
each client is one that never retries and counts each attempt by method and HTTP status
(`threadgate_slack_api_calls_total`): a 429 that was retried is seen as such.
"""

import copy

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    BackoffRetryIntervalCalculator,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.metrics import Metrics

MAX_ATTEMPTS = 6


def retry_handlers(*, backoff_factor: float = 0.5) -> list[AsyncRetryHandler]:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=backoff_factor)
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_ATTEMPTS),
        AsyncServerErrorRetryHandler(max_retry_count=MAX_ATTEMPTS, interval_calculator=backoff),
        AsyncConnectionErrorRetryHandler(max_retry_count=MAX_ATTEMPTS, interval_calculator=backoff),
    ]


class CountingHandler(AsyncRetryHandler):
    """Counts each attempt; never asks for a retry."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self.calls = metrics.slack_api_calls

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"
        status = str(response.status_code) if response is not None else "error"
        self.calls.labels(method=method, status=status).inc()
        return False


def count_calls(client: AsyncWebClient, metrics: Metrics) -> None:
    """Count this client's Web API attempts (first, so it sees each one)."""
    if not any(isinstance(h, CountingHandler) for h in client.retry_handlers):
        client.retry_handlers.insert(0, CountingHandler(metrics))


def build_slack_client(
    token: str | None, *, base_url: str, backoff_factor: float = 0.5, timeout: int = 30
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=retry_handlers(backoff_factor=backoff_factor),
    )


def posting_client(client: AsyncWebClient) -> AsyncWebClient:
    """The same client, retrying only what Slack refused for sure (rate limits).

    A post retried blindly after a dropped connection or a 5xx may post twice; the outbox
    retries those itself, first looking for the earlier post.
    """
    posting = copy.copy(client)  # of the same kind: one that speaks for many workspaces too
    posting.retry_handlers = [
        *(h for h in client.retry_handlers if isinstance(h, CountingHandler)),
        AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_ATTEMPTS),
    ]
    return posting


def with_token(client: AsyncWebClient, token: str) -> AsyncWebClient:
    """The same client (base URL, pooled session, retry handlers) speaking with `token`: one
    workspace's voice in a process that serves many."""
    return AsyncWebClient(
        token=token,
        base_url=client.base_url,
        timeout=client.timeout,
        session=client.session,
        retry_handlers=client.retry_handlers,
    )


async def oauth_v2_access(
    client: AsyncWebClient, *, client_id: str, client_secret: str, **args: str | None
) -> AsyncSlackResponse:
    """`oauth.v2.access` with the app's credentials as form fields, which Slack accepts as it
    does basic auth: slack_sdk's own method sends them through aiohttp's deprecated BasicAuth."""
    data = {"client_id": client_id, "client_secret": client_secret}
    data.update({key: value for key, value in args.items() if value is not None})
    return await client.api_call("oauth.v2.access", data=data)
