"""`LOG_FORMAT=json` in a real process: every line is one JSON object, every line of a run
carries its run id (and its thread), and no line holds content or a secret."""

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from bot.slack.blocks import (
    APPROVE_ACTION,
    EDIT_VIEW,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_VIEW,
)
from tests.bot_process import bot_process
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import APPROVER, CHANNEL, approval_ids, approval_messages
from tests.running_app import SIGNING_SECRET

ASKED = "please delete the customer cust-Zq7 named Zebulon"
ANSWER = "Zebulon is gone for good."
UNKNOWN_APPROVAL = "ap_0123456789abcdef01234567"


async def test_json_lines_carry_the_ids_of_their_run_and_no_content(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "cust-Zq7"}))
        model.reply_text(ANSWER)
        async with bot_process(
            database_url, slack, model, tmp_path, LOG_FORMAT="json", LOG_LEVEL="DEBUG"
        ) as bot:
            await bot.send(requests.mention(text=ASKED, channel=CHANNEL, ts="2.5"))
            [card] = await slack.wait_for(
                "chat.postMessage", where=lambda call: bool(approval_ids(call))
            )
            [approval_id] = approval_ids(card)
            click = requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="2.6",
                thread_ts="2.5",
            )
            assert await bot.send(click) == 200
            await slack.wait_for("chat.postMessage", where=lambda c: c.args.get("text") == ANSWER)
            # Modal submissions carry the id of the approval they name, as clicks do.
            for callback_id, values in (
                (REJECT_VIEW, {REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input"}}}),
                (EDIT_VIEW, {}),
            ):
                submission = requests.view_submission(
                    user=APPROVER,
                    callback_id=callback_id,
                    private_metadata=UNKNOWN_APPROVAL,
                    values=values,
                )
                assert await bot.send(submission) == 200
            bot.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
    assert approval_messages(slack)
    lines: list[dict[str, Any]] = [json.loads(line) for line in bot.log if line.strip()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    run_lines = [line for line in lines if "run_id" in line]
    run_ids = {line["run_id"] for line in run_lines}
    assert len(run_ids) == 1
    [run_id] = run_ids
    said = [line["message"] for line in run_lines]
    assert f"run {run_id}: start" in said
    assert f"run {run_id}: resume" in said
    assert f"run {run_id} answered" in said
    # Any line that names the run is one of its lines, tied to its thread and job.
    for line in lines:
        if run_id in line["message"]:
            assert line.get("run_id") == run_id, line
            assert line["channel"] == CHANNEL
            assert line["thread_ts"] == "2.5"
            assert "job_id" in line
    unknown = [line for line in lines if "of an unknown approval" in line["message"]]
    unknown += [line for line in lines if "for an unknown approval" in line["message"]]
    assert len(unknown) == 2
    assert {line.get("approval_id") for line in unknown} == {UNKNOWN_APPROVAL}
    text = "".join(bot.log)
    # Ids are hex: the customer id is one no id can contain.
    for content in ("Zebulon", "cust-Zq7", ASKED, ANSWER):
        assert content not in text
    for secret in (slack.bot_token, SIGNING_SECRET, "sk-test-key"):
        assert secret not in text
