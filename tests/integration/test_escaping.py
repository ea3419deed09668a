"""Nothing a model, a tool or a person wrote can ping or phish, on any surface the bot posts to.

Each test feeds hostile text in where a real one would come from (the model's answer or
arguments, a tool's output, a rejection reason, a stored state, a Slack profile) and reads
what the fake Web API received: the only `<…>` are the bot's own mentions and dates.
"""

import json
import re
from collections import Counter
from typing import Any

from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from sqlalchemy import update
from sqlmodel import col, select

from bot.config import ApprovalsConfig, Config, ToolsConfig
from bot.slack.blocks import REJECT_ACTION
from storage.approvals import claim_execution, decide_approval
from storage.models import ApprovalStatus, Run
from storage.outbox import Claimant
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP,
    GROUP_MEMBER,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import THREAD_TS, ask, click, private_notes, reject_with
from tests.integration.test_four_eyes import _take_the_resume_and_die
from tests.integration.test_recovery import retry_buttons
from tests.running_app import running_bot

HOSTILE = (
    "<!channel> <!here> <!everyone> <!subteam^S0EVIL> <@U0VICTIM> "
    "<https://evil.example/login|Log in> Tom & Jerry"
)
ESCAPED = (
    "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;!subteam^S0EVIL&gt; "
    "&lt;@U0VICTIM&gt; &lt;https://evil.example/login|Log in&gt; Tom &amp; Jerry"
)
OURS = re.compile(
    rf"<(@{ASKER}>|@{APPROVER}>|@{GROUP_MEMBER}>|!subteam\^{GROUP}>|!date\^\d+\^[^<>]*>)"
)
POSTING = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "text" and isinstance(v, str)]
        return found + [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def everything_posted(slack: FakeSlackAPI) -> list[str]:
    return [text for method in POSTING for c in slack.calls_to(method) for text in _strings(c.args)]


def assert_no_foreign_markup(slack: FakeSlackAPI) -> None:
    """Every `<` the bot sent opens one of its own mentions or dates."""
    for text in everything_posted(slack):
        for found in re.finditer("<", text):
            assert OURS.match(text, found.start()), f"foreign markup in {text!r}"
        for marker in ("<!channel>", "<!here>", "<!everyone>", "<@U0VICTIM", "<https://"):
            assert marker not in text


def hostile_delete(answer: str = HOSTILE) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": HOSTILE}, call_id="call_1")],
            [assistant_message(answer)],
        ]
    )


async def test_the_answer_the_card_the_decision_and_the_outcome_arrive_as_text(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=hostile_delete()
    ) as bot:
        await ask(bot)
        [card] = approval_messages(slack)
        assert ESCAPED in json.dumps(card.args["blocks"])
        assert f"Asked by <@{ASKER}>" in json.dumps(card.args["blocks"])
        [approval_id] = approval_ids(card)

        await click(bot, approval_id)
        await click(bot, approval_id, user=GROUP_MEMBER)  # told privately who decided

        assert executions == Counter({f"delete_customer:{HOSTILE}": 1})
        answer = slack.messages_in_thread(CHANNEL, THREAD_TS)[-1]
        assert answer.args["text"] == ESCAPED
        [shown, feedback] = answer.args["blocks"]
        assert (shown["type"], shown["text"]) == ("markdown", ESCAPED)
        assert feedback["type"] == "context_actions"
        outcome = "".join(_strings(slack.calls_to("chat.update")[-1].args["blocks"]))
        assert f"customer {ESCAPED} deleted" in outcome
        assert f"Approved by <@{APPROVER}>" in outcome
        [late] = private_notes(slack, GROUP_MEMBER)
        assert f"<@{APPROVER}>" in late
        assert_no_foreign_markup(slack)


async def test_a_markdown_answer_shows_its_links_and_pings_nobody_in_either_rendering(
    database_url: str, slack: FakeSlackAPI
) -> None:
    answer = f"**Done.** [Log in](https://evil.example/login) `<!channel>` {HOSTILE}"
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=hostile_delete(answer),
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)

        posted = slack.messages_in_thread(CHANNEL, THREAD_TS)[-1]
        [block, _feedback] = posted.args["blocks"]
        assert block["type"] == "markdown"
        shown = "Log in ([https://evil.example/login](https://evil.example/login))"
        assert block["text"] == f"**Done.** {shown} `<!channel>` {ESCAPED}"
        assert "<" not in block["text"].replace("`<!channel>`", "")
        text = posted.args["text"]
        assert text == f"*Done.* Log in (<https://evil.example/login>) `&lt;!channel&gt;` {ESCAPED}"
        assert "<" not in text.replace("<https://evil.example/login>", "")


