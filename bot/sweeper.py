"""Periodic housekeeping: expire undecided approvals and pick up threads nobody is working on."""

import asyncio
import logging
from collections.abc import Callable

from bot.approvals import Approvals
from bot.background import new_ref
from storage import repositories as repo
from storage.database import Database

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self, *, approvals: Approvals, db: Database, kick: Callable[[str], None], interval: float
    ) -> None:
        self.approvals = approvals
        self.db = db
        self.kick = kick
        self.interval = interval

    async def sweep(self) -> None:
        expired = await self.approvals.expire_due()
        if expired:
            log.info("expired %d approval request(s)", expired)
        for thread_key in await repo.threads_needing_work(self.db):
            self.kick(thread_key)

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed (ref %s); trying again later", new_ref())
            await asyncio.sleep(self.interval)
