"""One deployment serving many workspaces: each request, and the work it leaves for later, speaks
with its own workspace's token, decides only its own workspace's approvals and asks its own
workspace about user groups. Installs go through the real "Add to Slack" flow against the fake
Slack, on both databases."""

import html
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlmodel import col

from bot.config import ApprovalsConfig, Config, WorkspaceConfig
from bot.slack.blocks import APPROVE_ACTION
from bot.slack.workspace_scope import speaking_for
from storage import audit, installations, outbox
from storage.approvals import get_approval
from storage.crypto import Cipher
from storage.ids import ThreadRef
from storage.messages import IncomingRow, accept_messages
from storage.models import (
    Approval,
    ApprovalStatus,
    Job,
    JobStatus,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from storage.outbox import Claimant, Owed
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import approval_config, approval_ids, approval_messages, texts
from tests.running_app import SIGNING_SECRET, RunningBot, bot_settings, running_bot

KEY = Cipher.generate_key()
COOKIE = "slack-app-oauth-state"
ALPHA, BETA = "T0AAA", "T0BBB"
ALPHA_CHANNEL, BETA_CHANNEL = "C0ALPHA", "C0BETA"
ASKER = "U0ALICE"
APPROVER = "UAPPROVER1"
THREAD_TS = "1700000001.000100"


def oauth_settings(database_url: str, slack: FakeSlackAPI, **overrides: Any) -> Any:
    return bot_settings(
        database_url,
        slack,
        slack_bot_token=None,
        slack_client_id=slack.oauth.client_id,
        slack_client_secret=SecretStr(slack.oauth.client_secret),
        encryption_key=SecretStr(KEY),
        **overrides,
    )


def requests_from(team_id: str, enterprise_id: str | None = None) -> SlackRequestBuilder:
    return SlackRequestBuilder(
        SIGNING_SECRET,
        team_id=team_id,
        bot_user_id=f"UBOT{team_id}",
        bot_id=f"BBOT{team_id}",
        enterprise_id=enterprise_id,
    )


async def install(bot: RunningBot, team_id: str) -> str:
    """The browser's part of "Add to Slack"; the workspace's bot token, as stored."""
    async with bot.http.get(f"{bot.url}/slack/install?team={team_id}") as page:
        assert page.status == 200
        cookie = page.cookies[COOKIE].value
        (link,) = re.findall(r'<a href="([^"]+)"', await page.text())
    async with bot.http.get(html.unescape(link), allow_redirects=False) as slack_page:
        redirect = slack_page.headers["Location"]
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    async with bot.http.get(redirect, headers=headers, allow_redirects=False) as done:
        assert done.status == 200, await done.text()
    found = await installations.find(bot.app.db, enterprise_id=None, team_id=team_id)
    assert found is not None
    assert found.bot_token is not None
    return found.bot_token


@asynccontextmanager
async def two_workspaces(
    database_url: str,
    slack: FakeSlackAPI,
    *,
    config: Config,
    model: Any,
    live: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[RunningBot, dict[str, str]]]:
    """`live` and `overrides` (settings) as `running_bot` and `oauth_settings` take them."""
    slack.oauth.add_workspace(ALPHA, name="Alpha", channels=(ALPHA_CHANNEL,))
    slack.oauth.add_workspace(BETA, name="Beta", channels=(BETA_CHANNEL,))
    settings = oauth_settings(database_url, slack, **overrides)
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=config,
        model=model,
        settings=settings,
        live=live,
    ) as bot:
        slack.oauth.redirect_url = f"{bot.url}/slack/oauth_redirect"
        tokens = {ALPHA: await install(bot, ALPHA), BETA: await install(bot, BETA)}
        yield bot, tokens


def tokens_used(slack: FakeSlackAPI, channel: str, *, since: int = 0) -> set[str | None]:
    return {
        c.token
        for c in slack.calls[since:]
        if channel in (c.args.get("channel"), c.args.get("channel_id"))
    }


async def mention(bot: RunningBot, team_id: str, channel: str, text: str, ts: str) -> None:
    request = requests_from(team_id).mention(text=text, user=ASKER, channel=channel, ts=ts)
    status, _ = await bot.send(request)
    assert status == 200
    await bot.settle()


async def click(bot: RunningBot, team_id: str, channel: str, approval_id: str) -> None:
    status, _ = await bot.send(
        requests_from(team_id).block_actions(
            user=APPROVER,
            action_id=APPROVE_ACTION,
            value=approval_id,
            channel=channel,
            message_ts="1700000002.000100",
            thread_ts=THREAD_TS,
        )
    )
    assert status == 200
    await bot.settle()


async def status_of(bot: RunningBot, approval_id: str) -> ApprovalStatus:
    approval = await get_approval(bot.app.db, approval_id)
    assert approval is not None
    return approval.status


