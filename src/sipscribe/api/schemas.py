"""What clients see: response envelopes and resource shapes, apart from the storage records.

Every successful ``/api/v2`` response is enveloped::

    {"status": 200, "request_id": "5b1f…", "timestamp": "2026-05-01T12:00:00Z", "data": …}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from starlette.requests import Request

from sipscribe.api.errors import request_id_of
from sipscribe.store.models import CallRecord, SummaryRecord

T = TypeVar("T")

MAX_INSTRUCTIONS_CHARS = 4000


class Envelope(BaseModel, Generic[T]):
    """The wrapper around every successful ``/api/v2`` response body."""

    status: int = Field(description="The HTTP status, repeated for clients that lose it.")
    request_id: str = Field(description="Same as the X-Request-Id header; quote it in reports.")
    timestamp: datetime = Field(description="When the response was made (UTC).")
    data: T


def envelope(request: Request, data: T, *, status: int = 200) -> Envelope[T]:
    return Envelope[Any](
        status=status,
        request_id=request_id_of(request.scope),
        timestamp=datetime.now(UTC),
        data=data,
    )


class ErrorDetail(BaseModel):
    statusCode: int
    name: str = Field(examples=["NotFoundError"])
    message: str
    requestId: str


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class PartyOut(BaseModel):
    participant_id: str
    aor: str | None = Field(description="Address of record, e.g. sip:+15551234567@pbx.example")
    name: str | None
    role: str | None = Field(description='"agent", "customer" or null when unknown')


class CallOut(BaseModel):
    id: str
    external_id: str | None
    source: str = Field(description='"siprec", "upload" or "dial-out"')
    direction: str | None = Field(description='"inbound", "outbound" or null')
    state: str = Field(description='"active", "completed" or "failed"')
    sip_call_id: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_sec: float | None
    parties: list[PartyOut]
    vendor_ids: dict[str, Any] = Field(description="Recorder/PBX identifiers (UCID, XRef…)")
    role_decisions: list[dict[str, Any]] = Field(
        description="Per stream or channel: the role assigned and the evidence for it"
    )
    transcription_state: str | None
    has_recording: bool
    purged_at: datetime | None = Field(
        description="When retention removed this call's transcript and recording"
    )

    @classmethod
    def of(cls, call: CallRecord) -> CallOut:
        return cls(
            id=call.id,
            external_id=call.external_id,
            source=call.source,
            direction=call.direction,
            state=call.state,
            sip_call_id=call.sip_call_id,
            started_at=call.started_at,
            ended_at=call.ended_at,
            duration_sec=call.duration_sec,
            parties=[
                PartyOut(participant_id=p.participant_id, aor=p.aor, name=p.name, role=p.role)
                for p in call.participants
            ],
            vendor_ids=dict(call.vendor_ids or {}),
            role_decisions=[d for d in (call.role_decisions or []) if isinstance(d, dict)],
            transcription_state=call.transcription_state,
            has_recording=bool(call.recording_path),
            purged_at=call.purged_at,
        )


class CallPageOut(BaseModel):
    items: list[CallOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= to get the next page; null on the last page"
    )


class Speaker(BaseModel):
    id: str
    name: str | None = None
    email: str | None = None


class TranscriptSegment(BaseModel):
    channel: int
    start: float = Field(description="Seconds from the start of the recording")
    end: float
    text: str
    role: str | None = None
    speaker: Speaker | None = Field(
        default=None, description="Who spoke, on a dial-out call with speaker events"
    )

    @model_serializer(mode="wrap")
    def _omit_unknown_speaker(self, handler: Any) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("speaker") is None:
            out.pop("speaker", None)
        return out


class TranscriptionOut(BaseModel):
    speech_state: str
    payload: list[TranscriptSegment]
    #: Why recognition or storing failed; present only when it did.
    error: str | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_error(self, handler: Any) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("error") is None:
            out.pop("error", None)
        return out


class TranscriptionStarted(BaseModel):
    call_id: str
    speech_state: str


class SummaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(
        default=None,
        max_length=MAX_INSTRUCTIONS_CHARS,
        description="Added to the tenant's base instructions for this call",
    )


class SummaryOut(BaseModel):
    call_id: str
    summary_state: str = Field(description='"created", "processed" or "failed"')
    instructions: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    processed_at: datetime | None

    @classmethod
    def of(cls, summary: SummaryRecord) -> SummaryOut:
        return cls(
            call_id=summary.call_id,
            summary_state=summary.state,
            instructions=summary.instructions,
            result=summary.result,
            error=summary.error,
            created_at=summary.created_at,
            processed_at=summary.processed_at,
        )


class SummarySettings(BaseModel):
    base_instructions: str | None = Field(
        description="Applied to every summary of this tenant, before per-call instructions"
    )
    enabled: bool = Field(
        default=False,
        description="Summarise every call when it ends; the completion bundle includes it",
    )


class SummarySettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_instructions: str | None = Field(
        default=None,
        max_length=MAX_INSTRUCTIONS_CHARS,
        description="New base instructions; null clears them, omitting keeps them",
    )
    enabled: bool | None = Field(
        default=None, description="Summarise every call automatically; omitting keeps it"
    )


class HealthOut(BaseModel):
    status: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all in the one error format."""
    from sipscribe.api.errors import error_name

    return {code: {"model": ErrorResponse, "description": error_name(code)} for code in codes}


# What any authenticated route can answer besides its own errors.
AUTH_ERRORS = (401, 403, 429)
