"""`[workspaces.T….agent]`: a workspace with an agent of its own is answered by it (its
instructions, model, streaming and suggested prompts) while every other workspace keeps the
top-level agent; a run paused in it resumes with it. Two workspaces installed through "Add to
Slack", the model behind the fake model server, on both databases."""

from collections import Counter

from agents.testing import ScriptedModel

from bot.config import AgentConfig, Config, SuggestedPrompt, WorkspaceConfig
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import approval_config, approval_ids, texts
from tests.integration.test_workspaces import (
    ALPHA,
    ALPHA_CHANNEL,
    APPROVER,
    ASKER,
    BETA,
    BETA_CHANNEL,
    THREAD_TS,
    cards_in,
    click,
    mention,
    requests_from,
    two_workspaces,
)

TOP = AgentConfig(instructions="You help Alpha.", model="gpt-top")
BETA_AGENT = AgentConfig(
    name="beta-helper",
    instructions="You help Beta, in French.",
    model="gpt-beta",
    stream=False,
    suggested_prompts=[SuggestedPrompt(title="Tickets", message="Which tickets are open?")],
    suggested_prompts_title="Beta asks",
)
BETA_TS = "1700000009.000100"


def with_beta_agent(config: Config) -> Config:
    return config.model_copy(
        update={"agent": TOP, "workspaces": {BETA: WorkspaceConfig(agent=BETA_AGENT)}}
    )


async def test_each_workspace_is_answered_by_its_own_agent_streaming_as_it_says(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with FakeModelServer() as server:
        server.reply_text("Hello Alpha")
        server.reply_text("Bonjour Beta")
        async with two_workspaces(
            database_url,
            slack,
            config=with_beta_agent(Config()),
            model=None,
            live=True,  # the top level streams; Beta's own [agent] says stream = false
            openai_base_url=server.base_url,
        ) as (bot, _tokens):
            await mention(bot, ALPHA, ALPHA_CHANNEL, "hi", THREAD_TS)
            await mention(bot, BETA, BETA_CHANNEL, "salut", BETA_TS)

        alpha, beta = server.requests
        assert (alpha["model"], alpha["instructions"]) == ("gpt-top", "You help Alpha.")
        assert (beta["model"], beta["instructions"]) == ("gpt-beta", "You help Beta, in French.")
        [stream] = slack.streams
        assert (stream.channel, stream.text) == (ALPHA_CHANNEL, "Hello Alpha")
        assert texts(slack.messages_in_thread(BETA_CHANNEL, BETA_TS)) == ["Bonjour Beta"]


async def test_a_run_paused_in_a_workspace_resumes_with_its_agent(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with FakeModelServer() as server:
        server.reply_tool_calls(("delete_customer", {"customer_id": "c42"}))
        server.reply_text("Client c42 supprimé.")
        async with two_workspaces(
            database_url,
            slack,
            config=with_beta_agent(approval_config(approvers=[APPROVER])),
            model=None,
            openai_base_url=server.base_url,
        ) as (bot, _tokens):
            await mention(bot, BETA, BETA_CHANNEL, "delete customer c42", THREAD_TS)
            [approval_id] = approval_ids(cards_in(bot.slack, BETA_CHANNEL)[0])
            await click(bot, BETA, BETA_CHANNEL, approval_id)

        assert executions == Counter({"delete_customer:c42": 1})
        assert [(r["model"], r["instructions"]) for r in server.requests] == [
            ("gpt-beta", "You help Beta, in French."),
            ("gpt-beta", "You help Beta, in French."),
        ]
        assert "Client c42 supprimé." in texts(slack.messages_in_thread(BETA_CHANNEL, THREAD_TS))


async def test_each_workspace_offers_its_own_suggested_prompts(
    database_url: str, slack: FakeSlackAPI
) -> None:
    top = [SuggestedPrompt(title="Orders", message="Where is my order?")]
    config = with_beta_agent(Config())
    config = config.model_copy(update={"agent": TOP.model_copy(update={"suggested_prompts": top})})
    async with two_workspaces(database_url, slack, config=config, model=ScriptedModel([])) as (
        bot,
        tokens,
    ):
        for team_id, channel in ((ALPHA, "D0ALPHA"), (BETA, "D0BETA")):
            opened = {
                "type": "app_home_opened",
                "user": ASKER,
                "channel": channel,
                "tab": "messages",
            }
            status, _ = await bot.send(requests_from(team_id).event(opened))
            assert status == 200
            await bot.settle()

    offered = {
        c.args["channel_id"]: (c.token, c.args["prompts"], c.args.get("title"))
        for c in slack.calls_to("assistant.threads.setSuggestedPrompts")
    }
    assert offered == {
        "D0ALPHA": (tokens[ALPHA], [{"title": "Orders", "message": "Where is my order?"}], None),
        "D0BETA": (
            tokens[BETA],
            [{"title": "Tickets", "message": "Which tickets are open?"}],
            "Beta asks",
        ),
    }
