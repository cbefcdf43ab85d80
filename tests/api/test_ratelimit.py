"""The sans-I/O fixed-window rate limiter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.api import ratelimit
from sipscribe.api.ratelimit import FixedWindowRateLimiter, RateLimitDecision


def test_window_counts_and_resets() -> None:
    limiter = FixedWindowRateLimiter(window=60)
    decisions = [limiter.hit("k", limit=2, now=100.0 + i) for i in range(3)]
    assert decisions == [
        RateLimitDecision(True, 2, 1, 60.0),
        RateLimitDecision(True, 2, 0, 59.0),
        RateLimitDecision(False, 2, 0, 58.0),
    ]
    assert decisions[2].retry_after == 58
    assert limiter.hit("k", limit=2, now=160.0) == RateLimitDecision(True, 2, 1, 60.0)


def test_headers_round_reset_up() -> None:
    decision = RateLimitDecision(True, 10, 4, 12.2)
    assert decision.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "13",
    }
    assert RateLimitDecision(False, 1, 0, 0.01).retry_after == 1


def test_keys_are_independent_and_reset_forgets() -> None:
    limiter = FixedWindowRateLimiter()
    assert limiter.hit("a", limit=1, now=0).allowed
    assert not limiter.hit("a", limit=1, now=1).allowed
    assert limiter.hit("b", limit=1, now=1).allowed
    limiter.reset("a")
    assert limiter.hit("a", limit=1, now=2).allowed


def test_clock_going_backwards_starts_a_new_window() -> None:
    limiter = FixedWindowRateLimiter()
    limiter.hit("a", limit=1, now=500)
    assert limiter.hit("a", limit=1, now=10).allowed


def test_quiet_keys_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "PRUNE_THRESHOLD", 3)
    limiter = FixedWindowRateLimiter(window=10)
    for key in "abc":
        limiter.hit(key, limit=5, now=0)
    limiter.hit("d", limit=5, now=11)
    assert limiter.tracked() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"window": 0}, "rate limit window must be positive, got 0")],
)
def test_bad_window(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        FixedWindowRateLimiter(**kwargs)
    assert str(info.value) == message


def test_bad_limit() -> None:
    with pytest.raises(ValueError) as info:
        FixedWindowRateLimiter().hit("k", limit=0, now=0)
    assert str(info.value) == "rate limit must be at least 1, got 0"


@given(
    limit=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=80),
)
@settings(max_examples=300)
def test_never_more_than_limit_per_window(limit: int, gaps: list[float]) -> None:
    """Model check: allowed requests within any one window never exceed the limit, and a
    request is refused only when the window already holds ``limit`` allowed ones."""
    limiter = FixedWindowRateLimiter(window=60)
    now = 0.0
    window_start: float | None = None
    allowed_in_window = 0
    for gap in gaps:
        now += gap
        if window_start is None or now >= window_start + 60:
            window_start, allowed_in_window = now, 0
        decision = limiter.hit("k", limit=limit, now=now)
        assert decision.allowed is (allowed_in_window < limit)
        if decision.allowed:
            allowed_in_window += 1
        assert decision.remaining == limit - allowed_in_window
        assert 0 < decision.reset_after <= 60
