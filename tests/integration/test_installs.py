"""Many workspaces: "Add to Slack" through the real flow against the fake Slack, and each
workspace speaking with its own token, on both databases.

The browser's part is played by hand: the install page's link is followed to the fake Slack's
authorize page, whose redirect (with the code) is followed back with the state cookie.
"""

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from sqlalchemy import event, text, update

from bot.app import build_app
from bot.config import Config
from bot.container import Threadgate
from bot.settings import Settings
from bot.slack.client import build_slack_client
from bot.slack.http_server import build_web_app
from bot.slack.install import BOT_SCOPES
from bot.slack.workspaces import Installations, NotInstalled
from storage import installations
from storage.crypto import Cipher
from storage.database import Database
from storage.models import OAuthState, utcnow
from tests.fakes.slack_api import FakeSlackAPI
from tests.running_app import SIGNING_SECRET

KEY = Cipher.generate_key()
COOKIE = "slack-app-oauth-state"


def oauth_settings(database_url: str, slack: FakeSlackAPI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_client_id": slack.oauth.client_id,
        "slack_client_secret": SecretStr(slack.oauth.client_secret),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": slack.base_url,
        "encryption_key": SecretStr(KEY),
        "openai_api_key": SecretStr("sk-test"),
        "openai_base_url": "http://127.0.0.1:9/v1",
        "database_url": database_url,
        "sweep_interval": 3600.0,
        "drain_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class Page:
    status: int
    body: str
    cookie: str | None = None
    location: str | None = None


@dataclass
class Hosted:
    app: Threadgate
    url: str
    slack: FakeSlackAPI
    http: aiohttp.ClientSession

    async def get(self, url: str, *, cookie: str | None = None) -> Page:
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        async with self.http.get(url, headers=headers, allow_redirects=False) as response:
            assert len(response.headers.getall("Content-Type", [])) <= 1
            morsel = response.cookies.get(COOKIE)
            return Page(
                response.status,
                await response.text(),
                morsel.value if morsel is not None else None,
                response.headers.get("Location"),
            )

    async def start_install(self, team_id: str) -> tuple[str, str]:
        """The install page, and Slack's answer to its link: (redirect URL, state cookie)."""
        page = await self.get(f"{self.url}/slack/install?team={team_id}")
        assert page.status == 200, page.body
        assert "Add to Slack" in page.body
        assert page.cookie is not None
        (link,) = re.findall(r'<a href="([^"]+)"', page.body)
        slack_page = await self.get(html.unescape(link))
        assert slack_page.status == 302, slack_page.body
        assert slack_page.location is not None
        return slack_page.location, page.cookie

    async def install(self, team_id: str) -> Page:
        redirect, cookie = await self.start_install(team_id)
        return await self.get(redirect, cookie=cookie)

    def db(self) -> Database:
        return self.app.db


@pytest.fixture
async def hosted(database_url: str, slack: FakeSlackAPI) -> AsyncIterator[Hosted]:
    slack.oauth.add_workspace("T0AAA", name="Alpha", channels=("C0ALPHA",))
    slack.oauth.add_workspace("T0BBB", name="Beta", channels=("C0BETA",))
    settings = oauth_settings(database_url, slack)
    client = build_slack_client(None, base_url=slack.base_url, backoff_factor=0.01)
    app = build_app(settings, config=Config(), slack_client=client)
    runner = web.AppRunner(build_web_app(app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    slack.oauth.redirect_url = f"{url}/slack/oauth_redirect"
    try:
        await app.start()
        async with aiohttp.ClientSession() as http:
            yield Hosted(app, url, slack, http)
    finally:
        await app.stop(drain_timeout=5)
        await runner.cleanup()


async def stored_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(text("SELECT count(*) FROM slack_installations")) or 0)


def exchanges(slack: FakeSlackAPI) -> list[Any]:
    return [c for c in slack.calls_to("oauth.v2.access") if c.args.get("code")]


async def test_two_workspaces_install_and_each_speaks_with_its_own_token(
    hosted: Hosted, slack: FakeSlackAPI
) -> None:
    alpha = await hosted.install("T0AAA")
    beta = await hosted.install("T0BBB")

    assert alpha.status == 200, alpha.body
    assert "slack://app?team=T0AAA&amp;id=A0APP" in alpha.body
    assert "https://app.slack.com/client/T0AAA" in alpha.body
    assert beta.status == 200, beta.body
    db = hosted.db()
    found_a = await installations.find(db, enterprise_id=None, team_id="T0AAA")
    found_b = await installations.find(db, enterprise_id=None, team_id="T0BBB")
    assert found_a is not None
    assert found_b is not None
    assert found_a.bot_token != found_b.bot_token
    assert (found_a.bot_user_id, found_a.bot_id) == ("UBOTT0AAA", "BBOTT0AAA")
    assert found_a.bot_scopes == ",".join(BOT_SCOPES)
    assert found_a.user_id == "U0INSTALLER"
    assert found_a.is_enterprise_install is False
    assert found_a.bot_refresh_token is None  # rotation is off for this app
    async with db.read() as session:
        raw = list(await session.scalars(text("SELECT bot_token FROM slack_installations")))
    assert len(raw) == 2
    assert all(value.startswith("tgenc:v1:") for value in raw)
    assert found_a.bot_token not in raw
    assert found_b.bot_token not in raw

    client_a = await hosted.app.workspaces.client_for("T0AAA")
    client_b = await hosted.app.workspaces.client_for("T0BBB")
    assert (await client_a.auth_test())["team_id"] == "T0AAA"
    assert (await client_b.auth_test())["team_id"] == "T0BBB"
    await client_b.chat_postMessage(channel="C0BETA", text="hello beta")
    with pytest.raises(SlackApiError) as refused:
        await client_a.chat_postMessage(channel="C0BETA", text="wrong workspace")
    assert refused.value.response["error"] == "channel_not_found"
    with pytest.raises(NotInstalled):
        await hosted.app.workspaces.client_for("T0NEVER")


async def test_a_reused_state_fails_and_stores_nothing(hosted: Hosted, slack: FakeSlackAPI) -> None:
    redirect, cookie = await hosted.start_install("T0AAA")
    assert (await hosted.get(redirect, cookie=cookie)).status == 200
    state = re.findall(r"state=([^&]+)", redirect)[0]
    other_code = slack.oauth.approve_install("T0BBB")

    replayed = await hosted.get(
        f"{hosted.url}/slack/oauth_redirect?code={other_code}&state={state}", cookie=cookie
    )

    assert replayed.status == 400
    assert "expired or was already used" in replayed.body
    assert await installations.find(hosted.db(), enterprise_id=None, team_id="T0BBB") is None
    assert await stored_count(hosted.db()) == 1
    assert len(exchanges(slack)) == 1  # the second code was never exchanged


async def test_a_denied_install_stores_nothing(hosted: Hosted, slack: FakeSlackAPI) -> None:
    slack.oauth.deny_installs = True

    page = await hosted.install("T0AAA")

    assert page.status == 403
    assert "cancelled" in page.body
    assert await stored_count(hosted.db()) == 0
    assert exchanges(slack) == []


async def test_an_expired_state_fails_and_stores_nothing(
    hosted: Hosted, slack: FakeSlackAPI
) -> None:
    redirect, cookie = await hosted.start_install("T0AAA")
    async with hosted.db().write() as session:  # ten minutes pass
        await session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(1)))

    page = await hosted.get(redirect, cookie=cookie)

    assert page.status == 400
    assert "expired or was already used" in page.body
    assert await stored_count(hosted.db()) == 0
    assert exchanges(slack) == []


