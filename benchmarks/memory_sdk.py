"""The bot a team would write itself on the same Agents SDK, agent and tools, keeping everything
in memory ("memory-sdk"): the yardstick of issue 15's targets.

It runs the agent that `bot.agent.build.build_agent` builds from the benchmark's config (the same
tools, each behind the same approval policy), and posts the same cards with the same Block Kit
builders (`bot.slack.blocks`). A paused run's `RunState` waits in a dict under its approval ids;
a click on Approve updates the card with the decision, approves the call on that state and
resumes it, then posts the answer and the card with the call's outcome. A thread's earlier
items are kept in a dict too, so a thread goes on where it stopped. No database, no queue, no
leases, no outbox: what it owes is lost if the process stops, which is what threadgate adds.

It checks that the clicker is an approver, as the least a team would do; it keeps no audit,
sets no status, and does not stream.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents import Agent, Runner, RunResult, RunState, ToolApprovalItem
from agents.items import ToolCallOutputItem
from openai import AsyncOpenAI
from slack_bolt.async_app import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from benchmarks.served_bolt import ServedBolt
from bot.agent import openai_request_transform
from bot.agent.build import build_agent, build_model, configured_tools
from bot.agent.sdk_traces import route_sdk_traces
from bot.approvals.deciding import CallPolicies
from bot.approvals.policy import Policy
from bot.config import Config
from bot.slack import blocks

NAME = "memory-sdk"


@dataclass
class Paused:
    """One paused run: its state, the calls it waits on, and where their cards are."""

    state: RunState[Any]
    channel: str
    thread_ts: str
    requester: str
    run_id: str
    waiting: dict[str, ToolApprovalItem]  # approval id → the call
    cards: dict[str, str] = field(default_factory=dict)  # approval id → the card's ts
    approved: set[str] = field(default_factory=set)


class InMemoryBot(ServedBolt):
    def __init__(
        self,
        *,
        slack_url: str,
        bot_token: str,
        signing_secret: str,
        model: AsyncOpenAI,
        config: Config,
    ) -> None:
        route_sdk_traces(False)  # as the bot does: nothing goes to OpenAI's tracing
        openai_request_transform.install()  # as the bot's own model client has it
        self.config = config
        tools = configured_tools(config, {}, config_path=None)
        policies = CallPolicies(
            Policy.from_config(config.approvals, tool_defaults={}),
            requesters=self._requesters,
            members=self._members,
        )
        self.agent: Agent[Any] = build_agent(config, tools, policies, build_model(config, model))
        self.approvers = frozenset(config.approvals.approvers)
        self.paused: dict[str, Paused] = {}  # approval id → its run
        self.history: dict[str, list[Any]] = {}  # thread → its items so far
        self.requester_of: dict[str, str] = {}  # run id → who asked
        self.ids = itertools.count(1)
        super().__init__(slack_url=slack_url, bot_token=bot_token, signing_secret=signing_secret)
        self.bolt.event("app_mention")(self.handle_app_mention)
        self.bolt.action(blocks.APPROVE_ACTION)(self.handle_approve)

    async def _requesters(self, run_id: str) -> Sequence[str]:
        who = self.requester_of.get(run_id)
        return (who,) if who else ()

    async def _members(self, _groups: Any) -> dict[str, Any]:
        return {}

    async def handle_app_mention(
        self, event: dict[str, Any], ack: AsyncAck, client: AsyncWebClient
    ) -> None:
        await ack()
        thread_ts = event.get("thread_ts") or event["ts"]
        self.later(
            self.mention(
                client, event["channel"], thread_ts, str(event.get("user")), event.get("text", "")
            )
        )

    async def handle_approve(
        self, body: dict[str, Any], ack: AsyncAck, client: AsyncWebClient
    ) -> None:
        await ack()
        user = body["user"]["id"]
        approval_id = str(body["actions"][0].get("value", ""))
        container = body["container"]
        if user not in self.approvers:
            await client.chat_postEphemeral(
                channel=container["channel_id"], user=user, text="Only approvers may decide."
            )
            return
        paused = self.paused.pop(approval_id, None)
        if paused is None:
            return  # decided already, or never asked
        self.later(self.approve(client, paused, approval_id, user))

    async def mention(
        self, client: AsyncWebClient, channel: str, thread_ts: str, user: str, text: str
    ) -> None:
        run_id = f"run{next(self.ids)}"
        self.requester_of[run_id] = user
        items = [*self.history.get(thread_ts, []), {"role": "user", "content": text}]
        result = await Runner.run(
            self.agent, items, context=self._context(channel, run_id), max_turns=self._turns()
        )
        await self.settle(client, result, channel, thread_ts, user, run_id)

    async def approve(
        self, client: AsyncWebClient, paused: Paused, approval_id: str, user: str
    ) -> None:
        item = paused.waiting[approval_id]
        decided = blocks.DecisionView(
            status="approved",
            decided_by=user,
            decided_at=datetime.now(UTC),
            approved_by=(user,),
        )
        text, body = blocks.approval_decided(self._view(approval_id, item, paused), decided)
        await client.chat_update(
            channel=paused.channel, ts=paused.cards[approval_id], text=text, blocks=body
        )
        paused.state.approve(item)
        paused.approved.add(approval_id)
        if len(paused.approved) < len(paused.waiting):
            return  # the run waits for its other calls
        result = await Runner.run(self.agent, paused.state, max_turns=self._turns())
        await self.settle(client, result, paused.channel, paused.thread_ts, user, paused.run_id)
        outputs = {
            i.raw_item.get("call_id"): str(i.output)
            for i in result.new_items
            if isinstance(i, ToolCallOutputItem) and isinstance(i.raw_item, dict)
        }
        for other_id, other in paused.waiting.items():
            outcome = outputs.get(other.call_id)
            if outcome is None:
                continue
            text, body = blocks.approval_decided(
                self._view(other_id, other, paused),
                blocks.DecisionView(
                    status="approved",
                    decided_by=user,
                    decided_at=decided.decided_at,
                    outcome=outcome,
                    approved_by=(user,),
                ),
            )
            await client.chat_update(
                channel=paused.channel, ts=paused.cards[other_id], text=text, blocks=body
            )

    async def settle(
        self,
        client: AsyncWebClient,
        result: RunResult,
        channel: str,
        thread_ts: str,
        user: str,
        run_id: str,
    ) -> None:
        """Post the answer, or keep the paused state and post a card for each call it waits on."""
        if not result.interruptions:
            self.history[thread_ts] = result.to_input_list()
            self.requester_of.pop(run_id, None)
            for text, body in blocks.answers(str(result.final_output or "")):
                await client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=text, blocks=body
                )
            return
        paused = Paused(
            result.to_state(),
            channel,
            thread_ts,
            user,
            run_id,
            {f"ap_{next(self.ids):014d}": item for item in result.interruptions},
        )
        for approval_id, item in paused.waiting.items():
            text, body = blocks.approval_request(self._view(approval_id, item, paused))
            posted = await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text, blocks=body
            )
            paused.cards[approval_id] = str(posted["ts"])
            self.paused[approval_id] = paused

    def _view(
        self, approval_id: str, item: ToolApprovalItem, paused: Paused
    ) -> blocks.ApprovalView:
        return blocks.ApprovalView(
            approval_id=approval_id,
            tool_name=item.name or "",
            arguments=item.arguments or "",
            requesters=(paused.requester,),
            approvers=tuple(self.config.approvals.approvers),
        )

    def _context(self, channel: str, run_id: str) -> dict[str, Any]:
        return {"channel_id": channel, "run_id": run_id}

    def _turns(self) -> int:
        return self.config.agent.max_turns
