from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.delivery.signing import SignatureError, parse_header, sign, signature, verify

SECRET = "whsec_test_secret_0123456789"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"transcript"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(body, secret=SECRET, timestamp=1700000000) == expected
    assert sign(body, secret=SECRET, timestamp=1700000000) == f"t=1700000000,v1={expected}"


@settings(max_examples=200)
@given(body=st.binary(max_size=2000), timestamp=st.integers(0, 2**40))
def test_sign_then_verify_round_trips(body: bytes, timestamp: int) -> None:
    header = sign(body, secret=SECRET, timestamp=timestamp)
    assert verify(header, body, secret=SECRET, now=timestamp + 299) == timestamp


@settings(max_examples=200)
@given(body=st.binary(min_size=1, max_size=500), flip=st.integers(0, 499))
def test_any_changed_byte_fails(body: bytes, flip: int) -> None:
    header = sign(body, secret=SECRET, timestamp=1000)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    with pytest.raises(SignatureError, match="does not match the body"):
        verify(header, tampered, secret=SECRET, now=1000)


def test_replay_outside_window_is_refused() -> None:
    header = sign(b"{}", secret=SECRET, timestamp=1000)
    with pytest.raises(
        SignatureError,
        match=r"^signature timestamp 1000 is 301 s from now, outside the 300 s window$",
    ):
        verify(header, b"{}", secret=SECRET, now=1301)


def test_changed_timestamp_breaks_signature() -> None:
    header = sign(b"{}", secret=SECRET, timestamp=1000).replace("t=1000", "t=1001")
    with pytest.raises(SignatureError, match="does not match"):
        verify(header, b"{}", secret=SECRET, now=1001)


def test_several_signatures_accept_any_match() -> None:
    good = sign(b"x", secret=SECRET, timestamp=5).split(",")[1]
    header = f"t=5,v1={'0' * 64},{good}"
    assert verify(header, b"x", secret=SECRET, now=5) == 5


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("v1=abc", "signature header has no t= timestamp"),
        ("t=5", "signature header has no v1= signature"),
        ("t=five,v1=ab", "signature timestamp 'five' is not a unix time"),
        ("t=5,junk", "signature header item 'junk' has no '='"),
    ],
)
def test_malformed_headers(header: str, message: str) -> None:
    with pytest.raises(SignatureError, match=f"^{message}$"):
        parse_header(header)


def test_the_documented_receiver_snippet_verifies_our_signatures() -> None:
    """docs/webhooks.md shows receivers how to verify; that code must accept what we send and
    refuse tampering and replays."""
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", doc, re.S)
    assert snippet is not None
    namespace: dict = {}
    exec(snippet.group(1), namespace)
    check = namespace["verify"]
    now = int(time.time())
    body = b'{"type":"transcript"}'
    header = sign(body, secret=SECRET, timestamp=now)
    assert check(SECRET, header, body)
    assert not check(SECRET, header, body + b" ")
    assert not check("another-secret", header, body)
    assert not check(SECRET, sign(body, secret=SECRET, timestamp=now - 301), body)
    assert not check(SECRET, "garbage", body)
