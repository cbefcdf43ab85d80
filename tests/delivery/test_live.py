from __future__ import annotations

import asyncio

from sipscribe.delivery.live import LiveFeed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_subscribers_get_messages_in_order() -> None:
    feed = LiveFeed()
    with feed.subscribe("c1", backlog=False) as sub:
        for n in range(5):
            feed.publish("c1", {"n": n})
        feed.publish("c2", {"other": True})
        got = [await asyncio.wait_for(sub.get(), 1) for _ in range(5)]
    assert got == [{"n": n} for n in range(5)]
    assert feed.subscribers("c1") == 0


async def test_backlog_seeds_new_subscribers_only_when_asked() -> None:
    feed = LiveFeed(backlog=3)
    for n in range(5):
        feed.publish("c1", {"n": n})
    with feed.subscribe("c1") as sub:
        assert [sub.get_nowait() for _ in range(3)] == [{"n": 2}, {"n": 3}, {"n": 4}]
        assert sub.get_nowait() is None
    with feed.subscribe("c1", backlog=False) as sub:
        assert sub.pending() == 0


async def test_slow_subscriber_is_cut_off_without_blocking_others() -> None:
    feed = LiveFeed(queue_size=3)
    slow = feed.subscribe("c1", backlog=False)
    fast = feed.subscribe("c1", backlog=False, queue_size=100)
    for n in range(10):
        feed.publish("c1", {"n": n})
    assert slow.too_slow and slow.cut.is_set()
    assert await slow.get() is None
    assert fast.pending() == 10
    assert feed.disconnected_slow == 1
    assert feed.subscribers("c1") == 1
    fast.close()
    assert await fast.get() == {"n": 0}  # what was queued can still be read


async def test_get_waits_for_a_message() -> None:
    feed = LiveFeed()
    sub = feed.subscribe("c1")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.publish("c1", {"hello": 1})
    assert await asyncio.wait_for(waiter, 1) == {"hello": 1}
    sub.close()
    assert await asyncio.wait_for(sub.get(), 1) is None


async def test_ended_calls_linger_then_go() -> None:
    clock = Clock()
    feed = LiveFeed(linger_s=60, clock=clock)
    sub = feed.subscribe("c1")
    feed.publish("c1", {"type": "call.ended"}, final=True)
    assert feed.ended("c1")
    clock.now = 61
    feed.publish("c2", {"x": 1})  # any activity expires old calls
    assert not feed.ended("c1") and sub.closed
    with feed.subscribe("c1") as again:
        assert again.pending() == 0
