"""The live conversation WebSocket against a real server: uvicorn serving the API with the
conversations router, a real ``websockets`` client, the delivery service fed through an
EventBus beside the storage helper, on a real database.

Resume after a forced disconnect must give every event exactly once (no gap, no duplicate);
stream tokens must work and be checked; a client that does not keep up is closed with 4008.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sipscribe.api.main import create_app
from sipscribe.api.routes import conversations
from sipscribe.api.services import AppServices
from sipscribe.delivery.live import LiveFeed
from sipscribe.delivery.service import DeliveryOptions
from sipscribe.store import keys
from tests.delivery.helpers import Pipeline, call_events, eventually, tenant
from tests.delivery.receiver import Served

pytestmark = pytest.mark.integration


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_backends = _load(
    "sipscribe_test_backends", Path(__file__).resolve().parents[1] / "store" / "backends.py"
)
backend = _backends.backend
postgres_url = _backends.postgres_url
pg_schema = _backends.pg_schema
sqlite_template = _backends.sqlite_template
db_target = _backends.db_target
db_settings = _backends.db_settings
database = _backends.database


async def api_key(database, scopes=("calls.transcription.read",)) -> str:
    async with database.session() as s:
        _, secret = await keys.create_key(s, tenant_name="acme", scopes=list(scopes), name="ws")
    return secret


async def serve_api(database, db_settings, pipeline: Pipeline) -> Served:
    services = AppServices(database=database, ready=True)
    app = create_app(db_settings, services=services, extra_routers=[conversations.router])
    app.state.delivery = pipeline.service
    return await Served(app).start()


async def read_until(ws, stop, received: list[dict], *, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not stop(received):
            received.append(json.loads(await ws.recv()))


def utterance_sequences(messages: list[dict]) -> list[int]:
    return [m["sequence"] for m in messages if m["type"] == "utterance"]


async def test_resume_after_forced_disconnect_has_no_gap_and_no_duplicate(
    database, db_settings
) -> None:
    tenant_id = await tenant(database)
    secret = await api_key(database)
    events = list(call_events("call-ws", tenant_id, utterances=30, dtmf_after=18))
    # 0 started, 1-2 streams, then utterance n at index 2 + n (+1 after the digit at 18)
    async with Pipeline(database, DeliveryOptions(target_cache_s=0.5)) as pipeline:
        server = await serve_api(database, db_settings, pipeline)
        url = f"ws://127.0.0.1:{server.port}/v1/conversations/call-ws/stream"
        headers = {"Authorization": f"Bearer {secret}"}
        try:
            await pipeline.publish(events[:13])  # utterances 1-10
            first: list[dict] = []
            async with connect(f"{url}?after=0", additional_headers=headers) as ws:
                await read_until(ws, lambda m: 10 in utterance_sequences(m), first)
                publisher = asyncio.create_task(pipeline.publish(events[13:18]))  # 11-15
                await read_until(ws, lambda m: 13 in utterance_sequences(m), first)
                ws.transport.abort()  # the network drops: no close handshake
                await publisher
            await pipeline.publish(events[18:27])  # 16-18, the digit, 19-23, while away
            last = max(utterance_sequences(first))
            second: list[dict] = []
            async with connect(f"{url}?after={last}", additional_headers=headers) as ws:
                tail = asyncio.create_task(pipeline.publish(events[27:]))  # 24-30, the end
                await read_until(ws, lambda m: any(x["type"] == "call.ended" for x in m), second)
                await tail
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            assert closed.value.rcvd.reason == "call ended"
        finally:
            await server.stop()

    combined = first + second
    assert utterance_sequences(combined) == list(range(1, 31))
    digits = [m for m in combined if m["type"] == "dtmf"]
    assert len(digits) == 1 and digits[0]["digit"] == "5" and digits[0]["sequence"] == 18
    assert [m["type"] for m in combined].count("call.started") == 1
    assert [m["type"] for m in combined].count("call.ended") == 1
    assert combined[0]["type"] == "call.started"
    # Position is monotonic across the two sessions: nothing arrives out of order.
    positions = [m["sequence"] for m in combined]
    assert positions == sorted(positions)


async def test_stream_token_and_auth_failures(database, db_settings) -> None:
    tenant_id = await tenant(database)
    secret = await api_key(database)
    weak = await api_key(database, scopes=("calls.read",))
    events = list(call_events("call-tok", tenant_id, utterances=3, external_id="ext-tok"))
    async with Pipeline(database) as pipeline:
        server = await serve_api(database, db_settings, pipeline)
        base = f"http://127.0.0.1:{server.port}"
        try:
            await pipeline.publish(events[:5])  # started, streams, utterances 1-2

            async def stored() -> bool:
                async with database.session() as s:
                    from sipscribe.store.utterances import count_utterances

                    return await count_utterances(s, call_id="call-tok", tenant_id=tenant_id) == 2

            await eventually(stored)
            async with httpx.AsyncClient(base_url=base) as client:
                response = await client.post(
                    "/v1/conversations/ext-tok/stream-token",
                    headers={"Authorization": f"Bearer {secret}"},
                )
            stream_url = response.json()["data"]["stream_url"]
            received: list[dict] = []
            async with connect(f"ws://127.0.0.1:{server.port}{stream_url}&after=0") as ws:
                await read_until(ws, lambda m: 2 in utterance_sequences(m), received)
                await pipeline.publish(events[5:])
                await read_until(ws, lambda m: m[-1]["type"] == "call.ended", received)
            assert utterance_sequences(received) == [1, 2, 3]

            async def close_of(path: str, headers: dict | None = None) -> tuple[int, str]:
                async with connect(
                    f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers
                ) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await asyncio.wait_for(ws.recv(), 5)
                return info.value.rcvd.code, info.value.rcvd.reason

            stream = "/v1/conversations/call-tok/stream"
            assert await close_of(stream) == (4401, "send 'Authorization: Bearer <key>' or ?token=")
            assert await close_of(f"{stream}?token=forged.token") == (
                4401,
                "stream token is malformed",
            )
            assert await close_of(stream, {"Authorization": f"Bearer {weak}"}) == (
                4403,
                "API key lacks the scope 'calls.transcription.read'",
            )
            assert await close_of(
                "/v1/conversations/nope/stream", {"Authorization": f"Bearer {secret}"}
            ) == (4404, "no conversation nope")
            token = stream_url.split("token=")[1]
            other = list(call_events("call-other", tenant_id, utterances=0))
            await pipeline.publish(other[:1])

            async def other_stored() -> bool:
                async with database.session() as s:
                    from sipscribe.store.calls import get_call

                    found = await get_call(s, call_id="call-other", tenant_id=tenant_id)
                    return found is not None

            await eventually(other_stored)
            # A token for one call does not open another.
            assert await close_of(f"/v1/conversations/call-other/stream?token={token}") == (
                4404,
                "no conversation call-other",
            )
        finally:
            await server.stop()


async def test_slow_client_is_cut_off_with_4008(database, db_settings) -> None:
    tenant_id = await tenant(database)
    secret = await api_key(database)
    feed = LiveFeed(queue_size=5)
    async with Pipeline(database, feed=feed) as pipeline:
        server = await serve_api(database, db_settings, pipeline)
        try:
            await pipeline.publish(list(call_events("call-slow", tenant_id, utterances=0))[:1])

            async def stored() -> bool:
                async with database.session() as s:
                    from sipscribe.store.calls import get_call

                    return await get_call(s, call_id="call-slow", tenant_id=tenant_id) is not None

            await eventually(stored)
            url = f"ws://127.0.0.1:{server.port}/v1/conversations/call-slow/stream"
            async with connect(url, additional_headers={"Authorization": f"Bearer {secret}"}) as ws:
                await eventually(lambda: feed.subscribers("call-slow") == 1)
                for n in range(50):  # a burst the client cannot take in before it piles up
                    feed.publish("call-slow", {"type": "utterance", "sequence": n + 1})
                with pytest.raises(ConnectionClosed) as info:
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
            assert info.value.rcvd.code == 4008 and info.value.rcvd.reason == "client too slow"
            assert feed.disconnected_slow == 1
        finally:
            await server.stop()
