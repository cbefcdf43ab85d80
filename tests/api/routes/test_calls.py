"""``/api/v2/calls``: listing, reading, uploading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sipscribe.api.errors import ApiError
from sipscribe.api.routes.calls import parse_roles, safe_filename
from sipscribe.store import calls

from ..conftest import Api

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


async def test_read_call_has_everything_a_client_needs(api: Api) -> None:
    tenant_id = await api.tenant_id()
    async with api.database.session() as s:
        call = await calls.create_call(
            s,
            tenant_id=tenant_id,
            source="siprec",
            direction="inbound",
            external_id="crm-42",
            sip_call_id="a84b4c76e66710@pbx",
            started_at=T0,
            vendor_ids={"ucid": "00001002161234567890"},
            role_decisions=[{"label": "1", "role": "customer", "evidence": "callingParty=true"}],
        )
        await calls.upsert_participant(
            s, call_id=call.id, participant_id="p1", aor="sip:+15551230000@pbx", role="customer"
        )
        await calls.upsert_participant(
            s, call_id=call.id, participant_id="p2", aor="sip:2001@pbx", name="Dana", role="agent"
        )
        await calls.end_call(
            s, call_id=call.id, tenant_id=tenant_id, ended_at=T0 + timedelta(seconds=184)
        )
    response = await api.client.get(f"/api/v2/calls/{call.id}", headers=await api.headers())
    assert response.status_code == 200
    assert response.json()["data"] == {
        "id": call.id,
        "external_id": "crm-42",
        "source": "siprec",
        "direction": "inbound",
        "state": "completed",
        "sip_call_id": "a84b4c76e66710@pbx",
        "started_at": "2026-04-01T09:00:00Z",
        "ended_at": "2026-04-01T09:03:04Z",
        "duration_sec": 184.0,
        "parties": [
            {
                "participant_id": "p1",
                "aor": "sip:+15551230000@pbx",
                "name": None,
                "role": "customer",
            },
            {"participant_id": "p2", "aor": "sip:2001@pbx", "name": "Dana", "role": "agent"},
        ],
        "vendor_ids": {"ucid": "00001002161234567890"},
        "role_decisions": [{"label": "1", "role": "customer", "evidence": "callingParty=true"}],
        "transcription_state": None,
        "has_recording": False,
        "purged_at": None,
    }


async def test_unknown_call_is_404(api: Api) -> None:
    response = await api.client.get("/api/v2/calls/not-a-call", headers=await api.headers())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No call not-a-call"


async def test_list_pages_and_filters(api: Api) -> None:
    ids = [
        await api.make_call(
            recording=False, started_at=T0 + timedelta(minutes=i), external_id=f"e{i % 2}"
        )
        for i in range(5)
    ]
    headers = await api.headers()
    first = await api.client.get("/api/v2/calls", params={"limit": 2}, headers=headers)
    page = first.json()["data"]
    assert [c["id"] for c in page["items"]] == [ids[4], ids[3]]
    second = await api.client.get(
        "/api/v2/calls", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
    )
    third = await api.client.get(
        "/api/v2/calls",
        params={"limit": 2, "cursor": second.json()["data"]["next_cursor"]},
        headers=headers,
    )
    assert [c["id"] for c in second.json()["data"]["items"]] == [ids[2], ids[1]]
    assert [c["id"] for c in third.json()["data"]["items"]] == [ids[0]]
    assert third.json()["data"]["next_cursor"] is None

    ranged = await api.client.get(
        "/api/v2/calls",
        params={"from": "2026-04-01T09:01:00Z", "to": "2026-04-01T11:03:00+02:00"},
        headers=headers,
    )
    assert [c["id"] for c in ranged.json()["data"]["items"]] == [ids[2], ids[1]]
    naive = await api.client.get(
        "/api/v2/calls", params={"from": "2026-04-01T09:04:00"}, headers=headers
    )
    assert [c["id"] for c in naive.json()["data"]["items"]] == [ids[4]]
    by_external = await api.client.get(
        "/api/v2/calls", params={"external_id": "e1"}, headers=headers
    )
    assert [c["id"] for c in by_external.json()["data"]["items"]] == [ids[3], ids[1]]
    by_state = await api.client.get("/api/v2/calls", params={"state": "active"}, headers=headers)
    assert by_state.json()["data"]["items"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 101}, "query.limit: Input should be less than or equal to 100"),
        ({"limit": 0}, "query.limit: Input should be greater than or equal to 1"),
        ({"cursor": "garbage"}, "cursor 'garbage' is not valid"),
        ({"state": "ringing"}, "query.state: Input should be 'active', 'completed' or 'failed'"),
        ({"from": "yesterday"}, "query.from: Input should be a valid datetime"),
    ],
)
async def test_list_rejects_bad_queries(api: Api, params: dict, message: str) -> None:
    response = await api.client.get("/api/v2/calls", params=params, headers=await api.headers())
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


async def test_upload_stores_the_file_and_transcribes(api: Api) -> None:
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)
    response = await api.client.post(
        "/api/v2/calls",
        files={"file": ("../../etc/My Call #1.wav", audio, "audio/wav")},
        data={"external_id": "ticket-9", "roles": "agent, customer", "direction": "outbound"},
        headers=await api.headers(),
    )
    assert response.status_code == 201, response.text
    call = response.json()["data"]
    assert (call["source"], call["state"], call["external_id"], call["direction"]) == (
        "upload",
        "completed",
        "ticket-9",
        "outbound",
    )
    assert call["transcription_state"] == "speech_sent_to_recognition"
    assert call["has_recording"] is True
    assert call["role_decisions"] == [
        {"channel": 0, "role": "agent", "evidence": "roles field of the upload"},
        {"channel": 1, "role": "customer", "evidence": "roles field of the upload"},
    ]
    stored = api.settings.data_dir.resolve() / "recordings" / call["id"] / "My_Call__1.wav"
    assert stored.read_bytes() == audio
    await api.settle()
    assert api.runner.calls == [(call["id"], await api.tenant_id(), stored, ["agent", "customer"])]
    after = await api.client.get(f"/api/v2/calls/{call['id']}", headers=await api.headers())
    assert after.json()["data"]["transcription_state"] == "speech_stored"


async def test_upload_with_octet_stream_and_no_options(api: Api) -> None:
    response = await api.client.post(
        "/api/v2/calls",
        files={"file": ("x", b"\x00\x01", "application/octet-stream")},
        headers=await api.headers(),
    )
    assert response.status_code == 201
    await api.settle()
    assert api.runner.calls[0][3] is None


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"json": {"file": "x"}},
            415,
            "Content-Type must be multipart/form-data, got application/json",
        ),
        (
            {"files": {"file": ("notes.txt", b"hello", "text/plain")}},
            415,
            "file: content type text/plain is not audio; send audio/* (WAV, MP3, OGG, FLAC, …)",
        ),
        (
            {"files": {"file": ("empty.wav", b"", "audio/wav")}},
            400,
            "file: the uploaded file is empty",
        ),
        (
            {"files": {"other": ("a.wav", b"x", "audio/wav")}},
            400,
            "file: a file part named 'file' is required",
        ),
        (
            {"data": {"file": "just text"}, "files": {"x": ("a", b"1", "audio/wav")}},
            400,
            "file: must be a file part, not a text field",
        ),
        (
            {"files": {"file": ("a.wav", b"x", "audio/wav")}, "data": {"roles": "agent,boss"}},
            400,
            "roles: 'boss' is not 'agent' or 'customer'",
        ),
        (
            {"files": {"file": ("a.wav", b"x", "audio/wav")}, "data": {"direction": "up"}},
            400,
            "direction: 'up' is not 'inbound' or 'outbound'",
        ),
        (
            {"files": {"file": ("a.wav", b"x", "audio/wav")}, "data": {"external_id": "e" * 256}},
            400,
            "external_id: longer than 255 characters",
        ),
    ],
    ids=["json", "text-part", "empty", "missing", "text-field", "roles", "direction", "ext-id"],
)
async def test_upload_rejects(api: Api, kwargs: dict, status: int, message: str) -> None:
    response = await api.client.post("/api/v2/calls", headers=await api.headers(), **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"] == message
    root = api.settings.data_dir / "recordings"
    assert not root.exists() or list(root.iterdir()) == []
    assert api.runner.calls == []


async def test_upload_without_a_transcriber_is_503(api: Api) -> None:
    api.services.transcription_runner = None
    response = await api.client.post(
        "/api/v2/calls",
        files={"file": ("a.wav", b"x", "audio/wav")},
        headers=await api.headers(),
    )
    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "Transcription is not available on this server yet"
    )


def test_parse_roles() -> None:
    assert parse_roles(None) is None
    assert parse_roles("  ") is None
    assert parse_roles("Agent,CUSTOMER") == ["agent", "customer"]
    with pytest.raises(ApiError):
        parse_roles("agent,,customer")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("call.wav", "call.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\rec ording.mp3", "rec_ording.mp3"),
        (".hidden", "hidden"),
        ("..", "upload"),
        (None, "upload"),
        ("ü.wav", "_.wav"),
    ],
)
def test_safe_filename(name: str | None, safe: str) -> None:
    assert safe_filename(name) == safe
