"""The least work a Bolt app can do for the same traffic: no database, no queue, no approvals.

A mention is answered by one model call and one `chat.postMessage` in the thread; a click on the
Approve button the same way. The model call is a plain `openai` `AsyncOpenAI.responses.create`
("baseline", the one the targets compare with), or, to tell the Agents SDK's share apart, one
`Runner.run` of a tool-less Agent with no session ("baseline-sdk").

Bolt's request verification is on. Each listener acks, then hands the work to a task, as the bot
does: with Bolt's default `process_before_response=False` an action's ack waits for Bolt to poll
for it every 10 ms, which would slow the baseline for a reason that is not work.
"""

from typing import TYPE_CHECKING, Any, Literal

from openai import AsyncOpenAI
from slack_bolt.async_app import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from benchmarks.served_bolt import ServedBolt
from bot.slack.blocks import APPROVE_ACTION

if TYPE_CHECKING:
    from agents import Agent

MODEL = "gpt-test"
BaselineKind = Literal["openai", "agents"]


class Baseline(ServedBolt):
    def __init__(
        self,
        *,
        slack_url: str,
        bot_token: str,
        signing_secret: str,
        model: AsyncOpenAI,
        kind: BaselineKind = "openai",
    ) -> None:
        self.model = model
        self.kind = kind
        self.agent: Agent[Any] | None = None
        if kind == "agents":  # imported only here: the plain baseline never loads the SDK
            from agents import Agent as SdkAgent
            from agents import OpenAIResponsesModel, set_tracing_disabled

            set_tracing_disabled(True)  # as the bot does

            self.agent = SdkAgent(name="baseline", model=OpenAIResponsesModel(MODEL, model))
        super().__init__(slack_url=slack_url, bot_token=bot_token, signing_secret=signing_secret)
        self.bolt.event("app_mention")(self.handle_app_mention)
        self.bolt.action(APPROVE_ACTION)(self.handle_approve)

    async def handle_app_mention(
        self, event: dict[str, Any], ack: AsyncAck, client: AsyncWebClient
    ) -> None:
        await ack()
        thread_ts = event.get("thread_ts") or event["ts"]
        self.later(self.answer(client, event["channel"], thread_ts, event.get("text", "")))

    async def handle_approve(
        self, body: dict[str, Any], ack: AsyncAck, client: AsyncWebClient
    ) -> None:
        await ack()
        container = body["container"]
        thread_ts = container.get("thread_ts") or container["message_ts"]
        self.later(self.answer(client, container["channel_id"], thread_ts, "It was approved."))

    async def answer(self, client: AsyncWebClient, channel: str, thread_ts: str, text: str) -> None:
        if self.agent is not None:
            from agents import Runner

            answer = str((await Runner.run(self.agent, text)).final_output)
        else:
            answer = (await self.model.responses.create(model=MODEL, input=text)).output_text
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=answer)
