"""Authentication, scopes, tenant isolation and rate limits (``api/deps.py``).

The matrix: every endpoint × {no key → 401, every scope but the right one → 403, only the right
scope → 2xx, another tenant's key (even admin) → 404 or nothing of the other tenant's}, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sipscribe.store import summaries
from sipscribe.store.keys import Scope
from sipscribe.store.tenants import update_tenant_settings

from .conftest import Api


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{call}" is replaced by the id of a call of tenant "acme"
    scope: Scope
    ok: int
    needs: str = "call"  # what acme's call must have: call | recording | transcript | summary
    body: dict[str, Any] | None = None
    upload: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/api/v2/calls", Scope.CALLS_READ, 200),
    Endpoint("GET", "/api/v2/calls/{call}", Scope.CALLS_READ, 200),
    Endpoint("POST", "/api/v2/calls", Scope.CALLS_WRITE, 201, upload=True),
    Endpoint(
        "POST", "/api/v2/calls/{call}/transcription", Scope.TRANSCRIPTION_WRITE, 202, "recording"
    ),
    Endpoint(
        "GET", "/api/v2/calls/{call}/transcription", Scope.TRANSCRIPTION_READ, 200, "transcript"
    ),
    Endpoint("POST", "/api/v2/calls/{call}/summary", Scope.SUMMARY_WRITE, 202, "transcript"),
    Endpoint("GET", "/api/v2/calls/{call}/summary", Scope.SUMMARY_READ, 200, "summary"),
    Endpoint(
        "PATCH",
        "/api/v2/calls/{call}/summary",
        Scope.SUMMARY_WRITE,
        202,
        "summary",
        body={"instructions": "Mention the refund."},
    ),
    Endpoint("GET", "/api/v2/settings/summary", Scope.SETTINGS_READ, 200),
    Endpoint(
        "PATCH",
        "/api/v2/settings/summary",
        Scope.SETTINGS_WRITE,
        200,
        body={"base_instructions": "Be brief."},
    ),
]


async def _prepare(api: Api, endpoint: Endpoint) -> str:
    """Acme's call in the state the endpoint needs; acme also has base instructions."""
    call_id = await api.make_call(transcribed=endpoint.needs in ("transcript", "summary"))
    tenant_id = await api.tenant_id("acme")
    async with api.database.session() as s:
        await update_tenant_settings(s, tenant_id=tenant_id, summary_base_instructions="Acme.")
        if endpoint.needs == "summary":
            job = await summaries.request_summary(s, call_id=call_id, instructions=None)
            await summaries.finish_summary(s, summary_id=job.id, result={"headline": "x"})
    return call_id


async def _send(api: Api, endpoint: Endpoint, call_id: str, headers: dict) -> httpx.Response:
    path = endpoint.path.format(call=call_id)
    if endpoint.upload:
        files = {"file": ("call.wav", b"RIFF-bytes", "audio/wav")}
        return await api.client.post(path, headers=headers, files=files)
    return await api.client.request(endpoint.method, path, headers=headers, json=endpoint.body)


def _assert_error(response: httpx.Response, status: int, name: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["statusCode"], error["name"]) == (status, name)
    assert error["requestId"] == response.headers["X-Request-Id"]
    return error


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_no_key_is_401(api: Api, endpoint: Endpoint) -> None:
    call_id = await _prepare(api, endpoint)
    response = await _send(api, endpoint, call_id, {})
    error = _assert_error(response, 401, "UnauthorizedError")
    assert error["message"] == (
        "Missing API key: send 'Authorization: Bearer <key>' or an 'api-key' header"
    )
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="sipscribe"'
    assert "X-RateLimit-Limit" not in response.headers


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_every_other_scope_is_403(api: Api, endpoint: Endpoint) -> None:
    call_id = await _prepare(api, endpoint)
    others = [s.value for s in Scope if s not in (endpoint.scope, Scope.ADMIN)]
    response = await _send(api, endpoint, call_id, await api.headers(scopes=others))
    error = _assert_error(response, 403, "ForbiddenError")
    assert error["message"] == f"This API key lacks the scope '{endpoint.scope.value}'"
    assert response.headers["X-RateLimit-Limit"] == "600"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("grant", ["exact", "admin"])
