"""`app_uninstalled` and `tokens_revoked`: Slack tells every workspace's uninstall, and
Bolt asks no token for these events (ours is already gone). Handled before the ack, like a
message is stored before it: one short transaction, and the ack means it is done."""

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.slack.uninstalls import Uninstalls

UNINSTALLED = "app uninstalled from"
REVOKED = "bot token revoked in"


def register(app: AsyncApp, *, uninstalls: Uninstalls) -> None:
    @app.event("app_uninstalled")
    async def handle_app_uninstalled(context: AsyncBoltContext, ack: AsyncAck) -> None:
        await uninstalls.uninstalled(
            context.team_id,
            context.enterprise_id,
            org_wide=bool(context.is_enterprise_install),
            why=UNINSTALLED,
        )
        await ack()

    @app.event("tokens_revoked")
    async def handle_tokens_revoked(
        body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> None:
        event = body.get("event")
        tokens = event.get("tokens") if isinstance(event, dict) else None
        tokens = tokens if isinstance(tokens, dict) else {}
        bots = tokens.get("bot")
        people = tokens.get("oauth")
        if isinstance(bots, list) and bots:
            await uninstalls.uninstalled(
                context.team_id,
                context.enterprise_id,
                org_wide=bool(context.is_enterprise_install),
                why=REVOKED,
            )
        elif isinstance(people, list):
            ids = [str(u) for u in people if isinstance(u, str)]
            await uninstalls.user_tokens_revoked(context.team_id, context.enterprise_id, ids)
        await ack()
