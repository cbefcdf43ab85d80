"""Timer values derived from T1/T2/T4 (RFC 3261 Table 4)."""

from __future__ import annotations

import pytest

from sipscribe.sip.timers import DEFAULT_TIMERS, TimerConfig


def test_rfc_defaults() -> None:
    timers = DEFAULT_TIMERS
    assert (timers.t1, timers.t2, timers.t4) == (0.5, 4.0, 5.0)
    assert timers.transaction_timeout == 32.0
    assert timers.timer_d(reliable=False) == 32.0 and timers.timer_d(reliable=True) == 0.0
    assert timers.timer_i(reliable=False) == 5.0 and timers.timer_i(reliable=True) == 0.0
    assert timers.timer_j(reliable=False) == 32.0 and timers.timer_j(reliable=True) == 0.0
    assert timers.timer_k(reliable=False) == 5.0 and timers.timer_k(reliable=True) == 0.0


def test_backoff() -> None:
    timers = TimerConfig(t1=0.1, t2=0.3)
    assert [timers.next_interval(x) for x in (0.1, 0.2, 0.3)] == [0.2, 0.3, 0.3]
    assert timers.next_interval(0.2, cap=False) == 0.4
    assert timers.timer_d(reliable=False) == 32.0  # "at least 32 s" whatever T1 is
    assert TimerConfig(t1=1.0, t2=4.0).timer_d(reliable=False) == 64.0


@pytest.mark.parametrize(("t1", "t2", "t4"), [(0.0, 4.0, 5.0), (5.0, 4.0, 5.0), (0.5, 4.0, 0.0)])
def test_invalid_timers(t1: float, t2: float, t4: float) -> None:
    with pytest.raises(ValueError, match=r"SIP timer"):
        TimerConfig(t1, t2, t4)
