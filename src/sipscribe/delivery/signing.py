"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body bytes.

Every POST carries ``X-Sipscribe-Signature: t=<unix seconds>,v1=<hex digest>`` where the digest
is ``HMAC-SHA256(secret, f"{t}." + body)``. Signing the timestamp with the body lets a receiver
refuse replays: a captured request is only good within the tolerance window (5 minutes by
default), and changing ``t`` breaks the digest. Several ``v1=`` values may appear (while a
secret is being rotated); a receiver accepts the request if any one matches. The scheme is the
one Stripe documents, so existing verification code mostly works as is; ``docs/webhooks.md``
shows a receiver.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Sipscribe-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A signature header that is malformed, stale or does not match the body."""


def signature(body: bytes, *, secret: str | bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}." + body`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(body: bytes, *, secret: str | bytes, timestamp: int) -> str:
    """The ``X-Sipscribe-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},{SCHEME}={signature(body, secret=secret, timestamp=timestamp)}"


def parse_header(value: str) -> tuple[int, list[str]]:
    """``(timestamp, [v1 digests])`` from a header value; ``SignatureError`` if malformed."""
    timestamp: int | None = None
    digests: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"signature header item {item.strip()!r} has no '='")
        if key == "t":
            if not val.isdigit():
                raise SignatureError(f"signature timestamp {val!r} is not a unix time")
            timestamp = int(val)
        elif key == SCHEME:
            digests.append(val)
    if timestamp is None:
        raise SignatureError("signature header has no t= timestamp")
    if not digests:
        raise SignatureError(f"signature header has no {SCHEME}= signature")
    return timestamp, digests


def verify(
    header: str,
    body: bytes,
    *,
    secret: str | bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a signature header against ``body`` as a receiver would; returns its timestamp.

    Raises ``SignatureError`` when the header is malformed, older or newer than ``tolerance``
    seconds from ``now``, or no digest matches.
    """
    timestamp, digests = parse_header(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp {timestamp} is {abs(now - timestamp):.0f} s from now,"
            f" outside the {tolerance:.0f} s window"
        )
    expected = signature(body, secret=secret, timestamp=timestamp)
    if not any(hmac.compare_digest(expected, d) for d in digests):
        raise SignatureError("signature does not match the body")
    return timestamp
