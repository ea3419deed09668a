"""Edit, then approve, end to end: signed clicks and modal submissions over HTTP, the fake Web
API, a scripted model, on SQLite and PostgreSQL."""

import json
from collections import Counter
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.config import Config
from bot.slack.blocks import APPROVE_ACTION, ARGUMENT_INPUT, EDIT_ACTION, EDIT_VIEW
from storage import decision_log
from storage.approvals import get_approval
from storage.models import Approval, ApprovalStatus, DecisionKind
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    GROUP_MEMBER,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import ask, click, private_notes, tool_outputs
from tests.running_app import RunningBot, running_bot

FINANCE = "UFINANCE01"


def refunding(amount: float, *also: Any) -> ScriptedModel:
    return ScriptedModel(
        [
            [
                function_call("refund", {"order_id": "o1", "amount": amount}, call_id="call_1"),
                *also,
            ],
            [assistant_message("Done.")],
        ]
    )


def editable_refunds() -> Config:
    """Refunds need one approval and may be edited; above 1000 they need two, from the global
    approver and finance."""
    return approval_config(
        tools={"refund": {"require": "always", "allow_edit": True}},
        rules=[
            {
                "tools": ["refund"],
                "when": {"amount": {"gt": 1000}},
                "approvers": [APPROVER, FINANCE],
                "approvals_needed": 2,
            }
        ],
    )


async def submit_edit(
    bot: RunningBot, approval_id: str, values: dict[str, str], *, user: str = APPROVER
) -> tuple[int, str]:
    request = bot.requests.view_submission(
        user=user,
        callback_id=EDIT_VIEW,
        private_metadata=approval_id,
        values={
            f"arg:{name}": {ARGUMENT_INPUT: {"type": "plain_text_input", "value": value}}
            for name, value in values.items()
        },
    )
    answer = await bot.send(request)
    await bot.settle()
    return answer


async def the_approval(bot: RunningBot, approval_id: str) -> Approval:
    approval = await get_approval(bot.app.db, approval_id)
    assert approval is not None
    return approval


def buttons(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in card["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


async def one_card(bot: RunningBot, slack: FakeSlackAPI) -> str:
    await ask(bot, "please refund order o1")
    [card] = approval_messages(slack)
    [approval_id] = approval_ids(card)
    return approval_id


async def test_edit_is_offered_only_where_the_policy_allows_it(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = refunding(
        20, function_call("delete_customer", {"customer_id": "c42"}, call_id="call_2")
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=model
    ) as bot:
        await ask(bot, "refund o1 and delete c42")
        cards = {
            json.loads(json.dumps(c.args["blocks"]))[0]["text"]["text"]: c.args
            for c in approval_messages(slack)
        }
        [refund_card] = [card for text, card in cards.items() if "refund" in text]
        [delete_card] = [card for text, card in cards.items() if "delete_customer" in text]
        edit = buttons(refund_card)[EDIT_ACTION]
        assert edit["text"]["text"] == "Edit…"
        assert edit["value"] == buttons(refund_card)[APPROVE_ACTION]["value"]
        assert EDIT_ACTION not in buttons(delete_card)
        assert (await the_approval(bot, edit["value"])).allow_edit is True


async def test_the_modal_has_one_input_per_argument_prefilled_with_its_value(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(20.5)
    ) as bot:
        approval_id = await one_card(bot, slack)
        await click(bot, approval_id, action=EDIT_ACTION)
        [opened] = slack.calls_to("views.open")
        view = opened.args["view"]
        assert (view["callback_id"], view["private_metadata"]) == (EDIT_VIEW, approval_id)
        inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
        assert list(inputs) == ["arg:order_id", "arg:amount"]
        assert inputs["arg:order_id"]["label"]["text"] == "order_id"
        assert inputs["arg:order_id"]["element"]["initial_value"] == "o1"  # a string as it is
        assert inputs["arg:amount"]["element"]["initial_value"] == "20.5"  # anything else: JSON
        assert inputs["arg:amount"]["element"]["action_id"] == ARGUMENT_INPUT


async def test_invalid_values_are_shown_in_the_modal_and_nothing_is_decided(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(20)
    ) as bot:
        approval_id = await one_card(bot, slack)
        for amount, error in [("lots", "Not valid JSON"), ('"30"', "must be a number")]:
            status, body = await submit_edit(bot, approval_id, {"order_id": "o2", "amount": amount})
            assert status == 200
            answer = json.loads(body)
            assert answer["response_action"] == "errors"
            assert list(answer["errors"]) == ["arg:amount"]
            assert error in answer["errors"]["arg:amount"]
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)
        assert not await decision_log.entries(bot.app.db, approval_id)
        assert not executions


async def test_a_valid_edit_approves_and_the_tool_runs_once_with_the_edited_arguments(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = refunding(20)
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=model
    ) as bot:
        approval_id = await one_card(bot, slack)
        status, body = await submit_edit(bot, approval_id, {"order_id": "o2", "amount": "30"})
        assert (status, body) == (200, "")

        assert executions == Counter({"refund:o2": 1})
        approval = await the_approval(bot, approval_id)
        assert approval.status == ApprovalStatus.APPROVED
        assert json.loads(approval.edited_arguments or "") == {"order_id": "o2", "amount": 30}
        assert json.loads(approval.arguments) == {"order_id": "o1", "amount": 20}
        [output] = tool_outputs(model)
        assert output.startswith("Ran with arguments edited by an approver: ")
        assert '{"order_id": "o2", "amount": 30}' in output
        assert "refunded 30.0 on o2" in output
        entries = await decision_log.entries(bot.app.db, approval_id)
        assert [(e.kind, e.user_id) for e in entries] == [
            (DecisionKind.EDIT, APPROVER),
            (DecisionKind.APPROVE, APPROVER),
        ]
        card = "\n".join(
            block["text"]["text"]
            for block in slack.calls_to("chat.update")[-1].args["blocks"]
            if block["type"] == "section"
        )
        asked = card.index("Arguments the model asked for")
        edited = card.index("Arguments as edited by an approver")
        assert asked < card.index('"order_id": "o1"') < edited < card.index('"order_id": "o2"')

        await click(bot, approval_id)  # a later click changes nothing and runs nothing
        assert executions == Counter({"refund:o2": 1})


async def test_an_edit_past_a_threshold_needs_the_second_approval_and_the_editor_counts_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(200)
    ) as bot:
        approval_id = await one_card(bot, slack)
        await submit_edit(bot, approval_id, {"order_id": "o1", "amount": "5000"})

        approval = await the_approval(bot, approval_id)
        assert approval.status == ApprovalStatus.PENDING
        assert (approval.rule_index, approval.approvals_needed) == (1, 2)
        assert approval.approvers == [APPROVER, FINANCE]
        assert await decision_log.approved_by(bot.app.db, approval_id) == [APPROVER]
        assert not executions
        card = json.dumps(slack.calls_to("chat.update")[-1].args["blocks"], ensure_ascii=False)
        assert "1 of 2 approvals" in card
        assert "rule 1: amount &gt; 1000 → 2 approvals" in card

        await click(bot, approval_id, user=APPROVER)  # the editor again: counts once
        assert not executions
        assert "You already approved this" in private_notes(slack, APPROVER)[-1]
        await click(bot, approval_id, user=FINANCE)
        assert executions == Counter({"refund:o1": 1})
        assert await decision_log.approved_by(bot.app.db, approval_id) == [APPROVER, FINANCE]


async def test_an_editor_who_may_not_approve_under_the_new_rule_does_not_count(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(200)
    ) as bot:
        approval_id = await one_card(bot, slack)
        await submit_edit(bot, approval_id, {"order_id": "o1", "amount": "5000"}, user=GROUP_MEMBER)
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.rule_index) == (ApprovalStatus.PENDING, 1)
        assert not await decision_log.approved_by(bot.app.db, approval_id)
        assert "Your approval does not count there" in private_notes(slack, GROUP_MEMBER)[-1]
        await click(bot, approval_id, user=APPROVER)
        await click(bot, approval_id, user=FINANCE)
        assert executions == Counter({"refund:o1": 1})