async def test_a_rejection_reason_arrives_as_text_in_the_card_and_in_private_notes(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = hostile_delete("OK.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, action=REJECT_ACTION)
        await reject_with(bot, approval_id, HOSTILE)
        await click(bot, approval_id, user=GROUP_MEMBER)

        decided = "".join(_strings(slack.calls_to("chat.update")[-1].args["blocks"]))
        assert f"Rejected by <@{APPROVER}>" in decided
        assert ESCAPED in decided
        [late] = private_notes(slack, GROUP_MEMBER)
        assert ESCAPED in late
        last = model.last_call
        assert last is not None
        assert HOSTILE in json.dumps(last.input)  # the model reads the reason word for word
        assert not executions
        assert_no_foreign_markup(slack)


async def test_a_failure_note_quoting_an_error_arrives_as_text(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=hostile_delete()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        async with bot.app.db.write() as session:
            run = (await session.scalars(select(Run))).one()
            assert run.state is not None
            state = json.loads(run.state)
            state["$schemaVersion"] = HOSTILE
            await session.execute(
                update(Run).where(col(Run.id) == run.id).values(state=json.dumps(state))
            )

        await click(bot, approval_id)

        note = slack.messages_in_thread(CHANNEL, THREAD_TS)[-1]
        assert "couldn't resume" in note.args["text"]
        assert ESCAPED in note.args["text"]
        assert_no_foreign_markup(slack)


async def test_the_interrupted_note_shows_the_call_in_flight_as_text(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=hostile_delete()
    ) as bot:
        db = bot.app.db
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await decide_approval(
            db,
            approval_id=approval_id,
            status=ApprovalStatus.APPROVED,
            decided_by=APPROVER,
            by=Claimant("dead:1"),
        )
        async with db.read() as session:
            run = (await session.scalars(select(Run))).one()
        assert (await claim_execution(db, run_id=run.id, call_id="call_1")).may_run
        await _take_the_resume_and_die(db)

        await bot.app.sweeper.sweep()
        await bot.settle()

        [note] = retry_buttons(slack)
        assert ESCAPED in "".join(_strings(note.args["blocks"]))
        assert not executions
        assert_no_foreign_markup(slack)


async def test_the_post_message_tool_posts_the_models_text_as_text(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [
                function_call(
                    "slack_post_message",
                    {"channel": "C0ANNOUNCE", "text": HOSTILE},
                    call_id="call_1",
                )
            ],
            [assistant_message("Announced.")],
        ]
    )
    config = Config(
        tools=ToolsConfig(builtins=["slack_post_message"]),
        approvals=ApprovalsConfig(approvers=[APPROVER]),
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot, "announce it")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)

        [posted] = [
            c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == "C0ANNOUNCE"
        ]
        assert posted.args["text"] == ESCAPED
        assert_no_foreign_markup(slack)


def _echo_the_tool_output(call: ModelCall) -> Any:
    outputs = [
        str(item["output"])
        for item in call.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return [assistant_message(" / ".join(outputs))]


async def test_a_users_name_from_slack_arrives_as_text(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """A profile is written by its owner: a name can be `<!channel>` too."""
    slack.users["U0BOB"] = {"name": "bob", "profile": {"real_name": HOSTILE, "title": HOSTILE}}
    model = ScriptedModel(
        [
            [function_call("slack_lookup_user", {"user_id": "U0BOB"}, call_id="call_1")],
            ModelStep.respond(_echo_the_tool_output),
        ]
    )
    config = Config(
        tools=ToolsConfig(builtins=["slack_lookup_user"]),
        approvals=ApprovalsConfig(
            approvers=[APPROVER], tools={"slack_lookup_user": {"require": "always"}}
        ),
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot, "who is bob?")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)

        answer = slack.messages_in_thread(CHANNEL, THREAD_TS)[-1]
        assert ESCAPED in answer.args["text"]
        outcome = "".join(_strings(slack.calls_to("chat.update")[-1].args["blocks"]))
        assert ESCAPED in outcome
        assert_no_foreign_markup(slack)
