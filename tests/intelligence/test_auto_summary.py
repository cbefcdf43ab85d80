"""Automatic summaries at call end, per tenant.

The integration tests run a real ``Server``: the app's buses, redaction, store, delivery
service and ``AutoSummarizer``, the extractive summary engine (``llm_backend="none"``: fast,
no model), the shared tiny.en ASR engine for uploads, and a real webhook receiver (uvicorn on
127.0.0.1) for the completion bundle. Live calls are played as pipeline events on the raw
bus, where the SIP pipeline publishes them; uploads go through ``POST /api/v2/calls``.

The last tests drive an ``AutoSummarizer`` beside a real ``StoreSink`` on one bus, with the
real ``run_summary`` behind a gate the test opens, to check one-at-a-time, a failing run
and shutdown without timing guesses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipscribe.api.jobs import run_summary
from sipscribe.api.services import AppServices
from sipscribe.app import Server
from sipscribe.config import Settings
from sipscribe.intelligence.auto_summary import INTERRUPTED, AutoSummarizer
from sipscribe.media.audiofile import write_audio
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)
from sipscribe.pipeline.utterance import Utterance
from sipscribe.store import summaries as summary_store
from sipscribe.store.db import Database, init_db
from sipscribe.store.sink import StoreSink
from sipscribe.testing.corpus import Recording, build_conversation
from tests.delivery.helpers import add_target, eventually, tenant
from tests.delivery.receiver import ReceiverApp, Served
from tests.integration.sipp import api, start_server

SECRET = "whsec_auto_summary_secret_01"
BASE_INSTRUCTIONS = "Focus on billing questions."
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven")


@dataclass
class Rig:
    server: Server
    receiver: ReceiverApp
    tenant_id: str

    async def enable(self, enabled: bool) -> None:
        await tenant(self.server.services.database, "default", summary=summary_settings(enabled))

    async def play(self, call_id: str, *, utterances: int = 4, end: bool = True) -> None:
        """A live call's events, published where the SIP pipeline publishes them."""
        events = list(live_call(call_id, self.tenant_id, utterances=utterances))
        for event in events if end else events[:-1]:
            await self.server.buses[0].publish(event)

    async def end(self, call_id: str, *, utterances: int = 4) -> None:
        await self.server.buses[0].publish(CallEnded(call_id, "bye", utterances, 9000))

    async def outcome(self, call_id: str, want: str, *, after: str | None = None) -> None:
        """Wait for the summarizer to settle the call (again, when it was ``after``)."""
        summarizer = self.server.auto_summary  # type: ignore[attr-defined]
        await eventually(lambda: summarizer.outcome(call_id) not in (None, after), timeout=20)
        assert summarizer.outcome(call_id) == want

    async def stored(self, call_id: str) -> None:
        async def done() -> bool:
            r = await api(self.server, "GET", f"/api/v2/calls/{call_id}")
            return r.status_code == 200 and r.json()["data"]["transcription_state"] == (
                "speech_stored"
            )

        await eventually(done, timeout=20)

    async def bundle(self, call_id: str) -> dict[str, Any]:
        def arrived() -> list[Any]:
            return [r for r in self.receiver.hooks() if r.json["call"]["id"] == call_id]

        (received,) = await eventually(arrived, timeout=20)
        assert received.signature_ok
        return received.json  # type: ignore[no-any-return]

    async def summary(self, call_id: str) -> httpx.Response:
        return await api(self.server, "GET", f"/api/v2/calls/{call_id}/summary")


def live_call(call_id: str, tenant_id: str, *, utterances: int) -> Iterator[PipelineEvent]:
    """What the SIPREC pipeline publishes for a two-party call, utterances alternating."""
    yield CallStarted(
        call_id=call_id,
        source="siprec",
        tenant_id=tenant_id,
        metadata={
            "participants": [
                {"id": "p1", "aor": "sip:+15551230000@pbx.example"},
                {"id": "p2", "aor": "sip:agent7@pbx.example", "name": "Agent Seven"},
            ],
            "roles": {"p1": "customer", "p2": "agent"},
        },
    )
    for channel, role in enumerate(("agent", "customer")):
        yield StreamStarted(call_id, f"{call_id}:{channel}", channel, role, codec="PCMU")
    for n in range(1, utterances + 1):
        channel = n % 2
        yield UtteranceEvent(
            Utterance(
                call_id=call_id,
                stream_id=f"{call_id}:{channel}",
                channel=channel,
                role="customer" if channel else "agent",
                sequence=n,
                start_ms=n * 2000,
                end_ms=n * 2000 + 1500,
                text=f"This is turn {WORDS[n % len(WORDS)]} about my bill.",
            )
        )
    for channel in (0, 1):
        yield StreamStopped(call_id, f"{call_id}:{channel}")
    yield CallEnded(call_id, "bye", utterances, utterances * 2000 + 2000)