async def test_an_unauthorized_editor_is_refused_privately(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(20)
    ) as bot:
        approval_id = await one_card(bot, slack)
        await click(bot, approval_id, user=OUTSIDER, action=EDIT_ACTION)
        assert not slack.calls_to("views.open")
        assert "not one of the approvers" in private_notes(slack, OUTSIDER)[-1]

        await submit_edit(bot, approval_id, {"order_id": "o2", "amount": "30"}, user=OUTSIDER)
        assert len(private_notes(slack, OUTSIDER)) == 2
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)
        assert not await decision_log.entries(bot.app.db, approval_id)
        assert not executions


async def test_a_call_too_long_for_a_modal_cannot_be_edited_and_the_editor_is_told(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("refund", {"order_id": "o" * 3001, "amount": 20}, call_id="call_1")],
            [assistant_message("Done.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=model
    ) as bot:
        approval_id = await one_card(bot, slack)
        await click(bot, approval_id, action=EDIT_ACTION)
        assert not slack.calls_to("views.open")
        assert "This call cannot be edited" in private_notes(slack, APPROVER)[-1]
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)
        assert not executions


async def test_a_call_somebody_approved_cannot_be_edited(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=refunding(5000)
    ) as bot:
        approval_id = await one_card(bot, slack)
        await click(bot, approval_id, user=APPROVER)  # 1 of 2
        await submit_edit(bot, approval_id, {"order_id": "o1", "amount": "50"}, user=FINANCE)
        assert "cannot be edited now" in private_notes(slack, FINANCE)[-1]
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)
        assert [e.kind for e in await decision_log.entries(bot.app.db, approval_id)] == [
            DecisionKind.APPROVE
        ]
        assert not executions


async def test_submitting_the_form_unchanged_is_a_plain_approval(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = refunding(20)
    async with running_bot(
        database_url=database_url, slack=slack, config=editable_refunds(), model=model
    ) as bot:
        approval_id = await one_card(bot, slack)
        await submit_edit(bot, approval_id, {"order_id": "o1", "amount": "20"})
        approval = await the_approval(bot, approval_id)
        assert (approval.status, approval.edited_arguments) == (ApprovalStatus.APPROVED, None)
        assert executions == Counter({"refund:o1": 1})
        [output] = tool_outputs(model)
        assert not output.startswith("Ran with arguments edited")
