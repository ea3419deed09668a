"""`python -m bot audit`: the story of calls decided in Slack, read by another process from the
database the bot uses, while the bot runs, with no Slack secret in its environment."""

import asyncio
import csv
import hashlib
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.slack.blocks import REJECT_ACTION
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import APPROVER, ASKER, approval_config, approval_ids
from tests.integration.conftest import approval_messages as cards
from tests.integration.test_approvals import ask, click, delete_then_answer, reject_with
from tests.running_app import running_bot

ROOT = Path(__file__).resolve().parents[2]


async def audit_command(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "audit",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _of(lines: list[dict[str, str]], approval_id: str) -> list[tuple[str, str]]:
    return [(e["event"], e["user"]) for e in lines if e["approval_id"] == approval_id]


async def test_audit_tells_each_call_s_story_in_order_with_the_right_people(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str], tmp_path: Path
) -> None:
    call = function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")
    model = ScriptedModel(
        [[call], [assistant_message("Gone.")], [call], [assistant_message("Kept.")]]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approved] = approval_ids(cards(slack)[0])
        assert await click(bot, approved) == 200
        assert executions == Counter({"delete_customer:c42": 1})

        await ask(bot, ts="1700000009.000100")
        [rejected] = approval_ids(cards(slack)[-1])
        assert rejected != approved
        await click(bot, rejected, action=REJECT_ACTION)
        assert await reject_with(bot, rejected, "keep c42, they pay") == 200

        # Read while the bot still serves: the audit needs the database and nothing else.
        code, out, err = await audit_command(database_url, tmp_path)

    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert _of(lines, approved) == [
        ("requested", "threadgate"),
        ("approved", APPROVER),
        ("started", "threadgate"),
        ("executed", "threadgate"),
    ]
    assert _of(lines, rejected) == [("requested", "threadgate"), ("rejected", APPROVER)]
    first = next(e for e in lines if e["approval_id"] == approved)
    assert first["tool"] == "delete_customer"
    assert first["thread_ts"] == "1700000001.000100"
    assert f"asked by {ASKER}" in first["detail"]
    assert first["at"].endswith("Z")
    digest = hashlib.sha256(b"customer c42 deleted").hexdigest()
    assert [e["output_sha256"] for e in lines if e["event"] == "executed"] == [digest]
    assert "keep c42" not in out  # a reason is conversation content: never in the log
    assert "customer c42 deleted" not in out


async def test_audit_prints_csv_and_keeps_to_since(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=delete_then_answer(),
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(cards(slack)[0])
        await click(bot, approval_id)

    code, out, err = await audit_command(database_url, tmp_path, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    mine = [r for r in rows if r["approval_id"] == approval_id]
    assert [r["event"] for r in mine] == ["requested", "approved", "started", "executed"]
    assert list(rows[0]) == [
        "at",
        "event",
        "approval_id",
        "run_id",
        "tool",
        "user",
        "team",
        "enterprise",
        "channel",
        "thread_ts",
        "rule",
        "arguments_sha256",
        "output_sha256",
        "detail",
    ]

    code, out, _ = await audit_command(database_url, tmp_path, "--since", "1m")
    assert code == 0
    assert approval_id in out

    code, out, err = await audit_command(database_url, tmp_path, "--since", "soon")
    assert code == 2
    assert out == ""
    assert "is not an age like 30m, 12h or 7d" in err
