"""Short-lived stream tokens: a WebSocket credential for one call that is safe in a URL.

Browsers cannot set headers on a WebSocket, so ``POST /v1/conversations/{id}/stream-token``
exchanges an API key for a token good for one call and a few minutes, passed as ``?token=``.
A token is ``base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims part))``; the
server secret lives in the instance settings table, so every process sharing the database
accepts every other's tokens. Nothing is stored per token: it expires by itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

DEFAULT_TTL_S = 300
MAX_TTL_S = 3600
SECRET_SETTING = "delivery.stream_token_secret"


class StreamTokenError(ValueError):
    """A stream token that is malformed, forged, expired or for another call."""


@dataclass(frozen=True, slots=True)
class StreamClaims:
    call_id: str
    tenant_id: str
    key_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def issue(secret: str, claims: StreamClaims) -> str:
    body = json.dumps(
        {"c": claims.call_id, "t": claims.tenant_id, "k": claims.key_id, "e": claims.expires_at},
        separators=(",", ":"),
    ).encode()
    head = _b64(body)
    mac = hmac.new(secret.encode(), head.encode("ascii"), hashlib.sha256).digest()
    return f"{head}.{_b64(mac)}"


def verify(secret: str, token: str, *, call_id: str | None, now: float) -> StreamClaims:
    """The claims of a valid, unexpired token (for ``call_id`` unless that is None, when the
    caller compares ``claims.call_id`` itself); ``StreamTokenError`` otherwise."""
    head, sep, mac_text = token.partition(".")
    if not sep or not head or not mac_text:
        raise StreamTokenError("stream token is malformed")
    try:
        mac = _unb64(mac_text)
        raw = json.loads(_unb64(head))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise StreamTokenError("stream token is malformed") from None
    expected = hmac.new(secret.encode(), head.encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise StreamTokenError("stream token signature is not valid")
    try:
        claims = StreamClaims(
            call_id=str(raw["c"]),
            tenant_id=str(raw["t"]),
            key_id=str(raw["k"]),
            expires_at=int(raw["e"]),
        )
    except (KeyError, TypeError, ValueError):
        raise StreamTokenError("stream token is malformed") from None
    if now >= claims.expires_at:
        raise StreamTokenError("stream token has expired")
    if call_id is not None and claims.call_id != call_id:
        raise StreamTokenError("stream token is for another conversation")
    return claims