def cards_in(slack: FakeSlackAPI, channel: str) -> list[RecordedCall]:
    return [c for c in approval_messages(slack) if c.args.get("channel") == channel]


async def test_an_event_from_each_workspace_is_answered_with_its_own_token(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Hello Alpha")], [assistant_message("Hello Beta")]])
    async with two_workspaces(database_url, slack, config=Config(), model=model) as (bot, tokens):
        await mention(bot, ALPHA, ALPHA_CHANNEL, "hi", THREAD_TS)
        await mention(bot, BETA, BETA_CHANNEL, "hi", "1700000009.000100")

        assert texts(slack.messages_in_thread(ALPHA_CHANNEL, THREAD_TS)) == ["Hello Alpha"]
        assert texts(slack.messages_in_thread(BETA_CHANNEL, "1700000009.000100")) == ["Hello Beta"]
        assert tokens_used(slack, ALPHA_CHANNEL) == {tokens[ALPHA]}
        assert tokens_used(slack, BETA_CHANNEL) == {tokens[BETA]}
        assert not slack.faults


def delete_then_answer() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Customer c42 is gone.")],
        ]
    )


async def test_a_click_from_another_workspace_decides_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(approvers=[APPROVER])
    async with two_workspaces(database_url, slack, config=config, model=delete_then_answer()) as (
        bot,
        tokens,
    ):
        await mention(bot, ALPHA, ALPHA_CHANNEL, "please delete customer c42", THREAD_TS)
        [approval_id] = approval_ids(cards_in(slack, ALPHA_CHANNEL)[0])

        await click(bot, BETA, ALPHA_CHANNEL, approval_id)  # B's click, A's channel and id
        await click(bot, BETA, BETA_CHANNEL, approval_id)

        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING
        assert not executions
        assert tokens_used(slack, BETA_CHANNEL) <= {tokens[BETA]}

        since = len(slack.calls)
        await click(bot, ALPHA, ALPHA_CHANNEL, approval_id)

        assert await status_of(bot, approval_id) == ApprovalStatus.APPROVED
        assert executions == Counter({"delete_customer:c42": 1})
        assert tokens_used(slack, ALPHA_CHANNEL, since=since) == {tokens[ALPHA]}


async def test_a_user_group_is_asked_of_its_own_workspace(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """ "SAPPROVERS" names a group in each workspace; only A's members approve A's calls."""
    config = approval_config(approvers=["SAPPROVERS"])
    async with two_workspaces(database_url, slack, config=config, model=delete_then_answer()) as (
        bot,
        _tokens,
    ):
        slack.oauth.workspaces[ALPHA].usergroups["SAPPROVERS"] = ["UALPHAMEM"]
        slack.oauth.workspaces[BETA].usergroups["SAPPROVERS"] = [APPROVER]
        with speaking_for(BETA):  # B's membership, read first, must not answer for A
            assert await bot.app.approvals.groups.members(["SAPPROVERS"]) == {
                "SAPPROVERS": frozenset({APPROVER})
            }
        await mention(bot, ALPHA, ALPHA_CHANNEL, "please delete customer c42", THREAD_TS)
        [approval_id] = approval_ids(cards_in(slack, ALPHA_CHANNEL)[0])

        await click(bot, ALPHA, ALPHA_CHANNEL, approval_id)  # APPROVER is in B's group only

        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING
        assert not executions
        await bot.send(
            requests_from(ALPHA).block_actions(
                user="UALPHAMEM",
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=ALPHA_CHANNEL,
                message_ts="1700000002.000100",
                thread_ts=THREAD_TS,
            )
        )
        await bot.settle()
        assert await status_of(bot, approval_id) == ApprovalStatus.APPROVED
        assert executions == Counter({"delete_customer:c42": 1})


def uninstall_event(team_id: str) -> Any:
    return requests_from(team_id).event({"type": "app_uninstalled"})


async def test_uninstalling_a_forgets_a_and_leaves_b_working(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Hello Beta")],
        ]
    )
    config = approval_config(approvers=[APPROVER])
    async with two_workspaces(database_url, slack, config=config, model=model) as (bot, tokens):
        db = bot.app.db
        await mention(bot, ALPHA, ALPHA_CHANNEL, "please delete customer c42", THREAD_TS)
        [approval_id] = approval_ids(cards_in(slack, ALPHA_CHANNEL)[0])
        alpha_thread = ThreadRef(ALPHA, ALPHA_CHANNEL, THREAD_TS).key
        # Work another process queued for A's thread and has not done yet.
        await accept_messages(
            db,
            [
                IncomingRow(
                    event_id="Ev0QUEUED",
                    thread=ThreadRef(ALPHA, ALPHA_CHANNEL, "1700000003.000100"),
                    user_id=ASKER,
                    message_ts="1700000003.000100",
                    text="queued elsewhere",
                    only_known_thread=False,
                )
            ],
        )
        async with db.write() as session:
            await outbox.add(
                session,
                thread_key=alpha_thread,
                owed=[Owed(OutboxKind.POST, payload={"text": "owed to A", "blocks": []})],
                by=bot.app.outbox.claimant,
            )

        status, _ = await bot.send(uninstall_event(ALPHA))
        assert status == 200
        await bot.settle()

        assert await installations.find(db, enterprise_id=None, team_id=ALPHA) is None
        assert await installations.find(db, enterprise_id=None, team_id=BETA) is not None
        assert await status_of(bot, approval_id) == ApprovalStatus.EXPIRED
        [expired] = [
            e for e in await audit.entries(db, approval_id=approval_id) if e.event == "expired"
        ]
        assert expired.user == audit.SYSTEM_USER
        assert expired.detail == f"app uninstalled from {ALPHA}"
        async with db.read() as session:
            queued = await session.scalar(
                select(func.count()).select_from(Job).where(col(Job.status) == JobStatus.QUEUED)
            )
            owed = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
            )
        assert (queued, owed) == (0, 0)

        before = len(slack.calls)
        await bot.app.sweeper.sweep()
        refused, _ = await bot.send(  # Bolt answers it: A is not installed
            requests_from(ALPHA).block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=ALPHA_CHANNEL,
                message_ts="1700000002.000100",
                thread_ts=THREAD_TS,
                response_url=slack.response_url("alpha"),
            )
        )
        await bot.settle()
        assert refused == 200
        assert tokens_used(slack, ALPHA_CHANNEL, since=before) == set()
        assert not executions

        await mention(bot, BETA, BETA_CHANNEL, "hi", "1700000009.000100")
        assert texts(slack.messages_in_thread(BETA_CHANNEL, "1700000009.000100")) == ["Hello Beta"]
        assert tokens_used(slack, BETA_CHANNEL) == {tokens[BETA]}


