"""Bolt's installation-store interface over threadgate's database (storage.installations).

Bolt's OAuth flow saves what `oauth.v2.access` returned through it; the tokens are sealed by the
database's cipher like any sealed column. One row per workspace or org: a user-scoped lookup
finds the installation only when that user installed it.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from logging import Logger

from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore

from storage import installations
from storage.database import UNAVAILABLE, Database
from storage.installations import StoredInstallation

log = logging.getLogger(__name__)


def _moment(epoch: float | int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _epoch(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _scopes(scopes: Sequence[str] | str | None) -> str:
    if isinstance(scopes, str):
        return scopes
    return ",".join(scopes or [])


def stored(installation: Installation) -> StoredInstallation:
    return StoredInstallation(
        user_id=installation.user_id,
        app_id=installation.app_id,
        enterprise_id=installation.enterprise_id,
        enterprise_name=installation.enterprise_name,
        enterprise_url=installation.enterprise_url,
        team_id=None if installation.is_enterprise_install else installation.team_id,
        team_name=installation.team_name,
        is_enterprise_install=bool(installation.is_enterprise_install),
        token_type=installation.token_type,
        bot_token=installation.bot_token,
        bot_id=installation.bot_id,
        bot_user_id=installation.bot_user_id,
        bot_scopes=_scopes(installation.bot_scopes),
        bot_refresh_token=installation.bot_refresh_token,
        bot_token_expires_at=_moment(installation.bot_token_expires_at),
        user_token=installation.user_token,
        user_scopes=_scopes(installation.user_scopes),
        user_refresh_token=installation.user_refresh_token,
        user_token_expires_at=_moment(installation.user_token_expires_at),
        installed_at=_moment(installation.installed_at) or datetime.now(UTC),
    )


def slack_installation(found: StoredInstallation) -> Installation:
    return Installation(
        app_id=found.app_id,
        enterprise_id=found.enterprise_id,
        enterprise_name=found.enterprise_name,
        enterprise_url=found.enterprise_url,
        team_id=found.team_id,
        team_name=found.team_name,
        bot_token=found.bot_token,
        bot_id=found.bot_id,
        bot_user_id=found.bot_user_id,
        bot_scopes=found.bot_scopes,
        bot_refresh_token=found.bot_refresh_token,
        bot_token_expires_at=_epoch(found.bot_token_expires_at),
        user_id=found.user_id,
        user_token=found.user_token,
        user_scopes=found.user_scopes,
        user_refresh_token=found.user_refresh_token,
        user_token_expires_at=_epoch(found.user_token_expires_at),
        is_enterprise_install=found.is_enterprise_install,
        token_type=found.token_type,
        installed_at=found.installed_at.timestamp(),
    )


class DatabaseInstallationStore(AsyncInstallationStore):
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def logger(self) -> Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        try:
            await installations.save(self.db, stored(installation))
        except UNAVAILABLE:
            # Bolt's flow turns a BoltError into its storage-error page.
            log.warning("the installation could not be stored: the database is unavailable")
            raise BoltError("the database is unavailable") from None

    async def async_save_bot(self, bot: Bot) -> None:
        """A bot alone (Bolt's own rotation path) updates the bot's side of the installation."""
        found = await installations.find(
            self.db,
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id,
            is_enterprise_install=bool(bot.is_enterprise_install),
        )
        base = found or StoredInstallation(
            user_id="",
            enterprise_id=bot.enterprise_id,
            team_id=None if bot.is_enterprise_install else bot.team_id,
            is_enterprise_install=bool(bot.is_enterprise_install),
        )
        await installations.save(
            self.db,
            replace(
                base,
                app_id=bot.app_id,
                bot_token=bot.bot_token,
                bot_id=bot.bot_id,
                bot_user_id=bot.bot_user_id,
                bot_scopes=_scopes(bot.bot_scopes),
                bot_refresh_token=bot.bot_refresh_token,
                bot_token_expires_at=_moment(bot.bot_token_expires_at),
            ),
        )

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await installations.find(
            self.db,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=bool(is_enterprise_install),
        )
        if found is None or found.bot_token is None:
            return None
        return slack_installation(found).to_bot()

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await installations.find(
            self.db,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=bool(is_enterprise_install),
        )
        if found is None or (user_id is not None and found.user_id != user_id):
            return None
        return slack_installation(found)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await installations.delete(self.db, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            await installations.delete(self.db, enterprise_id=enterprise_id, team_id=team_id)
        else:
            await installations.forget_user_token(
                self.db, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await installations.delete(self.db, enterprise_id=enterprise_id, team_id=team_id)
