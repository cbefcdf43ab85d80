"""Scope matrix of the streaming-control and conversation routes on a running server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sipscribe.store import keys as keys_q
from tests.integration.sipp import start_server

pytestmark = pytest.mark.integration

START = "/mg-autotranscribe/v1/start-streaming"
MESSAGES = "/conversation/v1/conversation/messages"


async def _key(server, tenant: str, scopes: list[str]) -> str:  # type: ignore[no-untyped-def]
    async with server.services.database.session() as s:
        _, secret = await keys_q.create_key(s, tenant_name=tenant, scopes=scopes, name="t")
    return secret


async def test_streaming_and_messages_scopes(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        own_stream = await _key(server, "default", ["streaming.write"])
        own_read = await _key(server, "default", ["calls.transcription.read"])
        other = await _key(server, "globex", ["admin"])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as c:
            # a call of tenant "default", stored as the pipeline stores one
            from sipscribe.store import calls as calls_q

            async with server.services.database.session() as s:
                from sipscribe.store import tenants as tenants_q

                tenant = await tenants_q.get_or_create_tenant(s, name="default")
                await calls_q.create_call(
                    s, tenant_id=tenant.id, source="siprec", call_id="call-x", external_id="guid-x"
                )
            body = {"namespace": "n", "guid": "guid-x"}
            auth = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731

            # start-streaming: 401, 403, tenant-visible (no live call: 400-203), other tenant
            assert (await c.post(START, json=body)).status_code == 401
            r = await c.post(START, json=body, headers=auth(own_read))
            assert r.status_code == 403 and "streaming.write" in r.json()["error"]["message"]
            r = await c.post(START, json=body, headers=auth(own_stream))
            assert r.status_code == 400 and r.json()["error"]["code"] == "400-203"
            r = await c.post(START, json=body, headers=auth(other))
            assert r.json()["error"]["code"] == "400-203", "another tenant's call is unknown"

            # conversation messages: 401, 403, 200, other tenant 404
            q = {"externalId": "guid-x"}
            assert (await c.get(MESSAGES, params=q)).status_code == 401
            assert (await c.get(MESSAGES, params=q, headers=auth(own_stream))).status_code == 403
            r = await c.get(MESSAGES, params=q, headers=auth(own_read))
            assert r.status_code == 200 and r.json()["messages"] == []
            r = await c.get(MESSAGES, params=q, headers=auth(other))
            assert r.status_code == 404 and r.json()["error"]["name"] == "NotFoundError"

            # 500-201: a server without a SIP recorder running
            server.services.streaming = None
            r = await c.post(START, json=body, headers=auth(own_stream))
            assert r.status_code == 500 and r.json()["error"]["code"] == "500-201"
            assert r.json()["isOk"] is False
    finally:
        await server.stop(drain_timeout=1)


async def test_delivery_routes_answer_on_their_bare_paths(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as c:
            for path in ("/webhooks", "/api/v2/webhooks"):
                r = await c.get(path, headers=headers)
                assert r.status_code == 200 and r.json()["data"] == [], (path, r.text)
            assert (await c.get("/webhooks")).status_code == 401
            r = await c.get(
                "/exports/utterances",
                headers=headers,
                params={
                    "from": "2000-01-01T00:00:00Z",
                    "to": "2001-01-01T00:00:00Z",
                    "format": "csv",
                },
            )
            assert r.status_code == 200
    finally:
        await server.stop(drain_timeout=1)