async def test_work_of_a_resumed_by_a_second_instance_speaks_with_as_token(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """A reminder and an outbox retry of A, picked up hours later by another process that
    never saw A's requests, still speak with A's token."""
    config = approval_config(approvers=[APPROVER], remind_after="1m")
    async with two_workspaces(database_url, slack, config=config, model=delete_then_answer()) as (
        bot,
        tokens,
    ):
        await mention(bot, ALPHA, ALPHA_CHANNEL, "please delete customer c42", THREAD_TS)
        [approval_id] = approval_ids(cards_in(slack, ALPHA_CHANNEL)[0])
        async with bot.app.db.write() as session:
            await outbox.add(
                session,
                thread_key=ThreadRef(ALPHA, ALPHA_CHANNEL, THREAD_TS).key,
                owed=[Owed(OutboxKind.POST, payload={"text": "owed to A", "blocks": []})],
                by=Claimant("a-process-that-died", timedelta(seconds=-1)),
            )
            await session.execute(
                update(Approval)
                .where(col(Approval.id) == approval_id)
                .values(remind_at=utcnow() - timedelta(seconds=1))
            )

    settings = oauth_settings(database_url, slack)
    since = len(slack.calls)
    async with running_bot(
        database_url=database_url, slack=slack, config=config, settings=settings
    ) as second:
        await second.app.sweeper.sweep()
        await second.settle()

        posted = [c for c in slack.calls[since:] if c.method == "chat.postMessage"]
        assert "owed to A" in texts(posted)
        assert any(c.args.get("channel") == APPROVER for c in posted)  # the reminder DM
        assert {c.token for c in posted} == {tokens[ALPHA]}


async def test_a_workspace_table_chooses_the_approvers_of_its_workspace(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    beta_approver = "UBETAAPPR1"
    top = approval_config(approvers=[APPROVER])
    config = top.model_copy(
        update={
            "workspaces": {
                BETA: WorkspaceConfig(approvals=ApprovalsConfig(approvers=[beta_approver]))
            }
        }
    )
    async with two_workspaces(database_url, slack, config=config, model=delete_then_answer()) as (
        bot,
        _tokens,
    ):
        await mention(bot, BETA, BETA_CHANNEL, "please delete customer c42", THREAD_TS)
        [card] = cards_in(slack, BETA_CHANNEL)
        [approval_id] = approval_ids(card)
        assert f"<@{beta_approver}>" in str(card.args["blocks"])
        assert f"<@{APPROVER}>" not in str(card.args["blocks"])

        await click(bot, BETA, BETA_CHANNEL, approval_id)  # the top level's approver
        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING
        assert not executions

        await bot.send(
            requests_from(BETA).block_actions(
                user=beta_approver,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=BETA_CHANNEL,
                message_ts="1700000002.000100",
                thread_ts=THREAD_TS,
            )
        )
        await bot.settle()
        assert await status_of(bot, approval_id) == ApprovalStatus.APPROVED
        assert executions == Counter({"delete_customer:c42": 1})


async def test_an_org_wide_install_answers_every_workspace_of_the_org_with_its_one_token(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    org, gamma, delta = "E0ORG", "T0CCC", "T0DDD"
    slack.oauth.add_workspace(gamma, enterprise_id=org, channels=("C0GAMMA",))
    slack.oauth.add_workspace(delta, enterprise_id=org, channels=("C0DELTA",))
    model = ScriptedModel(
        [
            [assistant_message("Hello Gamma")],
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Customer c42 is gone.")],
        ]
    )
    settings = oauth_settings(database_url, slack)
    config = approval_config(approvers=[APPROVER])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model, settings=settings
    ) as bot:
        slack.oauth.redirect_url = f"{bot.url}/slack/oauth_redirect"
        async with bot.http.get(f"{bot.url}/slack/install?team={gamma}") as page:
            cookie = page.cookies[COOKIE].value
            state = re.findall(r"state=([^&\"]+)", await page.text())[0]
        code = slack.oauth.approve_install(enterprise_id=org)  # the org admin installs org-wide
        async with bot.http.get(
            f"{bot.url}/slack/oauth_redirect?code={code}&state={state}",
            headers={"Cookie": f"{COOKIE}={cookie}"},
        ) as done:
            assert done.status == 200, await done.text()
        found = await installations.find(bot.app.db, enterprise_id=org, team_id=None)
        assert found is not None
        assert found.is_enterprise_install
        token = found.bot_token

        def from_org(team_id: str) -> SlackRequestBuilder:
            return SlackRequestBuilder(
                SIGNING_SECRET,
                team_id=team_id,
                bot_user_id=f"UBOT{org}",
                bot_id=f"BBOT{org}",
                enterprise_id=org,
                enterprise_install=True,
            )

        status, _ = await bot.send(
            from_org(gamma).mention(text="hi", user=ASKER, channel="C0GAMMA", ts=THREAD_TS)
        )
        assert status == 200
        await bot.settle()
        status, _ = await bot.send(
            from_org(delta).mention(
                text="please delete customer c42", user=ASKER, channel="C0DELTA", ts=THREAD_TS
            )
        )
        assert status == 200
        await bot.settle()

        assert texts(slack.messages_in_thread("C0GAMMA", THREAD_TS)) == ["Hello Gamma"]
        [approval_id] = approval_ids(cards_in(slack, "C0DELTA")[0])
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert (approval.team_id, approval.enterprise_id) == (delta, org)
        status, _ = await bot.send(
            from_org(delta).block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel="C0DELTA",
                message_ts="1700000002.000100",
                thread_ts=THREAD_TS,
            )
        )
        await bot.settle()
        assert await status_of(bot, approval_id) == ApprovalStatus.APPROVED
        assert executions == Counter({"delete_customer:c42": 1})
        assert tokens_used(slack, "C0GAMMA") == {token}
        assert tokens_used(slack, "C0DELTA") == {token}
        entries = await audit.entries(bot.app.db, approval_id=approval_id)
        assert {e.event for e in entries} >= {"requested", "approved"}
        assert {(e.team, e.enterprise) for e in entries} == {(delta, org)}


async def test_a_revoked_bot_token_forgets_its_workspace_and_a_revoked_user_token_does_not(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(approvers=[APPROVER])
    async with two_workspaces(database_url, slack, config=config, model=delete_then_answer()) as (
        bot,
        _tokens,
    ):
        db = bot.app.db
        await mention(bot, ALPHA, ALPHA_CHANNEL, "please delete customer c42", THREAD_TS)
        [approval_id] = approval_ids(cards_in(slack, ALPHA_CHANNEL)[0])

        people_only = {"type": "tokens_revoked", "tokens": {"oauth": [ASKER]}}
        status, _ = await bot.send(requests_from(BETA).event(people_only))
        assert status == 200
        await bot.settle()
        assert await installations.find(db, enterprise_id=None, team_id=BETA) is not None

        bot_revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOTALPHA"]}}
        status, _ = await bot.send(requests_from(ALPHA).event(bot_revoked))
        assert status == 200
        await bot.settle()
        assert await installations.find(db, enterprise_id=None, team_id=ALPHA) is None
        assert await installations.find(db, enterprise_id=None, team_id=BETA) is not None
        assert await status_of(bot, approval_id) == ApprovalStatus.EXPIRED
        [expired] = [
            e for e in await audit.entries(db, approval_id=approval_id) if e.event == "expired"
        ]
        assert expired.detail == f"bot token revoked in {ALPHA}"
        assert not executions
