"""Real-time webhook bodies and live-feed messages, pure functions of pipeline events.

Events reaching delivery are already redacted (``RedactedUtteranceEvent`` holds the redacted
text in ``utterance``); the raw text on ``.raw`` is never read here, so it cannot leak into a
webhook or a WebSocket message.

An utterance goes out in the media-gateway transcript form, one POST each::

    {"type": "transcript", "callId": …, "sequence": 7,
     "externalConversationId": …, "streamId": …,
     "sender": {"externalId": …, "role": "customer"},
     "autotranscribeResponse": {"message": "transcript", "start": 4200, "end": 6100,
                                "utterance": [{"text": "I want a refund."}]}}

``start``/``end`` are milliseconds from the start of the stream. Other events keep their
pipeline JSON (``event.to_json()``) with ``callId`` and ``externalConversationId`` added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)

#: Pipeline event type → webhook event type.
WEBHOOK_EVENT = {
    UtteranceEvent.type: "transcript",
    CallStarted.type: "call.started",
    CallEnded.type: "call.ended",
    DtmfReceived.type: "dtmf",
}


@dataclass
class CallContext:
    """What the delivery service remembers about a live call to address its events."""

    call_id: str
    tenant_id: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: stream id → (role, label)
    streams: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    #: Highest utterance sequence seen: the live-feed position of non-utterance events.
    last_sequence: int = 0
    ended: bool = False

    @property
    def conversation_id(self) -> str:
        return self.external_id or self.call_id

    def sender_id(self, stream_id: str, role: str | None) -> str:
        """The participant id a receiver knows the speaker by: the SIPREC participant of that
        role when the metadata names one, else the stream's label, else the stream id."""
        for participant in self.metadata.get("participants") or ():
            if not isinstance(participant, dict) or role is None or participant.get("role") != role:
                continue
            for key in ("aor", "participant_id", "id", "name"):
                value = participant.get(key)
                if isinstance(value, str) and value:
                    return value
        _, label = self.streams.get(stream_id, (None, None))
        return label or stream_id


def transcript_payload(event: UtteranceEvent, ctx: CallContext) -> dict[str, Any]:
    u = event.utterance
    return {
        "type": "transcript",
        "callId": u.call_id,
        "sequence": u.sequence,
        "externalConversationId": ctx.conversation_id,
        "streamId": u.stream_id,
        "sender": {"externalId": ctx.sender_id(u.stream_id, u.role), "role": u.role},
        "autotranscribeResponse": {
            "message": "transcript",
            "start": u.start_ms,
            "end": u.end_ms,
            "utterance": [{"text": u.text}],
        },
    }


def event_payload(event: PipelineEvent, ctx: CallContext) -> dict[str, Any]:
    """The webhook body of any real-time event."""
    if isinstance(event, UtteranceEvent):
        return transcript_payload(event, ctx)
    body = {k: v for k, v in event.to_json().items() if k not in ("type", "call_id")}
    return {
        "type": WEBHOOK_EVENT.get(event.type, event.type),
        "callId": ctx.call_id,
        "externalConversationId": ctx.conversation_id,
        **body,
    }


def summary_payload(
    *,
    call_id: str,
    external_id: str | None,
    state: str,
    result: dict[str, Any] | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        "type": "summary.ready",
        "callId": call_id,
        "externalConversationId": external_id or call_id,
        "state": state,
        "summary": result,
        "error": error,
    }


def idempotency_key(event: PipelineEvent) -> str:
    """Stable per event, so a replayed event is recognised by outbox and receiver alike."""
    if isinstance(event, UtteranceEvent):
        return f"transcript:{event.call_id}:{event.utterance.sequence}"
    if isinstance(event, DtmfReceived):
        return f"dtmf:{event.call_id}:{event.stream_id}:{event.start_ms}"
    if isinstance(event, StreamStarted | StreamStopped):
        return f"{event.type}:{event.call_id}:{event.stream_id}"
    return f"{WEBHOOK_EVENT.get(event.type, event.type)}:{event.call_id}"


def live_message(event: PipelineEvent, position: int) -> dict[str, Any]:
    """A live-feed (WebSocket) message: the event's JSON with ``sequence``, the utterance's own
    number or, for other events, the number of the last utterance before it."""
    if isinstance(event, UtteranceEvent):
        # to_json of a RedactedUtteranceEvent leaves ``raw`` out unless asked.
        message = event.to_json()
        message["sequence"] = event.utterance.sequence
        return message
    message = event.to_json()
    message["sequence"] = position
    return message


def message_key(message: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two live messages the same event (replay and live feed overlap)."""
    kind = message.get("type")
    if kind == "utterance":
        return (kind, message.get("sequence"))
    if kind == "dtmf":
        return (kind, message.get("stream_id"), message.get("start_ms"))
    if kind in ("stream.started", "stream.stopped"):
        return (kind, message.get("stream_id"))
    return (kind,)
