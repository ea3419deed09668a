"""The SQLite write lock: one holder, urgent waiters first, FIFO within a class, cancel-safe."""

import asyncio

import pytest

from storage.database import PriorityLock


async def test_urgent_waiters_go_before_earlier_normal_ones() -> None:
    lock = PriorityLock()
    order: list[str] = []
    await lock.acquire()

    async def take(name: str, urgent: bool) -> None:
        await lock.acquire(urgent=urgent)
        order.append(name)
        lock.release()

    tasks = [
        asyncio.create_task(take("normal-1", False)),
        asyncio.create_task(take("normal-2", False)),
        asyncio.create_task(take("urgent-1", True)),
        asyncio.create_task(take("urgent-2", True)),
    ]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["urgent-1", "urgent-2", "normal-1", "normal-2"]


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = PriorityLock()
    await lock.acquire()
    waiting = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    lock.release()
    await asyncio.wait_for(lock.acquire(urgent=True), timeout=1)
    lock.release()


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_passes_it_on() -> None:
    lock = PriorityLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # hands the lock to `first`
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=1)
    lock.release()
