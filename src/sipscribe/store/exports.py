"""Batch export of utterances: every utterance stored in a time interval, in constant memory.

``iter_utterance_pages`` walks ``(utterances.created_at, utterances.id)`` with a keyset (index
``ix_utterances_created``), one short query per page of ``page_size`` rows, so neither the
database nor Python ever holds more than a page, and a page boundary cannot skip or repeat a
row the way an OFFSET would while new rows arrive. Each page runs in its own session: a long
export holds no transaction (and no snapshot) open between pages.

The text is chosen in SQL: the redacted text where the store has one, else the text, so the
raw text of a call whose policy keeps both never leaves the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import CallRecord, DtmfEventRecord, UtteranceRecord

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000

SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class ExportError(ValueError):
    """An export interval or page size we cannot use."""


@dataclass(frozen=True, slots=True)
class ExportRow:
    call_id: str
    external_id: str | None
    tenant_id: str
    sequence: int
    channel: int
    role: str | None
    start_ms: int
    end_ms: int
    #: When the utterance began, on the wall clock: the call's start plus ``start_ms``.
    spoken_at: datetime
    #: When it was stored (the interval filters on this).
    created_at: datetime
    text: str


def check_interval(start: datetime, end: datetime) -> None:
    for bound, name in ((start, "from"), (end, "to")):
        if bound.tzinfo is None:
            raise ExportError(f"export {name} time {bound.isoformat()} has no timezone")
    if end <= start:
        raise ExportError(
            f"export interval is empty: to {end.isoformat()} is not after from {start.isoformat()}"
        )


def _query(
    *,
    tenant_id: str | None,
    start: datetime,
    end: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
):  # type: ignore[no-untyped-def]
    """One page. Only ``utterances`` is in FROM (the tenant is a correlated EXISTS), so every
    planner walks the ``(created_at, id)`` index; with a join SQLite drives from the tenant's
    calls and sorts the whole interval for every page."""
    text = func.coalesce(UtteranceRecord.redacted_text, UtteranceRecord.text)
    query = select(
        UtteranceRecord.id,
        UtteranceRecord.call_id,
        UtteranceRecord.sequence,
        UtteranceRecord.channel,
        UtteranceRecord.role,
        UtteranceRecord.start_ms,
        UtteranceRecord.end_ms,
        UtteranceRecord.created_at,
        text.label("text"),
    ).where(UtteranceRecord.created_at >= start, UtteranceRecord.created_at < end)
    if tenant_id is not None:
        query = query.where(
            exists().where(
                CallRecord.id == UtteranceRecord.call_id, CallRecord.tenant_id == tenant_id
            )
        )
    if after is not None:
        at, row_id = after
        query = query.where(
            UtteranceRecord.created_at >= at,
            or_(
                UtteranceRecord.created_at > at,
                and_(UtteranceRecord.created_at == at, UtteranceRecord.id > row_id),
            ),
        )
    return query.order_by(UtteranceRecord.created_at, UtteranceRecord.id).limit(limit)


async def iter_utterance_pages(
    sessions: SessionFactory,
    *,
    tenant_id: str | None,
    start: datetime,
    end: datetime,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AsyncIterator[list[ExportRow]]:
    """Pages of utterances stored in ``[start, end)``, oldest first; ``tenant_id`` None
    exports every tenant (operators only). ``sessions`` is e.g. ``database.session``."""
    from datetime import timedelta

    check_interval(start, end)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ExportError(f"export page size must be between 1 and {MAX_PAGE_SIZE}")
    after: tuple[datetime, int] | None = None
    while True:
        async with sessions() as session:
            result = await session.execute(
                _query(tenant_id=tenant_id, start=start, end=end, after=after, limit=page_size)
            )
            raw = result.all()
            if not raw:
                return
            calls = {
                c.id: c
                for c in await session.execute(
                    select(
                        CallRecord.id,
                        CallRecord.external_id,
                        CallRecord.tenant_id,
                        CallRecord.started_at,
                    ).where(CallRecord.id.in_({r.call_id for r in raw}))
                )
            }
        page = [
            ExportRow(
                call_id=r.call_id,
                external_id=calls[r.call_id].external_id,
                tenant_id=calls[r.call_id].tenant_id,
                sequence=r.sequence,
                channel=r.channel,
                role=r.role,
                start_ms=r.start_ms,
                end_ms=r.end_ms,
                spoken_at=calls[r.call_id].started_at + timedelta(milliseconds=r.start_ms),
                created_at=r.created_at,
                text=r.text,
            )
            for r in raw
        ]
        after = (raw[-1].created_at, raw[-1].id)
        yield page
        if len(raw) < page_size:
            return


async def count_utterances_between(
    session: AsyncSession, *, tenant_id: str | None, start: datetime, end: datetime
) -> int:
    """How many utterances an export of ``[start, end)`` will produce (for progress bars)."""
    check_interval(start, end)
    query = (
        select(func.count(UtteranceRecord.id))
        .join(CallRecord, CallRecord.id == UtteranceRecord.call_id)
        .where(UtteranceRecord.created_at >= start, UtteranceRecord.created_at < end)
    )
    if tenant_id is not None:
        query = query.where(CallRecord.tenant_id == tenant_id)
    return int((await session.execute(query)).scalar_one())


# -- replaying one call's stored events (the live stream's ``?after=``) -------------------


async def utterances_after(
    session: AsyncSession, *, call_id: str, tenant_id: str, after: int, limit: int = 10_000
) -> list[UtteranceRecord]:
    """A call's utterances with ``sequence > after``, in sequence order (empty for another
    tenant's call)."""
    result = await session.execute(
        select(UtteranceRecord)
        .join(CallRecord, CallRecord.id == UtteranceRecord.call_id)
        .where(
            UtteranceRecord.call_id == call_id,
            CallRecord.tenant_id == tenant_id,
            UtteranceRecord.sequence > after,
        )
        .order_by(UtteranceRecord.sequence)
        .limit(limit)
    )
    return list(result.scalars())


async def dtmf_after(
    session: AsyncSession, *, call_id: str, tenant_id: str, after: int
) -> list[DtmfEventRecord]:
    """A call's DTMF digits stored after its utterance number ``after`` was (all of them for
    ``after`` 0 or an utterance not stored), in the order they were stored."""
    query = (
        select(DtmfEventRecord)
        .join(CallRecord, CallRecord.id == DtmfEventRecord.call_id)
        .where(DtmfEventRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
    )
    if after > 0:
        stored_at = (
            await session.execute(
                select(UtteranceRecord.created_at).where(
                    UtteranceRecord.call_id == call_id, UtteranceRecord.sequence == after
                )
            )
        ).scalar_one_or_none()
        if stored_at is not None:
            query = query.where(DtmfEventRecord.created_at > stored_at)
    result = await session.execute(query.order_by(DtmfEventRecord.id))
    return list(result.scalars())
