"""Wrap-around arithmetic for RTP sequence numbers (16 bit) and timestamps (32 bit).

RTP counters wrap: sequence numbers every 65,536 packets (about 22 minutes at 20 ms) and
timestamps every 2^32 ticks (about 12 hours at 8 kHz, 25 hours at 48 kHz), and both start at a
random value (RFC 3550 §5.1), so a wrap is likely in any long call. All comparisons in the
media layer go through these helpers, which use serial-number arithmetic (RFC 1982): ``a`` is
"after" ``b`` when the forward distance from ``b`` to ``a`` is less than half the space.
"""

from __future__ import annotations

__all__ = [
    "ExtendedSequence",
    "uint16_add",
    "uint16_diff",
    "uint16_gt",
    "uint32_add",
    "uint32_diff",
    "uint32_gt",
]

_U16 = 1 << 16
_U32 = 1 << 32


def uint16_add(a: int, b: int) -> int:
    """``a + b`` modulo 2^16 (``b`` may be negative)."""
    return (a + b) & 0xFFFF


def uint16_diff(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a`` in [-32768, 32767]: ``uint16_diff(1, 65535) == 2``."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def uint16_gt(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (serial-number order)."""
    return uint16_diff(a, b) > 0


def uint32_add(a: int, b: int) -> int:
    """``a + b`` modulo 2^32 (``b`` may be negative)."""
    return (a + b) & 0xFFFFFFFF


def uint32_diff(a: int, b: int) -> int:
    """Signed distance from timestamp ``b`` to ``a`` in [-2^31, 2^31 - 1]."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def uint32_gt(a: int, b: int) -> bool:
    """True if timestamp ``a`` comes after ``b`` (serial-number order)."""
    return uint32_diff(a, b) > 0


class ExtendedSequence:
    """Turns 16-bit sequence numbers into a monotonic extended counter (RFC 3550 §A.1).

    The extended value is ``cycles * 65536 + seq`` where ``cycles`` counts wraps of the highest
    sequence number seen. Each new number is placed at its serial-number distance from that
    highest one, so a packet reordered across a wrap (65535 arriving after 0) gets the
    extended value just below, not one 65,536 ahead. Packets from before the first one seen,
    reordered across a wrap, extend to a negative value rather than being folded forward.
    """

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """Highest extended sequence number seen, or None before the first packet."""
        return self._highest

    @property
    def cycles(self) -> int:
        """Number of times the highest sequence number has wrapped past 65535."""
        return 0 if self._highest is None else self._highest >> 16

    def extend(self, seq: int) -> int:
        """Extended value of ``seq`` relative to the highest seen, without recording it."""
        if self._highest is None:
            return seq & 0xFFFF
        return self._highest + uint16_diff(seq, self._highest & 0xFFFF)

    def update(self, seq: int) -> int:
        """Record ``seq`` and return its extended value; the highest only moves forward."""
        ext = self.extend(seq)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        return ext

    def reset(self, seq: int | None = None) -> None:
        """Forget history (a new SSRC or a re-synced sender), optionally starting at ``seq``."""
        self._highest = None if seq is None else seq & 0xFFFF
