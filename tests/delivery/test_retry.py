from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.delivery.retry import (
    RetryPolicy,
    RetryPolicyError,
    backoff_delay,
    next_attempt_at,
    parse_retry_after,
)

POLICY = RetryPolicy(base=1.0, factor=2.0, max_delay=60.0)


def test_ceiling_doubles_up_to_the_cap() -> None:
    assert [POLICY.ceiling(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert POLICY.ceiling(10_000) == 60


def test_jitter_is_the_upper_half() -> None:
    assert backoff_delay(3, policy=POLICY, rand=lambda: 0.0) == 2.0
    assert backoff_delay(3, policy=POLICY, rand=lambda: 1.0) == 4.0
    assert backoff_delay(3, policy=POLICY, rand=lambda: 0.5) == 3.0


@settings(max_examples=300)
@given(attempt=st.integers(1, 200), r=st.floats(0, 1))
def test_delay_within_half_ceiling_and_ceiling(attempt: int, r: float) -> None:
    delay = backoff_delay(attempt, policy=POLICY, rand=lambda: r)
    ceiling = POLICY.ceiling(attempt)
    assert ceiling / 2 <= delay <= ceiling


@settings(max_examples=200)
@given(attempt=st.integers(1, 30))
def test_minimum_delay_never_shrinks(attempt: int) -> None:
    low = backoff_delay(attempt, policy=POLICY, rand=lambda: 0.0)
    assert backoff_delay(attempt + 1, policy=POLICY, rand=lambda: 0.0) >= low


def test_retry_after_raises_the_wait_but_not_past_the_cap() -> None:
    assert backoff_delay(1, policy=POLICY, retry_after=30, rand=lambda: 0.0) == 30
    assert backoff_delay(1, policy=POLICY, retry_after=3600, rand=lambda: 0.0) == 60
    assert backoff_delay(6, policy=POLICY, retry_after=1, rand=lambda: 0.0) == 16


def test_gives_up_when_next_attempt_is_past_expiry() -> None:
    assert next_attempt_at(2, now=100, expires_at=103, policy=POLICY, rand=lambda: 0.5) == 101.5
    assert next_attempt_at(4, now=100, expires_at=103, policy=POLICY, rand=lambda: 0.0) is None
    assert next_attempt_at(50, now=0, expires_at=None, policy=POLICY, rand=lambda: 1.0) == 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 0}, "retry base delay 0 s is not positive"),
        ({"factor": 0.5}, "retry factor 0.5 is below 1"),
        ({"base": 5, "max_delay": 1}, "retry max delay 1 s is below the base delay 5 s"),
    ],
)
def test_bad_policies(kwargs: dict, message: str) -> None:
    with pytest.raises(RetryPolicyError, match=f"^{message}$"):
        RetryPolicy(**kwargs)


def test_attempt_zero_is_refused() -> None:
    with pytest.raises(RetryPolicyError, match=r"^retry attempt 0 is not 1 or more$"):
        POLICY.ceiling(0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("soon", now=0) is None
    # Wed, 21 Oct 2015 07:28:00 GMT = 1445412480
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412400) == 80
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412500) == 0
