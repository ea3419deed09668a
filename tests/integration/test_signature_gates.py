"""Two signature checks stand in front of the listeners, and each must hold on its own.

The early gate in `http_server` refuses a forged body before anything parses it; Bolt's own
verification refuses it again before routing (and is the only check in front of anything that
calls `async_dispatch` directly). Over HTTP either one alone answers a forged request with a
401, so each is tested where the other cannot stand in for it.
"""

import time

from agents.testing import ScriptedModel
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlmodel import func, select

from storage.models import Job
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import FORM, JSON, SignedRequest, SlackRequestBuilder
from tests.running_app import running_bot

FORGER = SlackRequestBuilder("not-the-secret")


async def test_a_forged_body_is_refused_before_it_is_parsed(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """Parsed, these would be a 400 (unparsable) or a 200 (Bolt answers ssl_check before it
    verifies anything); only the early gate makes them a 401."""
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        for body in (b"{not json", b"[" * 100_000 + b"]" * 100_000, b'{"authorizations": "x"}'):
            status, _ = await bot.send(FORGER.raw(body, JSON))
            assert status == 401
        status, _ = await bot.send(FORGER.raw(b"token=x&ssl_check=1", FORM))
        assert status == 401


def _bolt_request(request: SignedRequest) -> AsyncBoltRequest:
    return AsyncBoltRequest(body=request.body.decode(), headers=dict(request.headers))


async def test_bolt_itself_refuses_forged_and_stale_requests(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        bolt = bot.app.bolt
        forged = FORGER.mention(text="hi", ts="1.1")
        stale = bot.requests.mention(text="hi", ts="1.2", timestamp=int(time.time()) - 6 * 60)
        for request in (forged, stale):
            response = await bolt.async_dispatch(_bolt_request(request))
            assert response.status == 401
        async with bot.app.db.read() as session:
            assert await session.scalar(select(func.count()).select_from(Job)) == 0

        challenge = b'{"type": "url_verification", "challenge": "c1", "token": "x"}'
        response = await bolt.async_dispatch(_bolt_request(bot.requests.raw(challenge, JSON)))
        assert response.status == 200
