"""When to try a failed delivery again: exponential backoff with jitter, bounded by an age.

Attempt ``n`` (1 = the first retry) waits ``min(max_delay, base * factor ** (n - 1))``
seconds, of which the upper half is random ("equal jitter": the delay still grows with every
failure, but many deliveries failing together do not retry in lockstep). A receiver's
``Retry-After`` raises the wait to what it asked for (never above ``max_delay``). Once the next
attempt would fall after the delivery's expiry, the answer is None: give up (dead letter).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


class RetryPolicyError(ValueError):
    """A retry policy with a non-positive delay, factor below 1 or a cap below the base."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff parameters, in seconds."""

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise RetryPolicyError(f"retry base delay {self.base} s is not positive")
        if self.factor < 1:
            raise RetryPolicyError(f"retry factor {self.factor} is below 1")
        if self.max_delay < self.base:
            raise RetryPolicyError(
                f"retry max delay {self.max_delay} s is below the base delay {self.base} s"
            )

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (1-based), before jitter."""
        if attempt < 1:
            raise RetryPolicyError(f"retry attempt {attempt} is not 1 or more")
        # Exponent capped so huge attempt counts cannot overflow a float.
        exponent = min(attempt - 1, 64)
        return float(min(self.max_delay, self.base * self.factor**exponent))


def backoff_delay(
    attempt: int,
    *,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry ``attempt``: half the ceiling plus a random half."""
    ceiling = policy.ceiling(attempt)
    delay = ceiling / 2 + rand() * ceiling / 2
    if retry_after is not None and retry_after > delay:
        delay = min(float(retry_after), policy.max_delay)
    return delay


def next_attempt_at(
    attempt: int,
    *,
    now: float,
    expires_at: float | None,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """When to make retry ``attempt`` (``now`` and the answer share one clock), or None when
    that would be after ``expires_at`` (None: never expires)."""
    when = now + backoff_delay(attempt, policy=policy, retry_after=retry_after, rand=rand)
    if expires_at is not None and when > expires_at:
        return None
    return when


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent
    or unusable; ``now`` is unix time, for the date form."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
