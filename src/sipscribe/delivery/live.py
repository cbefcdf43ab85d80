"""The live feed: per-call fan-out of events to WebSocket clients, never blocking the sender.

``LiveFeed.publish`` is synchronous and O(subscribers): each subscriber has a bounded queue,
and one that is full is cut off (``too_slow``) instead of making the publisher wait or dropping
events from the middle of its stream, which would be a silent gap. The WebSocket route closes
such a client with 4008 and it can resume with ``?after=`` from its last sequence.

Each call keeps a short backlog of its most recent messages. A subscriber is seeded with it, so
a client that reads the store and then follows the feed cannot miss an event published between
the moment the delivery service saw it and the moment the storage subscriber wrote it (the two
are separate bus subscribers and may lag each other). Backlogs of ended calls are kept for
``linger_s`` seconds for late resumers, then dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BACKLOG = 512
DEFAULT_QUEUE = 1000
DEFAULT_LINGER_S = 120.0


class FeedSubscription:
    """One client's view of one call: ``await get()`` until it returns None (closed)."""

    def __init__(self, feed: LiveFeed, call_id: str, maxsize: int) -> None:
        self.feed = feed
        self.call_id = call_id
        self.maxsize = maxsize
        self._queue: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        #: Set when the subscriber is cut off for falling ``maxsize`` messages behind.
        self.cut = asyncio.Event()
        self.too_slow = False
        self.closed = False

    def _offer(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self.too_slow = True
            self.cut.set()
            self.close()
            return
        self._queue.append(message)
        self._ready.set()

    def pending(self) -> int:
        return len(self._queue)

    def get_nowait(self) -> dict[str, Any] | None:
        if self._queue:
            return self._queue.popleft()
        return None

    async def get(self) -> dict[str, Any] | None:
        """The next message, or None once closed (a too-slow client gets None at once)."""
        while True:
            if self.too_slow:
                return None
            if self._queue:
                return self._queue.popleft()
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self.feed._remove(self)

    def __enter__(self) -> FeedSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Call:
    backlog: deque[dict[str, Any]]
    subscribers: list[FeedSubscription] = field(default_factory=list)
    ended_at: float | None = None


class LiveFeed:
    """Hub of live call events; fed by ``DeliveryService``, read by the WebSocket route."""

    def __init__(
        self,
        *,
        backlog: int = DEFAULT_BACKLOG,
        queue_size: int = DEFAULT_QUEUE,
        linger_s: float = DEFAULT_LINGER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backlog = backlog
        self.queue_size = queue_size
        self.linger_s = linger_s
        self.clock = clock
        self._calls: dict[str, _Call] = {}
        self.disconnected_slow = 0

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(deque(maxlen=self.backlog))
        return call

    def publish(self, call_id: str, message: dict[str, Any], *, final: bool = False) -> None:
        """Hand ``message`` to every subscriber of the call; ``final`` marks the call ended."""
        self._expire()
        call = self._call(call_id)
        call.backlog.append(message)
        for sub in list(call.subscribers):
            sub._offer(message)
            if sub.too_slow:
                self.disconnected_slow += 1
        if final:
            call.ended_at = self.clock()

    def subscribe(
        self, call_id: str, *, backlog: bool = True, queue_size: int | None = None
    ) -> FeedSubscription:
        """A subscription, holding the call's recent backlog first unless ``backlog`` is off."""
        self._expire()
        call = self._call(call_id)
        sub = FeedSubscription(self, call_id, queue_size or self.queue_size)
        if backlog:
            sub._queue.extend(call.backlog)
        if sub._queue:
            sub._ready.set()
        call.subscribers.append(sub)
        return sub

    def subscribers(self, call_id: str) -> int:
        call = self._calls.get(call_id)
        return 0 if call is None else len(call.subscribers)

    def ended(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.ended_at is not None

    def _remove(self, sub: FeedSubscription) -> None:
        call = self._calls.get(sub.call_id)
        if call is not None and sub in call.subscribers:
            call.subscribers.remove(sub)

    def _expire(self) -> None:
        now = self.clock()
        for call_id, call in list(self._calls.items()):
            if call.ended_at is not None and now - call.ended_at > self.linger_s:
                for sub in list(call.subscribers):
                    sub.close()
                del self._calls[call_id]
