"""A small in-process async event bus.

Each subscriber owns a bounded queue. *Reliable* subscribers (storage, at-least-once
delivery) apply backpressure: ``publish`` waits for room, so nothing they asked for is
lost. *Best-effort* subscribers (live views) never slow the pipeline: when full, their
oldest event is dropped and counted. Events of one call reach a subscriber in the order
they were published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sipscribe.pipeline.events import PipelineEvent

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Subscription:
    name: str
    reliable: bool
    queue: asyncio.Queue[PipelineEvent | None]
    dropped: int = 0
    closed: bool = False

    async def get(self) -> PipelineEvent | None:
        """Next event, or None once the bus is closed and the queue drained."""
        return await self.queue.get()

    async def __aiter__(self) -> AsyncIterator[PipelineEvent]:
        while (event := await self.queue.get()) is not None:
            yield event


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, Subscription] = {}

    def subscribe(self, name: str, *, maxsize: int = 10_000, reliable: bool = True) -> Subscription:
        if name in self._subs:
            raise ValueError(f"a subscriber named {name!r} already exists")
        sub = Subscription(name, reliable, asyncio.Queue(maxsize=maxsize))
        self._subs[name] = sub
        return sub

    def unsubscribe(self, name: str) -> None:
        sub = self._subs.pop(name, None)
        if sub is not None:
            sub.closed = True

    @property
    def subscribers(self) -> list[Subscription]:
        return list(self._subs.values())

    async def publish(self, event: PipelineEvent) -> None:
        for sub in list(self._subs.values()):
            if sub.reliable:
                await sub.queue.put(event)
                continue
            while True:
                try:
                    sub.queue.put_nowait(event)
                    break
                except asyncio.QueueFull:
                    sub.queue.get_nowait()
                    sub.dropped += 1
                    if sub.dropped == 1 or sub.dropped % 1000 == 0:
                        log.warning(
                            "bus subscriber %s is slow: %d events dropped", sub.name, sub.dropped
                        )

    async def close(self) -> None:
        """Tell every subscriber the stream of events has ended."""
        for sub in list(self._subs.values()):
            if sub.reliable:
                await sub.queue.put(None)
            else:
                while True:
                    try:
                        sub.queue.put_nowait(None)
                        break
                    except asyncio.QueueFull:
                        sub.queue.get_nowait()
                        sub.dropped += 1
