"""Transcript downloads and stream tokens (conversations.py); the WebSocket itself is tested
against a real server in ``tests/integration/test_webhooks_stream.py``."""

from __future__ import annotations

import time

from sipscribe.delivery import tokens
from sipscribe.store import kv

from .helpers import StoreWriter, call_events, tenant


async def stored_call(api, call_id: str = "c-dl", **kw) -> str:
    tenant_id = await tenant(api.database, "acme")
    writer = StoreWriter(api.database)
    for event in call_events(call_id, tenant_id, utterances=3, **kw):
        await writer.handle(event)
    return tenant_id


async def test_transcript_downloads(delivery_api) -> None:
    await stored_call(delivery_api, redacted=True)
    headers = await delivery_api.headers(scopes=("calls.transcription.read",))
    base = "/api/v2/calls/c-dl/transcript"
    vtt = await delivery_api.client.get(f"{base}.vtt", headers=headers)
    assert vtt.status_code == 200
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    assert vtt.headers["content-disposition"] == 'attachment; filename="c-dl.vtt"'
    assert vtt.text.startswith("WEBVTT\n\n00:00:01.000 --> 00:00:01.800\n<v Customer>")
    assert "utterance number #" in vtt.text and "utterance number 1" not in vtt.text
    srt = await delivery_api.client.get(f"{base}.srt", headers=headers)
    assert srt.text.startswith("1\n00:00:01,000 --> 00:00:01,800\nCustomer: utterance number #")
    txt = await delivery_api.client.get(f"{base}.txt", headers=headers)
    assert txt.text.splitlines()[1] == "[00:02] AGENT: utterance number #"
    body = (await delivery_api.client.get(f"{base}.json", headers=headers)).json()
    assert [p["start"] for p in body["payload"]] == [1.0, 2.0, 3.0]
    denied = await delivery_api.client.get(
        f"{base}.txt", params={"unredacted": "true"}, headers=headers
    )
    assert denied.status_code == 403
    full = await delivery_api.headers(
        scopes=("calls.transcription.read", "calls.transcription.read_unredacted")
    )
    raw = await delivery_api.client.get(f"{base}.txt", params={"unredacted": "true"}, headers=full)
    assert "utterance number 1" in raw.text
    assert (await delivery_api.client.get(f"{base}.pdf", headers=headers)).status_code == 400
    other = await delivery_api.headers(tenant="globex")
    assert (await delivery_api.client.get(f"{base}.vtt", headers=other)).status_code == 404


async def test_stream_token_names_the_call_and_expires(delivery_api) -> None:
    await stored_call(delivery_api)
    headers = await delivery_api.headers(scopes=("calls.transcription.read",))
    # By external id: the token (and the URL) carry the call id.
    response = await delivery_api.client.post(
        "/v1/conversations/ext-1/stream-token", params={"ttl": 60}, headers=headers
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["stream_url"] == f"/v1/conversations/c-dl/stream?token={data['token']}"
    assert 55 <= data["expires_at"] - time.time() <= 61
    async with delivery_api.database.session() as s:
        secret = await kv.get_setting(s, key=tokens.SECRET_SETTING)
    claims = tokens.verify(secret, data["token"], call_id="c-dl", now=time.time())
    assert claims.tenant_id == await tenant(delivery_api.database, "acme")
    missing = await delivery_api.client.post("/v1/conversations/nope/stream-token", headers=headers)
    assert missing.status_code == 404
    no_scope = await delivery_api.headers(scopes=("calls.read",))
    denied = await delivery_api.client.post("/v1/conversations/c-dl/stream-token", headers=no_scope)
    assert denied.status_code == 403
