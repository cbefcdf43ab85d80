"""AppServices: background job bookkeeping and shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sipscribe.api.services import AppServices, SummaryEngine, TranscriptionRunner
from sipscribe.api.summary_engine import ExtractiveSummaryEngine


async def test_spawn_keeps_jobs_until_done_and_drain_waits() -> None:
    services = AppServices()
    gate = asyncio.Event()
    finished = []

    async def job() -> None:
        await gate.wait()
        finished.append(True)

    services.spawn(job(), name="j")
    assert services.pending_jobs == 1
    assert await services.drain(0.05) is False
    gate.set()
    assert await services.drain(5.0) is True
    assert (finished, services.pending_jobs) == ([True], 0)


async def test_jobs_started_by_jobs_are_awaited_too() -> None:
    services = AppServices()
    done = []

    async def child() -> None:
        await asyncio.sleep(0)
        done.append("child")

    async def parent() -> None:
        services.spawn(child(), name="child")

    services.spawn(parent(), name="parent")
    assert await services.drain(5.0)
    assert done == ["child"]


async def test_failed_job_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    services = AppServices()

    async def broken() -> None:
        raise RuntimeError("kaput")

    with caplog.at_level(logging.ERROR, logger="sipscribe.api.services"):
        services.spawn(broken(), name="broken-job")
        assert await services.drain(5.0)
    assert "background job broken-job failed" in caplog.text


async def test_aclose_cancels_what_does_not_finish() -> None:
    services = AppServices(ready=True)
    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    services.spawn(forever(), name="forever")
    await services.aclose(timeout=0.05)
    assert (cancelled, services.ready, services.pending_jobs) == ([True], False, 0)


def test_default_engine_satisfies_the_protocol() -> None:
    assert isinstance(ExtractiveSummaryEngine(), SummaryEngine)
    assert not isinstance(ExtractiveSummaryEngine(), TranscriptionRunner)
