"""Sending one webhook: a thin async function over the target's own ``httpx.AsyncClient``.

Each target gets a ``TargetClient``: an HTTP client whose transport trusts the target's CA
bundle, presents its client certificate (mutual TLS), resolves and checks addresses itself
(``ssrf.GuardedNetworkBackend``), never follows redirects and keeps at most ``max_in_flight``
connections. ``post`` signs the exact body bytes, adds the target's authentication and maps
every failure into the ``DeliveryError`` tree. Deciding whether to retry is not its business.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpcore
import httpx

from sipscribe import __version__
from sipscribe.delivery.errors import EndpointRejected, map_exceptions
from sipscribe.delivery.oauth import ClientCredentials, read_limited
from sipscribe.delivery.retry import parse_retry_after
from sipscribe.delivery.signing import SIGNATURE_HEADER, sign
from sipscribe.delivery.ssrf import GuardedNetworkBackend, Resolver, system_resolver
from sipscribe.delivery.targets import (
    HeaderSecretAuth,
    OAuth2Auth,
    QuerySecretAuth,
    TargetSpec,
    build_ssl_context,
)

USER_AGENT = f"sipscribe/{__version__}"
MAX_ERROR_BODY_BYTES = 2048
JSON = "application/json"
VCON_JSON = "application/vcon+json"


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool connects through
    ``GuardedNetworkBackend``: the pool is rebuilt with that backend, everything else (request
    and response mapping, httpcore error mapping) is httpx's own."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext,
        allow_private: bool,
        max_connections: int,
        resolver: Resolver = system_resolver,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        )
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(allow_private=allow_private, resolver=resolver),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A delivered webhook: the status the receiver answered and how long it took."""

    status: int
    seconds: float


class TargetClient:
    """The HTTP side of one target: client, token cache and signing secret."""

    def __init__(
        self,
        spec: TargetSpec,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = system_resolver,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        options = spec.options
        if transport is None:
            transport = GuardedTransport(
                verify=build_ssl_context(options.tls),
                allow_private=spec.allow_private,
                max_connections=options.max_in_flight + 1,  # +1: the OAuth2 token request
                resolver=resolver,
            )
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(options.timeout_s),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        auth = options.auth
        self.oauth: ClientCredentials | None = None
        if isinstance(auth, OAuth2Auth):
            self.oauth = ClientCredentials(
                token_url=auth.token_url,
                client_id=auth.client_id,
                client_secret=auth.client_secret,
                scope=auth.scope,
                audience=auth.audience,
                client_auth=auth.client_auth,
                clock=monotonic,
            )
        self.monotonic = monotonic

    async def aclose(self) -> None:
        await self.client.aclose()

    def _url(self) -> httpx.URL:
        url = httpx.URL(self.spec.url)
        auth = self.spec.options.auth
        if isinstance(auth, QuerySecretAuth):
            url = url.copy_merge_params({auth.param: auth.value})
        return url

    def headers(
        self,
        body: bytes,
        *,
        event_type: str,
        idempotency_key: str,
        delivery_id: str | None,
        timestamp: int,
        content_type: str = JSON,
    ) -> dict[str, str]:
        """Every header but the bearer token, signature included."""
        headers = {
            "Content-Type": content_type,
            "X-Sipscribe-Event": event_type,
            "X-Sipscribe-Delivery": delivery_id or str(uuid.uuid4()),
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: sign(body, secret=self.spec.secret, timestamp=timestamp),
        }
        auth = self.spec.options.auth
        if isinstance(auth, HeaderSecretAuth):
            headers[auth.header] = auth.value
        return headers

    async def post(
        self,
        body: bytes,
        *,
        event_type: str,
        idempotency_key: str,
        delivery_id: str | None = None,
        timestamp: int,
        content_type: str = JSON,
    ) -> Outcome:
        """POST ``body``; returns on a 2xx, raises a ``DeliveryError`` otherwise."""
        headers = self.headers(
            body,
            event_type=event_type,
            idempotency_key=idempotency_key,
            delivery_id=delivery_id,
            timestamp=timestamp,
            content_type=content_type,
        )
        started = self.monotonic()
        token = await self.oauth.token(self.client) if self.oauth is not None else None
        response, text = await self._send(body, headers, token)
        if response.status_code == 401 and self.oauth is not None and token is not None:
            # The receiver no longer takes our token (revoked, rotated): one fresh try.
            self.oauth.invalidate(token)
            token = await self.oauth.token(self.client)
            response, text = await self._send(body, headers, token)
        seconds = self.monotonic() - started
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code, seconds)
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=time.time())
        shown = str(httpx.URL(self.spec.url).copy_with(query=None))
        detail = f": {text}" if text else ""
        raise EndpointRejected(
            response.status_code,
            f"POST {shown} answered {response.status_code}{detail}",
            retry_after=retry_after,
        )

    async def _send(
        self, body: bytes, headers: dict[str, str], token: str | None
    ) -> tuple[httpx.Response, str]:
        if token is not None:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        url = self._url()
        request = self.client.build_request("POST", url, content=body, headers=headers)
        shown = str(url.copy_with(query=None))
        with map_exceptions(f"POST {shown}"):
            response = await self.client.send(request, stream=True)
            try:
                text = ""
                if not 200 <= response.status_code < 300:
                    raw = await read_limited(response, MAX_ERROR_BODY_BYTES)
                    text = " ".join(raw.decode("utf-8", "replace").split())[:300]
            finally:
                await response.aclose()
        return response, text