def summary_settings(enabled: bool) -> dict[str, Any]:
    return {"enabled": enabled, "base_instructions": BASE_INSTRUCTIONS}


@pytest.fixture
async def rig(tmp_path: Path, engine: Any) -> AsyncIterator[Rig]:
    app = ReceiverApp(SECRET)
    receiver = await Served(app).start()
    server = await start_server(tmp_path, engine, llm_backend="none")
    try:
        database = server.services.database
        tenant_id = await tenant(
            database, "default", allow_private_webhooks=True, summary=summary_settings(True)
        )
        url = f"http://127.0.0.1:{receiver.port}/hook"
        await add_target(database, tenant_id, url, secret=SECRET, events=("bundle",))
        yield Rig(server, app, tenant_id)
    finally:
        await server.stop(drain_timeout=1)
        await receiver.stop()


async def upload(rig: Rig, tmp_path: Path, recordings: list[Recording]) -> str:
    tracks, _ = build_conversation(recordings, gap_s=0.5)
    path = write_audio(tmp_path / "call.wav", tracks, rate=16000)
    with path.open("rb") as fh:
        r = await api(
            rig.server,
            "POST",
            "/api/v2/calls",
            files={"file": ("call.wav", fh, "audio/wav")},
            data={"roles": "agent,customer"},
        )
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


@pytest.mark.integration
async def test_an_ended_call_is_summarised_and_its_bundle_carries_it(rig: Rig) -> None:
    await rig.play("auto-on")
    bundle = await rig.bundle("auto-on")
    await rig.outcome("auto-on", "summarised")
    r = await rig.summary("auto-on")
    assert r.status_code == 200, r.text
    summary = r.json()["data"]
    assert summary["summary_state"] == "processed"
    assert summary["instructions"] is None  # nobody asked; the tenant's base ones were used
    result = summary["result"]
    assert result["engine"] == "extractive" and result["turns"] == 4
    assert "note" in result  # the extractive engine's answer to instructions it cannot follow
    assert bundle["callHeadline"] == result["headline"]
    assert bundle["summary"] == result["summary"] and "Customer: " in result["summary"]
    assert len(bundle["transcriptions"]) == 4
    assert rig.server.auto_summary.pending == 0  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_a_tenant_without_the_setting_gets_no_summary(rig: Rig) -> None:
    await rig.enable(False)
    await rig.play("auto-off")
    await rig.outcome("auto-off", "disabled")
    bundle = await rig.bundle("auto-off")
    assert bundle["summary"] is None and bundle["callHeadline"] is None
    r = await rig.summary("auto-off")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == (
        "Call auto-off has no summary; POST to this URL to request one"
    )


@pytest.mark.integration
async def test_a_requested_summary_is_not_redone(rig: Rig) -> None:
    """Summaries off: a client asks for one. Summaries on, and the call ends again on the
    bus (as it does when it is transcribed again): the client's summary stays as it was."""
    await rig.enable(False)
    await rig.play("auto-asked")
    await rig.outcome("auto-asked", "disabled")
    await rig.stored("auto-asked")
    r = await api(
        rig.server,
        "POST",
        "/api/v2/calls/auto-asked/summary",
        json={"instructions": "Mine, please."},
    )
    assert r.status_code == 202, r.text

    async def processed() -> dict[str, Any] | None:
        data = (await rig.summary("auto-asked")).json()["data"]
        return data if data["summary_state"] == "processed" else None

    requested = await eventually(processed, timeout=20)
    await rig.enable(True)
    await rig.end("auto-asked")
    await rig.outcome("auto-asked", "exists", after="disabled")
    after = (await rig.summary("auto-asked")).json()["data"]
    assert after == requested  # the same job: created and processed when the client asked
    assert after["instructions"] == "Mine, please."


@pytest.mark.integration
async def test_an_upload_is_summarised_once_its_transcript_is_stored(
    rig: Rig, tmp_path: Path, corpus: list[Recording]
) -> None:
    call_id = await upload(rig, tmp_path, corpus[:2])
    bundle = await rig.bundle(call_id)
    await rig.outcome(call_id, "summarised")
    call = (await api(rig.server, "GET", f"/api/v2/calls/{call_id}")).json()["data"]
    assert call["transcription_state"] == "speech_stored"
    summary = (await rig.summary(call_id)).json()["data"]
    assert summary["summary_state"] == "processed"
    heard = [t["text"] for t in bundle["transcriptions"]]
    assert heard and bundle["summary"] == summary["result"]["summary"]
    # The summary is made of what was heard: every line quotes the transcript.
    for line in summary["result"]["summary"].splitlines():
        assert line.split(": ", 1)[1] in " ".join(heard)


