"""Per-key request rate limiting: a sans-I/O fixed-window counter.

Each API key gets a window of ``window`` seconds starting at its first request; up to ``limit``
requests pass in it, further ones are refused until it ends. A refused request does not count.
The clock is an argument, so tests step time instead of sleeping.

The counters live in this process's memory: with several server processes behind one balancer
each enforces the limit on its own share of the traffic (the effective limit is then
``processes × limit``). One process per host is how sipscribe is meant to run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_WINDOW_SECONDS = 60.0
# Windows of keys that went quiet are dropped once this many keys are tracked.
PRUNE_THRESHOLD = 10_000


@dataclass(frozen=True)
class RateLimitDecision:
    """The outcome of one request against its key's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the current window ends

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused client should wait (at least 1)."""
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` headers; ``Reset`` is in seconds from now, rounded up."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
        }


@dataclass
class _Window:
    started: float
    count: int


class FixedWindowRateLimiter:
    """Counts requests per key; ``hit`` decides one request."""

    def __init__(self, *, window: float = DEFAULT_WINDOW_SECONDS) -> None:
        if window <= 0:
            raise ValueError(f"rate limit window must be positive, got {window}")
        self.window = window
        self._windows: dict[str, _Window] = {}

    def hit(self, key: str, *, limit: int, now: float) -> RateLimitDecision:
        """Count one request of ``key`` at time ``now`` against ``limit`` per window."""
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1, got {limit}")
        current = self._windows.get(key)
        if current is None or now >= current.started + self.window or now < current.started:
            if len(self._windows) >= PRUNE_THRESHOLD:
                self._prune(now)
            current = _Window(started=now, count=0)
            self._windows[key] = current
        # Clamped: float rounding must not announce a 61 s reset for a 60 s window.
        reset_after = min(self.window, max(0.0, current.started + self.window - now))
        if current.count >= limit:
            return RateLimitDecision(False, limit, 0, reset_after)
        current.count += 1
        return RateLimitDecision(True, limit, limit - current.count, reset_after)

    def reset(self, key: str) -> None:
        """Forget a key's window (e.g. when the key is revoked)."""
        self._windows.pop(key, None)

    def tracked(self) -> int:
        """How many keys have a window (for tests and metrics)."""
        return len(self._windows)

    def _prune(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now >= w.started + self.window]
        for key in expired:
            del self._windows[key]
