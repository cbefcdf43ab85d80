"""Summarise every call of a tenant that asked for it, once the call's transcript is stored.

A tenant opts in with ``{"summary": {"enabled": true}}`` in its settings, read by
``delivery.service.summary_expected``: the same test that makes the completion bundle wait
for the summary, so the two never disagree on which calls get one.

Theory of operation. ``AutoSummarizer.run`` reads a reliable subscription of the public bus
and only notes tenants (``call.started``) and starts one task per ``call.ended``, so it never
holds the bus up on the database or the model. Each task

1. checks the tenant has summaries on (from ``call.started``, else from the stored call);
2. waits until the store has the transcript: the call is no longer active and its
   transcription state is ``speech_stored`` (a live call gets there when the store writes its
   ``call.ended``, an upload or a re-transcription when the runner returns); a
   ``speech_*_failed`` state means there is nothing to summarise;
3. skips the call if it has a summary already: one a client requested is never redone;
4. requests the summary with the tenant's base instructions and hands it to the injected
   ``run_summary`` (``api.jobs.run_summary`` bound to the app's services), which stores the
   outcome and calls ``on_summary_done``, so the delivery bundle that waited goes out.

Step 2 polls the store, backing off to ``poll_max_s``, instead of ``StoreSink.wait_ended``:
that forgets a call as soon as one waiter wakes, so a second waiter beside the upload runner
or the dial-out actions could make one of them miss it and hang until its timeout.

At most ``concurrency`` summaries run at once (with the embedded model each takes seconds of
CPU); later calls wait their turn. Errors are logged per call and never end the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable
from typing import Protocol

from sipscribe.delivery.service import summary_expected
from sipscribe.pipeline.events import CallEnded, CallStarted, PipelineEvent
from sipscribe.store import calls as call_store
from sipscribe.store import summaries as summary_store
from sipscribe.store import tenants as tenant_store
from sipscribe.store import webhooks as webhook_store
from sipscribe.store.db import Database
from sipscribe.store.models import CallState, SummaryRecord, SummaryState, TranscriptionState

log = logging.getLogger(__name__)

#: Outcomes kept for ``outcome()`` (operators, tests); older calls are forgotten.
MAX_OUTCOMES = 1000
INTERRUPTED = "interrupted: the server stopped before the summary was done"
_FAILED_STATES = frozenset(
    {TranscriptionState.RECOGNITION_FAILED.value, TranscriptionState.STORING_FAILED.value}
)


class SummaryRunner(Protocol):
    """Runs one requested summary to its end and stores it (``api.jobs.run_summary``)."""

    def __call__(
        self, *, summary_id: str, call_id: str, tenant_id: str, instructions: str | None
    ) -> Awaitable[None]: ...


class AutoSummarizer:
    """Starts the summary of each ended call whose tenant summarises every call."""

    def __init__(
        self,
        database: Database,
        run_summary: SummaryRunner,
        *,
        concurrency: int = 1,
        store_wait_s: float = 600.0,
        poll_min_s: float = 0.05,
        poll_max_s: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.database = database
        self.run_summary = run_summary
        self.store_wait_s = store_wait_s
        self.poll_min_s = poll_min_s
        self.poll_max_s = poll_max_s
        self._slots = asyncio.Semaphore(concurrency)
        self._tenants: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._outcomes: OrderedDict[str, str] = OrderedDict()
        self._queued = 0

    # -- the bus --------------------------------------------------------------------------

    async def run(self, events: AsyncIterable[PipelineEvent]) -> None:
        """Consume ``events`` until the bus closes, then let the started summaries finish.

        Cancelling it (the server's stop gave up waiting) cancels them; a summary cut short
        is marked failed so that a client may request it again.
        """
        try:
            async for event in events:
                self.handle(event)
            while self._tasks:
                await asyncio.wait(list(self._tasks.values()))
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def handle(self, event: PipelineEvent) -> None:
        """Note a call's tenant, or start the summary task of an ended call; never waits."""
        if isinstance(event, CallStarted):
            if event.tenant_id is not None:
                self._tenants[event.call_id] = event.tenant_id
        elif isinstance(event, CallEnded):
            call_id = event.call_id
            tenant_hint = self._tenants.pop(call_id, None)
            if call_id in self._tasks:
                return  # ended again (a re-transcription) while the first one is handled
            task = asyncio.get_running_loop().create_task(
                self._summarise(call_id, tenant_hint), name=f"auto-summary-{call_id}"
            )
            self._tasks[call_id] = task
            task.add_done_callback(lambda _t, c=call_id: self._tasks.pop(c, None))

    @property
    def pending(self) -> int:
        """Ended calls still being waited for or summarised."""
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Of those, calls whose transcript is stored, waiting for a free summary slot."""
        return self._queued

    def outcome(self, call_id: str) -> str | None:
        """What happened to a recently ended call, None while pending or unknown: ``summarised``
        or ``failed`` (the job ran; a failed one keeps its reason), ``disabled`` (tenant
        setting off), ``exists`` (a summary was there), ``no_transcript``, ``not_stored``
        (gave up waiting), ``interrupted`` (shutdown) or ``error`` (logged)."""
        return self._outcomes.get(call_id)

    def _settle(self, call_id: str, outcome: str) -> None:
        self._outcomes[call_id] = outcome
        self._outcomes.move_to_end(call_id)
        while len(self._outcomes) > MAX_OUTCOMES:
            self._outcomes.popitem(last=False)

    # -- one call -------------------------------------------------------------------------

    async def _summarise(self, call_id: str, tenant_hint: str | None) -> None:
        logger = logging.LoggerAdapter(log, {"call_id": call_id})
        try:
            outcome = await self._process(call_id, tenant_hint)
        except asyncio.CancelledError:
            self._settle(call_id, "interrupted")
            raise
        except Exception:
            logger.exception("automatic summary of call %s failed", call_id)
            outcome = "error"
        self._settle(call_id, outcome)
        if outcome == "not_stored":
            logger.warning(
                "no automatic summary of call %s: its transcript was not stored within %.0f s",
                call_id,
                self.store_wait_s,
            )
        elif outcome == "summarised":
            logger.info("automatic summary of call %s done", call_id)

    async def _process(self, call_id: str, tenant_hint: str | None) -> str:
        if tenant_hint is not None and not await self._enabled(tenant_hint):
            return "disabled"
        stored = await self._wait_stored(call_id)
        if stored is None:
            return "not_stored"
        tenant_id, transcription_state = stored
        if transcription_state in _FAILED_STATES:
            return "no_transcript"
        if tenant_hint is None and not await self._enabled(tenant_id):
            return "disabled"
        self._queued += 1
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1
        try:
            summary = await self._request(call_id, tenant_id)
            if summary is None:
                return "exists"
            summary_id, instructions = summary
            try:
                await self.run_summary(
                    summary_id=summary_id,
                    call_id=call_id,
                    tenant_id=tenant_id,
                    instructions=instructions,
                )
            except asyncio.CancelledError:
                await asyncio.shield(self._interrupted(summary_id))
                raise
        finally:
            self._slots.release()
        processed = await self._state(summary_id) == SummaryState.PROCESSED.value
        return "summarised" if processed else "failed"

    async def _enabled(self, tenant_id: str) -> bool:
        async with self.database.session() as session:
            tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
        return tenant is not None and summary_expected(tenant.settings)

    async def _wait_stored(self, call_id: str) -> tuple[str, str] | None:
        """``(tenant_id, transcription_state)`` once the store has finished with the ended
        call (stored or failed), or None if that did not happen within ``store_wait_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.store_wait_s
        delay = self.poll_min_s
        while True:
            async with self.database.session() as session:
                tenant_id = await webhook_store.tenant_of_call(session, call_id=call_id)
                call = (
                    await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
                    if tenant_id is not None
                    else None
                )
                if tenant_id is not None and call is not None and call.state != CallState.ACTIVE:
                    state = call.transcription_state
                    if state == TranscriptionState.STORED or state in _FAILED_STATES:
                        return tenant_id, str(state)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, self.poll_max_s)

    async def _request(self, call_id: str, tenant_id: str) -> tuple[str, str | None] | None:
        """Create the summary job unless the call has one; its id and the instructions to run
        it with: the tenant's base ones only, as for a request that gave none (the row keeps
        the request's own, here None, like ``POST …/summary`` does)."""
        async with self.database.session() as session:
            existing = await summary_store.get_summary(
                session, call_id=call_id, tenant_id=tenant_id
            )
            if existing is not None:
                return None
            tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
            settings = tenant_store.TenantSettings.of(tenant) if tenant is not None else None
            base = settings.summary_base_instructions if settings is not None else None
            summary = await summary_store.request_summary(
                session, call_id=call_id, instructions=None
            )
            return summary.id, (base.strip() or None) if base else None

    async def _state(self, summary_id: str) -> str | None:
        async with self.database.session() as session:
            row = await session.get(SummaryRecord, summary_id, populate_existing=True)
            return row.state if row is not None else None

    async def _interrupted(self, summary_id: str) -> None:
        """Mark a summary cut short by shutdown failed, unless it finished meanwhile."""
        try:
            async with self.database.session() as session:
                row = await session.get(SummaryRecord, summary_id, populate_existing=True)
                if row is not None and row.state == SummaryState.CREATED.value:
                    await summary_store.finish_summary(
                        session, summary_id=summary_id, error=INTERRUPTED
                    )
        except Exception:
            log.exception("could not mark interrupted summary %s failed", summary_id)


__all__ = ["AutoSummarizer", "SummaryRunner"]
