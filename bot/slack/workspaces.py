"""Which token speaks for which workspace.

With SLACK_BOT_TOKEN there is one workspace and one client. With OAuth (SLACK_CLIENT_ID) every
workspace, or Enterprise Grid org, that installed the app has its own bot token in the
database; `client_for` finds it, refreshing a rotating token first when it is about to expire,
so work started hours ago in another process still speaks with a valid token.

`authorize` is the same lookup for Bolt: it fills each request's context (`context.client`,
`context.bot_user_id`, `context.bot_token`) with the installation of the workspace the request
came from, and a request from a workspace without one is refused by Bolt.
"""

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.client import oauth_v2_access, with_token
from storage import installations
from storage.database import Database
from storage.installations import StoredInstallation
from storage.models import utcnow

log = logging.getLogger(__name__)

# Bolt's default: a rotating token (12 hours) is refreshed in its last two.
RENEW_BEFORE = timedelta(minutes=120)


class NotInstalled(LookupError):
    """No installation serves this workspace (never installed, or uninstalled)."""

    def __init__(self, team_id: str | None, enterprise_id: str | None) -> None:
        super().__init__(f"threadgate is not installed in {team_id or enterprise_id}")
        self.team_id = team_id
        self.enterprise_id = enterprise_id


class Workspaces(Protocol):
    async def client_for(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        """The client that speaks for this workspace; raises NotInstalled."""
        ...


class OneWorkspace:
    """SLACK_BOT_TOKEN: every workspace id maps to the one client, as before."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def client_for(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        return self.client


class Installations:
    """OAuth: each workspace's own bot token, from the installation store."""

    def __init__(
        self,
        db: Database,
        client: AsyncWebClient,
        *,
        client_id: str,
        client_secret: str,
        renew_before: timedelta = RENEW_BEFORE,
    ) -> None:
        self.db = db
        self.client = client  # tokenless: base URL, pooled session, retry handlers
        self.renew_before = renew_before
        self._client_id = client_id
        self._client_secret = client_secret

    async def installation(
        self, team_id: str | None, enterprise_id: str | None, *, is_enterprise_install: bool = False
    ) -> StoredInstallation:
        found = await installations.find(
            self.db,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if found is None or found.bot_token is None:
            raise NotInstalled(team_id, enterprise_id)
        before = utcnow() + self.renew_before
        if not found.expiring(before):
            return found
        fresh = await installations.rotate(self.db, found.key, before=before, refresh=self._refresh)
        if fresh is None or fresh.bot_token is None:
            raise NotInstalled(team_id, enterprise_id)
        return fresh

    async def _refresh(self, current: StoredInstallation) -> StoredInstallation:
        """Runs under the installation's row lock: one refresh however many callers wait.
        A refused refresh (invalid_refresh_token: the app was uninstalled or its token
        revoked) raises SlackApiError and changes nothing."""
        response = await oauth_v2_access(
            self.client,
            client_id=self._client_id,
            client_secret=self._client_secret,
            grant_type="refresh_token",
            refresh_token=current.bot_refresh_token,
        )
        log.info("refreshed the bot token of %s", current.key)
        return replace(
            current,
            bot_token=str(response["access_token"]),
            bot_refresh_token=str(response["refresh_token"]),
            bot_token_expires_at=utcnow() + timedelta(seconds=int(response["expires_in"])),
        )

    async def client_for(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        found = await self.installation(team_id, enterprise_id)
        assert found.bot_token is not None  # installation() checked it
        return with_token(self.client, found.bot_token)

    async def authorize(
        self, context: AsyncBoltContext, enterprise_id: str | None, team_id: str | None
    ) -> AuthorizeResult | None:
        try:
            found = await self.installation(
                team_id,
                enterprise_id,
                is_enterprise_install=bool(context.is_enterprise_install),
            )
        except NotInstalled:
            return None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_user_id=found.bot_user_id,
            bot_id=found.bot_id,
            bot_token=found.bot_token,
            bot_scopes=found.bot_scopes,
        )
