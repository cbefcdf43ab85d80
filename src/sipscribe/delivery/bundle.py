"""The completion bundle: everything known about a finished call, as JSON or as a vCon.

``load_snapshot`` reads a call, its parties, streams, utterances and summary from the store
into a plain ``CallSnapshot``; ``bundle_json`` and ``bundle_vcon`` are pure functions of it.
Texts are the redacted ones wherever redaction ran (``redacted_text`` when the store kept
both), so a bundle never carries what redaction removed.

The JSON bundle::

    {"type": "bundle", "callHeadline": …,
     "call": {"id", "externalId", "caller", "callee", "startTime", "endTime", "duration",
              "direction"},                # epoch ms; duration in ms
     "channel": {"type", "tenantId", "tenantName"},
     "transcriptions": [{"speaker", "startTime", "endTime", "text"}],   # ms from call start
     "summary", "note", "actionItems", "smallTalkItems", "smartAnswers"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.delivery.vcon import (
    EXTENSION,
    Analysis,
    Attachment,
    Dialog,
    Party,
    Vcon,
    VconError,
    vcon_uuid,
)
from sipscribe.store import calls as call_store
from sipscribe.store import summaries as summary_store
from sipscribe.store import tenants as tenant_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store.models import SummaryState

VENDOR = "sipscribe"
TRANSCRIPT_SCHEMA = "sipscribe-transcript-1"
SUMMARY_SCHEMA = "sipscribe-summary-1"
METADATA_PURPOSE = "sipscribe-call-metadata"

_PHONE = re.compile(r"^\+?[0-9][0-9().-]{2,30}$")


@dataclass(frozen=True, slots=True)
class SnapshotParty:
    participant_id: str
    aor: str | None
    name: str | None
    role: str | None


@dataclass(frozen=True, slots=True)
class SnapshotStream:
    stream_id: str
    channel: int
    role: str | None
    label: str | None


@dataclass(frozen=True, slots=True)
class SnapshotUtterance:
    sequence: int
    channel: int
    role: str | None
    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class CallSnapshot:
    """A finished call as the bundle builders need it (no database objects inside)."""

    call_id: str
    tenant_id: str
    tenant_name: str | None
    external_id: str | None
    source: str
    direction: str | None
    state: str
    started_at: datetime
    ended_at: datetime | None
    duration_sec: float | None
    recording_path: str | None
    vendor_ids: dict[str, Any] = field(default_factory=dict)
    parties: tuple[SnapshotParty, ...] = ()
    streams: tuple[SnapshotStream, ...] = ()
    utterances: tuple[SnapshotUtterance, ...] = ()
    summary: dict[str, Any] | None = None
    summary_state: str | None = None

    @property
    def start_ms(self) -> int:
        return epoch_ms(self.started_at)

    @property
    def end_ms(self) -> int | None:
        return None if self.ended_at is None else epoch_ms(self.ended_at)

    @property
    def duration_ms(self) -> int | None:
        if self.duration_sec is not None:
            return round(self.duration_sec * 1000)
        end = self.end_ms
        return None if end is None else max(0, end - self.start_ms)


def epoch_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


async def load_snapshot(
    session: AsyncSession, *, call_id: str, tenant_id: str
) -> CallSnapshot | None:
    """The call as stored now, or None if the tenant has no such call."""
    call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
    if call is None:
        return None
    tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
    streams = await call_store.list_streams(session, call_id=call_id, tenant_id=tenant_id)
    rows = await utterance_store.list_utterances(session, call_id=call_id, tenant_id=tenant_id)
    summary = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
    return CallSnapshot(
        call_id=call.id,
        tenant_id=call.tenant_id,
        tenant_name=tenant.name if tenant is not None else None,
        external_id=call.external_id,
        source=call.source,
        direction=call.direction,
        state=call.state,
        started_at=call.started_at,
        ended_at=call.ended_at,
        duration_sec=call.duration_sec,
        recording_path=call.recording_path,
        vendor_ids=dict(call.vendor_ids or {}),
        parties=tuple(
            SnapshotParty(p.participant_id, p.aor, p.name, p.role) for p in call.participants
        ),
        streams=tuple(SnapshotStream(s.stream_id, s.channel, s.role, s.label) for s in streams),
        utterances=tuple(
            SnapshotUtterance(
                sequence=u.sequence,
                channel=u.channel,
                role=u.role,
                start_ms=u.start_ms,
                end_ms=u.end_ms,
                # Redacted text wherever redaction ran: the raw one never leaves.
                text=u.redacted_text if u.redacted_text is not None else u.text,
            )
            for u in rows
        ),
        summary=summary.result if summary is not None else None,
        summary_state=summary.state if summary is not None else None,
    )


# -- parties ------------------------------------------------------------------------------


def address_of(party: SnapshotParty) -> str | None:
    """A party's number (``+1555…``) when its AOR has one as user part, else its AOR."""
    if party.aor is None:
        return None
    tel = tel_of(party.aor)
    return tel or party.aor


