"""One delivery per thread at a time, and no lock left behind."""

import asyncio

from bot.runtime.thread_locks import ThreadLocks


async def test_a_newcomer_waits_behind_a_waiter_after_the_holder_leaves() -> None:
    locks = ThreadLocks()
    inside: list[str] = []
    most = 0
    release = {name: asyncio.Event() for name in ("a", "b", "c")}

    async def deliver(name: str) -> None:
        nonlocal most
        async with locks.hold("C1:1.0"):
            inside.append(name)
            most = max(most, len(inside))
            await release[name].wait()
            inside.remove(name)

    a = asyncio.create_task(deliver("a"))
    await asyncio.sleep(0)
    b = asyncio.create_task(deliver("b"))
    await asyncio.sleep(0)
    release["a"].set()
    await a  # b is woken but has not run yet
    c = asyncio.create_task(deliver("c"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inside == ["b"]
    release["b"].set()
    release["c"].set()
    await asyncio.gather(b, c)
    assert most == 1
    assert len(locks) == 0


async def test_other_threads_do_not_wait() -> None:
    locks = ThreadLocks()
    async with locks.hold("C1:1.0"):
        await asyncio.wait_for(_enter(locks, "C1:2.0"), timeout=1)
    assert len(locks) == 0


async def test_a_holder_that_fails_or_is_cancelled_leaves_no_lock() -> None:
    locks = ThreadLocks()
    try:
        async with locks.hold("C1:1.0"):
            raise RuntimeError("send failed")
    except RuntimeError:
        pass
    async with locks.hold("C1:1.0"):
        waiter = asyncio.create_task(_enter(locks, "C1:1.0"))
        await asyncio.sleep(0)
        waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert len(locks) == 0


async def _enter(locks: ThreadLocks, key: str) -> None:
    async with locks.hold(key):
        pass