async def test_right_scope_succeeds(api: Api, endpoint: Endpoint, grant: str) -> None:
    call_id = await _prepare(api, endpoint)
    scopes = [endpoint.scope.value] if grant == "exact" else ["admin"]
    response = await _send(api, endpoint, call_id, await api.headers(scopes=scopes))
    assert response.status_code == endpoint.ok, response.text
    body = response.json()
    assert body["status"] == endpoint.ok
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert body["timestamp"].endswith("Z")
    assert response.headers["X-RateLimit-Remaining"] == "599"
    await api.settle()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_other_tenant_sees_nothing(api: Api, endpoint: Endpoint) -> None:
    call_id = await _prepare(api, endpoint)
    globex = await api.headers("globex", ["admin"])
    response = await _send(api, endpoint, call_id, globex)
    if "{call}" in endpoint.path:
        error = _assert_error(response, 404, "NotFoundError")
        assert call_id in error["message"]
        return
    assert response.status_code == endpoint.ok, response.text
    data = response.json()["data"]
    if endpoint.path == "/api/v2/calls" and endpoint.method == "GET":
        assert data["items"] == []
    elif endpoint.upload:
        acme = await api.headers("acme", ["admin"])
        seen = await api.client.get(f"/api/v2/calls/{data['id']}", headers=acme)
        assert seen.status_code == 404
        await api.settle()
    elif endpoint.method == "GET":
        assert data == {"base_instructions": None, "enabled": False}
    else:
        acme = await api.headers("acme", ["admin"])
        seen = await api.client.get("/api/v2/settings/summary", headers=acme)
        assert seen.json()["data"] == {"base_instructions": "Acme.", "enabled": False}


async def test_api_key_header_works_too(api: Api) -> None:
    secret = await api.key(scopes=["calls.read"])
    response = await api.client.get("/api/v2/calls", headers={"api-key": secret})
    assert response.status_code == 200
    lower = await api.client.get("/api/v2/calls", headers={"authorization": f"bearer {secret}"})
    assert lower.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer ssk_not-a-real-key-at-all-0000000000000000000000"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"api-key": ""},
        {"api-key": "ssk_"},
    ],
    ids=["unknown", "malformed", "basic", "empty", "prefix-only"],
)
async def test_bad_credentials_are_401(api: Api, headers: dict) -> None:
    await api.key()
    response = await api.client.get("/api/v2/calls", headers=headers)
    _assert_error(response, 401, "UnauthorizedError")


async def test_revoked_key_is_401(api: Api) -> None:
    from sipscribe.store.keys import authenticate, revoke_key

    secret = await api.key()
    assert (await api.client.get("/api/v2/calls", headers=await api.headers())).status_code == 200
    async with api.database.session() as s:
        key = await authenticate(s, secret=secret)
        await revoke_key(s, key_id=key.id, tenant_id=key.tenant_id)
    response = await api.client.get("/api/v2/calls", headers=await api.headers())
    error = _assert_error(response, 401, "UnauthorizedError")
    assert error["message"] == "API key is not valid or has been revoked"


async def test_rate_limit_headers_count_down_then_429(api: Api) -> None:
    tenant_id = await api.tenant_id("acme")
    async with api.database.session() as s:
        await update_tenant_settings(s, tenant_id=tenant_id, rate_limit_per_minute=3)
    headers = await api.headers()
    seen = []
    for _ in range(3):
        response = await api.client.get("/api/v2/calls", headers=headers)
        assert response.status_code == 200
        seen.append(
            tuple(
                response.headers[h]
                for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
            )
        )
    assert seen == [("3", "2", "60"), ("3", "1", "60"), ("3", "0", "60")]
    api.clock.advance(20.5)
    refused = await api.client.get("/api/v2/calls", headers=headers)
    error = _assert_error(refused, 429, "TooManyRequestsError")
    assert error["message"] == "Rate limit of 3 requests per minute exceeded; retry in 40 s"
    assert refused.headers["Retry-After"] == "40"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == "40"
    # Refused requests do not count; a new window starts once this one ends.
    api.clock.advance(39.5)
    again = await api.client.get("/api/v2/calls", headers=headers)
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "2"


async def test_rate_limit_is_per_key(api: Api) -> None:
    tenant_id = await api.tenant_id("acme")
    async with api.database.session() as s:
        await update_tenant_settings(s, tenant_id=tenant_id, rate_limit_per_minute=1)
    first = await api.headers(scopes=["admin"])
    second = await api.headers(scopes=["calls.read"])
    assert (await api.client.get("/api/v2/calls", headers=first)).status_code == 200
    assert (await api.client.get("/api/v2/calls", headers=first)).status_code == 429
    assert (await api.client.get("/api/v2/calls", headers=second)).status_code == 200


async def test_rate_limit_applies_before_scope_check(api: Api) -> None:
    tenant_id = await api.tenant_id("acme")
    async with api.database.session() as s:
        await update_tenant_settings(s, tenant_id=tenant_id, rate_limit_per_minute=1)
    headers = await api.headers(scopes=["settings.read"])
    forbidden = await api.client.get("/api/v2/calls", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.headers["X-RateLimit-Remaining"] == "0"
    assert (await api.client.get("/api/v2/calls", headers=headers)).status_code == 429


async def test_authenticated_404_carries_rate_limit_headers(api: Api) -> None:
    response = await api.client.get("/api/v2/calls/nope", headers=await api.headers())
    assert response.status_code == 404
    assert response.headers["X-RateLimit-Limit"] == "600"
    assert response.headers["X-RateLimit-Remaining"] == "599"
