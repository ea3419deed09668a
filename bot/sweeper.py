"""Periodic housekeeping: expire undecided approvals and pick up threads nobody is working on."""

import asyncio
import logging
from collections.abc import Callable

from bot.approvals import Approvals
from bot.background import new_ref
from bot.interruptions import Interruptions
from storage import repositories as repo
from storage.database import Database

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        *,
        approvals: Approvals,
        interruptions: Interruptions,
        db: Database,
        kick: Callable[[str], None],
        interval: float,
    ) -> None:
        self.approvals = approvals
        self.interruptions = interruptions
        self.db = db
        self.kick = kick
        self.interval = interval

    async def sweep(self) -> None:
        recovered = await self.interruptions.recover()
        if recovered:
            log.warning("took over %d job(s) of a process that stopped", recovered)
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
