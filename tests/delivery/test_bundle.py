from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sipscribe.delivery.bundle import (
    CallSnapshot,
    RecordingContent,
    SnapshotParty,
    SnapshotStream,
    SnapshotUtterance,
    bundle_json,
    bundle_vcon,
    caller_callee,
    load_snapshot,
    summary_fields,
    tel_of,
)
from sipscribe.delivery.vcon import content_hash, validate_vcon
from sipscribe.store import summaries as summary_store

from .helpers import StoreWriter, call_events, tenant

T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

SNAP = CallSnapshot(
    call_id="c1",
    tenant_id="ten",
    tenant_name="acme",
    external_id="ext-9",
    source="siprec",
    direction="inbound",
    state="completed",
    started_at=T,
    ended_at=T + timedelta(seconds=95),
    duration_sec=95.0,
    recording_path=None,
    parties=(
        SnapshotParty("p0", "sip:agent7@pbx.example", "Agent Seven", "agent"),
        SnapshotParty("p1", "sip:+15551230000@pbx.example", None, "customer"),
    ),
    streams=(
        SnapshotStream("s0", 0, "agent", "1"),
        SnapshotStream("s1", 1, "customer", "2"),
    ),
    utterances=(
        SnapshotUtterance(2, 0, "agent", 3000, 4500, "How can I help?"),
        SnapshotUtterance(1, 1, "customer", 500, 2500, "My card is ################."),
    ),
    summary={
        "engine": "llm",
        "headline": "Refund request",
        "summary": "Customer wants a refund.",
        "action_items": ["Refund $20"],
        "note": "VIP",
    },
    summary_state="processed",
)


def test_json_bundle_field_names_and_values() -> None:
    body = bundle_json(SNAP)
    assert list(body) == [
        "type",
        "callHeadline",
        "call",
        "channel",
        "transcriptions",
        "summary",
        "note",
        "actionItems",
        "smallTalkItems",
        "smartAnswers",
    ]
    assert body["callHeadline"] == "Refund request"
    assert body["call"] == {
        "id": "c1",
        "externalId": "ext-9",
        "caller": "+15551230000",
        "callee": "sip:agent7@pbx.example",
        "startTime": 1777636800000,
        "endTime": 1777636895000,
        "duration": 95000,
        "direction": "inbound",
    }
    assert body["channel"] == {"type": "siprec", "tenantId": "ten", "tenantName": "acme"}
    assert body["transcriptions"] == [
        {
            "speaker": "customer",
            "startTime": 500,
            "endTime": 2500,
            "text": "My card is ################.",
        },
        {"speaker": "agent", "startTime": 3000, "endTime": 4500, "text": "How can I help?"},
    ]
    assert body["summary"] == "Customer wants a refund."
    assert body["note"] == "VIP"
    assert body["actionItems"] == ["Refund $20"]
    assert body["smallTalkItems"] == [] and body["smartAnswers"] == []


def test_outbound_swaps_caller_and_unknown_direction_keeps_order() -> None:
    caller, callee = caller_callee(replace(SNAP, direction="outbound"))
    assert (caller.role, callee.role) == ("agent", "customer")
    caller, callee = caller_callee(replace(SNAP, direction=None))
    assert (caller.participant_id, callee.participant_id) == ("p0", "p1")
    assert caller_callee(replace(SNAP, parties=())) == (None, None)


def test_extractive_engine_note_is_not_a_call_note() -> None:
    fields = summary_fields({"engine": "extractive", "headline": "h", "note": "engine limits"})
    assert fields["note"] is None and fields["callHeadline"] == "h"
    assert summary_fields(None)["actionItems"] == []


def test_tel_of() -> None:
    assert tel_of("sip:+15551230000@pbx.example;user=phone") == "+15551230000"
    assert tel_of("tel:+4930123456") == "+4930123456"
    assert tel_of("sip:alice@example.com") is None
    assert tel_of("+1 555") is None


def test_vcon_bundle_validates_with_reference_and_inline_recordings() -> None:
    ref = RecordingContent(
        mediatype="audio/x-wav",
        filename="c1.wav",
        url="https://rec.example.com/c1.wav",
        content_hash=content_hash(b"RIFF"),
    )
    doc = bundle_vcon(SNAP, created_at=T, fqhn="rec.example.com", recording=ref)
    validate_vcon(doc)
    assert doc["vcon"] == "0.4.0"
    assert doc["subject"] == "Refund request"
    assert [p.get("role") for p in doc["parties"]] == ["agent", "customer"]
    assert doc["parties"][1]["tel"] == "+15551230000"
    assert doc["parties"][1]["sip"] == "sip:+15551230000@pbx.example"
    dialog = doc["dialog"][0]
    assert dialog["type"] == "recording"
    assert dialog["parties"] == [0, 1]  # channel 0 agent, channel 1 customer
    assert dialog["originator"] == 1  # inbound: the customer called
    assert dialog["duration"] == 95.0
    assert dialog["url"] == ref.url and dialog["content_hash"] == ref.content_hash
    transcript, summary = doc["analysis"]
    assert transcript["type"] == "transcript" and transcript["vendor"] == "sipscribe"
    assert transcript["dialog"] == 0 and transcript["encoding"] == "json"
    assert [u["text"] for u in transcript["body"]["utterances"]] == [
        "My card is ################.",
        "How can I help?",
    ]
    assert summary["type"] == "summary" and summary["body"]["headline"] == "Refund request"
    assert doc["attachments"][0]["body"]["external_id"] == "ext-9"

    inline = RecordingContent(mediatype="audio/x-wav", filename="c1.wav", body="UklGRg")
    doc = bundle_vcon(SNAP, created_at=T, fqhn="rec.example.com", recording=inline)
    assert doc["dialog"][0]["encoding"] == "base64url" and doc["dialog"][0]["body"] == "UklGRg"


def test_vcon_without_parties_streams_or_summary_still_validates() -> None:
    bare = replace(SNAP, parties=(), streams=(), utterances=(), summary=None, summary_state=None)
    doc = bundle_vcon(bare, created_at=T, fqhn="h")
    assert doc["parties"] == [{}]
    assert doc["dialog"][0]["parties"] == [[0]]
    assert [a["type"] for a in doc["analysis"]] == ["transcript"]


def test_failed_summary_is_left_out_of_the_vcon() -> None:
    doc = bundle_vcon(replace(SNAP, summary_state="failed"), created_at=T, fqhn="h")
    assert [a["type"] for a in doc["analysis"]] == ["transcript"]


async def test_load_snapshot_prefers_redacted_text(database) -> None:
    tenant_id = await tenant(database)
    writer = StoreWriter(database)
    for event in call_events("c-snap", tenant_id, utterances=3, redacted=True):
        await writer.handle(event)
    async with database.session() as s:
        await summary_store.request_summary(s, call_id="c-snap", instructions=None)
        snap = await load_snapshot(s, call_id="c-snap", tenant_id=tenant_id)
        other = await load_snapshot(s, call_id="c-snap", tenant_id="someone-else")
    assert other is None
    assert snap is not None
    assert [u.text for u in snap.utterances] == [
        "utterance number #",
        "utterance number #",
        "utterance number #",
    ]
    assert snap.summary_state == "created"
    assert snap.tenant_name == "acme"
    assert {p.role for p in snap.parties} == {"agent", "customer"}
    body = bundle_json(snap)
    assert "utterance number 1" not in str(body)
