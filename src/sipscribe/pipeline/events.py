"""Pipeline events and their stable JSON form (``to_json``), the bus's currency.

Every event carries ``call_id`` and a UTC wall-clock ``at``; ``type`` names it on the
wire. Later layers (storage, webhooks, WebSocket) subscribe to these and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from sipscribe.pipeline.utterance import Role, Utterance


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def event_json(event: Any) -> dict[str, Any]:
    """The stable JSON form: ``type``, then every field in declaration order (UTC times ISO)."""
    out: dict[str, Any] = {"type": event.type}
    for f in fields(event):
        value = getattr(event, f.name)
        out[f.name] = _iso(value) if isinstance(value, datetime) else value
    return out


@dataclass(frozen=True, slots=True)
class CallStarted:
    type: ClassVar[str] = "call.started"
    call_id: str
    #: siprec | upload | dial-out
    source: str
    external_id: str | None = None
    tenant_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


@dataclass(frozen=True, slots=True)
class StreamStarted:
    type: ClassVar[str] = "stream.started"
    call_id: str
    stream_id: str
    channel: int
    role: Role | None
    codec: str | None = None
    label: str | None = None
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


@dataclass(frozen=True, slots=True)
class UtteranceEvent:
    type: ClassVar[str] = "utterance"
    utterance: Utterance
    at: datetime = field(default_factory=utcnow)

    @property
    def call_id(self) -> str:
        return self.utterance.call_id

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.utterance.to_dict(), "at": _iso(self.at)}


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    type: ClassVar[str] = "dtmf"
    call_id: str
    stream_id: str
    channel: int
    role: Role | None
    digit: str
    start_ms: int
    duration_ms: int
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


@dataclass(frozen=True, slots=True)
class StreamStopped:
    type: ClassVar[str] = "stream.stopped"
    call_id: str
    stream_id: str
    stats: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """Something about the call changed mid-call (metadata update, transfer, new roles)."""

    type: ClassVar[str] = "call.updated"
    call_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


@dataclass(frozen=True, slots=True)
class CallEnded:
    type: ClassVar[str] = "call.ended"
    call_id: str
    reason: str = "bye"
    utterances: int = 0
    duration_ms: int = 0
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return event_json(self)


PipelineEvent = (
    CallStarted | StreamStarted | UtteranceEvent | DtmfReceived | StreamStopped | CallEnded
)
