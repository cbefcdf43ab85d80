"""Summary jobs and their states."""

from __future__ import annotations

import pytest

from sipscribe.store.calls import create_call
from sipscribe.store.summaries import finish_summary, get_summary, request_summary
from sipscribe.store.tenants import create_tenant


@pytest.fixture
async def call(session):
    tenant = await create_tenant(session, name="acme")
    return await create_call(session, tenant_id=tenant.id, source="upload")


async def test_created_then_processed(session, call) -> None:
    job = await request_summary(session, call_id=call.id, instructions="Be brief.")
    assert (job.state, job.instructions, job.result) == ("created", "Be brief.", None)
    done = await finish_summary(session, summary_id=job.id, result={"headline": "Refund"})
    assert done.state == "processed" and done.processed_at is not None
    session.expunge_all()
    loaded = await get_summary(session, call_id=call.id, tenant_id=call.tenant_id)
    assert (loaded.state, loaded.result, loaded.error) == (
        "processed",
        {"headline": "Refund"},
        None,
    )


async def test_failed(session, call) -> None:
    job = await request_summary(session, call_id=call.id, instructions=None)
    failed = await finish_summary(session, summary_id=job.id, error="engine crashed")
    assert (failed.state, failed.error, failed.result) == ("failed", "engine crashed", None)


async def test_new_request_replaces_and_stale_job_cannot_overwrite(session, call) -> None:
    first = await request_summary(session, call_id=call.id, instructions="one")
    second = await request_summary(session, call_id=call.id, instructions="two")
    assert first.id != second.id
    assert await finish_summary(session, summary_id=first.id, result={"old": True}) is None
    loaded = await get_summary(session, call_id=call.id, tenant_id=call.tenant_id)
    assert (loaded.id, loaded.state, loaded.instructions) == (second.id, "created", "two")


async def test_other_tenant_gets_nothing(session, call) -> None:
    other = await create_tenant(session, name="globex")
    await request_summary(session, call_id=call.id, instructions=None)
    assert await get_summary(session, call_id=call.id, tenant_id=other.id) is None


async def test_outcome_needs_exactly_one_of_result_or_error(session, call) -> None:
    job = await request_summary(session, call_id=call.id, instructions=None)
    for kwargs in ({}, {"result": {}, "error": "x"}):
        with pytest.raises(ValueError) as info:
            await finish_summary(session, summary_id=job.id, **kwargs)
        assert str(info.value) == "summary outcome needs exactly one of result or error"
