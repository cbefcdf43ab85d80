from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx
import pytest

from sipscribe.delivery.errors import AuthenticationFailed
from sipscribe.delivery.oauth import (
    DEFAULT_LIFETIME_S,
    ClientCredentials,
    basic_credentials,
    parse_token_response,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """A fake OAuth2 token endpoint handing out tok-1, tok-2, …"""

    def __init__(self, *, expires_in: int | None = 3600, status: int = 200) -> None:
        self.expires_in = expires_in
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        body = {"access_token": f"tok-{len(self.requests)}", "token_type": "bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


def creds(clock: Clock, **kwargs) -> ClientCredentials:
    return ClientCredentials(
        token_url="https://idp.example/oauth/token",
        client_id="sip scribe",
        client_secret="p@ss:word",
        scope="webhooks.write",
        clock=clock,
        **kwargs,
    )


async def test_token_is_cached_until_shortly_before_expiry() -> None:
    endpoint, clock = TokenEndpoint(expires_in=600), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        cc = creds(clock)
        assert await cc.token(client) == "tok-1"
        clock.now += 569  # 600 - 30 s skew - 1
        assert await cc.token(client) == "tok-1"
        clock.now += 1
        assert await cc.token(client) == "tok-2"
    assert cc.fetches == 2
    request = endpoint.requests[0]
    assert request.method == "POST"
    form = parse_qs(request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["webhooks.write"]}
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    raw = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert raw == b"sip%20scribe:p%40ss%3Aword"


async def test_body_client_auth() -> None:
    endpoint, clock = TokenEndpoint(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        await creds(clock, client_auth="body").token(client)
    form = parse_qs(endpoint.requests[0].content.decode())
    assert form["client_id"] == ["sip scribe"] and form["client_secret"] == ["p@ss:word"]
    assert "authorization" not in endpoint.requests[0].headers


async def test_invalidate_forgets_only_that_token() -> None:
    endpoint, clock = TokenEndpoint(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        cc = creds(clock)
        first = await cc.token(client)
        cc.invalidate("some-older-token")
        assert await cc.token(client) == first
        cc.invalidate(first)
        assert await cc.token(client) == "tok-2"


async def test_concurrent_callers_share_one_fetch() -> None:
    import asyncio

    endpoint, clock = TokenEndpoint(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        cc = creds(clock)
        tokens = await asyncio.gather(*(cc.token(client) for _ in range(10)))
    assert set(tokens) == {"tok-1"} and cc.fetches == 1


async def test_token_endpoint_refusal() -> None:
    endpoint, clock = TokenEndpoint(status=401), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        with pytest.raises(AuthenticationFailed) as info:
            await creds(clock).token(client)
    assert str(info.value) == (
        "POST https://idp.example/oauth/token: token endpoint answered 401: "
        '{"error":"invalid_client"}'
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "token response is not JSON"),
        (b"[1]", "token response is not a JSON object"),
        (b"{}", "token response has no access_token"),
        (b'{"access_token": "a", "token_type": "mac"}', "token type 'mac' is not Bearer"),
    ],
)
def test_bad_token_responses(body: bytes, message: str) -> None:
    with pytest.raises(AuthenticationFailed, match=f"^token endpoint: {message}$"):
        parse_token_response(body)


def test_lifetime_defaults_when_absent_or_odd() -> None:
    assert parse_token_response(b'{"access_token": "a"}') == ("a", DEFAULT_LIFETIME_S)
    assert parse_token_response(b'{"access_token": "a", "expires_in": "90"}') == ("a", 90.0)
    body = json.dumps({"access_token": "a", "expires_in": -5}).encode()
    assert parse_token_response(body) == ("a", DEFAULT_LIFETIME_S)


def test_basic_credentials_plain() -> None:
    assert basic_credentials("a", "b") == "Basic " + base64.b64encode(b"a:b").decode()
