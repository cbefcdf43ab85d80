from __future__ import annotations

import pytest

from sipscribe.delivery.tokens import StreamClaims, StreamTokenError, issue, new_secret, verify

SECRET = new_secret()
CLAIMS = StreamClaims("call-1", "tenant-1", "key-1", expires_at=1000)


def test_round_trip() -> None:
    token = issue(SECRET, CLAIMS)
    assert verify(SECRET, token, call_id="call-1", now=999) == CLAIMS
    assert verify(SECRET, token, call_id=None, now=999) == CLAIMS


@pytest.mark.parametrize(
    ("token", "call_id", "now", "message"),
    [
        (issue(SECRET, CLAIMS), "call-1", 1000, "stream token has expired"),
        (issue(SECRET, CLAIMS), "call-2", 10, "stream token is for another conversation"),
        (issue("other-secret", CLAIMS), "call-1", 10, "stream token signature is not valid"),
        ("garbage", "call-1", 10, "stream token is malformed"),
        ("a.b", "call-1", 10, "stream token is malformed"),
    ],
)
def test_refusals(token: str, call_id: str, now: float, message: str) -> None:
    with pytest.raises(StreamTokenError, match=f"^{message}$"):
        verify(SECRET, token, call_id=call_id, now=now)


def test_tampered_claims_fail() -> None:
    token = issue(SECRET, CLAIMS)
    _head, mac = token.split(".")
    forged_head = issue(SECRET, StreamClaims("call-1", "tenant-2", "key-1", 1000)).split(".")[0]
    with pytest.raises(StreamTokenError, match="signature is not valid"):
        verify(SECRET, f"{forged_head}.{mac}", call_id="call-1", now=10)
