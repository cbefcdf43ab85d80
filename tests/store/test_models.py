"""Column types and constraints of the models, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from sipscribe.store.calls import create_call, get_call
from sipscribe.store.models import CallRecord, UtcDateTime
from sipscribe.store.tenants import create_tenant


async def test_timestamps_come_back_aware_utc(session) -> None:
    tenant = await create_tenant(session, name="acme")
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    call = await create_call(session, tenant_id=tenant.id, source="siprec", started_at=started)
    session.expunge_all()
    loaded = await get_call(session, call_id=call.id, tenant_id=tenant.id)
    assert loaded is not None
    assert loaded.started_at == started
    assert loaded.started_at.tzinfo is not None
    assert loaded.started_at.utcoffset() == timedelta(0)
    assert loaded.created_at.tzinfo is not None


async def test_naive_timestamp_is_refused(session) -> None:
    tenant = await create_tenant(session, name="acme")
    with pytest.raises(StatementError) as info:
        await create_call(
            session, tenant_id=tenant.id, source="siprec", started_at=datetime(2026, 3, 1)
        )
    assert "timestamp 2026-03-01T00:00:00 has no timezone" in str(info.value)


def test_utc_datetime_binds_for_sqlite_as_naive_utc() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    value = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    column_type = UtcDateTime()
    assert column_type.process_bind_param(value, sqlite.dialect()) == datetime(2026, 1, 1, 17, 0)
    assert column_type.process_bind_param(value, postgresql.dialect()) == datetime(
        2026, 1, 1, 17, 0, tzinfo=UTC
    )
    assert column_type.process_result_value(datetime(2026, 1, 1, 17), sqlite.dialect()) == (
        datetime(2026, 1, 1, 17, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [("source", "fax"), ("state", "ringing"), ("direction", "sideways")],
)
async def test_check_constraints_reject_unknown_values(
    session,
    column: str,
    value: str,
) -> None:
    tenant = await create_tenant(session, name="acme")
    call = await create_call(session, tenant_id=tenant.id, source="upload")
    with pytest.raises(IntegrityError):
        await session.execute(
            text(f"UPDATE calls SET {column} = :v WHERE id = :id"), {"v": value, "id": call.id}
        )
        await session.commit()


async def test_deleting_a_tenant_cascades(session) -> None:
    from sipscribe.store.utterances import add_utterance

    tenant = await create_tenant(session, name="acme")
    call = await create_call(session, tenant_id=tenant.id, source="upload")
    await add_utterance(session, call_id=call.id, channel=0, start_ms=0, end_ms=5, text="hi")
    await session.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": tenant.id})
    await session.commit()
    assert (await session.execute(select(CallRecord))).first() is None
    assert (await session.execute(text("select count(*) from utterances"))).scalar_one() == 0
