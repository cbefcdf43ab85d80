"""``/api/v2/calls/{id}/transcription``: start and read a call's transcription."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from sipscribe.api.deps import Principal, ServicesDep, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.jobs import run_transcription, transcript_of
from sipscribe.api.routes.calls import CallId
from sipscribe.api.schemas import (
    AUTH_ERRORS,
    Envelope,
    TranscriptionOut,
    TranscriptionStarted,
    TranscriptSegment,
    envelope,
    error_responses,
)
from sipscribe.store import calls as call_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store.keys import Scope
from sipscribe.store.models import CallRecord, CallState, Role, TranscriptionState

router = APIRouter(prefix="/api/v2/calls", tags=["transcription"])

# A transcription may be (re)started from these states only.
RESTARTABLE = (
    None,
    TranscriptionState.RECOGNITION_FAILED,
    TranscriptionState.STORING_FAILED,
)


def roles_of(call: CallRecord) -> list[str] | None:
    """Channel roles recorded on the call (``role_decisions`` entries with a channel)."""
    by_channel: dict[int, str] = {}
    for decision in call.role_decisions or []:
        if not isinstance(decision, dict):
            continue
        channel, role = decision.get("channel"), decision.get("role")
        if isinstance(channel, int) and role in {r.value for r in Role}:
            by_channel[channel] = role
    if not by_channel or sorted(by_channel) != list(range(len(by_channel))):
        return None
    return [by_channel[i] for i in range(len(by_channel))]


def speech_state_of(call: CallRecord) -> str:
    """The state to report; live calls store utterances without a recorded state."""
    if call.transcription_state is not None:
        return call.transcription_state
    if call.state == CallState.ACTIVE:
        return TranscriptionState.SENT_TO_RECOGNITION.value
    return TranscriptionState.STORED.value


@router.post(
    "/{call_id}/transcription",
    status_code=202,
    response_model=Envelope[TranscriptionStarted],
    summary="Transcribe the call's recording in the background",
    responses=error_responses(404, 409, 503, *AUTH_ERRORS),
)
async def start_transcription(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_WRITE))],
    session: SessionDep,
    services: ServicesDep,
) -> Envelope[TranscriptionStarted]:
    tenant_id = principal.tenant_id
    call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
    if call is None:
        raise ApiError(404, f"No call {call_id}")
    if services.transcription_runner is None:
        raise ApiError(503, "Transcription is not available on this server yet")
    if not call.recording_path:
        raise ApiError(409, f"Call {call_id} has no recording to transcribe")
    path = Path(call.recording_path)
    if not path.exists():
        raise ApiError(409, f"The recording of call {call_id} is no longer available")
    if call.transcription_state is None and await utterance_store.count_utterances(
        session, call_id=call_id, tenant_id=tenant_id
    ):
        raise ApiError(409, f"Call {call_id} already has a transcription")
    claimed = await call_store.set_transcription_state(
        session,
        call_id=call_id,
        tenant_id=tenant_id,
        state=TranscriptionState.SENT_TO_RECOGNITION,
        expected=RESTARTABLE,
    )
    if not claimed:
        current = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
        state = current.transcription_state if current is not None else None
        raise ApiError(409, f"Call {call_id} already has a transcription (state {state})")
    # Leftovers of a failed attempt would otherwise be mixed into the new transcript.
    await utterance_store.delete_utterances(session, call_id=call_id, tenant_id=tenant_id)
    services.spawn(
        run_transcription(
            services, call_id=call_id, tenant_id=tenant_id, path=path, roles=roles_of(call)
        ),
        name=f"transcribe-{call_id}",
    )
    data = TranscriptionStarted(
        call_id=call_id, speech_state=TranscriptionState.SENT_TO_RECOGNITION.value
    )
    return envelope(request, data, status=202)


@router.get(
    "/{call_id}/transcription",
    response_model=Envelope[TranscriptionOut],
    summary="Read the call's transcription",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def read_transcription(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_READ))],
    session: SessionDep,
    unredacted: Annotated[
        bool,
        Query(description="Original text instead of redacted (needs the read_unredacted scope)"),
    ] = False,
) -> Envelope[TranscriptionOut]:
    if unredacted and not principal.can(Scope.TRANSCRIPTION_READ_UNREDACTED):
        raise ApiError(
            403, f"This API key lacks the scope {Scope.TRANSCRIPTION_READ_UNREDACTED.value!r}"
        )
    call = await call_store.get_call(session, call_id=call_id, tenant_id=principal.tenant_id)
    if call is None:
        raise ApiError(404, f"No call {call_id}")
    rows = await utterance_store.list_utterances(
        session, call_id=call_id, tenant_id=principal.tenant_id
    )
    if call.transcription_state is None and not rows:
        raise ApiError(404, f"Call {call_id} has no transcription")
    segments: list[dict[str, Any]] = transcript_of(rows, unredacted=unredacted)
    data = TranscriptionOut(
        speech_state=speech_state_of(call),
        payload=[TranscriptSegment(**s) for s in segments],
        error=call.transcription_error,
    )
    return envelope(request, data)
