"""What the API needs from the rest of the application, as small Protocols plus one holder.

``app.py`` (the composition root) builds an ``AppServices`` with the real database,
transcription runner and summary engine and hands it to ``create_app``; tests build one with
test doubles. The API never constructs these itself, so it stays free of ASR and model imports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sipscribe.api.metrics import Metrics
from sipscribe.api.ratelimit import FixedWindowRateLimiter
from sipscribe.api.summary_engine import ExtractiveSummaryEngine
from sipscribe.store.db import Database

log = logging.getLogger(__name__)


@runtime_checkable
class TranscriptionRunner(Protocol):
    """Transcribes a stored recording and stores its utterances.

    Implementations write utterances with ``sipscribe.store.utterances.add_utterance`` and may
    move the call to ``speech_recognized`` (ASR done) or ``speech_storing_failed`` themselves
    (``store.calls.set_transcription_state``). The API sets ``speech_sent_to_recognition``
    before the call, ``speech_stored`` when it returns and ``speech_recognition_failed`` when it
    raises. ``roles`` gives the role of each channel in channel order, when known.
    """

    async def transcribe_call(
        self, call_id: str, tenant_id: str, path: Path, roles: list[str] | None
    ) -> None: ...


@runtime_checkable
class SummaryEngine(Protocol):
    """Turns a transcript into a summary document.

    ``transcript`` is the time-ordered list of ``{"channel", "start", "end", "text", "role"}``
    (seconds, redacted text where redaction ran); ``instructions`` combines the tenant's base
    instructions and the request's. The returned dict is stored and served as is.
    """

    async def summarize(
        self, transcript: list[dict[str, Any]], instructions: str | None
    ) -> dict[str, Any]: ...


@dataclass
class AppServices:
    """Everything the routes use besides the request: shared by all requests of one app."""

    database: Database | None = None
    transcription_runner: TranscriptionRunner | None = None
    summary_engine: SummaryEngine = field(default_factory=ExtractiveSummaryEngine)
    metrics: Metrics = field(default_factory=Metrics)
    rate_limiter: FixedWindowRateLimiter = field(default_factory=FixedWindowRateLimiter)
    # Monotonic seconds for rate-limit windows; tests substitute a settable clock.
    clock: Callable[[], float] = time.monotonic
    # /healthz answers 200 only once the composition root has started everything.
    ready: bool = False
    # Told when a summary job ends (processed or failed), e.g. to send the call's bundle.
    on_summary_done: Callable[[str], Coroutine[Any, Any, None]] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)

    def spawn(self, job: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run a background job, keeping a reference until it ends (asyncio only keeps weak ones).

        Jobs handle their own errors; anything escaping is logged here.
        """
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job %s failed", task.get_name(), exc_info=task.exception())

    @property
    def pending_jobs(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running jobs (and jobs they start); True if none
        is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def aclose(self, timeout: float = 10.0) -> None:
        """Shutdown: let jobs finish for ``timeout`` seconds, then cancel the rest."""
        self.ready = False
        if await self.drain(timeout):
            return
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
