from __future__ import annotations

import json

import httpx
import pytest

from sipscribe.delivery.errors import (
    AuthenticationFailed,
    EndpointRejected,
    EndpointTimeout,
    EndpointUnreachable,
)
from sipscribe.delivery.signing import verify
from sipscribe.delivery.targets import TargetSpec, parse_options
from sipscribe.delivery.webhooks import USER_AGENT, VCON_JSON, TargetClient

SECRET = "whsec_test_secret_0123456789"


def spec(url: str = "https://hooks.example/in?x=1", **options) -> TargetSpec:
    return TargetSpec(
        id="t1",
        tenant_id="ten",
        url=url,
        secret=SECRET,
        events=(),
        enabled=True,
        options=parse_options(options),
        allow_private=False,
    )


class Receiver:
    """MockTransport handler: answers from a script of statuses, records requests."""

    def __init__(self, *statuses: int, headers: dict | None = None) -> None:
        self.statuses = list(statuses) or [200]
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"tok-{self.tokens}"})
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, headers=self.headers, text="nope" if status >= 300 else "")


async def post(client: TargetClient, body: bytes = b'{"a":1}', **kw):
    kw.setdefault("event_type", "transcript")
    kw.setdefault("idempotency_key", "transcript:c1:1")
    kw.setdefault("timestamp", 1_700_000_000)
    return await client.post(body, **kw)


async def test_signed_post_with_headers() -> None:
    receiver = Receiver(204)
    client = TargetClient(spec(), transport=httpx.MockTransport(receiver))
    outcome = await post(client, delivery_id="d-1")
    await client.aclose()
    assert outcome.status == 204
    (request,) = receiver.requests
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example/in?x=1"
    assert request.content == b'{"a":1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["x-sipscribe-event"] == "transcript"
    assert request.headers["x-sipscribe-delivery"] == "d-1"
    assert request.headers["idempotency-key"] == "transcript:c1:1"
    sig = request.headers["x-sipscribe-signature"]
    assert verify(sig, request.content, secret=SECRET, now=1_700_000_000) == 1_700_000_000


async def test_header_and_query_secrets() -> None:
    receiver = Receiver()
    client = TargetClient(
        spec(auth={"type": "header", "header": "X-Api-Key", "value": "k3y"}),
        transport=httpx.MockTransport(receiver),
    )
    await post(client, content_type=VCON_JSON)
    await client.aclose()
    assert receiver.requests[0].headers["x-api-key"] == "k3y"
    assert receiver.requests[0].headers["content-type"] == VCON_JSON

    receiver = Receiver()
    client = TargetClient(
        spec(auth={"type": "query", "param": "token", "value": "s e/cret"}),
        transport=httpx.MockTransport(receiver),
    )
    await post(client)
    await client.aclose()
    assert receiver.requests[0].url.params["token"] == "s e/cret"
    assert receiver.requests[0].url.params["x"] == "1"


async def test_error_status_is_rejected_without_the_query_secret() -> None:
    receiver = Receiver(503, headers={"Retry-After": "7"})
    client = TargetClient(
        spec(auth={"type": "query", "param": "token", "value": "hidden"}),
        transport=httpx.MockTransport(receiver),
    )
    with pytest.raises(EndpointRejected) as info:
        await post(client)
    await client.aclose()
    assert info.value.status == 503
    assert info.value.retry_after == 7
    assert str(info.value) == "POST https://hooks.example/in answered 503: nope"
    assert "hidden" not in str(info.value)


async def test_redirects_are_not_followed() -> None:
    receiver = Receiver(302, headers={"Location": "http://169.254.169.254/"})
    client = TargetClient(spec(), transport=httpx.MockTransport(receiver))
    with pytest.raises(EndpointRejected, match="answered 302"):
        await post(client)
    await client.aclose()
    assert len(receiver.requests) == 1


async def test_oauth2_token_is_fetched_once_and_refreshed_on_401() -> None:
    receiver = Receiver(200, 200, 401, 200)
    client = TargetClient(
        spec(
            auth={
                "type": "oauth2",
                "token_url": "https://hooks.example/token",
                "client_id": "id",
                "client_secret": "secret",
            }
        ),
        transport=httpx.MockTransport(receiver),
    )
    await post(client)
    await post(client)
    assert receiver.tokens == 1
    await post(client)  # 401 with tok-1, then a new token and 200
    await client.aclose()
    assert receiver.tokens == 2
    auths = [r.headers["authorization"] for r in receiver.requests]
    assert auths == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_oauth2_token_failure_is_an_authentication_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant"})

    client = TargetClient(
        spec(
            auth={
                "type": "oauth2",
                "token_url": "https://idp.example/token",
                "client_id": "id",
                "client_secret": "secret",
            }
        ),
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(AuthenticationFailed, match="token endpoint answered 400"):
        await post(client)
    await client.aclose()


@pytest.mark.parametrize(
    ("exc", "error", "message"),
    [
        (httpx.ReadTimeout("slow"), EndpointTimeout, "POST https://hooks.example/in: timed out"),
        (
            httpx.ConnectError("refused"),
            EndpointUnreachable,
            "POST https://hooks.example/in: refused",
        ),
    ],
)
async def test_transport_errors_are_mapped(exc, error, message) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client = TargetClient(spec(), transport=httpx.MockTransport(handler))
    with pytest.raises(error) as info:
        await post(client)
    await client.aclose()
    assert str(info.value).startswith(message)
    assert info.value.retryable


async def test_body_is_sent_byte_exact() -> None:
    receiver = Receiver()
    client = TargetClient(spec(), transport=httpx.MockTransport(receiver))
    body = json.dumps({"text": "café ✓"}, ensure_ascii=False).encode()
    await post(client, body=body)
    await client.aclose()
    assert receiver.requests[0].content == body
