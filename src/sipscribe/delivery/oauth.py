"""OAuth2 client credentials (RFC 6749 §4.4) for webhook targets.

One ``ClientCredentials`` per target caches its access token until shortly before
``expires_in`` runs out; concurrent deliveries share one fetch (a lock, re-checked inside). When
the receiver answers 401 the sender calls ``invalidate(token)`` and asks again, which fetches a
fresh token once even if many requests saw the 401 together. The token request goes through the
target's own HTTP client, so it gets the same SSRF guard, TLS trust and client certificate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx

from sipscribe.delivery.errors import AuthenticationFailed, map_exceptions

#: Refresh this long before the token's stated expiry (clock skew, request time).
EXPIRY_SKEW_S = 30.0
#: Cached this long when the token endpoint does not say (RFC 6749 §5.1 makes it optional).
DEFAULT_LIFETIME_S = 300.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


def basic_credentials(client_id: str, client_secret: str) -> str:
    """``Basic …`` with both parts form-urlencoded first, as RFC 6749 §2.3.1 requires."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed body (a hostile receiver cannot fill memory)."""
    try:
        return response.content[:limit]  # already read (e.g. a mock transport's response)
    except httpx.ResponseNotRead:
        pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


class ClientCredentials:
    """A token cache for one target; ``token(client)`` returns a valid access token."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        audience: str | None = None,
        client_auth: str = "basic",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.audience = audience
        self.client_auth = client_auth
        self.clock = clock
        self.fetches = 0
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def cached(self) -> str | None:
        """The cached token if it is still good."""
        if self._token is not None and self.clock() < self._expires_at:
            return self._token
        return None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the receiver refused it); a newer token is kept."""
        if self._token == token:
            self._token = None

    async def token(self, client: httpx.AsyncClient) -> str:
        token = self.cached()
        if token is not None:
            return token
        async with self._lock:
            token = self.cached()
            if token is None:
                token = await self._fetch(client)
            return token

    async def _fetch(self, client: httpx.AsyncClient) -> str:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            headers["Authorization"] = basic_credentials(self.client_id, self.client_secret)
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        self.fetches += 1
        what = f"POST {_shown(self.token_url)}"
        request = client.build_request("POST", self.token_url, data=form, headers=headers)
        with map_exceptions(what):
            response = await client.send(request, stream=True)
            try:
                body = await read_limited(response, MAX_TOKEN_RESPONSE_BYTES)
            finally:
                await response.aclose()
        if response.status_code != 200:
            snippet = body[:200].decode("utf-8", "replace")
            raise AuthenticationFailed(
                f"{what}: token endpoint answered {response.status_code}: {snippet}"
            )
        token, lifetime = parse_token_response(body, what=what)
        self._token = token
        self._expires_at = self.clock() + max(0.0, lifetime - EXPIRY_SKEW_S)
        return token


def parse_token_response(body: bytes, *, what: str = "token endpoint") -> tuple[str, float]:
    """``(access_token, lifetime seconds)`` from a token response (RFC 6749 §5.1)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise AuthenticationFailed(f"{what}: token response is not JSON") from None
    if not isinstance(data, dict):
        raise AuthenticationFailed(f"{what}: token response is not a JSON object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthenticationFailed(f"{what}: token response has no access_token")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise AuthenticationFailed(f"{what}: token type {token_type!r} is not Bearer")
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in < 0:
        expires_in = DEFAULT_LIFETIME_S
    return token, float(expires_in)


def _shown(url: str) -> str:
    """A URL for logs and errors: no query string (it may hold a secret)."""
    return str(httpx.URL(url).copy_with(query=None))
