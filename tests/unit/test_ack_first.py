"""Agent work waits for the acks of Slack requests in flight, but never for long."""

import asyncio

from bot.runtime.ack_first import AckFirst


async def test_with_no_request_in_flight_work_goes_at_once() -> None:
    acks = AckFirst(max_wait=30)
    await asyncio.wait_for(acks.wait_quiet(), timeout=1)


async def test_work_waits_until_the_last_request_in_flight_is_answered() -> None:
    acks = AckFirst(max_wait=30)
    with acks.request():
        waiting = asyncio.create_task(acks.wait_quiet())
        await asyncio.sleep(0)  # one turn of the loop: the task now waits on the event
        with acks.request():
            pass
        await asyncio.sleep(0)
        assert acks.in_flight == 1
        assert not waiting.done()
    await asyncio.wait_for(waiting, timeout=1)
    assert acks.in_flight == 0


async def test_a_request_that_never_ends_cannot_hold_work_up_beyond_max_wait() -> None:
    acks = AckFirst(max_wait=0.01)
    with acks.request():
        await asyncio.wait_for(acks.wait_quiet(), timeout=5)
        assert acks.in_flight == 1


async def test_a_request_that_fails_still_leaves() -> None:
    acks = AckFirst(max_wait=30)
    try:
        with acks.request():
            raise RuntimeError("listener failed")
    except RuntimeError:
        pass
    assert acks.in_flight == 0
    await asyncio.wait_for(acks.wait_quiet(), timeout=1)