@pytest.mark.integration
async def test_a_call_that_ends_later_waits_for_the_store(rig: Rig) -> None:
    """Nothing happens before ``call.ended``; after it the summary follows."""
    await rig.play("auto-late", end=False)

    async def stored() -> bool:
        r = await api(rig.server, "GET", "/api/v2/calls/auto-late/transcription")
        return r.status_code == 200 and len(r.json()["data"]["payload"]) == 4

    await eventually(stored, timeout=20)
    assert rig.server.auto_summary.outcome("auto-late") is None  # type: ignore[attr-defined]
    assert (await rig.summary("auto-late")).status_code == 404
    await rig.end("auto-late")
    await rig.outcome("auto-late", "summarised")
    assert (await rig.summary("auto-late")).json()["data"]["summary_state"] == "processed"


# -- the summarizer on its own bus ------------------------------------------------------------


@dataclass
class Bench:
    """A bus with the real store and an ``AutoSummarizer`` whose runs wait for ``gates``."""

    database: Database
    bus: EventBus
    summarizer: AutoSummarizer
    task: asyncio.Task[None]
    store_task: asyncio.Task[None]
    tenant_id: str
    gates: dict[str, asyncio.Event]
    started: list[str]
    running: list[str]
    most_at_once: int = 0


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    database = await init_db(Settings(data_dir=tmp_path))
    services = AppServices(database=database)
    tenant_id = await tenant(database, "acme", summary={"enabled": True})
    gates: dict[str, asyncio.Event] = {}
    started: list[str] = []
    running: list[str] = []

    async def gated_run(
        *, summary_id: str, call_id: str, tenant_id: str, instructions: str | None
    ) -> None:
        started.append(call_id)
        running.append(call_id)
        bench.most_at_once = max(bench.most_at_once, len(running))
        try:
            await gates.setdefault(call_id, asyncio.Event()).wait()
            if call_id.startswith("boom"):
                raise RuntimeError("the model worker died")
            await run_summary(
                services,
                summary_id=summary_id,
                call_id=call_id,
                tenant_id=tenant_id,
                instructions=instructions,
            )
        finally:
            running.remove(call_id)

    bus = EventBus()
    store = StoreSink(database, default_tenant_id=tenant_id)
    store_task = asyncio.create_task(store.run(bus.subscribe("store")))
    summarizer = AutoSummarizer(database, gated_run, concurrency=1)
    task = asyncio.create_task(summarizer.run(bus.subscribe("auto-summary")))
    bench = Bench(database, bus, summarizer, task, store_task, tenant_id, gates, started, running)
    try:
        yield bench
    finally:
        await bus.close()
        task.cancel()  # runs a test left waiting at a gate end here
        await asyncio.wait_for(asyncio.gather(task, store_task, return_exceptions=True), 10)
        await database.dispose()


def gate(bench: Bench, call_id: str) -> asyncio.Event:
    return bench.gates.setdefault(call_id, asyncio.Event())


async def summary_state(bench: Bench, call_id: str) -> tuple[str | None, str | None]:
    async with bench.database.session() as s:
        job = await summary_store.get_summary(s, call_id=call_id, tenant_id=bench.tenant_id)
    return (job.state, job.error) if job is not None else (None, None)


async def test_one_summary_at_a_time_and_a_failed_run_does_not_stop_the_rest(
    bench: Bench,
) -> None:
    for event in live_call("boom-1", bench.tenant_id, utterances=2):
        await bench.bus.publish(event)
    await eventually(lambda: bench.started == ["boom-1"])
    for event in live_call("ok-2", bench.tenant_id, utterances=2):
        await bench.bus.publish(event)
    await eventually(lambda: bench.summarizer.queued == 1)
    # ok-2 is stored and waits for the one slot, which boom-1 holds while its run waits.
    assert bench.summarizer.pending == 2
    gate(bench, "ok-2").set()
    gate(bench, "boom-1").set()
    await eventually(lambda: bench.summarizer.outcome("ok-2") is not None)
    assert bench.started == ["boom-1", "ok-2"] and bench.most_at_once == 1
    assert bench.summarizer.outcome("boom-1") == "error"
    assert bench.summarizer.outcome("ok-2") == "summarised"
    assert await summary_state(bench, "ok-2") == ("processed", None)
    assert not bench.task.done()  # the loop carries on: a third call still gets its summary
    gate(bench, "ok-3").set()
    for event in live_call("ok-3", bench.tenant_id, utterances=1):
        await bench.bus.publish(event)
    await eventually(lambda: bench.summarizer.outcome("ok-3") == "summarised")


async def test_stopping_mid_summary_marks_it_failed_so_it_can_be_requested_again(
    bench: Bench,
) -> None:
    for event in live_call("slow", bench.tenant_id, utterances=2):
        await bench.bus.publish(event)
    await eventually(lambda: bench.started == ["slow"])
    await bench.bus.close()  # as Server.stop does; run() then waits for "slow" to finish
    assert not bench.task.done()
    bench.task.cancel()  # what Server.stop does once it has waited 30 s
    await asyncio.gather(bench.task, return_exceptions=True)
    assert bench.summarizer.outcome("slow") == "interrupted"
    assert await summary_state(bench, "slow") == ("failed", INTERRUPTED)