def tel_of(aor: str) -> str | None:
    """The telephone number in ``tel:+1555…`` or ``sip:+1555…@host``, else None."""
    value = aor.strip()
    lowered = value.lower()
    if lowered.startswith("tel:"):
        number = value[4:].split(";", 1)[0]
    elif lowered.startswith(("sip:", "sips:")):
        user = value.split(":", 1)[1].split("@", 1)[0] if "@" in value else ""
        number = user.split(";", 1)[0]
    else:
        number = value
    return number if _PHONE.match(number) else None


def caller_callee(snap: CallSnapshot) -> tuple[SnapshotParty | None, SnapshotParty | None]:
    """Who called whom: by direction and roles (the customer calls in, the agent calls out),
    else in the order the recorder listed the participants."""
    parties = list(snap.parties)
    by_role = {p.role: p for p in parties if p.role}
    if snap.direction in ("inbound", "outbound") and {"agent", "customer"} <= set(by_role):
        if snap.direction == "inbound":
            return by_role["customer"], by_role["agent"]
        return by_role["agent"], by_role["customer"]
    caller = parties[0] if parties else None
    callee = parties[1] if len(parties) > 1 else None
    return caller, callee


def speaker_of(role: str | None, channel: int) -> str:
    return role if role else f"channel {channel}"


# -- the JSON bundle ------------------------------------------------------------------------


