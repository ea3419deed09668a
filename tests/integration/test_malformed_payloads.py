"""Signed bodies of the wrong shape: every one is refused with a 4xx, none reaches a 5xx.

A signed body can only come from someone holding the signing secret, but the bot must not
depend on Slack never making a mistake: a body Bolt cannot route is a client error, not ours.
The mutation test starts from every kind of request the bot takes and breaks it in seeded,
reproducible ways (wrong types, missing keys, deep nesting, huge and odd strings).
"""

import copy
import io
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlmodel import col, select

from bot.slack.blocks import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_VIEW,
    RETRY_ACTION,
)
from storage.models import Approval, ApprovalStatus, Run
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import FORM, JSON, SignedRequest
from tests.integration.conftest import (
    ASKER,
    CHANNEL,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.running_app import RunningBot, running_bot

THREAD_TS = "1700000001.000100"
SEED = 20240917
MUTANTS_PER_KIND = 32

Path = tuple[str | int, ...]


def _model() -> ScriptedModel:
    """One call that needs approval, then plain answers for whatever else starts a run."""
    call = [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")]
    return ScriptedModel([call, *([assistant_message("ok")] for _ in range(400))])


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


ODD_STRINGS = [
    "",
    " ",
    "x" * 300_000,
    "ünïcødé ✓ 🚀 \u202eevil\u202c",
    "\u0000",
    "\ud800",
    "<@UBOT> <!channel> &amp; `rm -rf`",
    "1e309",
    "ap_" + "A" * 5000,
    "null",
    "U" * 40,
    "C0CHAN:1700000001.000100",
]


def _odd_value(rng: random.Random) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: rng.choice([0, -1, 2**63, 1.5, 1e308]),
        lambda: rng.choice([True, False]),
        lambda: None,
        lambda: rng.choice(ODD_STRINGS),
        lambda: [],
        lambda: [1, "a", None, {}],
        lambda: {},
        lambda: {"id": rng.choice([5, None, [], {"id": "U1"}])},
        lambda: {"type": {"type": {"type": []}}},
        lambda: "__DEEP_200__",
        lambda: "__DEEP_100000__",
    ]
    return rng.choice(choices)()


def _paths(tree: Any, prefix: Path = ()) -> list[Path]:
    found: list[Path] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.append((*prefix, index))
            found.extend(_paths(value, (*prefix, index)))
    return found


def _mutate(tree: Any, rng: random.Random) -> tuple[Any, str]:
    """One change at a random place: a wrong-typed value, a missing key or a renamed key."""
    tree = copy.deepcopy(tree)
    path = rng.choice(_paths(tree))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    where = ".".join(str(p) for p in path)
    roll = rng.random()
    if roll < 0.2:
        del parent[last]
        return tree, f"delete {where}"
    if roll < 0.27 and isinstance(parent, dict):
        parent[rng.choice(["", "type", "__proto__", "\u0000", "événement"])] = parent.pop(last)
        return tree, f"rename {where}"
    value = _odd_value(rng)
    parent[last] = value
    return tree, f"{where} = {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _dumps(tree: Any) -> str:
    text = json.dumps(tree)
    for levels in (200, 100_000):
        text = text.replace(f'"__DEEP_{levels}__"', _deep(levels))
    return text


class Mutator:
    def __init__(self, bot: RunningBot, rng: random.Random) -> None:
        self.bot = bot
        self.rng = rng

    def _sign(self, body: str, content_type: str) -> SignedRequest:
        return self.bot.requests.raw(body.encode("utf-8", "surrogatepass"), content_type)

    def event(self, request: SignedRequest) -> list[tuple[str, SignedRequest]]:
        tree = json.loads(request.body)
        out = []
        for _ in range(MUTANTS_PER_KIND):
            mutant, what = tree, []
            for _ in range(self.rng.choice([1, 1, 2, 3])):
                mutant, step = _mutate(mutant, self.rng)
                what.append(step)
            out.append(("; ".join(what), self._sign(_dumps(mutant), JSON)))
        return out

    def interaction(self, request: SignedRequest) -> list[tuple[str, SignedRequest]]:
        [(_, payload)] = parse_qsl(request.body.decode())
        tree = json.loads(payload)
        out = []
        for _ in range(MUTANTS_PER_KIND):
            mutant, what = tree, []
            for _ in range(self.rng.choice([1, 1, 2, 3])):
                mutant, step = _mutate(mutant, self.rng)
                what.append(step)
            body = urlencode({"payload": _dumps(mutant)}, encoding="utf-8", errors="surrogatepass")
            out.append(("payload " + "; ".join(what), self._sign(body, FORM)))
        return out

    def command(self, request: SignedRequest) -> list[tuple[str, SignedRequest]]:
        fields = dict(parse_qsl(request.body.decode()))
        out = []
        for _ in range(MUTANTS_PER_KIND):
            mutant = dict(fields)
            key = self.rng.choice(sorted(mutant))
            roll = self.rng.random()
            if roll < 0.3:
                del mutant[key]
                what = f"delete {key}"
            elif roll < 0.4:
                mutant["payload"] = self.rng.choice(["{", "[]", "null", _deep(100_000)])
                what = f"add payload={mutant['payload'][:20]}"
            else:
                mutant[key] = self.rng.choice([s for s in ODD_STRINGS if s != "\ud800"])
                what = f"{key} = {_short(mutant[key])}"
            out.append((what, self._sign(urlencode(mutant), FORM)))
        return out


async def send(bot: RunningBot, request: SignedRequest) -> tuple[int, str]:
    """Like `RunningBot.send`, streaming the body: some of these are close to a megabyte."""
    body = io.BytesIO(request.body)
    async with bot.http.post(bot.url + "/slack/events", data=body, headers=request.headers) as r:
        return r.status, await r.text()


def _whole_bodies(bot: RunningBot) -> list[tuple[str, SignedRequest]]:
    """Bodies broken as a whole rather than in one field."""
    mention = bot.requests.mention(text="hi", user=OUTSIDER, channel=CHANNEL, thread_ts=THREAD_TS)
    bodies: list[tuple[bytes, str]] = [
        (_deep(100_000).encode(), JSON),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, JSON),
        (b"payload=" + _deep(100_000).encode(), FORM),
        (mention.body[: len(mention.body) // 2], JSON),
        (b"", JSON),
        (b"", FORM),
        (b"null", JSON),
        (b'"event_callback"', JSON),
        (b"1e999999", JSON),
        (b'{"type": "event_callback", "event": null, "event_id": "Ev1"}', JSON),
        (b'{"type": 5}', JSON),
        (b'{"type": "block_actions", "event": "x"}', JSON),
        (b'{"type": "app_rate_limited", "event": null}', JSON),
        (b'{"type": "view_submission", "user": {"id": "U1"}, "view": 7}', JSON),
        (b'{"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "x"}}', JSON),
        (b'{"type": "workflow_step_edit", "user": {"id": "U1"}, "callback_id": "x"}', JSON),
        (b'{"type": "interactive_message", "user": {"id": "U1"}, "callback_id": "x"}', JSON),
        (b'{"type": "block_actions", "user": {"id": "U1"}, "actions": ["x"]}', JSON),
        (b'{"command": "/threadgate", "authorizations": 5}', JSON),
        (b"ssl_check=1", FORM),
        (b"token=x&ssl_check=1&payload=%7B", FORM),
        (mention.body, FORM),
        (b"payload=" + json.dumps({"type": "block_actions", "actions": "abc"}).encode(), FORM),
    ]
    return [(f"whole body {body[:40]!r}", bot.requests.raw(body, kind)) for body, kind in bodies]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("authorizations", "not a list"),
        ("authorizations", [5]),
        ("event.user", 12345),
        ("event.channel", 12345),
        ("event.team", ["T0TEAM"]),
        ("event", None),
        ("enterprise", 7),
        ("response_urls", "x"),
        ("event.user", "U" * 5000),
        ("event.channel", "C0CHAN:1"),
        ("event.ts", "1" * 100),
        ("event_id", "Ev" * 100),
        ("team_id", "T" * 100),
        ("event.text", "hi \u0000"),
    ],
)
async def test_fields_of_the_wrong_shape_are_a_400(
    database_url: str, slack: FakeSlackAPI, where: str, value: Any
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        tree = json.loads(bot.requests.mention(text="hi").body)
        parent = tree
        *path, last = where.split(".")
        for key in path:
            parent = parent[key]
        parent[last] = value
        status, text = await bot.send(bot.requests.raw(json.dumps(tree).encode(), JSON))
        assert status == 400, text


async def test_json_nested_deeper_than_python_parses_is_a_400(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        status, text = await bot.send(bot.requests.raw(_deep(100_000).encode(), JSON))
        assert status == 400, text


async def test_mutated_requests_of_every_kind_get_a_4xx_and_decide_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=_model()
    ) as bot:
        status, _ = await bot.send(
            bot.requests.mention(text="delete c42", user=ASKER, channel=CHANNEL, ts=THREAD_TS)
        )
        assert status == 200
        await bot.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])
        async with bot.app.db.read() as session:
            run_id = (await session.scalars(select(col(Run.id)))).one()

        r = bot.requests

        def button(action_id: str, value: str) -> SignedRequest:
            return r.block_actions(
                user=OUTSIDER, action_id=action_id, value=value, message_ts="1700000002.000100"
            )

        reason = {REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": "no"}}}
        mutate = Mutator(bot, random.Random(SEED))
        requests = [
            *mutate.event(r.mention(text="hi", user=OUTSIDER, thread_ts=THREAD_TS)),
            *mutate.event(r.channel_message(text="hi", user=OUTSIDER, thread_ts=THREAD_TS)),
            *mutate.event(r.dm(text="hi", user=OUTSIDER)),
            *mutate.interaction(button(APPROVE_ACTION, approval_id)),
            *mutate.interaction(button(REJECT_ACTION, approval_id)),
            *mutate.interaction(button(RETRY_ACTION, run_id)),
            *mutate.interaction(
                r.view_submission(
                    user=OUTSIDER,
                    callback_id=REJECT_VIEW,
                    private_metadata=approval_id,
                    values=reason,
                )
            ),
            *mutate.interaction(
                r.view_closed(user=OUTSIDER, callback_id=REJECT_VIEW, private_metadata=approval_id)
            ),
            *mutate.command(r.slash_command(command="/threadgate", user=OUTSIDER)),
            *_whole_bodies(bot),
        ]
        failures = []
        statuses: Counter[int] = Counter()
        for what, request in requests:
            status, text = await send(bot, request)
            statuses[status] += 1
            if status >= 500:
                failures.append(f"{status} for {what}: {text[:200]}")
        await bot.settle()
        assert not failures, "\n".join(failures)
        assert statuses[400] > len(requests) // 3, statuses

        async with bot.app.db.read() as session:
            approval = await session.get(Approval, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.PENDING
        assert not executions

        later = "1700000009.000100"
        status, _ = await bot.send(r.mention(text="still there?", user=ASKER, ts=later))
        assert status == 200
        await bot.settle()
        assert texts(slack.messages_in_thread(CHANNEL, later)) == ["ok"]
