"""Installing the app into a workspace with OAuth ("Add to Slack"), with Bolt's OAuth flow
over threadgate's own stores.

GET /slack/install shows the "Add to Slack" page and sets the state cookie; Slack sends the
browser back to GET /slack/oauth_redirect, where the state is used once (from the database, so
any process may finish the install), the code is exchanged with `oauth.v2.access` at
SLACK_API_URL, and the installation is stored. Whatever goes wrong is a 4xx page that says what
to do, and nothing is stored.
"""

import contextvars
import html
import logging
import re
from collections.abc import Sequence
from typing import Any

from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.client import oauth_v2_access
from bot.slack.installation_store import DatabaseInstallationStore
from bot.slack.oauth_state_store import DatabaseOAuthStateStore
from storage.database import Database

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600
# manifest.yml's bot scopes; tests/unit/test_manifest.py holds the two together.
BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "commands",
    "files:read",
    "reactions:write",
    "usergroups:read",
    "users:read",
)
_TEAM_ID = re.compile(r"^[TE][A-Z0-9]{1,31}$")

# Why the last code exchange of this request failed, for its failure page.
_slack_error: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "slack_error", default=None
)

_REASONS = {
    "access_denied": (403, "The install was cancelled in Slack, so nothing was installed."),
    "invalid_browser": (
        400,
        "This install was started in another browser, or its cookie is gone. "
        "Start again from the install page, in this browser.",
    ),
    "invalid_state": (
        400,
        "This install link has expired or was already used. Start again from the install page.",
    ),
    "missing_code": (400, "Slack sent no authorization code. Start again from the install page."),
    "invalid_code": (
        400,
        "Slack did not accept the install. Start again from the install page; if it keeps "
        "failing, ask the operator to check SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.",
    ),
    "storage_error": (
        503,
        "The install could not be saved just now. Nothing was installed; try again shortly.",
    ),
}


def authorization_url(api_url: str) -> str:
    """Slack's authorize page on the host of SLACK_API_URL (https://slack.com/api/)."""
    return api_url.removesuffix("/").removesuffix("/api") + "/oauth/v2/authorize"


def scopes(settings: Settings) -> Sequence[str]:
    if settings.slack_scopes:
        return [s.strip() for s in settings.slack_scopes.split(",") if s.strip()]
    return BOT_SCOPES


def failure_page(reason: str, detail: str | None) -> tuple[int, str]:
    status, text = _REASONS.get(
        reason, (400, "The install did not complete. Start again from the install page.")
    )
    said = f" (Slack said: {detail})" if detail else ""
    body = f"""<html>
<head><meta charset="utf-8"><title>threadgate was not installed</title></head>
<body style="font-family: sans-serif; text-align: center; padding: 10px 15px">
<h2>threadgate was not installed</h2>
<p>{html.escape(text + said)}</p>
<p><a href="{INSTALL_PATH}">Start again</a></p>
</body>
</html>
"""
    return status, body


class InstallFlow(AsyncOAuthFlow):
    """Bolt's flow, with three differences: a failed exchange is logged without the code and
    named on the failure page; a `team` hint that is not a team id is ignored rather than
    pasted into Slack's URL; failure pages are 4xx (503 when the database is down)."""

    async def build_authorize_url(self, state: str, request: AsyncBoltRequest) -> str:
        teams: Sequence[str] | None = request.query.get("team")
        team = teams[0] if teams else None
        return self.settings.authorize_url_generator.generate(
            state=state, team=team if team and _TEAM_ID.match(team) else None
        )

    async def run_installation(self, code: str) -> Installation | None:
        try:
            response = await oauth_v2_access(
                self.client,
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret,
                code=code,
                redirect_uri=self.settings.redirect_uri,
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            _slack_error.set(error)
            log.warning("Slack refused an install's code exchange (%s)", error)
            return None
        if response.get("token_type", "bot") != "bot" or not response.get("access_token"):
            _slack_error.set("no_bot_token")
            log.warning("an install returned no bot token")
            return None
        bot_token = str(response["access_token"])
        try:
            identity = await self.client.auth_test(token=bot_token)
        except SlackApiError as exc:
            _slack_error.set(str(exc.response.get("error", "unknown_error")))
            log.warning("the new bot token failed auth.test (%s)", exc.response.get("error"))
            return None
        enterprise: dict[str, Any] = response.get("enterprise") or {}
        team: dict[str, Any] = response.get("team") or {}
        installer: dict[str, Any] = response.get("authed_user") or {}
        is_enterprise_install = bool(response.get("is_enterprise_install"))
        return Installation(
            app_id=response.get("app_id"),
            enterprise_id=enterprise.get("id"),
            enterprise_name=enterprise.get("name"),
            enterprise_url=identity.get("url") if is_enterprise_install else None,
            team_id=team.get("id"),
            team_name=team.get("name"),
            bot_token=bot_token,
            bot_id=identity.get("bot_id"),
            bot_user_id=response.get("bot_user_id"),
            bot_scopes=response.get("scope") or "",
            bot_refresh_token=response.get("refresh_token"),
            bot_token_expires_in=response.get("expires_in"),
            user_id=str(installer.get("id") or ""),
            user_token=installer.get("access_token"),
            user_scopes=installer.get("scope") or "",
            user_refresh_token=installer.get("refresh_token"),
            user_token_expires_in=installer.get("expires_in"),
            is_enterprise_install=is_enterprise_install,
            token_type=response.get("token_type"),
        )


def build_install_flow(settings: Settings, db: Database, client: AsyncWebClient) -> InstallFlow:
    """`client` is tokenless: it carries SLACK_API_URL and the pooled session."""
    if settings.slack_client_id is None or settings.slack_client_secret is None:
        raise ValueError("installing needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
    oauth = AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=list(scopes(settings)),
        user_scopes=[],
        redirect_uri=settings.slack_redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=authorization_url(settings.slack_api_url),
        installation_store=DatabaseInstallationStore(db),
        installation_store_bot_only=True,
        state_store=DatabaseOAuthStateStore(db, expiration_seconds=STATE_SECONDS),
        state_expiration_seconds=STATE_SECONDS,
        logger=logging.getLogger("threadgate.bolt.oauth"),
    )
    flow = InstallFlow(client=client, settings=oauth, logger=logging.getLogger("threadgate.bolt"))
    default = flow.default_callback_options

    async def failed(args: AsyncFailureArgs) -> BoltResponse:
        status, body = failure_page(args.reason, _slack_error.get())
        log.info("an install failed (%s)", args.reason)
        return BoltResponse(
            status=status,
            body=body,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Set-Cookie": oauth.state_utils.build_set_cookie_for_deletion(),
            },
        )

    async def succeeded(args: AsyncSuccessArgs) -> BoltResponse:
        installed = args.installation
        log.info(
            "installed in %s",
            installed.enterprise_id if installed.is_enterprise_install else installed.team_id,
        )
        return await default.success(args)

    flow.success_handler, flow.failure_handler = succeeded, failed
    oauth.callback_options = AsyncCallbackOptions(success=succeeded, failure=failed)
    return flow
