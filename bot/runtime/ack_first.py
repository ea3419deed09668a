"""Slack requests waiting for their ack go before new agent work on the event loop.

Everything shares one event loop, and asyncio has no priorities: in a burst of 50 mentions,
the runs started by the first acks compete for the loop with the 49 requests still waiting
for theirs, and the last acks come late. Slack retries an event that is not acked within 3
seconds, which only adds load. So a thread's worker, before each step, waits until no request
is in flight, for at most `max_wait`: work queued in the database loses nothing by starting a
few milliseconds later, and sustained traffic cannot starve it.
"""

import asyncio
import contextlib
from collections.abc import Iterator


class AckFirst:
    def __init__(self, *, max_wait: float = 0.2) -> None:
        self.max_wait = max_wait
        self._in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around the handling of one Slack request, until its response is ready."""
        self._in_flight += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._quiet.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def wait_quiet(self) -> None:
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait):
                await self._quiet.wait()
