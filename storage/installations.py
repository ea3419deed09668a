"""The app's installations, one per workspace or Enterprise Grid org, and the rotation of
their bot tokens.

A workspace of an org is served by its own installation if it has one, else by the org-wide
install of its enterprise. Installing again replaces the row in one upsert, so two redirects
racing in two processes still leave one.

A rotating token is refreshed under the row's lock (FOR UPDATE on PostgreSQL; on SQLite the
write transaction is the single writer), and whoever waited for the lock reads the row again:
two processes that find the token expiring at the same moment refresh it once. The refresh is a
Slack call made inside that transaction; it happens about twice a day per workspace.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from storage.database import Database
from storage.models import SlackInstallation, Thread, utcnow
from storage.statements import rowcount


@dataclass(frozen=True)
class StoredInstallation:
    user_id: str
    app_id: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    enterprise_url: str | None = None
    team_id: str | None = None
    team_name: str | None = None
    is_enterprise_install: bool = False
    token_type: str | None = None
    bot_token: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""
    bot_refresh_token: str | None = None
    bot_token_expires_at: datetime | None = None
    user_token: str | None = None
    user_scopes: str = ""
    user_refresh_token: str | None = None
    user_token_expires_at: datetime | None = None
    installed_at: datetime = field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return installation_key(self.enterprise_id, self.team_id, self.is_enterprise_install)

    def expiring(self, before: datetime) -> bool:
        """A rotating bot token that expires before `before`: refresh it now."""
        return (
            self.bot_refresh_token is not None
            and self.bot_token_expires_at is not None
            and self.bot_token_expires_at <= before
        )


_FIELDS = tuple(f.name for f in fields(StoredInstallation))


def installation_key(
    enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool
) -> str:
    if is_enterprise_install:
        if not enterprise_id:
            raise ValueError("an org-wide install needs its enterprise id")
        return f"E:{enterprise_id}"
    if not team_id:
        raise ValueError("a workspace install needs its team id")
    return f"T:{team_id}"


def _stored(row: SlackInstallation) -> StoredInstallation:
    return StoredInstallation(**{name: getattr(row, name) for name in _FIELDS})


async def save(db: Database, installation: StoredInstallation) -> None:
    """Store the installation, replacing any earlier one of the same workspace or org."""
    values: dict[str, Any] = {name: getattr(installation, name) for name in _FIELDS}
    values["key"] = installation.key
    values["updated_at"] = utcnow()
    table = SlackInstallation.__table__  # type: ignore[attr-defined]
    async with db.write() as session:
        dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        insert = dialect.insert(table).values(values)
        changed = {name: insert.excluded[name] for name in values if name != "key"}
        await session.execute(insert.on_conflict_do_update(index_elements=["key"], set_=changed))


def _candidates(
    enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool
) -> list[str]:
    """The keys that may serve a workspace, the better first."""
    keys = []
    if team_id and not is_enterprise_install:
        keys.append(installation_key(enterprise_id, team_id, False))
    if enterprise_id:
        keys.append(installation_key(enterprise_id, None, True))
    if team_id and is_enterprise_install:
        keys.append(installation_key(enterprise_id, team_id, False))
    return keys


async def find(
    db: Database,
    *,
    enterprise_id: str | None,
    team_id: str | None,
    is_enterprise_install: bool = False,
) -> StoredInstallation | None:
    """The installation serving a workspace: its own, else its org's org-wide install. Work
    that knows only its team (a thread resumed later) finds the org through its threads."""
    keys = _candidates(enterprise_id, team_id, is_enterprise_install)
    if not keys:
        return None
    async with db.read() as session:
        if enterprise_id is None and team_id:
            org = await session.scalar(
                select(col(Thread.enterprise_id))
                .where(col(Thread.team_id) == team_id, col(Thread.enterprise_id).is_not(None))
                .limit(1)
            )
            if org is not None:
                keys.append(installation_key(org, None, True))
        rows = {
            row.key: row
            for row in await session.scalars(
                select(SlackInstallation).where(col(SlackInstallation.key).in_(keys))
            )
        }
    for key in keys:
        if key in rows:
            return _stored(rows[key])
    return None


async def delete(db: Database, *, enterprise_id: str | None, team_id: str | None) -> int:
    """Forget the installation of a workspace (or, with no team id, of an org); rows deleted."""
    if not team_id and not enterprise_id:
        return 0
    key = installation_key(enterprise_id, team_id, not team_id)
    async with db.write() as session:
        result = await session.execute(
            sa.delete(SlackInstallation).where(col(SlackInstallation.key) == key)
        )
        return rowcount(result)


async def forget_user_token(
    db: Database, *, enterprise_id: str | None, team_id: str | None, user_id: str
) -> int:
    """Drop the installer's own token, keeping the bot's; rows changed."""
    keys = _candidates(enterprise_id, team_id, team_id is None)
    async with db.write() as session:
        result = await session.execute(
            update(SlackInstallation)
            .where(col(SlackInstallation.key).in_(keys), col(SlackInstallation.user_id) == user_id)
            .values(user_token=None, user_refresh_token=None, user_token_expires_at=None)
        )
        return rowcount(result)


Refresh = Callable[[StoredInstallation], Awaitable[StoredInstallation]]


async def rotate(
    db: Database, key: str, *, before: datetime, refresh: Refresh
) -> StoredInstallation | None:
    """The installation with a bot token valid past `before`, refreshed if it was not.

    `refresh` runs under the row's lock and returns the installation with its new tokens; it
    is not called when another process refreshed the token while this one waited. None: the
    installation is gone.
    """
    async with db.write() as session:
        row = await session.scalar(
            select(SlackInstallation)
            .where(col(SlackInstallation.key) == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None:
            return None
        current = _stored(row)
        if not current.expiring(before):
            return current
        fresh = await refresh(current)
        fresh = replace(fresh, installed_at=current.installed_at)
        for name in _FIELDS:
            setattr(row, name, getattr(fresh, name))
        row.updated_at = utcnow()
        return fresh
