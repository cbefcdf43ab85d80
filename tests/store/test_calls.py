"""Calls: creation, tenant-scoped reads, keyset pagination, state changes, children."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.store import calls
from sipscribe.store.calls import CallQueryError
from sipscribe.store.models import CallRecord, TranscriptionState
from sipscribe.store.tenants import create_tenant

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def tenants(session):
    return await create_tenant(session, name="acme"), await create_tenant(session, name="globex")


async def test_create_and_get_is_tenant_scoped(session, tenants) -> None:
    acme, globex = tenants
    call = await calls.create_call(
        session,
        tenant_id=acme.id,
        source="siprec",
        direction="inbound",
        external_id="crm-1",
        sip_call_id="abc@pbx",
        started_at=T0,
        vendor_ids={"ucid": "00001"},
        role_decisions=[{"label": "1", "role": "customer", "evidence": "callingParty"}],
    )
    await calls.upsert_participant(
        session, call_id=call.id, participant_id="p1", aor="sip:+1555@pbx", role="customer"
    )
    session.expunge_all()
    loaded = await calls.get_call(session, call_id=call.id, tenant_id=acme.id)
    assert loaded is not None
    assert (loaded.source, loaded.direction, loaded.state) == ("siprec", "inbound", "active")
    assert loaded.vendor_ids == {"ucid": "00001"}
    assert [(p.participant_id, p.role) for p in loaded.participants] == [("p1", "customer")]
    assert await calls.get_call(session, call_id=call.id, tenant_id=globex.id) is None
    by_sip = await calls.get_call_by_sip_call_id(session, sip_call_id="abc@pbx", tenant_id=acme.id)
    assert by_sip.id == call.id
    assert (
        await calls.get_call_by_sip_call_id(session, sip_call_id="abc@pbx", tenant_id=globex.id)
        is None
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("source", "fax", "call source 'fax' is not one of: siprec, upload, dial-out"),
        ("direction", "up", "call direction 'up' is not one of: inbound, outbound"),
        ("state", "ringing", "call state 'ringing' is not one of: active, completed, failed"),
    ],
)
async def test_create_rejects_unknown_enums(
    session, tenants, field: str, value: str, message: str
) -> None:
    kwargs = {"source": "upload", field: value}
    with pytest.raises(CallQueryError) as info:
        await calls.create_call(session, tenant_id=tenants[0].id, **kwargs)
    assert str(info.value) == message


async def test_pagination_walks_every_call_once_newest_first(session, tenants) -> None:
    acme, globex = tenants
    made = []
    for i in range(23):
        # Groups of three share a start time, so the id breaks ties.
        started = T0 + timedelta(minutes=i // 3)
        made.append(
            await calls.create_call(session, tenant_id=acme.id, source="upload", started_at=started)
        )
    await calls.create_call(session, tenant_id=globex.id, source="upload", started_at=T0)
    expected = [c.id for c in sorted(made, key=lambda c: (c.started_at, c.id), reverse=True)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await calls.list_calls(session, tenant_id=acme.id, limit=5, cursor=cursor)
        seen.extend(c.id for c in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 5


async def test_exact_page_has_no_next_cursor(session, tenants) -> None:
    for i in range(4):
        await calls.create_call(
            session, tenant_id=tenants[0].id, source="upload", started_at=T0 + timedelta(hours=i)
        )
    page = await calls.list_calls(session, tenant_id=tenants[0].id, limit=4)
    assert len(page.items) == 4 and page.next_cursor is None


async def test_filters(session, tenants) -> None:
    acme = tenants[0]
    early = await calls.create_call(session, tenant_id=acme.id, source="siprec", started_at=T0)
    mid = await calls.create_call(
        session,
        tenant_id=acme.id,
        source="siprec",
        started_at=T0 + timedelta(hours=1),
        external_id="x-1",
    )
    late = await calls.create_call(
        session, tenant_id=acme.id, source="upload", started_at=T0 + timedelta(hours=2)
    )
    await calls.end_call(
        session, call_id=late.id, tenant_id=acme.id, ended_at=T0 + timedelta(hours=3)
    )

    async def ids(**filters) -> list[str]:
        page = await calls.list_calls(session, tenant_id=acme.id, **filters)
        return [c.id for c in page.items]

    assert await ids(started_from=T0 + timedelta(hours=1)) == [late.id, mid.id]
    assert await ids(started_to=T0 + timedelta(hours=1)) == [early.id]
    assert await ids(state="completed") == [late.id]
    assert await ids(state="active") == [mid.id, early.id]
    assert await ids(external_id="x-1") == [mid.id]
    assert await ids(started_from=T0.astimezone(tz=None)) == [late.id, mid.id, early.id]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be between 1 and 100, got 0"),
        ({"limit": 101}, "limit must be between 1 and 100, got 101"),
        ({"cursor": "nope"}, "cursor 'nope' is not valid"),
        ({"started_from": datetime(2026, 1, 1)}, "from time 2026-01-01T00:00:00 has no timezone"),
        ({"state": "lost"}, "call state 'lost' is not one of: active, completed, failed"),
    ],
)
async def test_list_rejects(session, tenants, kwargs, message: str) -> None:
    with pytest.raises(CallQueryError) as info:
        await calls.list_calls(session, tenant_id=tenants[0].id, **kwargs)
    assert str(info.value) == message


def test_cursor_round_trip() -> None:
    call = CallRecord(id="abc", started_at=T0 + timedelta(microseconds=7))
    assert calls.decode_cursor(calls.encode_cursor(call)) == (call.started_at, "abc")


@given(st.text(max_size=80))
@settings(max_examples=400)
def test_decode_cursor_accepts_only_its_own_format(value: str) -> None:
    try:
        started_at, call_id = calls.decode_cursor(value)
    except CallQueryError as exc:
        assert str(exc) == f"cursor {value!r} is not valid"
    else:
        assert started_at.tzinfo is not None and isinstance(call_id, str)


async def test_end_call_sets_duration(session, tenants) -> None:
    acme, globex = tenants
    call = await calls.create_call(session, tenant_id=acme.id, source="siprec", started_at=T0)
    assert await calls.end_call(session, call_id=call.id, tenant_id=globex.id) is None
    ended = await calls.end_call(
        session,
        call_id=call.id,
        tenant_id=acme.id,
        ended_at=T0 + timedelta(seconds=95.5),
        state="failed",
    )
    assert (ended.state, ended.duration_sec) == ("failed", 95.5)


async def test_update_call(session, tenants) -> None:
    acme, globex = tenants
    call = await calls.create_call(session, tenant_id=acme.id, source="siprec")
    updated = await calls.update_call(
        session,
        call_id=call.id,
        tenant_id=acme.id,
        changes={"external_id": "e", "direction": "outbound", "duration_sec": 12.0},
    )
    assert (updated.external_id, updated.direction, updated.duration_sec) == ("e", "outbound", 12.0)
    assert (
        await calls.update_call(session, call_id=call.id, tenant_id=globex.id, changes={}) is None
    )
    with pytest.raises(CallQueryError) as info:
        await calls.update_call(
            session, call_id=call.id, tenant_id=acme.id, changes={"state": "x", "tenant_id": "y"}
        )
    assert str(info.value) == "call field(s) state, tenant_id cannot be updated"


async def test_transcription_state_compare_and_set(session, tenants) -> None:
    acme, globex = tenants
    call = await calls.create_call(session, tenant_id=acme.id, source="upload")
    sent = TranscriptionState.SENT_TO_RECOGNITION
    kwargs = {"call_id": call.id, "state": sent, "expected": [None]}
    assert await calls.set_transcription_state(session, tenant_id=globex.id, **kwargs) is False
    assert await calls.set_transcription_state(session, tenant_id=acme.id, **kwargs) is True
    assert await calls.set_transcription_state(session, tenant_id=acme.id, **kwargs) is False
    assert await calls.set_transcription_state(
        session,
        call_id=call.id,
        tenant_id=acme.id,
        state="speech_recognition_failed",
        error="boom",
        expected=[sent, "speech_recognized"],
    )
    loaded = await calls.get_call(session, call_id=call.id, tenant_id=acme.id)
    assert (loaded.transcription_state, loaded.transcription_error) == (
        "speech_recognition_failed",
        "boom",
    )
    with pytest.raises(CallQueryError):
        await calls.set_transcription_state(
            session, call_id=call.id, tenant_id=acme.id, state="speech_lost"
        )


async def test_participants_and_streams_upsert(session, tenants) -> None:
    acme, globex = tenants
    call = await calls.create_call(session, tenant_id=acme.id, source="siprec")
    await calls.upsert_participant(session, call_id=call.id, participant_id="p1", name="Ann")
    await calls.upsert_participant(
        session, call_id=call.id, participant_id="p1", name="Ann B", role="agent"
    )
    await calls.upsert_stream(session, call_id=call.id, stream_id="s1", channel=1, label="1")
    await calls.upsert_stream(session, call_id=call.id, stream_id="s0", channel=0, label="0")
    assert await calls.update_stream_stats(
        session, call_id=call.id, stream_id="s1", stats={"packets": 500, "lost": 2}
    )
    assert not await calls.update_stream_stats(session, call_id=call.id, stream_id="s9", stats={})
    await calls.upsert_stream(
        session,
        call_id=call.id,
        stream_id="s1",
        channel=1,
        label="1",
        role="customer",
        codec="PCMU",
    )
    session.expunge_all()
    loaded = await calls.get_call(session, call_id=call.id, tenant_id=acme.id)
    assert [(p.participant_id, p.name, p.role) for p in loaded.participants] == [
        ("p1", "Ann B", "agent")
    ]
    streams = await calls.list_streams(session, call_id=call.id, tenant_id=acme.id)
    assert [(s.stream_id, s.channel, s.role, s.codec, s.stats) for s in streams] == [
        ("s0", 0, None, None, {}),
        ("s1", 1, "customer", "PCMU", {"packets": 500, "lost": 2}),
    ]
    assert await calls.list_streams(session, call_id=call.id, tenant_id=globex.id) == []
    with pytest.raises(CallQueryError) as info:
        await calls.upsert_participant(session, call_id=call.id, participant_id="p2", role="boss")
    assert str(info.value) == "participant role 'boss' is not one of: agent, customer"
