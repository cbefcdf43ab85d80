"""Utterances and DTMF events of a call.

``add_utterance`` commits at once: the transcript is the product, and an utterance must survive a
crash a second later. ``sequence`` numbers a call's utterances 0, 1, 2, … in the order they were
stored (unique per call); callers may pass one, or let the store take the next free number,
which it computes inside the INSERT so that concurrent writers of one call never collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import CallRecord, DtmfEventRecord, Role, UtteranceRecord, utcnow

DTMF_DIGITS = frozenset("0123456789*#ABCD")


class UtteranceError(ValueError):
    """An utterance or DTMF event that cannot be stored as given."""


def _check_role(role: Role | str | None) -> str | None:
    if role is None:
        return None
    try:
        return Role(role).value
    except ValueError:
        raise UtteranceError(f"utterance role {role!r} is not 'agent' or 'customer'") from None


async def add_utterance(
    session: AsyncSession,
    *,
    call_id: str,
    channel: int,
    start_ms: int,
    end_ms: int,
    text: str,
    role: Role | str | None = None,
    stream_id: str | None = None,
    redacted_text: str | None = None,
    words: list[dict[str, Any]] | None = None,
    confidence: float | None = None,
    recognised_at: datetime | None = None,
    sequence: int | None = None,
    speaker: dict[str, Any] | None = None,
) -> UtteranceRecord:
    """Store one utterance and commit immediately; returns it with its ``sequence``."""
    if start_ms < 0 or end_ms < start_ms:
        raise UtteranceError(f"utterance span {start_ms}..{end_ms} ms is not valid")
    if channel < 0:
        raise UtteranceError(f"utterance channel {channel} is negative")
    if sequence is not None and sequence < 0:
        raise UtteranceError(f"utterance sequence {sequence} is negative")
    role_value = _check_role(role)
    number: Any = sequence
    if number is None:
        if session.get_bind().dialect.name == "postgresql":
            # Writers of one call queue on its row, so each sees the others' sequence numbers.
            await session.execute(
                select(CallRecord.id).where(CallRecord.id == call_id).with_for_update()
            )
        # Computed inside the INSERT, so SQLite's single writer can never collide either.
        number = (
            select(func.coalesce(func.max(UtteranceRecord.sequence) + 1, 0))
            .where(UtteranceRecord.call_id == call_id)
            .scalar_subquery()
        )
    statement = (
        insert(UtteranceRecord)
        .values(
            call_id=call_id,
            stream_id=stream_id,
            channel=channel,
            role=role_value,
            sequence=number,
            start_ms=start_ms,
            end_ms=end_ms,
            text=text,
            redacted_text=redacted_text,
            words=words,
            confidence=confidence,
            created_at=utcnow(),
            recognised_at=recognised_at,
            speaker=speaker,
        )
        .returning(UtteranceRecord)
    )
    try:
        utterance = (await session.execute(statement)).scalar_one()
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise
    return utterance


async def list_utterances(
    session: AsyncSession, *, call_id: str, tenant_id: str
) -> Sequence[UtteranceRecord]:
    """A call's utterances in time order (ties by sequence); empty for another tenant's call."""
    result = await session.execute(
        select(UtteranceRecord)
        .join(CallRecord, CallRecord.id == UtteranceRecord.call_id)
        .where(UtteranceRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
        .order_by(UtteranceRecord.start_ms, UtteranceRecord.sequence)
    )
    return list(result.scalars())


async def count_utterances(session: AsyncSession, *, call_id: str, tenant_id: str) -> int:
    result = await session.execute(
        select(func.count(UtteranceRecord.id))
        .join(CallRecord, CallRecord.id == UtteranceRecord.call_id)
        .where(UtteranceRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
    )
    return int(result.scalar_one())


async def delete_utterances(session: AsyncSession, *, call_id: str, tenant_id: str) -> int:
    """Remove a call's utterances (before transcribing it again) and commit; returns how many."""
    owned = select(CallRecord.id).where(CallRecord.id == call_id, CallRecord.tenant_id == tenant_id)
    result = await session.execute(
        delete(UtteranceRecord)
        .where(UtteranceRecord.call_id.in_(owned))
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def add_dtmf_event(
    session: AsyncSession,
    *,
    call_id: str,
    digit: str,
    start_ms: int,
    duration_ms: int | None = None,
    channel: int | None = None,
    stream_id: str | None = None,
) -> DtmfEventRecord:
    """Store one DTMF digit (0-9, *, #, A-D) and commit."""
    if len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
        raise UtteranceError(f"DTMF digit {digit!r} is not one of 0-9, *, #, A-D")
    if start_ms < 0:
        raise UtteranceError(f"DTMF start {start_ms} ms is negative")
    event = DtmfEventRecord(
        call_id=call_id,
        digit=digit.upper(),
        start_ms=start_ms,
        duration_ms=duration_ms,
        channel=channel,
        stream_id=stream_id,
    )
    session.add(event)
    await session.commit()
    return event


async def list_dtmf_events(
    session: AsyncSession, *, call_id: str, tenant_id: str
) -> Sequence[DtmfEventRecord]:
    result = await session.execute(
        select(DtmfEventRecord)
        .join(CallRecord, CallRecord.id == DtmfEventRecord.call_id)
        .where(DtmfEventRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
        .order_by(DtmfEventRecord.start_ms, DtmfEventRecord.id)
    )
    return list(result.scalars())
