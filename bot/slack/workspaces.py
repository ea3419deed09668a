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
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import workspace_scope
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


# A token found is reused this long (and while it is not about to rotate) before the
# database is asked again; an uninstall in this process forgets it at once.
TOKEN_TTL = 60.0
CACHED_WORKSPACES = 1000


class Workspaces(Protocol):
    async def client_for(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        """The client that speaks for this workspace; raises NotInstalled."""
        ...

    async def token_for(self, team_id: str | None, enterprise_id: str | None = None) -> str:
        """The bot token that speaks for this workspace (team_id None: for the org-wide
        install of enterprise_id); raises NotInstalled."""
        ...

    def forget(self, team_id: str | None, enterprise_id: str | None) -> None:
        """Drop what is cached of this workspace (it was uninstalled)."""
        ...


class WorkspaceClient(AsyncWebClient):
    """A tokenless client that speaks, on each call, with the token of the workspace the work
    at hand is for (`workspace_scope`): the one client every component holds, serving many
    workspaces. A client given a token, or a call outside any workspace, is left alone."""

    def __init__(self, *, workspaces: Workspaces, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspaces = workspaces

    @classmethod
    def over(cls, client: AsyncWebClient, workspaces: Workspaces) -> "WorkspaceClient":
        return cls(
            workspaces=workspaces,
            base_url=client.base_url,
            timeout=client.timeout,
            session=client.session,
            retry_handlers=client.retry_handlers,
        )

    async def api_call(self, api_method: str, **kwargs: Any) -> Any:
        workspace = workspace_scope.current()
        if self.token is not None or workspace is None or not workspace.known:
            return await super().api_call(api_method, **kwargs)
        token = await self.workspaces.token_for(workspace.team_id, workspace.enterprise_id)
        speaking = AsyncWebClient(
            token=token,
            base_url=self.base_url,
            timeout=self.timeout,
            session=self.session,
            retry_handlers=self.retry_handlers,
        )
        return await speaking.api_call(api_method, **kwargs)


async def bearer(client: AsyncWebClient) -> str | None:
    """The token `client` speaks with now, for requests made outside the Web API (files)."""
    if client.token is not None or not isinstance(client, WorkspaceClient):
        return client.token
    workspace = workspace_scope.current()
    if workspace is None or not workspace.known:
        return None
    return await client.workspaces.token_for(workspace.team_id, workspace.enterprise_id)


class OneWorkspace:
    """SLACK_BOT_TOKEN: every workspace id maps to the one client, as before."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def client_for(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        return self.client

    async def token_for(self, team_id: str | None, enterprise_id: str | None = None) -> str:
        if self.client.token is None:
            raise NotInstalled(team_id, enterprise_id)
        return self.client.token

    def forget(self, team_id: str | None, enterprise_id: str | None) -> None:
        return None


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
        ttl: float = TOKEN_TTL,
        size: int = CACHED_WORKSPACES,
    ) -> None:
        self.db = db
        self.client = client  # tokenless: base URL, pooled session, retry handlers
        self.renew_before = renew_before
        self.ttl = ttl
        self.size = size
        self._found: OrderedDict[tuple[str | None, str | None], tuple[float, StoredInstallation]]
        self._found = OrderedDict()
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
            AsyncWebClient(
                base_url=self.client.base_url,
                timeout=self.client.timeout,
                session=self.client.session,
                retry_handlers=self.client.retry_handlers,
            ),
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
        return with_token(self.client, await self.token_for(team_id, enterprise_id))

    async def token_for(self, team_id: str | None, enterprise_id: str | None = None) -> str:
        key = (team_id, enterprise_id)
        now = time.monotonic()
        cached = self._found.get(key)
        if (
            cached is not None
            and cached[0] > now
            and not cached[1].expiring(utcnow() + self.renew_before)
        ):
            self._found.move_to_end(key)
            found = cached[1]
        else:
            found = await self.installation(team_id, enterprise_id)
            self._found[key] = (now + self.ttl, found)
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)
        assert found.bot_token is not None  # installation() checked it
        return found.bot_token

    def forget(self, team_id: str | None, enterprise_id: str | None) -> None:
        for key in list(self._found):
            installed = self._found[key][1]
            if (team_id is not None and team_id in (key[0], installed.team_id)) or (
                team_id is None
                and enterprise_id is not None
                and enterprise_id in (key[1], installed.enterprise_id)
            ):
                del self._found[key]

    def bolt_authorize(self) -> Callable[..., Awaitable[AuthorizeResult | None]]:
        """`authorize` as Bolt calls it: Bolt passes arguments by the names of a function's
        parameters, and would count a bound method's `self` among them."""

        async def authorize(
            context: AsyncBoltContext, enterprise_id: str | None, team_id: str | None
        ) -> AuthorizeResult | None:
            return await self.authorize(context, enterprise_id, team_id)

        return authorize

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
