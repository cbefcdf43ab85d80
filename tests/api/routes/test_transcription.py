"""``/api/v2/calls/{id}/transcription``."""

from __future__ import annotations

import asyncio

from sipscribe.api.routes.transcription import roles_of
from sipscribe.store import calls
from sipscribe.store.models import CallRecord
from sipscribe.store.utterances import add_utterance

from ..conftest import Api


def url(call_id: str) -> str:
    return f"/api/v2/calls/{call_id}/transcription"


async def test_start_then_read(api: Api) -> None:
    call_id = await api.make_call()
    headers = await api.headers()
    assert (await api.client.get(url(call_id), headers=headers)).json()["error"]["message"] == (
        f"Call {call_id} has no transcription"
    )
    started = await api.client.post(url(call_id), headers=headers)
    assert started.status_code == 202
    assert started.json()["data"] == {
        "call_id": call_id,
        "speech_state": "speech_sent_to_recognition",
    }
    await api.settle()
    response = await api.client.get(url(call_id), headers=headers)
    assert response.status_code == 200
    assert response.json()["data"] == {
        "speech_state": "speech_stored",
        "payload": [
            {
                "channel": 1,
                "start": 0.0,
                "end": 2.4,
                "text": "Hi, I was charged twice this month. Can you fix it?",
                "role": "customer",
            },
            {
                "channel": 0,
                "start": 2.6,
                "end": 5.0,
                "text": "Sure. I can refund the second charge today.",
                "role": "agent",
            },
            {
                "channel": 1,
                "start": 5.2,
                "end": 7.0,
                "text": "My card is ###################.",
                "role": "customer",
            },
        ],
    }


async def test_unredacted_text_needs_its_scope(api: Api) -> None:
    call_id = await api.make_call(transcribed=True)
    reader = await api.headers(scopes=["calls.transcription.read"])
    refused = await api.client.get(url(call_id), params={"unredacted": "true"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "This API key lacks the scope 'calls.transcription.read_unredacted'"
    )
    privileged = await api.headers(
        scopes=["calls.transcription.read", "calls.transcription.read_unredacted"]
    )
    response = await api.client.get(url(call_id), params={"unredacted": "true"}, headers=privileged)
    assert response.json()["data"]["payload"][2]["text"] == "My card is 4111 1111 1111 1111."


async def test_call_without_recording_is_409(api: Api) -> None:
    call_id = await api.make_call(recording=False)
    response = await api.client.post(url(call_id), headers=await api.headers())
    assert response.status_code == 409
    assert response.json()["error"] == {
        "statusCode": 409,
        "name": "ConflictError",
        "message": f"Call {call_id} has no recording to transcribe",
        "requestId": response.headers["X-Request-Id"],
    }


async def test_vanished_recording_is_409(api: Api) -> None:
    call_id = await api.make_call()
    for path in (api.settings.data_dir / "recordings" / call_id).iterdir():
        path.unlink()
    response = await api.client.post(url(call_id), headers=await api.headers())
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"The recording of call {call_id} is no longer available"
    )


async def test_second_start_is_409_while_running_or_done(api: Api) -> None:
    call_id = await api.make_call()
    headers = await api.headers()
    api.runner.gate = asyncio.Event()
    assert (await api.client.post(url(call_id), headers=headers)).status_code == 202
    again = await api.client.post(url(call_id), headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        f"Call {call_id} already has a transcription (state speech_sent_to_recognition)"
    )
    api.runner.gate.set()
    await api.settle()
    done = await api.client.post(url(call_id), headers=headers)
    assert done.json()["error"]["message"] == (
        f"Call {call_id} already has a transcription (state speech_stored)"
    )


async def test_failed_transcription_can_be_restarted_cleanly(api: Api) -> None:
    call_id = await api.make_call()
    headers = await api.headers()
    api.runner.error = RuntimeError("model missing")
    original_segments = api.runner.segments
    api.runner.segments = []
    await api.client.post(url(call_id), headers=headers)
    await api.settle()
    failed = await api.client.get(f"/api/v2/calls/{call_id}", headers=headers)
    assert failed.json()["data"]["transcription_state"] == "speech_recognition_failed"
    shown = await api.client.get(url(call_id), headers=headers)
    assert shown.json()["data"] == {
        "speech_state": "speech_recognition_failed",
        "payload": [],
        "error": "RuntimeError: model missing",
    }
    # A partial result of the failed attempt must not mix into the next one.
    tenant_id = await api.tenant_id()
    async with api.database.session() as s:
        await add_utterance(s, call_id=call_id, channel=0, start_ms=0, end_ms=1, text="partial")
    api.runner.error = None
    api.runner.segments = original_segments
    assert (await api.client.post(url(call_id), headers=headers)).status_code == 202
    await api.settle()
    payload = (await api.client.get(url(call_id), headers=headers)).json()["data"]["payload"]
    assert payload[0]["text"].startswith("Hi, I was charged")
    assert len(payload) == 3
    assert api.runner.calls[-1][1] == tenant_id


async def test_live_call_with_utterances_reports_and_refuses_restart(api: Api) -> None:
    tenant_id = await api.tenant_id()
    async with api.database.session() as s:
        call = await calls.create_call(s, tenant_id=tenant_id, source="siprec")
        await add_utterance(s, call_id=call.id, channel=0, start_ms=0, end_ms=900, text="Hello.")
        path = api.settings.data_dir / "rec.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        await calls.update_call(
            s, call_id=call.id, tenant_id=tenant_id, changes={"recording_path": str(path)}
        )
    headers = await api.headers()
    live = (await api.client.get(url(call.id), headers=headers)).json()["data"]
    assert live["speech_state"] == "speech_sent_to_recognition"
    assert live["payload"] == [
        {"channel": 0, "start": 0.0, "end": 0.9, "text": "Hello.", "role": None}
    ]
    refused = await api.client.post(url(call.id), headers=headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == f"Call {call.id} already has a transcription"
    async with api.database.session() as s:
        await calls.end_call(s, call_id=call.id, tenant_id=tenant_id)
    ended = (await api.client.get(url(call.id), headers=headers)).json()["data"]
    assert ended["speech_state"] == "speech_stored"


async def test_without_a_transcriber_is_503(api: Api) -> None:
    call_id = await api.make_call()
    api.services.transcription_runner = None
    response = await api.client.post(url(call_id), headers=await api.headers())
    assert response.status_code == 503


def test_roles_of_reads_channel_decisions() -> None:
    def call(decisions: list) -> CallRecord:
        return CallRecord(role_decisions=decisions)

    assert roles_of(call([])) is None
    assert roles_of(
        call([{"channel": 1, "role": "customer"}, {"channel": 0, "role": "agent"}])
    ) == ["agent", "customer"]
    assert roles_of(call([{"channel": 1, "role": "customer"}])) is None  # gap at channel 0
    assert roles_of(call([{"label": "1", "role": "customer"}, "junk"])) is None
    assert roles_of(call([{"channel": 0, "role": "boss"}])) is None