async def test_a_code_slack_refuses_shows_its_error_and_stores_nothing(
    hosted: Hosted, slack: FakeSlackAPI
) -> None:
    redirect, cookie = await hosted.start_install("T0AAA")
    state = re.findall(r"state=([^&]+)", redirect)[0]

    page = await hosted.get(
        f"{hosted.url}/slack/oauth_redirect?code=not-a-code&state={state}", cookie=cookie
    )

    assert page.status == 400
    assert "invalid_code" in page.body
    assert await stored_count(hosted.db()) == 0


async def test_a_state_without_its_browser_cookie_fails(hosted: Hosted) -> None:
    redirect, _cookie = await hosted.start_install("T0AAA")

    page = await hosted.get(redirect)

    assert page.status == 400
    assert await stored_count(hosted.db()) == 0


async def test_an_org_wide_install_serves_every_workspace_of_the_org(
    hosted: Hosted, slack: FakeSlackAPI
) -> None:
    slack.oauth.add_workspace("T0CCC", enterprise_id="E0ORG", channels=("C0GAMMA",))
    redirect, cookie = await hosted.start_install("T0AAA")
    state = re.findall(r"state=([^&]+)", redirect)[0]
    code = slack.oauth.approve_install(enterprise_id="E0ORG")

    page = await hosted.get(
        f"{hosted.url}/slack/oauth_redirect?code={code}&state={state}", cookie=cookie
    )

    assert page.status == 200, page.body
    found = await installations.find(hosted.db(), enterprise_id="E0ORG", team_id="T0CCC")
    assert found is not None
    assert found.is_enterprise_install
    assert found.team_id is None
    client = await hosted.app.workspaces.client_for("T0CCC", "E0ORG")
    await client.chat_postMessage(channel="C0GAMMA", text="hello from the org install")
    with pytest.raises(NotInstalled):
        await hosted.app.workspaces.client_for("T0CCC", None)


