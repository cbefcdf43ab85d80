"""``/api/v2/calls/{id}/summary``."""

from __future__ import annotations

import asyncio
from typing import Any

from sipscribe.store.tenants import update_tenant_settings

from ..conftest import Api


def url(call_id: str) -> str:
    return f"/api/v2/calls/{call_id}/summary"


class RecordingEngine:
    """Test double summary engine: records instructions, optionally waits or fails."""

    def __init__(self) -> None:
        self.instructions: list[str | None] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def summarize(self, transcript: list[dict], instructions: str | None) -> dict[str, Any]:
        self.instructions.append(instructions)
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), timeout=10)
        if self.error is not None:
            raise self.error
        return {"segments": len(transcript)}


async def test_default_engine_end_to_end(api: Api) -> None:
    call_id = await api.make_call(transcribed=True)
    headers = await api.headers()
    missing = await api.client.get(url(call_id), headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == (
        f"Call {call_id} has no summary; POST to this URL to request one"
    )
    created = await api.client.post(url(call_id), headers=headers)
    assert created.status_code == 202
    assert created.json()["data"]["summary_state"] == "created"
    await api.settle()
    data = (await api.client.get(url(call_id), headers=headers)).json()["data"]
    assert data["summary_state"] == "processed"
    assert data["processed_at"] is not None
    assert data["result"]["engine"] == "extractive"
    assert data["result"]["headline"] == "Hi, I was charged twice this month."
    assert "4111" not in str(data["result"])


async def test_instructions_combine_tenant_base_and_request(api: Api) -> None:
    engine = RecordingEngine()
    api.services.summary_engine = engine
    call_id = await api.make_call(transcribed=True)
    async with api.database.session() as s:
        await update_tenant_settings(
            s, tenant_id=await api.tenant_id(), summary_base_instructions="Use British English."
        )
    headers = await api.headers()
    response = await api.client.post(
        url(call_id), json={"instructions": "List action items."}, headers=headers
    )
    assert response.json()["data"]["instructions"] == "List action items."
    await api.settle()
    assert engine.instructions == ["Use British English.\n\nList action items."]
    patched = await api.client.patch(
        url(call_id), json={"instructions": "Only the refund."}, headers=headers
    )
    assert patched.status_code == 202
    await api.settle()
    assert engine.instructions[-1] == "Use British English.\n\nOnly the refund."
    kept = await api.client.patch(url(call_id), json={}, headers=headers)
    assert kept.json()["data"]["instructions"] == "Only the refund."
    await api.settle()
    final = (await api.client.get(url(call_id), headers=headers)).json()["data"]
    assert (final["summary_state"], final["result"]) == ("processed", {"segments": 3})


async def test_summary_needs_a_transcription(api: Api) -> None:
    call_id = await api.make_call()
    response = await api.client.post(url(call_id), headers=await api.headers())
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"Call {call_id} has no transcription to summarise;"
        f" POST /api/v2/calls/{call_id}/transcription first"
    )


async def test_summary_waits_for_a_running_transcription(api: Api) -> None:
    call_id = await api.make_call()
    headers = await api.headers()
    api.runner.gate = asyncio.Event()
    await api.client.post(f"/api/v2/calls/{call_id}/transcription", headers=headers)
    response = await api.client.post(url(call_id), headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"Call {call_id} is still being transcribed; request the summary once its"
        " transcription is stored"
    )
    api.runner.gate.set()
    await api.settle()
    assert (await api.client.post(url(call_id), headers=headers)).status_code == 202
    await api.settle()


async def test_one_summary_job_at_a_time(api: Api) -> None:
    engine = RecordingEngine()
    engine.gate = asyncio.Event()
    api.services.summary_engine = engine
    call_id = await api.make_call(transcribed=True)
    headers = await api.headers()
    assert (await api.client.post(url(call_id), headers=headers)).status_code == 202
    busy = await api.client.post(url(call_id), headers=headers)
    assert busy.status_code == 409
    assert busy.json()["error"]["message"] == f"A summary of call {call_id} is already being made"
    engine.gate.set()
    await api.settle()


async def test_engine_failure_is_reported(api: Api) -> None:
    engine = RecordingEngine()
    engine.error = RuntimeError("context too long")
    api.services.summary_engine = engine
    call_id = await api.make_call(transcribed=True)
    headers = await api.headers()
    await api.client.post(url(call_id), headers=headers)
    await api.settle()
    data = (await api.client.get(url(call_id), headers=headers)).json()["data"]
    assert (data["summary_state"], data["error"], data["result"]) == (
        "failed",
        "RuntimeError: context too long",
        None,
    )


async def test_patch_without_summary_is_404(api: Api) -> None:
    call_id = await api.make_call(transcribed=True)
    response = await api.client.patch(url(call_id), json={}, headers=await api.headers())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        f"Call {call_id} has no summary to change; POST to create one"
    )


async def test_body_must_be_json_and_valid(api: Api) -> None:
    call_id = await api.make_call(transcribed=True)
    headers = await api.headers()
    wrong_type = await api.client.post(
        url(call_id), content=b"instructions=x", headers={**headers, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["message"] == (
        "Content-Type must be application/json, got text/plain"
    )
    too_long = await api.client.post(
        url(call_id), json={"instructions": "x" * 4001}, headers=headers
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"] == (
        "body.instructions: String should have at most 4000 characters"
    )
    unknown = await api.client.post(url(call_id), json={"prompt": "x"}, headers=headers)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "body.prompt: Extra inputs are not permitted"
