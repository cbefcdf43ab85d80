"""``GET /conversation/v1/conversation/messages``: a call's messages by its external id.

The conversation-API convention: every message (utterance) of the call, in order, with
its sender (role and the party's external id from start-streaming), message id and
times. Text is the redacted text wherever redaction ran; a key with
``calls.transcription.read_unredacted`` also gets ``rawText`` where the call kept it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from sipscribe.api.deps import Principal, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import AUTH_ERRORS, error_responses
from sipscribe.store import calls as calls_q
from sipscribe.store import utterances as utt_q
from sipscribe.store.keys import Scope

router = APIRouter(prefix="/conversation/v1/conversation", tags=["conversation"])

MAX_MESSAGES = 1000


@router.get(
    "/messages",
    summary="Every message of a call, by the call's external id",
    responses=error_responses(400, 404, *AUTH_ERRORS),
)
async def conversation_messages(
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_READ))],
    session: SessionDep,
    externalId: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES)] = MAX_MESSAGES,
) -> dict[str, Any]:
    page = await calls_q.list_calls(
        session, tenant_id=principal.tenant_id, external_id=externalId, limit=1
    )
    if not page.items:
        raise ApiError(404, f"No call with external id {externalId}")
    call = page.items[0]  # the most recent call with that id
    rows = await utt_q.list_utterances(session, call_id=call.id, tenant_id=principal.tenant_id)
    parties = (call.vendor_ids or {}).get("parties") or {}
    raw_allowed = principal.can(Scope.TRANSCRIPTION_READ_UNREDACTED)
    messages = []
    for row in sorted(rows, key=lambda r: r.sequence)[:limit]:
        start = call.started_at + timedelta(milliseconds=row.start_ms)
        end = call.started_at + timedelta(milliseconds=row.end_ms)
        message: dict[str, Any] = {
            "id": str(row.id),
            "conversationId": call.id,
            "sequenceNumber": row.sequence,
            "text": row.redacted_text if row.redacted_text is not None else row.text,
            "from": {
                "role": row.role,
                "externalId": parties.get(row.role) if row.role else None,
                "channel": row.channel,
            },
            "startTime": _iso(start),
            "endTime": _iso(end),
            "timeOffset": round(row.start_ms / 1000, 3),
            "duration": round((row.end_ms - row.start_ms) / 1000, 3),
            "confidence": row.confidence,
        }
        if raw_allowed and row.redacted_text is not None and row.text != row.redacted_text:
            message["rawText"] = row.text
        messages.append(message)
    return {
        "externalId": externalId,
        "conversationId": call.id,
        "state": call.state,
        "messages": messages,
    }


def _iso(value: Any) -> str:
    text = value.isoformat()
    return text.replace("+00:00", "Z") if "+" in text else text + "Z"