async def test_an_expired_rotating_token_is_refreshed_once_for_two_processes(
    hosted: Hosted, slack: FakeSlackAPI, database_url: str
) -> None:
    slack.oauth.token_lifetime = 60  # inside the two hours before expiry: due for refresh
    assert (await hosted.install("T0AAA")).status == 200
    before = await installations.find(hosted.db(), enterprise_id=None, team_id="T0AAA")
    assert before is not None
    assert before.bot_token is not None
    assert before.bot_refresh_token is not None
    slack.oauth.tokens[before.bot_token].expires_at = time.time() - 1  # and now expired
    slack.oauth.token_lifetime = 43_200
    slack.oauth.refresh_gate.clear()
    cipher = Cipher.from_setting(KEY)
    first_db = Database(database_url, cipher=cipher)
    second_db = Database(database_url, cipher=cipher)
    base = hosted.app.client
    first = Installations(
        first_db, base, client_id=slack.oauth.client_id, client_secret=slack.oauth.client_secret
    )
    second = Installations(
        second_db, base, client_id=slack.oauth.client_id, client_secret=slack.oauth.client_secret
    )
    loop = asyncio.get_running_loop()
    second_at_lock = asyncio.Event()

    @event.listens_for(second_db.engine.sync_engine, "before_cursor_execute")
    def _locking(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FOR UPDATE" in statement or statement.startswith("BEGIN IMMEDIATE"):
            loop.call_soon_threadsafe(second_at_lock.set)

    try:
        one = asyncio.create_task(first.client_for("T0AAA"))
        await slack.wait_for("oauth.v2.access", where=lambda c: "refresh_token" in c.args)
        two = asyncio.create_task(second.client_for("T0AAA"))
        # It read the expired token too, and waits for the row.
        await asyncio.wait_for(second_at_lock.wait(), timeout=30)
        slack.oauth.refresh_gate.set()
        client_one, client_two = await asyncio.gather(one, two)
    finally:
        slack.oauth.refresh_gate.set()
        await first_db.dispose()
        await second_db.dispose()

    assert slack.oauth.refreshes == 1
    assert client_one.token == client_two.token != before.bot_token
    assert (await client_two.auth_test())["team_id"] == "T0AAA"
    after = await installations.find(hosted.db(), enterprise_id=None, team_id="T0AAA")
    assert after is not None
    assert after.bot_token == client_one.token
    assert after.bot_refresh_token not in (None, before.bot_refresh_token)
    assert after.bot_token_expires_at is not None
    assert after.bot_token_expires_at > utcnow() + timedelta(hours=11)
