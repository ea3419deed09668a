"""Spans of one approval round trip reach an OTLP collector, parented as the work ran, with the
ids of the logs and without content; without an endpoint nothing is exported."""

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.slack.blocks import APPROVE_ACTION
from tests.fakes.otlp_collector import FakeCollector, ReceivedSpan
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.running_app import bot_settings, running_bot

THREAD_TS = "1700000001.000100"
SECRET_WORDS = "customer c42 please"


def parent(collector: FakeCollector, span: ReceivedSpan) -> ReceivedSpan:
    found = collector.by_id(span.parent_span_id)
    assert found is not None, f"{span.name} has no parent among the exported spans"
    return found


async def test_an_approval_round_trip_is_traced(database_url: str, slack: FakeSlackAPI) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Customer c42 is gone.")],
        ]
    )
    async with FakeCollector() as collector:
        settings = bot_settings(database_url, slack, otel_exporter_otlp_endpoint=collector.endpoint)
        async with running_bot(
            database_url=database_url,
            slack=slack,
            config=approval_config(),
            model=model,
            settings=settings,
        ) as bot:
            mention = bot.requests.mention(
                text=f"{SECRET_WORDS} delete it", user=ASKER, channel=CHANNEL, ts=THREAD_TS
            )
            assert (await bot.send(mention))[0] == 200
            await bot.settle()
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
        # Stopping the app flushed its spans to the collector.

    requests = collector.named("threadgate.slack_request")
    kinds = {span.attributes["threadgate.kind"]: span for span in requests}
    assert {"event_callback", "block_actions"} <= set(kinds)
    runs = {span.attributes["threadgate.kind"]: span for span in collector.named("threadgate.run")}
    assert set(runs) == {"start", "resume"}
    # request → run: the mention started the run, the click resumed it.
    assert parent(collector, runs["start"]) == kinds["event_callback"]
    assert parent(collector, runs["resume"]) == kinds["block_actions"]
    run_id = runs["start"].attributes["threadgate.run_id"]
    assert runs["resume"].attributes["threadgate.run_id"] == run_id
    assert runs["start"].attributes["threadgate.channel"] == CHANNEL
    assert runs["start"].attributes["threadgate.thread_ts"] == THREAD_TS
    # run → model and tool calls
    model_calls = collector.named("threadgate.model_call")
    assert len(model_calls) == 2
    assert {parent(collector, span).name for span in model_calls} == {"threadgate.run"}
    [tool_call] = collector.named("threadgate.tool_call")
    assert parent(collector, tool_call) == runs["resume"]
    assert tool_call.attributes["threadgate.tool"] == "delete_customer"
    assert tool_call.attributes["threadgate.run_id"] == run_id
    # The approval's wait, card to decision, under the click that decided it.
    [wait] = collector.named("threadgate.approval_wait")
    assert parent(collector, wait) == kinds["block_actions"]
    assert wait.attributes["threadgate.approval_id"] == approval_id
    assert wait.attributes["threadgate.decision"] == "approved"
    # The Agents SDK's own spans, mapped under the run that made them.
    sdk = [span for span in collector.spans if span.name.startswith("agents.")]
    assert {"agents.agent", "agents.function"} <= {span.name for span in sdk}
    for span in sdk:
        assert runs["start"] in collector.ancestors(span) or runs["resume"] in (
            collector.ancestors(span)
        )
        assert span.attributes["threadgate.run_id"] == run_id
    # Database transactions, under what they served.
    writes = collector.named("db.write")
    transactions = [*writes, *collector.named("db.read")]
    assert any(runs["start"] in collector.ancestors(t) for t in transactions)
    assert any(runs["resume"] in collector.ancestors(w) for w in writes)
    assert any(kinds["event_callback"] in collector.ancestors(w) for w in writes)
    assert {span.service for span in collector.spans} == {"threadgate"}
    for span in collector.spans:
        for text in span.attributes.values():
            assert "c42" not in text, (span.name, text)
            assert "please" not in text, (span.name, text)


async def test_nothing_is_exported_without_an_endpoint(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack) as bot:
        assert not bot.app.tracing.enabled
        assert bot.app.tracing.provider is None
        assert bot.app.db.tracer is None
