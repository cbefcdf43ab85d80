"""Retention purge: transcripts, summaries, digits and recordings go; call rows stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sipscribe.store.calls import create_call, end_call, get_call, set_transcription_state
from sipscribe.store.retention import apply_retention, purge_expired
from sipscribe.store.summaries import get_summary, request_summary
from sipscribe.store.tenants import create_tenant
from sipscribe.store.utterances import (
    add_dtmf_event,
    add_utterance,
    count_utterances,
    list_dtmf_events,
)

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
CUTOFF = T0 + timedelta(days=7)


def _recording(root: Path, call_id: str) -> Path:
    path = root / call_id / "call.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF")
    return path


async def _call(session, tenant, *, started, ended, root, state="completed"):
    call = await create_call(session, tenant_id=tenant.id, source="upload", started_at=started)
    path = _recording(root, call.id)
    from sipscribe.store.calls import update_call

    await update_call(
        session, call_id=call.id, tenant_id=tenant.id, changes={"recording_path": str(path)}
    )
    await set_transcription_state(
        session, call_id=call.id, tenant_id=tenant.id, state="speech_stored"
    )
    await add_utterance(session, call_id=call.id, channel=0, start_ms=0, end_ms=9, text="secret")
    await add_dtmf_event(session, call_id=call.id, digit="4", start_ms=0)
    await request_summary(session, call_id=call.id, instructions=None)
    if ended is not None:
        await end_call(session, call_id=call.id, tenant_id=tenant.id, ended_at=ended, state=state)
    return call, path


async def test_purges_old_ended_calls_only(session, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    tenant = await create_tenant(session, name="acme")
    old, old_path = await _call(
        session, tenant, started=T0, ended=T0 + timedelta(minutes=5), root=root
    )
    recent, recent_path = await _call(
        session, tenant, started=T0, ended=CUTOFF + timedelta(seconds=1), root=root
    )
    live = await create_call(session, tenant_id=tenant.id, source="siprec", started_at=T0)
    now = CUTOFF + timedelta(hours=1)

    outcome = await purge_expired(session, older_than=CUTOFF, recordings_root=root, now=now)

    assert (outcome.calls, outcome.utterances, outcome.files, outcome.skipped_paths) == (
        1,
        1,
        1,
        [],
    )
    assert not old_path.exists() and not old_path.parent.exists()
    assert recent_path.exists()
    session.expunge_all()
    purged = await get_call(session, call_id=old.id, tenant_id=tenant.id)
    assert purged is not None
    assert (purged.purged_at, purged.recording_path, purged.transcription_state) == (
        now,
        None,
        None,
    )
    assert purged.duration_sec == 300.0
    assert await count_utterances(session, call_id=old.id, tenant_id=tenant.id) == 0
    assert await list_dtmf_events(session, call_id=old.id, tenant_id=tenant.id) == []
    assert await get_summary(session, call_id=old.id, tenant_id=tenant.id) is None
    assert await count_utterances(session, call_id=recent.id, tenant_id=tenant.id) == 1
    assert (await get_call(session, call_id=live.id, tenant_id=tenant.id)).purged_at is None

    again = await purge_expired(session, older_than=CUTOFF, recordings_root=root, now=now)
    assert (again.calls, again.utterances, again.files) == (0, 0, 0)


async def test_call_without_end_uses_its_start(session, tmp_path: Path) -> None:
    tenant = await create_tenant(session, name="acme")
    call = await create_call(
        session, tenant_id=tenant.id, source="upload", state="completed", started_at=T0
    )
    outcome = await purge_expired(session, older_than=CUTOFF)
    assert outcome.calls == 1
    assert (await get_call(session, call_id=call.id, tenant_id=tenant.id)).purged_at is not None


async def test_paths_outside_the_root_are_left_alone(session, tmp_path: Path) -> None:
    tenant = await create_tenant(session, name="acme")
    _, path = await _call(session, tenant, started=T0, ended=T0, root=tmp_path / "elsewhere")
    outcome = await purge_expired(
        session, older_than=CUTOFF, recordings_root=tmp_path / "recordings"
    )
    assert path.exists()
    assert (outcome.calls, outcome.files, outcome.skipped_paths) == (1, 0, [str(path)])


async def test_missing_file_is_not_an_error(session, tmp_path: Path) -> None:
    tenant = await create_tenant(session, name="acme")
    _, path = await _call(session, tenant, started=T0, ended=T0, root=tmp_path)
    path.unlink()
    outcome = await purge_expired(session, older_than=CUTOFF, recordings_root=tmp_path)
    assert (outcome.calls, outcome.files, outcome.skipped_paths) == (1, 0, [])


async def test_naive_cutoff_is_refused(session) -> None:
    with pytest.raises(ValueError) as info:
        await purge_expired(session, older_than=datetime(2026, 1, 1))
    assert str(info.value) == "retention cut-off 2026-01-01T00:00:00 has no timezone"


async def test_apply_retention_uses_days_and_zero_keeps_forever(
    database, session, tmp_path: Path
) -> None:
    tenant = await create_tenant(session, name="acme")
    _, path = await _call(session, tenant, started=T0, ended=T0, root=tmp_path)
    kept = await apply_retention(
        database, retention_days=0, recordings_root=tmp_path, now=T0 + timedelta(days=400)
    )
    assert (kept.calls, path.exists()) == (0, True)
    early = await apply_retention(
        database, retention_days=7, recordings_root=tmp_path, now=T0 + timedelta(days=6)
    )
    assert early.calls == 0
    due = await apply_retention(
        database, retention_days=7, recordings_root=tmp_path, now=T0 + timedelta(days=8)
    )
    assert (due.calls, due.files, path.exists()) == (1, 1, False)
