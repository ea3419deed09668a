"""The fake Slack's side of many workspaces: installing the app with OAuth, and tokens that
each speak for one workspace (or one Enterprise Grid org).

As Slack does: a code works once and only for the app it was issued to; the client secret is
checked; a rotating token expires, and its refresh token is used once (refreshing returns a
new pair). A token says who it is (auth.test) and reaches only its own workspace's channels:
another workspace's channel is `channel_not_found`, an unknown or revoked token
`invalid_auth`, an expired one `token_expired`.

The single test token of `FakeSlackAPI.bot_token` keeps serving the default workspace as before.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

DEFAULT_LIFETIME = 43_200  # Slack's rotating tokens live 12 hours


@dataclass
class FakeWorkspace:
    team_id: str
    name: str
    enterprise_id: str | None = None
    channels: set[str] = field(default_factory=set)
    # User groups are a workspace's own: the same id names another group elsewhere.
    usergroups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bot_user_id(self) -> str:
        return f"UBOT{self.team_id}"

    @property
    def bot_id(self) -> str:
        return f"BBOT{self.team_id}"


@dataclass
class TokenOwner:
    """Who a token speaks for. `team_id` None: an org-wide install's token."""

    team_id: str | None
    enterprise_id: str | None
    bot_user_id: str
    bot_id: str
    team_name: str = ""
    expires_at: float | None = None
    default: bool = False  # FakeSlackAPI.bot_token, which reaches any channel not taken

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at


@dataclass(frozen=True)
class _Grant:
    team_id: str | None
    enterprise_id: str | None
    installer: str
    scope: str
    redirect_uri: str | None


