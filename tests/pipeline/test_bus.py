from __future__ import annotations

import asyncio

import pytest

from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.events import CallEnded, CallStarted


async def test_reliable_subscriber_gets_everything_in_order_with_backpressure() -> None:
    bus = EventBus()
    sub = bus.subscribe("store", maxsize=2, reliable=True)
    received: list[str] = []

    async def consume() -> None:
        async for ev in sub:
            received.append(ev.call_id)
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    for i in range(50):
        await bus.publish(CallStarted(call_id=str(i), source="upload"))
    await bus.close()
    await asyncio.wait_for(task, 5)
    assert received == [str(i) for i in range(50)]
    assert sub.dropped == 0


async def test_best_effort_subscriber_drops_oldest_and_counts() -> None:
    bus = EventBus()
    live = bus.subscribe("ws", maxsize=3, reliable=False)
    for i in range(10):
        await bus.publish(CallEnded(call_id=str(i)))
    assert live.dropped == 7
    got = [live.queue.get_nowait().call_id for _ in range(3)]
    assert got == ["7", "8", "9"]


async def test_names_are_unique_and_unsubscribe() -> None:
    bus = EventBus()
    bus.subscribe("a")
    with pytest.raises(ValueError, match="already exists"):
        bus.subscribe("a")
    bus.unsubscribe("a")
    assert bus.subscribers == []


def test_event_json_is_stable() -> None:
    ev = CallEnded(call_id="c1", reason="bye", utterances=3, duration_ms=1200)
    j = ev.to_json()
    assert j["type"] == "call.ended" and j["at"].endswith("Z")
    assert set(j) == {"type", "call_id", "reason", "utterances", "duration_ms", "at"}
