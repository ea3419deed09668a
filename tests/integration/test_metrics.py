"""GET /metrics after a scripted conversation with an approval, read with prometheus-client's
own parser: the counters and gauges moved as they should, and the token guards them."""

from collections.abc import Mapping

from agents.testing import ScriptedModel, assistant_message, function_call
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.slack.blocks import APPROVE_ACTION
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.running_app import RunningBot, bot_settings, running_bot

THREAD_TS = "1700000001.000100"
TOKEN = "metrics-token-for-tests"

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: RunningBot, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with bot.http.get(bot.url + "/metrics", headers=headers) as response:
        return response.status, await response.text()


async def samples(bot: RunningBot) -> Samples:
    status, text = await scrape(bot)
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_a_conversation_with_an_approval_moves_the_metrics(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Customer c42 is gone.")],
        ]
    )
    # One 429 on the card's post: slack_sdk retries it, and both attempts are counted.
    slack.fail("chat.postMessage", status=429, retry_after=0)
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        before = await samples(bot)
        assert value(before, "threadgate_approvals_pending") == 0
        request = bot.requests.mention(
            text="please delete customer c42", user=ASKER, channel=CHANNEL, ts=THREAD_TS
        )
        assert (await bot.send(request))[0] == 200
        await bot.settle()

        paused = await samples(bot)
        assert value(paused, "threadgate_requests_total", kind="event_callback", status="200") == 1
        assert value(paused, "threadgate_ack_seconds_count") == 1
        assert value(paused, "threadgate_jobs_queued_total", kind="message") == 1
        assert value(paused, "threadgate_runs_started_total", kind="start") == 1
        assert value(paused, "threadgate_runs_total", outcome="paused") == 1
        assert value(paused, "threadgate_approvals_pending") == 1
        assert value(paused, "threadgate_approvals_requested_total", tool="delete_customer") == 1
        assert value(paused, "threadgate_model_call_seconds_count", outcome="ok") == 1
        posted = "threadgate_slack_api_calls_total"
        assert value(paused, posted, method="chat.postMessage", status="429") == 1
        assert value(paused, posted, method="chat.postMessage", status="200") >= 1
        assert value(paused, posted, method="auth.test", status="200") >= 1

        [card] = approval_messages(slack)
        [approval_id] = approval_ids(card)
        click = bot.requests.block_actions(
            user=APPROVER,
            action_id=APPROVE_ACTION,
            value=approval_id,
            channel=CHANNEL,
            message_ts="1700000002.000100",
            thread_ts=THREAD_TS,
            trigger_id="trigger-1",
        )
        assert (await bot.send(click))[0] == 200
        await bot.settle()

        after = await samples(bot)
        assert value(after, "threadgate_requests_total", kind="block_actions", status="200") == 1
        assert value(after, "threadgate_ack_seconds_count") == 2
        assert value(after, "threadgate_approvals_pending") == 0
        assert (
            value(
                after,
                "threadgate_approval_decisions_total",
                tool="delete_customer",
                decision="approved",
            )
            == 1
        )
        decided = "threadgate_approval_decision_seconds_count"
        assert value(after, decided, tool="delete_customer") == 1
        assert value(after, "threadgate_jobs_queued_total", kind="resume") == 1
        assert value(after, "threadgate_runs_started_total", kind="resume") == 1
        assert value(after, "threadgate_run_seconds_count", kind="resume") == 1
        assert (
            value(after, "threadgate_tool_calls_total", tool="delete_customer", outcome="ok") == 1
        )
        assert value(after, "threadgate_runs_total", outcome="answered") == 1
        assert value(after, "threadgate_runs_total", outcome="failed") == 0
        assert value(after, "threadgate_model_call_seconds_count", outcome="ok") == 2
        assert value(after, "threadgate_database_errors_total", kind="write") == 0
        labels = {label for key in after for label in key[1]}
        assert not any(ASKER in v or APPROVER in v or THREAD_TS in v for _k, v in labels)


async def test_a_metrics_token_is_required_when_set(database_url: str, slack: FakeSlackAPI) -> None:
    settings = bot_settings(database_url, slack, metrics_token=SecretStr(TOKEN))
    async with running_bot(database_url=database_url, slack=slack, settings=settings) as bot:
        assert (await scrape(bot))[0] == 401
        assert (await scrape(bot, "not-the-token"))[0] == 401
        assert (await scrape(bot, TOKEN[:-1]))[0] == 401
        status, text = await scrape(bot, TOKEN)
        assert status == 200
        assert "threadgate_requests_total" in text
