"""Group commit for the one write a Slack ack waits on: storing the incoming message.

A burst of events (50 mentions at once) would otherwise queue 50 transactions behind one
another. Here the first request starts a writer; every request that arrives while it writes
joins the next batch, so a burst costs a handful of transactions and no request waits long.
"""

import asyncio
from collections.abc import Sequence

from storage.database import Database
from storage.messages import Accepted, IncomingRow, accept_messages

MAX_BATCH = 200


class Inbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: list[tuple[IncomingRow, asyncio.Future[Accepted]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, row: IncomingRow) -> Accepted:
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="inbox writer")
        return await asyncio.shield(future)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results: Sequence[Accepted] = await accept_messages(
                    self.db, [row for row, _ in batch]
                )
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), accepted in zip(batch, results, strict=True):
                future.set_result(accepted)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.wait([self._writer])
