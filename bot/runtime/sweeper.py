"""Periodic housekeeping: remind, escalate and expire undecided approvals, and pick up threads
nobody is working on."""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from bot import log_context
from bot.approvals.approvals import Approvals
from bot.config import StorageConfig
from bot.runtime.background import new_ref
from bot.runtime.interruptions import Interruptions
from bot.runtime.outbox import Outbox
from storage import audit
from storage.database import Database
from storage.models import utcnow
from storage.queue import threads_needing_work
from storage.retention import EVENT_IDS_KEPT, purge, purge_event_ids

PURGE_EVERY = 3600.0

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        *,
        approvals: Approvals,
        interruptions: Interruptions,
        outbox: Outbox,
        db: Database,
        kick: Callable[[str], None],
        interval: float,
        retention: StorageConfig | None = None,
    ) -> None:
        self.retention = retention
        self._next_purge = 0.0
        self.approvals = approvals
        self.interruptions = interruptions
        self.outbox = outbox
        self.db = db
        self.kick = kick
        self.interval = interval

    async def sweep(self) -> None:
        recovered = await self.interruptions.recover()
        if recovered:
            log.warning("took over %d job(s) of a process that stopped", recovered)
        reminded, escalated = await self.approvals.take_due_steps()
        if reminded or escalated:
            log.info("reminded %d and escalated %d approval request(s)", reminded, escalated)
        expired = await self.approvals.expire_due()
        if expired:
            log.info("expired %d approval request(s)", expired)
        for thread_key in await threads_needing_work(self.db):
            self.kick(thread_key)
        await self.outbox.sweep()
        await self.purge_when_due()

    async def purge_when_due(self) -> None:
        """Retention runs at most hourly: it walks whole tables, the other sweeps do not.

        Event ids go after a few days whatever `retain_days` says: each message the bot took
        leaves one.
        """
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        counts = await purge_event_ids(self.db, older_than=utcnow() - EVENT_IDS_KEPT)
        if self.retention is not None and self.retention.retain_days is not None:
            cutoff = utcnow() - timedelta(days=self.retention.retain_days)
            history = self.retention.purge_history
            counts += await purge(self.db, older_than=cutoff, purge_history=history)
        if counts.total:
            log.info("retention purged %s", counts)
        if self.retention is not None and self.retention.audit_retain_days is not None:
            cutoff = utcnow() - timedelta(days=self.retention.audit_retain_days)
            removed = await audit.purge_before(self.db, cutoff)
            if removed:
                log.info("audit retention purged %d entries", removed)

    async def sweep_safely(self) -> None:
        try:
            with log_context.bound(request_id=f"sweep-{log_context.new_request_id()}"):
                await self.sweep()
        except Exception:
            log.exception("sweep failed (ref %s); trying again later", new_ref())

    async def run(self) -> None:
        """Sweep every interval; `Threadgate.start` did the first sweep already."""
        while True:
            await asyncio.sleep(self.interval)
            await self.sweep_safely()
