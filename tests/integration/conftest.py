"""Fixtures for tests that drive the whole app over HTTP against the fakes."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents.testing import ModelCall, ModelStep, assistant_message

from bot.config import ApprovalsConfig, Config, ToolsConfig
from bot.slack.blocks import APPROVE_ACTION
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.tools_for_tests import EXECUTIONS

APPROVER = "UAPPROVER1"
GROUP = "SAPPROVERS"
GROUP_MEMBER = "UGROUPMEM1"
ASKER = "U0ALICE"
OUTSIDER = "UOUTSIDER1"
CHANNEL = "C0CHAN"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        fake.usergroups[GROUP] = [GROUP_MEMBER]
        yield fake


@pytest.fixture(autouse=True)
def executions() -> Counter[str]:
    EXECUTIONS.clear()
    return EXECUTIONS


def approval_config(**approvals: Any) -> Config:
    settings: dict[str, Any] = {"approvers": [APPROVER, GROUP], "default": "always"}
    settings.update(approvals)
    return Config(
        tools=ToolsConfig(modules=["tests.tools_for_tests"]),
        approvals=ApprovalsConfig(**settings),
    )


def approval_ids(call: RecordedCall) -> list[str]:
    ids = []
    for block in call.args.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block["elements"]:
                if element.get("action_id") == APPROVE_ACTION:
                    ids.append(element["value"])
    return ids


def approval_messages(slack: FakeSlackAPI) -> list[RecordedCall]:
    return [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]


def texts(calls: list[RecordedCall]) -> list[str]:
    return [str(c.args.get("text", "")) for c in calls]


def blocked_until(
    event: asyncio.Event, answer: str, started: asyncio.Event | None = None
) -> ModelStep:
    async def respond(_call: ModelCall) -> Any:
        if started is not None:
            started.set()
        await event.wait()
        return [assistant_message(answer)]

    return ModelStep.respond(respond)
