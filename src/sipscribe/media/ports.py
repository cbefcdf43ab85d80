"""RTP port pairs from a configured range: even RTP port, RTCP on the next one.

A port is never handed out twice while in use. Released ports go to the back of the
free list, so a port is reused as late as possible and stray packets of a finished
call do not land in a new one. Ports that fail to bind (taken by another program) are
set aside and retried only after every other port.
"""

from __future__ import annotations

from collections import deque


class PortsExhausted(RuntimeError):
    """Every RTP port of the range is in use."""


class PortAllocator:
    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        if first + 1 > high:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd pair")
        self.low, self.high = low, high
        self._free: deque[int] = deque(range(first, high, 2))
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._in_use)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> int:
        """The RTP port of a free pair (RTCP is that port + 1)."""
        if not self._free:
            raise PortsExhausted(
                f"all {self.capacity} RTP port pairs of {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        if port not in self._in_use:
            raise ValueError(f"RTP port {port} was not allocated")
        self._in_use.remove(port)
        self._free.append(port)

    def set_aside(self, port: int) -> None:
        """A port that could not be bound: back of the line, not in use."""
        self.release(port)
