"""Retention: forget what was said once it is older than the retention period.

``purge_expired`` removes the content of ended calls (utterances, DTMF digits, summaries and the
recording files) and keeps the call row with ``purged_at`` set, so call counts, durations and
metadata stay available for reporting. Running it again finds nothing new; the application
schedules it through ``apply_retention`` (e.g. hourly).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import (
    CallRecord,
    CallState,
    DtmfEventRecord,
    SummaryRecord,
    UtteranceRecord,
    utcnow,
)

if TYPE_CHECKING:
    from sipscribe.store.db import Database

log = logging.getLogger(__name__)

PURGE_BATCH = 200


@dataclass
class PurgeResult:
    """What one ``purge_expired`` run removed."""

    calls: int = 0
    utterances: int = 0
    files: int = 0
    # Recording paths left alone because they were outside ``recordings_root`` or unreadable.
    skipped_paths: list[str] = field(default_factory=list)


def _remove_recording(path: Path, call_id: str, root: Path | None) -> bool:
    """Delete a call's recording file or directory; True if something was removed."""
    resolved = path.resolve()
    if root is not None and not resolved.is_relative_to(root.resolve()):
        raise PermissionError(f"recording {resolved} is outside {root}")
    if resolved.is_dir():
        if resolved.name != call_id:
            raise PermissionError(f"recording directory {resolved} is not named for call {call_id}")
        shutil.rmtree(resolved)
        return True
    if not resolved.exists():
        return False
    resolved.unlink()
    parent = resolved.parent
    if parent.name == call_id and not any(parent.iterdir()):
        parent.rmdir()
    return True


async def purge_expired(
    session: AsyncSession,
    *,
    older_than: datetime,
    recordings_root: Path | None = None,
    now: datetime | None = None,
) -> PurgeResult:
    """Purge ended calls whose end (or start, if no end was recorded) is before ``older_than``.

    Only paths under ``recordings_root`` are deleted when it is given. Commits per batch.
    """
    if older_than.tzinfo is None:
        raise ValueError(f"retention cut-off {older_than.isoformat()} has no timezone")
    now = now or utcnow()
    outcome = PurgeResult()
    ended = func.coalesce(CallRecord.ended_at, CallRecord.started_at)
    while True:
        batch = (
            await session.execute(
                select(CallRecord.id, CallRecord.recording_path)
                .where(
                    CallRecord.purged_at.is_(None),
                    CallRecord.state != CallState.ACTIVE.value,
                    ended < older_than,
                )
                .order_by(CallRecord.id)
                .limit(PURGE_BATCH)
            )
        ).all()
        if not batch:
            return outcome
        ids = [row.id for row in batch]
        for row in batch:
            if not row.recording_path:
                continue
            try:
                removed = await asyncio.to_thread(
                    _remove_recording, Path(row.recording_path), row.id, recordings_root
                )
            except OSError as exc:
                log.warning("recording not purged: %s", exc, extra={"call_id": row.id})
                outcome.skipped_paths.append(row.recording_path)
                continue
            outcome.files += int(removed)
        deleted = await session.execute(
            delete(UtteranceRecord)
            .where(UtteranceRecord.call_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        outcome.utterances += int(getattr(deleted, "rowcount", 0) or 0)
        for model in (DtmfEventRecord, SummaryRecord):
            await session.execute(
                delete(model)
                .where(model.call_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        await session.execute(
            update(CallRecord)
            .where(CallRecord.id.in_(ids))
            .values(
                purged_at=now,
                recording_path=None,
                transcription_state=None,
                transcription_error=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        outcome.calls += len(ids)


async def apply_retention(
    database: Database,
    *,
    retention_days: int,
    recordings_root: Path | None,
    now: datetime | None = None,
) -> PurgeResult:
    """The periodic job: purge what ended more than ``retention_days`` ago (0 keeps forever).

    The application calls this on a timer (e.g. hourly) with ``settings.retention_days`` and
    ``settings.data_dir / "recordings"``.
    """
    if retention_days <= 0:
        return PurgeResult()
    now = now or utcnow()
    async with database.session() as session:
        return await purge_expired(
            session,
            older_than=now - timedelta(days=retention_days),
            recordings_root=recordings_root,
            now=now,
        )
