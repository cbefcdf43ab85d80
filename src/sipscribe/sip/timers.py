"""SIP timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.4).

Every transaction timer derives from three base values: T1 (round-trip
estimate), T2 (cap on non-INVITE and response retransmission intervals) and
T4 (how long a message may linger in the network). They are configurable
because tests and lab networks want them small and carriers sometimes want
them large. Over reliable transports the "wait for stray retransmissions"
timers (D, I, J, K) are zero — nothing can be retransmitted by the network.

Deadlines are plain floats on the caller's clock (`now`); nothing here sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TIMERS", "TimerConfig"]


@dataclass(frozen=True)
class TimerConfig:
    """T1/T2/T4 and the timers derived from them, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError("SIP timers need 0 < T1 <= T2")
        if self.t4 <= 0:
            raise ValueError("SIP timer T4 must be positive")

    @property
    def transaction_timeout(self) -> float:
        """64*T1: Timers B, F, H, J(unreliable), L, M and the 2xx-until-ACK limit."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """INVITE client, Completed: absorb final-response retransmissions (>= 32 s)."""
        return 0.0 if reliable else max(32.0, self.transaction_timeout)

    def timer_i(self, reliable: bool) -> float:
        """INVITE server, Confirmed: absorb ACK retransmissions."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Non-INVITE server, Completed: absorb request retransmissions."""
        return 0.0 if reliable else self.transaction_timeout

    def timer_k(self, reliable: bool) -> float:
        """Non-INVITE client, Completed: absorb response retransmissions."""
        return 0.0 if reliable else self.t4

    def next_interval(self, interval: float, *, cap: bool = True) -> float:
        """Double a retransmission interval, capped at T2 unless `cap` is False
        (Timer A doubles without a cap, §17.1.1.2)."""
        return 2 * interval if not cap else min(2 * interval, self.t2)


DEFAULT_TIMERS = TimerConfig()