class FakeOAuth:
    client_id = "1111.2222"
    client_secret = "fake-client-secret"
    app_id = "A0APP"

    def __init__(self) -> None:
        self.workspaces: dict[str, FakeWorkspace] = {}
        self.tokens: dict[str, TokenOwner] = {}
        # Seconds a new bot token lives; None: token rotation is off for the app (no expiry,
        # no refresh token). 0 or less: already expired when issued.
        self.token_lifetime: int | None = None
        self.redirect_url: str | None = None  # the app's configured redirect URL
        self.deny_installs = False  # the person clicks "Cancel" on Slack's page
        self.refreshes = 0  # refresh_token grants that succeeded
        # A refresh is answered once this is set: a test holds it to line callers up.
        self.refresh_gate = asyncio.Event()
        self.refresh_gate.set()
        self._codes: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> the access token it renews
        self._serial = itertools.count(1)

    # -- set-up by tests --------------------------------------------------------------------

    def add_workspace(
        self,
        team_id: str,
        *,
        name: str | None = None,
        enterprise_id: str | None = None,
        channels: tuple[str, ...] = (),
    ) -> FakeWorkspace:
        workspace = FakeWorkspace(team_id, name or team_id, enterprise_id, set(channels))
        self.workspaces[team_id] = workspace
        return workspace

    def approve_install(
        self,
        team_id: str | None = None,
        *,
        enterprise_id: str | None = None,
        installer: str = "U0INSTALLER",
        scope: str = "chat:write",
        redirect_uri: str | None = None,
    ) -> str:
        """A person allowed the install on Slack's page: the code Slack hands the browser.
        With only `enterprise_id`, the install is org-wide."""
        if team_id is not None and team_id not in self.workspaces:
            raise KeyError(f"add_workspace({team_id!r}) first")
        code = f"code-{next(self._serial)}"
        self._codes[code] = _Grant(team_id, enterprise_id, installer, scope, redirect_uri)
        return code

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    # -- Slack's authorize page (GET /oauth/v2/authorize) -------------------------------------

    def authorize_redirect(self, query: dict[str, str]) -> tuple[int, str]:
        """Where Slack's page sends the browser: (status, Location or error text)."""
        if query.get("client_id") != self.client_id:
            return 400, "invalid_client_id"
        redirect = query.get("redirect_uri") or self.redirect_url
        if redirect is None or (self.redirect_url and redirect != self.redirect_url):
            return 400, "bad_redirect_uri"
        state = query.get("state", "")
        if self.deny_installs:
            return 302, f"{redirect}?{urlencode({'error': 'access_denied', 'state': state})}"
        team = query.get("team")
        if team is None or team not in self.workspaces:
            return 400, "a test must name the workspace: /slack/install?team=T..."
        code = self.approve_install(
            team,
            enterprise_id=self.workspaces[team].enterprise_id,
            scope=query.get("scope", ""),
            redirect_uri=query.get("redirect_uri"),
        )
        return 302, f"{redirect}?{urlencode({'code': code, 'state': state})}"

    # -- oauth.v2.access ----------------------------------------------------------------------

    def access(self, args: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        client_id, client_secret = _client_credentials(args, authorization)
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        if args.get("grant_type") == "refresh_token":
            return self._refresh(str(args.get("refresh_token") or ""))
        grant = self._codes.pop(str(args.get("code") or ""), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        if grant.redirect_uri is not None and args.get("redirect_uri") != grant.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        workspace = self.workspaces.get(grant.team_id or "")
        enterprise_id = grant.enterprise_id
        owner = TokenOwner(
            team_id=grant.team_id,
            enterprise_id=enterprise_id,
            bot_user_id=workspace.bot_user_id if workspace else f"UBOT{enterprise_id}",
            bot_id=workspace.bot_id if workspace else f"BBOT{enterprise_id}",
            team_name=workspace.name if workspace else "",
        )
        answer = self._issue(owner, grant.scope)
        answer["authed_user"] = {"id": grant.installer}
        return answer

    def _issue(self, owner: TokenOwner, scope: str) -> dict[str, Any]:
        serial = next(self._serial)
        where = owner.team_id or owner.enterprise_id
        rotating = self.token_lifetime is not None
        token = f"xoxe.xoxb-{where}-{serial}" if rotating else f"xoxb-{where}-{serial}"
        if self.token_lifetime is not None:
            owner.expires_at = time.time() + self.token_lifetime
        self.tokens[token] = owner
        workspace = self.workspaces.get(owner.team_id or "")
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": self.app_id,
            "access_token": token,
            "token_type": "bot",
            "scope": scope,
            "bot_user_id": owner.bot_user_id,
            "team": {"id": owner.team_id, "name": workspace.name} if workspace else None,
            "enterprise": {"id": owner.enterprise_id, "name": owner.enterprise_id}
            if owner.enterprise_id
            else None,
            "is_enterprise_install": owner.team_id is None,
        }
        if self.token_lifetime is not None:
            refresh = f"xoxe-1-{where}-{serial}"
            self._refresh_tokens[refresh] = token
            answer["refresh_token"] = refresh
            answer["expires_in"] = self.token_lifetime
        return answer

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        old = self._refresh_tokens.pop(refresh_token, None)
        owner = self.tokens.get(old) if old is not None else None
        if owner is None:
            return {"ok": False, "error": "invalid_refresh_token"}
        renewed = TokenOwner(
            owner.team_id, owner.enterprise_id, owner.bot_user_id, owner.bot_id, owner.team_name
        )
        lifetime = self.token_lifetime if self.token_lifetime is not None else DEFAULT_LIFETIME
        saved, self.token_lifetime = self.token_lifetime, lifetime
        try:
            answer = self._issue(renewed, "chat:write")
        finally:
            self.token_lifetime = saved
        self.refreshes += 1
        return answer

    # -- what a token may do ------------------------------------------------------------------

    def owner(self, token: str | None) -> TokenOwner | str:
        """Who an installed `token` speaks for, or the error Slack answers it with."""
        found = self.tokens.get(token) if token is not None else None
        if found is None:
            return "invalid_auth"
        if found.expired:
            return "token_expired"
        return found

    def reaches(self, owner: TokenOwner, channel: str) -> bool:
        """A channel of an added workspace is reached only by a token of that workspace (or
        of its org); the default token keeps reaching every other channel, as before."""
        home = next((w for w in self.workspaces.values() if channel in w.channels), None)
        if home is None:
            # A person's id opens the DM with them; people are not split by workspace here.
            return owner.default or channel.startswith(("U", "W"))
        if owner.team_id is None:
            return owner.enterprise_id is not None and owner.enterprise_id == home.enterprise_id
        return owner.team_id == home.team_id


def _client_credentials(
    args: dict[str, Any], authorization: str | None
) -> tuple[str | None, str | None]:
    """HTTP basic auth, as slack_sdk sends them, or form fields."""
    if authorization and authorization.startswith("Basic "):
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode("utf-8")
        except ValueError:
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    given_id, given_secret = args.get("client_id"), args.get("client_secret")
    return (str(given_id) if given_id else None), (str(given_secret) if given_secret else None)
