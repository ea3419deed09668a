"""Retiring an encryption key the way the README says: `python -m bot reencrypt` as a process."""

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

from agents.testing import ScriptedModel, assistant_message, function_call
from pydantic import SecretStr

from bot.slack.blocks import APPROVE_ACTION
from storage.crypto import Cipher
from storage.sealed_columns import SEALED_COLUMNS, read_batch
from tests.bot_process import ROOT
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.running_app import RunningBot, bot_settings, running_bot

OLD = Cipher.generate_key()
NEW = Cipher.generate_key()


async def bot_command(
    database_url: str, tmp_path: Path, *argv: str, key: str | None
) -> tuple[int, list[str], list[str]]:
    """`python -m bot <argv>` with the bot's settings; the exit code, stdout and stderr lines."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "DATABASE_URL": database_url,
    }
    if key is not None:
        env["THREADGATE_ENCRYPTION_KEY"] = key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *argv,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode().splitlines()


async def approve(bot: RunningBot, slack: FakeSlackAPI, request: int) -> None:
    message = approval_messages(slack)[request]
    [approval_id] = approval_ids(message)
    click = bot.requests.block_actions(
        user=APPROVER,
        action_id=APPROVE_ACTION,
        value=approval_id,
        channel=CHANNEL,
        message_ts=str(message.args["thread_ts"]),
    )
    await bot.send(click)
    await bot.settle()


async def test_after_reencrypt_the_old_key_can_be_dropped(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str], tmp_path: Path
) -> None:
    config = approval_config()
    first_model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c1"}, call_id="call_1")],
            [assistant_message("c1 deleted.")],
            [function_call("delete_customer", {"customer_id": "c2"}, call_id="call_2")],
        ]
    )
    old_only = bot_settings(database_url, slack, encryption_key=SecretStr(OLD))
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=first_model, settings=old_only
    ) as bot:
        await bot.send(bot.requests.mention(text="delete c1", user=ASKER, ts="50.1"))
        await bot.settle()
        await approve(bot, slack, 0)
        await bot.send(bot.requests.mention(text="delete c2 please", user=ASKER, ts="51.1"))
        await bot.settle()

    # Step 1: the new key first, the old one after it, on the serving bot; step 2: reencrypt.
    both = bot_settings(database_url, slack, encryption_key=SecretStr(f"{NEW},{OLD}"))
    async with running_bot(database_url=database_url, slack=slack, config=config, settings=both):
        code, out, err = await bot_command(database_url, tmp_path, "reencrypt", key=f"{NEW},{OLD}")
    assert (code, err) == (0, [])
    assert out == [
        "runs.state: 1 resealed, 0 already on the newest key",  # the finished run keeps none
        "approvals.arguments: 2 resealed, 0 already on the newest key",
        "approvals.reason: 0 resealed, 0 already on the newest key",
        "approvals.outcome: 1 resealed, 0 already on the newest key",
        "approvals.edited_arguments: 0 resealed, 0 already on the newest key",  # none edited
        "approval_decisions.reason: 0 resealed, 0 already on the newest key",  # approved: none
        "jobs.text: 2 resealed, 0 already on the newest key",
        "outbox.payload: 0 resealed, 0 already on the newest key",  # delivered: none kept
        # One workspace (SLACK_BOT_TOKEN): no installations, so no tokens in the database.
        "slack_installations.bot_token: 0 resealed, 0 already on the newest key",
        "slack_installations.bot_refresh_token: 0 resealed, 0 already on the newest key",
        "slack_installations.user_token: 0 resealed, 0 already on the newest key",
        "slack_installations.user_refresh_token: 0 resealed, 0 already on the newest key",
        "agent_messages.message_data: 6 resealed, 0 already on the newest key",
    ]

    # Step 3: the old key dropped. Everything opens: the start-up check, the paused run's
    # state, the approval's arguments and the thread's history that the model reads.
    new_key = Cipher.from_setting(NEW)
    assert new_key is not None
    resumed_model = ScriptedModel([[assistant_message("c2 deleted.")]])
    new_only = bot_settings(database_url, slack, encryption_key=SecretStr(NEW))
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=config,
        model=resumed_model,
        settings=new_only,
    ) as bot:
        for sealed in SEALED_COLUMNS:
            for value in await read_batch(bot.app.db, sealed, after=None, limit=1000):
                stored = value.stored
                if sealed.name == "agent_messages.message_data":
                    stored = json.loads(stored)["payload"]
                assert new_key.is_current(stored), sealed.name
        await approve(bot, slack, 1)

    assert executions == Counter({"delete_customer:c1": 1, "delete_customer:c2": 1})
    assert texts(slack.calls_to("chat.postMessage"))[-1] == "c2 deleted."
    assert "delete c2 please" in json.dumps(resumed_model.calls[0].input)


async def test_reencrypt_without_a_key_says_so_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    code, out, err = await bot_command(database_url, tmp_path, "reencrypt", key=None)

    assert code == 2
    assert out == []
    assert err == ["threadgate: reencrypt needs THREADGATE_ENCRYPTION_KEY (the new key first)"]
