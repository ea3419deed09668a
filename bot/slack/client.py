"""The Slack Web API client, with slack_sdk's retry handlers sized for mixed faults.

The handlers of one request share one attempt counter, so each gets the same generous limit:
a 429 followed by a 500 followed by a dropped connection is still retried.
"""

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    BackoffRetryIntervalCalculator,
)
from slack_sdk.web.async_client import AsyncWebClient

MAX_ATTEMPTS = 6


def retry_handlers(*, backoff_factor: float = 0.5) -> list[AsyncRetryHandler]:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=backoff_factor)
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_ATTEMPTS),
        AsyncServerErrorRetryHandler(max_retry_count=MAX_ATTEMPTS, interval_calculator=backoff),
        AsyncConnectionErrorRetryHandler(max_retry_count=MAX_ATTEMPTS, interval_calculator=backoff),
    ]


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
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        session=client.session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_ATTEMPTS)],
    )


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
