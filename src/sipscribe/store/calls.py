"""Calls, their participants and streams.

Every read by id takes the tenant: a call of another tenant is simply not found. Writes to a
call's children (participants, streams) take the call id alone, because the caller obtained that
id from a tenant-scoped read or from ``create_call`` itself.

``list_calls`` pages newest first with an opaque keyset cursor over ``(started_at, id)``, so a
page stays correct while new calls arrive (an offset would shift under the reader).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import (
    CallDirection,
    CallRecord,
    CallSource,
    CallState,
    ParticipantRecord,
    Role,
    StreamRecord,
    TranscriptionState,
    utcnow,
)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class CallQueryError(ValueError):
    """A call query we cannot run: bad cursor, page size or filter value."""


@dataclass(frozen=True)
class CallPage:
    """One page of ``list_calls``; ``next_cursor`` is None on the last page."""

    items: list[CallRecord]
    next_cursor: str | None


def encode_cursor(call: CallRecord) -> str:
    """An opaque cursor pointing just after ``call`` in newest-first order."""
    raw = json.dumps({"t": call.started_at.isoformat(), "i": call.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(started_at, id)`` a cursor encodes; ``CallQueryError`` if it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        started_at = datetime.fromisoformat(raw["t"])
        call_id = raw["i"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise CallQueryError(f"cursor {cursor!r} is not valid") from None
    if not isinstance(call_id, str) or started_at.tzinfo is None:
        raise CallQueryError(f"cursor {cursor!r} is not valid")
    return started_at, call_id


def _enum_value(enum_type: type[Any], value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return enum_type(value).value
    except ValueError:
        allowed = ", ".join(v.value for v in enum_type)
        raise CallQueryError(f"{what} {value!r} is not one of: {allowed}") from None


async def create_call(
    session: AsyncSession,
    *,
    tenant_id: str,
    source: CallSource | str,
    call_id: str | None = None,
    state: CallState | str = CallState.ACTIVE,
    direction: CallDirection | str | None = None,
    external_id: str | None = None,
    sip_call_id: str | None = None,
    started_at: datetime | None = None,
    vendor_ids: dict[str, Any] | None = None,
    role_decisions: list[Any] | None = None,
    recording_path: str | None = None,
) -> CallRecord:
    """Insert a call and commit. ``call_id`` defaults to a new UUID; ``started_at`` to now."""
    call = CallRecord(
        id=call_id or str(uuid.uuid4()),
        tenant_id=tenant_id,
        source=_enum_value(CallSource, source, "call source"),
        state=_enum_value(CallState, state, "call state"),
        direction=_enum_value(CallDirection, direction, "call direction"),
        external_id=external_id,
        sip_call_id=sip_call_id,
        started_at=started_at or utcnow(),
        ended_at=None,
        duration_sec=None,
        vendor_ids=vendor_ids or {},
        role_decisions=role_decisions or [],
        recording_path=recording_path,
        transcription_state=None,
        transcription_error=None,
        purged_at=None,
    )
    call.participants = []
    session.add(call)
    await session.commit()
    return call


async def get_call(session: AsyncSession, *, call_id: str, tenant_id: str) -> CallRecord | None:
    """The call with its participants, or None when absent or another tenant's."""
    result = await session.execute(
        select(CallRecord)
        .where(CallRecord.id == call_id, CallRecord.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def get_call_by_external_id(
    session: AsyncSession, *, external_id: str, tenant_id: str
) -> CallRecord | None:
    """The newest call with this external id (a dial-out connection id, a SIPREC guid)."""
    return await _newest(session, CallRecord.external_id == external_id, tenant_id)


async def get_call_by_sip_call_id(
    session: AsyncSession, *, sip_call_id: str, tenant_id: str
) -> CallRecord | None:
    """The newest call recorded under a SIP Call-ID (a re-INVITE keeps it; a new session not)."""
    return await _newest(session, CallRecord.sip_call_id == sip_call_id, tenant_id)


async def _newest(session: AsyncSession, where: Any, tenant_id: str) -> CallRecord | None:
    result = await session.execute(
        select(CallRecord)
        .where(where, CallRecord.tenant_id == tenant_id)
        .order_by(CallRecord.started_at.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def list_calls(
    session: AsyncSession,
    *,
    tenant_id: str,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    state: CallState | str | None = None,
    external_id: str | None = None,
) -> CallPage:
    """A tenant's calls, newest first. ``started_from`` is inclusive, ``started_to`` exclusive."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise CallQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    for bound, name in ((started_from, "from"), (started_to, "to")):
        if bound is not None and bound.tzinfo is None:
            raise CallQueryError(f"{name} time {bound.isoformat()} has no timezone")
    query = select(CallRecord).where(CallRecord.tenant_id == tenant_id)
    if started_from is not None:
        query = query.where(CallRecord.started_at >= started_from)
    if started_to is not None:
        query = query.where(CallRecord.started_at < started_to)
    if state is not None:
        query = query.where(CallRecord.state == _enum_value(CallState, state, "call state"))
    if external_id is not None:
        query = query.where(CallRecord.external_id == external_id)
    if cursor is not None:
        after_started, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                CallRecord.started_at < after_started,
                and_(CallRecord.started_at == after_started, CallRecord.id < after_id),
            )
        )
    query = query.order_by(CallRecord.started_at.desc(), CallRecord.id.desc()).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return CallPage(items=rows, next_cursor=encode_cursor(rows[-1]))
    return CallPage(items=rows, next_cursor=None)


async def end_call(
    session: AsyncSession,
    *,
    call_id: str,
    tenant_id: str,
    ended_at: datetime | None = None,
    state: CallState | str = CallState.COMPLETED,
) -> CallRecord | None:
    """Mark a call ended (completed or failed), set its duration from start to end, commit."""
    call = await get_call(session, call_id=call_id, tenant_id=tenant_id)
    if call is None:
        return None
    ended_at = ended_at or utcnow()
    call.ended_at = ended_at
    call.state = _enum_value(CallState, state, "call state") or CallState.COMPLETED.value
    call.duration_sec = max(0.0, (ended_at - call.started_at).total_seconds())
    await session.commit()
    return call


async def update_call(
    session: AsyncSession,
    *,
    call_id: str,
    tenant_id: str,
    changes: dict[str, Any],
) -> CallRecord | None:
    """Set some of ``external_id``, ``direction``, ``duration_sec``, ``vendor_ids``,
    ``role_decisions``, ``recording_path``, ``sip_call_id`` and commit; None if no such call."""
    allowed = {
        "external_id",
        "direction",
        "duration_sec",
        "vendor_ids",
        "role_decisions",
        "recording_path",
        "sip_call_id",
    }
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise CallQueryError(f"call field(s) {', '.join(unknown)} cannot be updated")
    call = await get_call(session, call_id=call_id, tenant_id=tenant_id)
    if call is None:
        return None
    for name, value in changes.items():
        if name == "direction":
            value = _enum_value(CallDirection, value, "call direction")
        setattr(call, name, value)
    await session.commit()
    return call


async def set_transcription_state(
    session: AsyncSession,
    *,
    call_id: str,
    tenant_id: str,
    state: TranscriptionState | str | None,
    error: str | None = None,
    expected: Iterable[TranscriptionState | str | None] | None = None,
) -> bool:
    """Move a call's transcription to ``state`` and commit.

    With ``expected``, the change only happens if the current state is one of those (None for
    "no transcription yet"): a compare-and-set, so two requests cannot both start a transcription.
    Returns whether a row changed.
    """
    value = _enum_value(TranscriptionState, state, "transcription state")
    query = (
        update(CallRecord)
        .where(CallRecord.id == call_id, CallRecord.tenant_id == tenant_id)
        .values(transcription_state=value, transcription_error=error, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if expected is not None:
        wanted = list(expected)
        values = [
            _enum_value(TranscriptionState, s, "transcription state")
            for s in wanted
            if s is not None
        ]
        clauses = [CallRecord.transcription_state.in_(values)] if values else []
        if None in wanted:
            clauses.append(CallRecord.transcription_state.is_(None))
        query = query.where(or_(*clauses))
    result = await session.execute(query)
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def upsert_participant(
    session: AsyncSession,
    *,
    call_id: str,
    participant_id: str,
    aor: str | None = None,
    name: str | None = None,
    role: Role | str | None = None,
) -> ParticipantRecord:
    """Add a participant, or update the one with this ``participant_id``, and commit."""
    role_value = _enum_value(Role, role, "participant role")
    result = await session.execute(
        select(ParticipantRecord).where(
            ParticipantRecord.call_id == call_id,
            ParticipantRecord.participant_id == participant_id,
        )
    )
    participant = result.scalar_one_or_none()
    if participant is None:
        participant = ParticipantRecord(call_id=call_id, participant_id=participant_id)
        session.add(participant)
    participant.aor = aor
    participant.name = name
    participant.role = role_value
    await session.commit()
    return participant


async def upsert_stream(
    session: AsyncSession,
    *,
    call_id: str,
    stream_id: str,
    channel: int,
    label: str | None = None,
    role: Role | str | None = None,
    codec: str | None = None,
) -> StreamRecord:
    """Add a stream, or update the one with this ``stream_id`` (stats kept), and commit."""
    role_value = _enum_value(Role, role, "stream role")
    result = await session.execute(
        select(StreamRecord).where(
            StreamRecord.call_id == call_id, StreamRecord.stream_id == stream_id
        )
    )
    stream = result.scalar_one_or_none()
    if stream is None:
        stream = StreamRecord(call_id=call_id, stream_id=stream_id, stats={})
        session.add(stream)
    stream.channel = channel
    stream.label = label
    stream.role = role_value
    stream.codec = codec
    await session.commit()
    return stream


async def update_stream_stats(
    session: AsyncSession, *, call_id: str, stream_id: str, stats: dict[str, Any]
) -> bool:
    """Replace a stream's receiver statistics and commit; False if there is no such stream."""
    result = await session.execute(
        update(StreamRecord)
        .where(StreamRecord.call_id == call_id, StreamRecord.stream_id == stream_id)
        .values(stats=dict(stats))
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def list_streams(
    session: AsyncSession, *, call_id: str, tenant_id: str
) -> Sequence[StreamRecord]:
    """A call's streams in channel order; empty for another tenant's call."""
    result = await session.execute(
        select(StreamRecord)
        .join(CallRecord, CallRecord.id == StreamRecord.call_id)
        .where(StreamRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
        .order_by(StreamRecord.channel, StreamRecord.id)
    )
    return list(result.scalars())
