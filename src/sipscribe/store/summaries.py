"""Summary jobs: one row per call, moving created → processed | failed.

Requesting a summary again replaces the row with a new ``created`` one carrying the new
instructions, so a client always reads the latest attempt and its state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import CallRecord, SummaryRecord, SummaryState, utcnow


async def request_summary(
    session: AsyncSession, *, call_id: str, instructions: str | None
) -> SummaryRecord:
    """Create the call's summary job in state ``created``, replacing any earlier one; commit.

    The job gets a new id each time, so an earlier run still in flight finds its id gone in
    ``finish_summary`` and cannot overwrite the newer request.
    """
    await session.execute(
        delete(SummaryRecord)
        .where(SummaryRecord.call_id == call_id)
        .execution_options(synchronize_session="fetch")
    )
    summary = SummaryRecord(
        id=str(uuid.uuid4()),
        call_id=call_id,
        state=SummaryState.CREATED.value,
        instructions=instructions,
        result=None,
        error=None,
        processed_at=None,
    )
    session.add(summary)
    await session.commit()
    return summary


async def get_summary(
    session: AsyncSession, *, call_id: str, tenant_id: str
) -> SummaryRecord | None:
    """The call's summary job, or None when there is none or the call is another tenant's."""
    result = await session.execute(
        select(SummaryRecord)
        .join(CallRecord, CallRecord.id == SummaryRecord.call_id)
        .where(SummaryRecord.call_id == call_id, CallRecord.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def finish_summary(
    session: AsyncSession,
    *,
    summary_id: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> SummaryRecord | None:
    """Record the outcome of a job and commit: ``result`` → processed, ``error`` → failed.

    None if the job no longer exists (its call was deleted meanwhile).
    """
    if (result is None) == (error is None):
        raise ValueError("summary outcome needs exactly one of result or error")
    summary = await session.get(SummaryRecord, summary_id, populate_existing=True)
    if summary is None:
        return None
    summary.state = (SummaryState.PROCESSED if error is None else SummaryState.FAILED).value
    summary.result = result
    summary.error = error
    summary.processed_at = now or utcnow()
    await session.commit()
    return summary
