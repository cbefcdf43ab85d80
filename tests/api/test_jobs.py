"""Background jobs settle their states whatever the runner or engine does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sipscribe.api.jobs import combine_instructions, run_summary, run_transcription
from sipscribe.api.services import AppServices
from sipscribe.store import calls, summaries

from .conftest import StoringTranscriptionRunner


async def _call(database, state: str = "speech_sent_to_recognition") -> tuple[str, str]:
    from sipscribe.store.tenants import create_tenant

    async with database.session() as s:
        tenant = await create_tenant(s, name="acme")
        call = await calls.create_call(s, tenant_id=tenant.id, source="upload")
        await calls.set_transcription_state(s, call_id=call.id, tenant_id=tenant.id, state=state)
    return call.id, tenant.id


async def _state(database, call_id: str, tenant_id: str) -> tuple[str | None, str | None]:
    async with database.session() as s:
        call = await calls.get_call(s, call_id=call_id, tenant_id=tenant_id)
        return call.transcription_state, call.transcription_error


async def test_transcription_success_is_stored(database) -> None:
    call_id, tenant_id = await _call(database)
    runner = StoringTranscriptionRunner(database)
    services = AppServices(database=database, transcription_runner=runner)
    await run_transcription(
        services, call_id=call_id, tenant_id=tenant_id, path=Path("/x.wav"), roles=["agent"]
    )
    assert runner.calls == [(call_id, tenant_id, Path("/x.wav"), ["agent"])]
    assert await _state(database, call_id, tenant_id) == ("speech_stored", None)


async def test_transcription_failure_records_the_reason(database) -> None:
    call_id, tenant_id = await _call(database)
    runner = StoringTranscriptionRunner(database)
    runner.error = RuntimeError("decoder could not open the file")
    services = AppServices(database=database, transcription_runner=runner)
    await run_transcription(
        services, call_id=call_id, tenant_id=tenant_id, path=Path("/x"), roles=None
    )
    assert await _state(database, call_id, tenant_id) == (
        "speech_recognition_failed",
        "RuntimeError: decoder could not open the file",
    )


async def test_state_set_by_the_runner_is_kept(database) -> None:
    call_id, tenant_id = await _call(database)

    class StoringFailsRunner:
        """Test double: recognition worked, storing did not, and it says so itself."""

        async def transcribe_call(self, call_id: str, tenant_id: str, path: Path, roles) -> None:
            async with database.session() as s:
                await calls.set_transcription_state(
                    s,
                    call_id=call_id,
                    tenant_id=tenant_id,
                    state="speech_storing_failed",
                    error="disk full",
                )

    services = AppServices(database=database, transcription_runner=StoringFailsRunner())
    await run_transcription(
        services, call_id=call_id, tenant_id=tenant_id, path=Path("/x"), roles=None
    )
    assert await _state(database, call_id, tenant_id) == ("speech_storing_failed", "disk full")


class FixedEngine:
    """Test double summary engine: records its input, returns or raises what it is told."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.seen: list[tuple[list[dict], str | None]] = []

    async def summarize(self, transcript: list[dict], instructions: str | None) -> Any:
        self.seen.append((transcript, instructions))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def _summary_job(database, engine) -> tuple[AppServices, str, str, str]:
    call_id, tenant_id = await _call(database, state="speech_stored")
    await StoringTranscriptionRunner(database).transcribe_call(call_id, tenant_id, Path("x"), None)
    async with database.session() as s:
        job = await summaries.request_summary(s, call_id=call_id, instructions="Be brief.")
    return AppServices(database=database, summary_engine=engine), job.id, call_id, tenant_id


async def test_summary_gets_the_redacted_transcript(database) -> None:
    engine = FixedEngine({"headline": "Refund"})
    services, job_id, call_id, tenant_id = await _summary_job(database, engine)
    await run_summary(
        services, summary_id=job_id, call_id=call_id, tenant_id=tenant_id, instructions="I"
    )
    transcript, instructions = engine.seen[0]
    assert instructions == "I"
    assert [s["text"] for s in transcript][-1] == "My card is ###################."
    assert transcript[0] == {
        "channel": 1,
        "start": 0.0,
        "end": 2.4,
        "text": "Hi, I was charged twice this month. Can you fix it?",
        "role": "customer",
    }
    async with database.session() as s:
        done = await summaries.get_summary(s, call_id=call_id, tenant_id=tenant_id)
    assert (done.state, done.result) == ("processed", {"headline": "Refund"})


async def test_summary_engine_failures_are_recorded(database) -> None:
    for result, error in [
        (RuntimeError("model not loaded"), "RuntimeError: model not loaded"),
        (["not", "a", "dict"], "TypeError: summary engine returned list, not a dict"),
    ]:
        async with database.session() as s:
            from sqlalchemy import text

            for table in ("summaries", "utterances", "calls", "tenants"):
                await s.execute(text(f"DELETE FROM {table}"))
            await s.commit()
        services, job_id, call_id, tenant_id = await _summary_job(database, FixedEngine(result))
        await run_summary(
            services, summary_id=job_id, call_id=call_id, tenant_id=tenant_id, instructions=None
        )
        async with database.session() as s:
            done = await summaries.get_summary(s, call_id=call_id, tenant_id=tenant_id)
        assert (done.state, done.error, done.result) == ("failed", error, None)


def test_combine_instructions() -> None:
    assert combine_instructions(None, None) is None
    assert combine_instructions("  ", "") is None
    assert combine_instructions("Base.", None) == "Base."
    assert combine_instructions(None, " Call. ") == "Call."
    assert combine_instructions("Base.", "Call.") == "Base.\n\nCall."