def _pick(result: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = result.get(name)
        if value is not None:
            return value
    return None


def summary_fields(result: dict[str, Any] | None) -> dict[str, Any]:
    """The bundle's summary fields from a stored summary result (engines name them in camel or
    snake case); absent ones are None or empty lists."""
    r = result or {}
    # The extractive engine's "note" is about the engine, not the call.
    note = _pick(r, "callNote", "call_note")
    if note is None and r.get("engine") != "extractive":
        note = r.get("note")
    return {
        "callHeadline": _pick(r, "callHeadline", "headline"),
        "summary": _pick(r, "summary"),
        "note": note,
        "actionItems": list(_pick(r, "actionItems", "action_items") or []),
        "smallTalkItems": list(_pick(r, "smallTalkItems", "small_talk_items", "small_talk") or []),
        "smartAnswers": list(_pick(r, "smartAnswers", "smart_answers") or []),
    }


def bundle_json(snap: CallSnapshot) -> dict[str, Any]:
    """The JSON completion bundle (see the module docstring)."""
    caller, callee = caller_callee(snap)
    fields = summary_fields(snap.summary)
    return {
        "type": "bundle",
        "callHeadline": fields["callHeadline"],
        "call": {
            "id": snap.call_id,
            "externalId": snap.external_id,
            "caller": address_of(caller) if caller else None,
            "callee": address_of(callee) if callee else None,
            "startTime": snap.start_ms,
            "endTime": snap.end_ms,
            "duration": snap.duration_ms,
            "direction": snap.direction,
        },
        "channel": {
            "type": snap.source,
            "tenantId": snap.tenant_id,
            "tenantName": snap.tenant_name,
        },
        "transcriptions": [
            {
                "speaker": speaker_of(u.role, u.channel),
                "startTime": u.start_ms,
                "endTime": u.end_ms,
                "text": u.text,
            }
            for u in sorted(snap.utterances, key=lambda u: (u.start_ms, u.sequence))
        ],
        "summary": fields["summary"],
        "note": fields["note"],
        "actionItems": fields["actionItems"],
        "smallTalkItems": fields["smallTalkItems"],
        "smartAnswers": fields["smartAnswers"],
    }


# -- the vCon bundle ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingContent:
    """How the recording goes into the dialog: by reference or inline (base64url)."""

    mediatype: str
    filename: str | None = None
    url: str | None = None
    content_hash: str | None = None
    body: str | None = None


def _vcon_parties(snap: CallSnapshot) -> tuple[list[Party], dict[str, int]]:
    """vCon parties and the index of the first party of each role."""
    parties: list[Party] = []
    by_role: dict[str, int] = {}
    for p in snap.parties:
        aor = p.aor
        sip = aor if aor and aor.lower().startswith(("sip:", "sips:")) else None
        parties.append(
            Party(
                tel=tel_of(aor) if aor else None,
                sip=sip,
                mailto=aor[7:] if aor and aor.lower().startswith("mailto:") else None,
                name=p.name,
                uuid=p.participant_id,
                role=p.role,
            )
        )
        if p.role and p.role not in by_role:
            by_role[p.role] = len(parties) - 1
    # Roles heard on streams but missing from the metadata still get a party.
    for s in sorted(snap.streams, key=lambda s: s.channel):
        if s.role and s.role not in by_role:
            parties.append(Party(role=s.role))
            by_role[s.role] = len(parties) - 1
    if not parties:
        parties.append(Party())  # the draft allows an empty Party Object
    return parties, by_role


def bundle_vcon(
    snap: CallSnapshot,
    *,
    created_at: datetime,
    fqhn: str,
    recording: RecordingContent | None = None,
) -> dict[str, Any]:
    """The call as a vCon (unsigned JSON form), validated against the schema."""
    parties, by_role = _vcon_parties(snap)
    channels = sorted({s.channel for s in snap.streams} | {u.channel for u in snap.utterances})
    role_of_channel = {s.channel: s.role for s in snap.streams}
    for u in snap.utterances:
        role_of_channel.setdefault(u.channel, u.role)

    def party_index(channel: int) -> int | None:
        role = role_of_channel.get(channel)
        return by_role.get(role) if role else None

    # One entry per channel of the recording; without streams, every party on one channel.
    dialog_parties: list[int | list[int] | None] = (
        [party_index(c) for c in channels] if channels else [list(range(len(parties)))]
    )
    caller, _ = caller_callee(snap)
    originator = None
    if caller is not None and caller.role in by_role:
        first = next((p for p in dialog_parties if isinstance(p, int)), None)
        if by_role[caller.role] != first:
            originator = by_role[caller.role]
    duration = snap.duration_ms
    dialog = Dialog(
        type="recording",
        start=snap.started_at,
        duration=None if duration is None else duration / 1000,
        parties=dialog_parties,
        originator=originator,
        application=snap.source,
        mediatype=recording.mediatype if recording else None,
        filename=recording.filename if recording else None,
        url=recording.url if recording else None,
        content_hash=recording.content_hash if recording else None,
        body=recording.body if recording else None,
        encoding="base64url" if recording and recording.body is not None else None,
    )
    transcript = [
        {
            "party": party_index(u.channel),
            "channel": u.channel,
            "role": u.role,
            "speaker": speaker_of(u.role, u.channel),
            "start_ms": u.start_ms,
            "end_ms": u.end_ms,
            "text": u.text,
        }
        for u in sorted(snap.utterances, key=lambda u: (u.start_ms, u.sequence))
    ]
    analysis = [
        Analysis(
            type="transcript",
            dialog=0,
            mediatype="application/json",
            vendor=VENDOR,
            product=VENDOR,
            schema=TRANSCRIPT_SCHEMA,
            encoding="json",
            body={"utterances": transcript},
        )
    ]
    if snap.summary is not None and snap.summary_state == SummaryState.PROCESSED.value:
        analysis.append(
            Analysis(
                type="summary",
                dialog=0,
                mediatype="application/json",
                vendor=VENDOR,
                product=str(snap.summary.get("engine") or VENDOR),
                schema=SUMMARY_SCHEMA,
                encoding="json",
                body=snap.summary,
            )
        )
    metadata = {
        "call_id": snap.call_id,
        "external_id": snap.external_id,
        "tenant_id": snap.tenant_id,
        "tenant_name": snap.tenant_name,
        "source": snap.source,
        "direction": snap.direction,
        "state": snap.state,
        "vendor_ids": snap.vendor_ids,
        "streams": [
            {"stream_id": s.stream_id, "channel": s.channel, "role": s.role, "label": s.label}
            for s in sorted(snap.streams, key=lambda s: s.channel)
        ],
    }
    fields = summary_fields(snap.summary)
    try:
        document = Vcon(
            uuid=vcon_uuid(fqhn=fqhn, key=snap.call_id, at_ms=snap.start_ms),
            created_at=created_at,
            subject=fields["callHeadline"],
            extensions=[EXTENSION],
            parties=parties,
            dialog=[dialog],
            analysis=analysis,
            attachments=[
                Attachment(
                    purpose=METADATA_PURPOSE,
                    start=snap.started_at,
                    party=0,
                    dialog=0,
                    mediatype="application/json",
                    encoding="json",
                    body=metadata,
                )
            ],
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise VconError(f"vCon for call {snap.call_id} is not valid: {exc}") from exc
    return document.to_json()
