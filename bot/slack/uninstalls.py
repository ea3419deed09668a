"""A workspace that uninstalled the app, or revoked its bot token, is forgotten: nothing can
speak there any more, so nothing owed there is kept waiting. Its calls are expired (the audit
log says why), its queued work is given up, and this process drops the token it cached."""

import logging
from collections.abc import Sequence

from bot.slack.workspaces import Workspaces
from storage import installations
from storage.database import Database
from storage.uninstall import forget_workspace

log = logging.getLogger(__name__)


class Uninstalls:
    def __init__(self, db: Database, workspaces: Workspaces) -> None:
        self.db = db
        self.workspaces = workspaces

    async def uninstalled(
        self, team_id: str | None, enterprise_id: str | None, *, org_wide: bool, why: str
    ) -> None:
        """`org_wide`: the org's install went (every workspace it served), not one workspace's."""
        team = None if org_wide else team_id
        where = team or enterprise_id
        if where is None:
            return
        forgotten = await forget_workspace(
            self.db, team_id=team, enterprise_id=enterprise_id, reason=f"{why} {where}"
        )
        self.workspaces.forget(team, enterprise_id)
        log.info(
            "%s %s: %d installation(s) deleted, %d pending call(s) expired, %d job(s) and "
            "%d message(s) given up",
            why,
            where,
            forgotten.installations,
            len(forgotten.approvals),
            forgotten.jobs,
            forgotten.messages,
        )

    async def user_tokens_revoked(
        self, team_id: str | None, enterprise_id: str | None, user_ids: Sequence[str]
    ) -> None:
        """Only people's tokens went (the installer's): the bot keeps its own."""
        for user_id in user_ids:
            await installations.forget_user_token(
                self.db, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )
